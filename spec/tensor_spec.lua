local lattice = require "lattice"
local gradcheck = require "support.gradcheck"
local ref = require "support.reference"

local f32 = ref.f32
-- what a message about an unknown dtype lists
local KNOWN = "known dtypes: float32, float16, bfloat16, float64, int32, int64, uint8, bool, uint32"

describe("lattice.array", function()
  it("builds float32 from nested Lua numbers and reads them back", function()
    local t = lattice.array({{1, 2, 3}, {4, 5, 6}})
    assert.are.same({2, 3}, t.shape)
    assert.are.equal("float32", t.dtype)
    assert.are.equal(2, t.ndim)
    assert.are.equal(6, t.size)
    assert.are.same({{1, 2, 3}, {4, 5, 6}}, t:tolist())
    assert.are.equal(2, #t)
  end)

  it("rounds to float32 on store", function()
    assert.are.equal(f32(0.1), lattice.array({0.1}):tolist()[1])
  end)

  it("takes a dtype and keeps integers exact", function()
    local t = lattice.array({1, -2, 3}, "int64")
    assert.are.equal("int64", t.dtype)
    assert.are.same({1, -2, 3}, t:tolist())
    assert.are.same({math.maxinteger, math.mininteger}, lattice.array({math.maxinteger, math.mininteger}, "int64"):tolist())
    assert.are.equal("integer", math.type(lattice.array({7}, "int32"):tolist()[1]))
  end)

  it("makes booleans bool and numbers of a bool dtype true when non-zero", function()
    assert.are.same({true, false}, lattice.array({true, false}).tolist(lattice.array({true, false})))
    assert.are.equal("bool", lattice.array({true}).dtype)
    assert.are.same({false, true, true}, lattice.array({0, 2, -1}, "bool"):tolist())
  end)

  it("saturates and truncates casts to small integer types", function()
    assert.are.same({0, 255, 3}, lattice.array({-5, 300, 3.7}, "uint8"):tolist())
  end)

  it("saturates floats past the int64 range at its exact limits", function()
    -- INT64_MAX is not a double: the nearest one below it is 2^63 - 1024
    local big = {1e30, -1e30, 2 ^ 63, -2 ^ 63, 2 ^ 63 - 1024, 0 / 0, math.huge, -math.huge}
    local want = {math.maxinteger, math.mininteger, math.maxinteger, math.mininteger, (1 << 63) - 1024, 0,
                  math.maxinteger, math.mininteger}
    assert.are.same(want, lattice.array(big, "int64"):tolist())
    assert.are.same(want, lattice.array(big, "float64"):astype("int64"):tolist())
    assert.are.same({math.maxinteger, math.mininteger}, lattice.array({1e30, -1e30}):astype("int64"):tolist())
    assert.are.same({2147483647, -2147483648, 255, 0}, {lattice.array({1e30}, "int32"):item(),
      lattice.array({-1e30}):astype("int32"):item(), lattice.array({1e30}, "uint8"):item(),
      lattice.array({-1e30}, "float64"):astype("uint8"):item()})
  end)

  it("makes 0-d tensors from numbers", function()
    local t = lattice.array(2.5)
    assert.are.same({}, t.shape)
    assert.are.equal(2.5, t:item())
    assert.are.equal(2.5, t:tolist())
  end)

  it("copies a tensor, optionally converting it", function()
    local a = lattice.array({1.5, 2.5})
    local b = lattice.array(a, "int32")
    assert.are.same({1, 2}, b:tolist())
    assert.is_false(lattice.is_tensor({}))
  end)

  it("rejects ragged tables, bad elements and unknown dtypes", function()
    assert.has_error(function() lattice.array({{1, 2}, {3}}) end,
      "array: ragged nested table at depth 2 (expected 2 elements, got 1)")
    assert.has_error(function() lattice.array({{}, {3}}) end,
      "array: ragged nested table at depth 2 (expected 0 elements, got 1)")
    assert.are.same({2, 0}, lattice.array({{}, {}}).shape)
    assert.has_error(function() lattice.array({1, "x"}) end, "array: elements must be numbers or booleans, got string")
    assert.has_error(function() lattice.array({1}, "float128") end,
      "bad argument #2 to 'array' (unknown dtype 'float128'; " .. KNOWN .. ")")
    assert.has_error(function() lattice.array("x") end,
      "bad argument #1 to 'array' (table, number or boolean expected, got string)")
    assert.has_error(function() lattice.array({1}, "int32", 3) end, "array: too many arguments (expected at most 2, got 3)")
  end)

  it("rejects tables that are not sequences instead of reading part of them", function()
    assert.has_error(function() lattice.array({[1] = 1, [3] = 3}) end, "array: the table at depth 1 has a hole at index 2")
    assert.has_error(function() lattice.array({x = 1}) end, "array: the table at depth 1 is not a sequence (key 'x')")
    assert.has_error(function() lattice.array({1, 2, n = 2}) end, "array: the table at depth 1 is not a sequence (key 'n')")
    assert.has_error(function() lattice.array({{1, 2}, {3, nil, 5}}) end,
      "array: the table at depth 2 has a hole at index 2")
    assert.has_error(function() lattice.array({{1}, {[0] = 0, 1}}) end,
      "array: the table at depth 2 is not a sequence (key 0)")
    assert.are.same({1, 2}, lattice.array({[2] = 2, [1] = 1}):tolist())
  end)
end)

describe("float16 and bfloat16 storage", function()
  it("round-trips values they can represent exactly", function()
    local vals = {0, 1, -2, 0.5, 65504, 2 ^ -14, 2 ^ -24}
    assert.are.same(vals, lattice.array(vals, "float16"):tolist())
    local bvals = {0, 1, -2, 0.5, 2 ^ 100, 2 ^ -126, 3.140625}
    assert.are.same(bvals, lattice.array(bvals, "bfloat16"):tolist())
  end)

  it("rounds to nearest even and overflows to infinity", function()
    -- 1 + 2^-11 is halfway between 1 and 1 + 2^-10 in float16: ties go to even (1)
    assert.are.equal(1, lattice.array({1 + 2 ^ -11}, "float16"):item())
    assert.are.equal(1 + 2 ^ -9, lattice.array({1 + 3 * 2 ^ -11}, "float16"):item())
    assert.are.equal(math.huge, lattice.array({70000}, "float16"):item())
    -- bfloat16 keeps 8 significant bits: 1 + 2^-8 ties to 1
    assert.are.equal(1, lattice.array({1 + 2 ^ -8}, "bfloat16"):item())
    local nan = lattice.array({0 / 0}, "float16"):item()
    assert.is_true(nan ~= nan)
  end)

  it("converts between all dtypes with astype", function()
    local x = lattice.array({1.25, -3, 100})
    for _, dt in ipairs({"float16", "bfloat16", "float32"}) do
      assert.are.same({1.25, -3, 100}, x:astype(dt):astype("float32"):tolist())
    end
    assert.are.same({1, -3, 100}, x:astype("int32"):tolist())
    assert.are.same({true, true, true}, x:astype("bool"):tolist())
  end)
end)

describe("float64", function()
  it("stores doubles exactly and converts to and from every dtype", function()
    local vals = {0.1, -1 / 3, 1e300, 2 ^ -1074, 2 ^ 53 + 2}
    local x = lattice.array(vals, "float64")
    assert.are.same(vals, x:tolist())
    local f = lattice.array({0.1, 1 / 3})
    assert.are.same(f:tolist(), f:astype("float64"):tolist()) -- float32 widens exactly
    assert.are.same(vals, x:astype("float64"):tolist())
    assert.are.same({1, -3, 100}, lattice.array({1.75, -3.5, 100}, "float64"):astype("int64"):tolist())
    assert.are.same({2 ^ 53 + 2}, lattice.array({2 ^ 53 + 2}, "int64"):astype("float64"):tolist())
    assert.are.same({0, 0}, lattice.zeros({2}, "float64"):tolist())
  end)

  it("goes through every layout op unchanged", function()
    local x = lattice.array({{0.1, 0.2, 0.3}, {0.4, 0.5, 0.6}}, "float64")
    local function same(want, t)
      assert.are.equal("float64", t.dtype)
      assert.are.same(want, t:tolist())
    end
    same({{0.1, 0.4}, {0.2, 0.5}, {0.3, 0.6}}, x:transpose())
    same({0.1, 0.2, 0.3, 0.4, 0.5, 0.6}, x:reshape(-1))
    same({{0.1, 0.4}, {0.2, 0.5}, {0.3, 0.6}}, x:transpose():contiguous())
    same({{0.2, 0.3}, {0.5, 0.6}}, x:slice(2, 2, 3))
    same({{0.1, 0.2, 0.3}, {0.4, 0.5, 0.6}, {0.1, 0.2, 0.3}}, lattice.concatenate({x, x:slice(1, 1, 1)}))
    same({{{0.1, 0.2, 0.3}}, {{0.4, 0.5, 0.6}}}, x:expand_dims(2))
    same({{0.1, 0.2, 0.3}, {0.1, 0.2, 0.3}}, x[1]:broadcast_to({2, 3}))
    same({{0.1}, {0.4}}, x:split({2}, 2)[1])
    same({0.1, 1}, lattice.concatenate({lattice.array({0.1}, "float64"), lattice.array({1}, "float32")}))
    assert.are.equal("array([0.1, 0.2, 0.3], dtype=float64)", tostring(x[1]))
  end)
end)

describe("creation functions", function()
  it("zeros, ones, full, zeros_like and ones_like", function()
    assert.are.same({{0, 0}, {0, 0}}, lattice.zeros({2, 2}):tolist())
    assert.are.same({1, 1, 1}, lattice.ones({3}, "int32"):tolist())
    assert.are.same({{7, 7}}, lattice.full({1, 2}, 7):tolist())
    assert.are.same({true}, lattice.full({1}, true):tolist())
    local x = lattice.array({{1, 2}}, "float16")
    assert.are.equal("float16", lattice.zeros_like(x).dtype)
    assert.are.same({{1, 1}}, lattice.ones_like(x):tolist())
  end)

  it("arange counts values from 0, like NumPy", function()
    assert.are.same({0, 1, 2, 3}, lattice.arange(4):tolist())
    assert.are.same({2, 4, 6}, lattice.arange(2, 8, 2):tolist())
    assert.are.same({1, 0.5}, lattice.arange(1, 0, -0.5):tolist())
    assert.are.equal("int32", lattice.arange(3, "int32").dtype)
    assert.has_error(function() lattice.arange(0, 1, 0) end, "arange: step must be finite and non-zero")
    assert.has_error(function() lattice.arange(0, 1e30) end, "arange: too many elements (1e+30)")
  end)

  it("eye with offsets", function()
    assert.are.same({{1, 0, 0}, {0, 1, 0}}, lattice.eye(2, 3):tolist())
    assert.are.same({{0, 1}, {0, 0}}, lattice.eye(2, 2, 1):tolist())
    assert.are.same({{0, 0}, {0, 0}}, lattice.eye(2, 2, math.maxinteger):tolist())
    assert.are.same({{0, 0}, {0, 0}}, lattice.eye(2, 2, math.mininteger):tolist())
  end)

  it("rejects bad shapes", function()
    assert.has_error(function() lattice.zeros({2, -1}) end, "zeros: shape[2] must be a non-negative integer, got -1")
    assert.has_error(function() lattice.ones({2, 1.5}) end, "ones: shape[2] must be a non-negative integer, got 1.5")
    assert.has_error(function() lattice.full({"x"}, 1) end, "full: shape[1] must be a non-negative integer, got string")
    assert.has_error(function() lattice.zeros(-1) end, "zeros: shape[1] must be a non-negative integer, got -1")
    assert.has_error(function() lattice.zeros({[1] = 2, [3] = 3}) end, "zeros: the shape has a hole at index 2")
    assert.has_error(function() lattice.zeros({1, 1, 1, 1, 1, 1, 1, 1, 1}) end,
      "zeros: shape has 9 dimensions (at most 8)")
  end)

  it("name themselves when the shape is too large or memory runs out", function()
    local huge = {2 ^ 40, 2 ^ 40}
    assert.has_error(function() lattice.zeros(huge) end, "zeros: shape too large")
    assert.has_error(function() lattice.ones(huge, "int32") end, "ones: shape too large")
    assert.has_error(function() lattice.full(huge, 2) end, "full: shape too large")
    assert.has_error(function() lattice.eye(2 ^ 40) end, "eye: shape too large")
    local view = lattice.broadcast_to(lattice.ones(1), {2 ^ 62})
    assert.has_error(function() lattice.zeros_like(view) end, "zeros_like: shape too large")
    assert.has_error(function() lattice.ones_like(view) end, "ones_like: shape too large")
    assert.has_error(function() lattice.array(view) end, "array: shape too large")
    assert.has_error(function() lattice.random.normal(huge) end, "random.normal: shape too large")
    assert.has_error(function() lattice.random.uniform(0, 1, huge) end, "random.uniform: shape too large")
    assert.has_error(function() lattice.random.randint(0, 2, huge) end, "random.randint: shape too large")
    -- 2^57 float32 elements pass the shape check; no machine has the 512 PiB
    assert.has_error(function() lattice.zeros({2 ^ 40, 2 ^ 17}) end,
      "zeros: out of memory allocating 576460752303423488 bytes")
    assert.has_error(function() lattice.arange(0, 2 ^ 57) end, "arange: out of memory allocating 576460752303423488 bytes")
  end)

  it("list the known dtypes when given an unknown one", function()
    assert.has_error(function() lattice.zeros({2}, "float128") end,
      "bad argument #2 to 'zeros' (unknown dtype 'float128'; " .. KNOWN .. ")")
    assert.has_error(function() lattice.random.normal({2}, {dtype = "float128"}) end,
      "random.normal: unknown dtype 'float128'; " .. KNOWN)
    assert.has_error(function() lattice.random.randint(0, 2, {2}, {dtype = "int8"}) end,
      "random.randint: unknown dtype 'int8'; " .. KNOWN)
  end)

  it("refuse arguments past their last", function()
    assert.has_error(function() lattice.zeros({2}, "float32", 0) end, "zeros: too many arguments (expected at most 2, got 3)")
    assert.has_error(function() lattice.full({2}, 1, "int32", {}) end, "full: too many arguments (expected at most 3, got 4)")
    assert.has_error(function() lattice.arange(0, 4, 1, "int32", 5) end,
      "arange: too many arguments (expected at most 4, got 5)")
    assert.has_error(function() lattice.random.normal({2}, {}, 3) end,
      "random.normal: too many arguments (expected at most 2, got 3)")
    assert.are.same({0, 0}, lattice.zeros({2}, nil, nil):tolist()) -- trailing nils are absent arguments
  end)
end)

describe("lattice.random", function()
  it("reproduces draws from a seed", function()
    lattice.random.seed(42)
    local a = lattice.random.normal({5}):tolist()
    lattice.random.seed(42)
    assert.are.same(a, lattice.random.normal({5}):tolist())
    assert.are_not.same(a, lattice.random.normal({5}):tolist())
  end)

  it("starts every state at seed 0, so an unseeded script draws the same numbers every run", function()
    local exe = arg and arg[-1]
    if type(exe) ~= "string" or not exe:match("lattice$") then return pending("needs the lattice command") end
    local code = "io.write(table.concat(lattice.random.normal({4}):tolist(), ' '))"
    local function run()
      local p = assert(io.popen("'" .. exe .. "' -e " .. ("%q"):format(code)))
      local out = p:read("a")
      p:close()
      return out
    end
    local first = run()
    assert.are.equal(first, run())
    lattice.random.seed(0)
    assert.are.equal(table.concat(lattice.random.normal({4}):tolist(), " "), first)
  end)

  it("does not depend on the thread count", function()
    local threads = lattice.num_threads and lattice.num_threads()
    if not threads then return end
    lattice.random.seed(7)
    local a = lattice.random.uniform({100000}):sum():item()
    lattice.set_num_threads(1)
    lattice.random.seed(7)
    local b = lattice.random.uniform({100000}):sum():item()
    lattice.set_num_threads(threads)
    assert.are.equal(a, b)
  end)

  it("has the requested moments and ranges", function()
    lattice.random.seed(1)
    local n = 200000
    local x = lattice.random.normal({n}, {loc = 3, scale = 2}):tolist()
    local s, s2 = 0, 0
    for _, v in ipairs(x) do s, s2 = s + v, s2 + v * v end
    local mean = s / n
    local var = s2 / n - mean * mean
    -- standard errors: 2/sqrt(n) ~ 0.0045 for the mean, ~0.03 for the variance
    assert.is_true(math.abs(mean - 3) < 0.03, "mean " .. mean)
    assert.is_true(math.abs(var - 4) < 0.1, "variance " .. var)
    local u = lattice.random.uniform(-1, 2, {n}):tolist()
    local lo, hi = math.huge, -math.huge
    for _, v in ipairs(u) do lo, hi = math.min(lo, v), math.max(hi, v) end
    assert.is_true(lo >= -1 and hi < 2 and lo < -0.99 and hi > 1.99)
    local r = lattice.random.randint(3, 7, {n})
    assert.are.equal("int32", r.dtype)
    local seen = {}
    for _, v in ipairs(r:tolist()) do seen[v] = (seen[v] or 0) + 1 end
    for v = 3, 6 do assert.is_true(math.abs(seen[v] / n - 0.25) < 0.01) end
    assert.is_nil(seen[2])
    assert.is_nil(seen[7])
  end)

  it("randint draws from ranges its dtype holds, full int64 ranges included", function()
    lattice.random.seed(5)
    local function distinct(t)
      local seen, k = {}, 0
      for _, v in ipairs(t:tolist()) do
        if not seen[v] then seen[v], k = true, k + 1 end
      end
      return k
    end
    local r = lattice.random.randint(math.mininteger, math.maxinteger, {64}, {dtype = "int64"})
    assert.are.equal(64, distinct(r))
    local neg, pos = 0, 0
    for _, v in ipairs(r:tolist()) do if v < 0 then neg = neg + 1 else pos = pos + 1 end end
    assert.is_true(neg > 10 and pos > 10)
    local big = lattice.random.randint(1 << 62, (1 << 62) + 4, {200}, {dtype = "int64"}):tolist()
    for _, v in ipairs(big) do assert.is_true(v >= 1 << 62 and v < (1 << 62) + 4) end
    assert.are.equal(4, distinct(lattice.array(big, "int64")))
    -- the edges of int32 and uint8: high is exclusive
    local i = lattice.random.randint(-2 ^ 31, 2 ^ 31, {1000}):tolist()
    local lo, hi = math.huge, -math.huge
    for _, v in ipairs(i) do lo, hi = math.min(lo, v), math.max(hi, v) end
    assert.is_true(lo < -2 ^ 30 and hi > 2 ^ 30 and lo >= -2 ^ 31 and hi < 2 ^ 31)
    local u = lattice.random.randint(250, 256, {600}, {dtype = "uint8"}):tolist()
    local seen = {}
    for _, v in ipairs(u) do seen[v] = true end
    for v = 250, 255 do assert.is_true(seen[v], v) end
  end)

  it("randint refuses bounds its dtype cannot hold, as NumPy does", function()
    assert.has_error(function() lattice.random.randint(2 ^ 31, 2 ^ 31 + 4, {4}) end,
      "random.randint: low (2147483648) is out of bounds for int32")
    assert.has_error(function() lattice.random.randint(0, 2 ^ 40, {6}) end,
      "random.randint: high (1099511627776) is out of bounds for int32")
    assert.has_error(function() lattice.random.randint(0, 300, {6}, {dtype = "uint8"}) end,
      "random.randint: high (300) is out of bounds for uint8")
    assert.has_error(function() lattice.random.randint(-1, 3, {6}, {dtype = "uint8"}) end,
      "random.randint: low (-1) is out of bounds for uint8")
    assert.has_error(function() lattice.random.randint(-2 ^ 31 - 1, 0, {1}) end,
      "random.randint: low (-2147483649) is out of bounds for int32")
  end)

  it("rejects bad arguments", function()
    assert.has_error(function() lattice.random.randint(5, 5, {2}) end, "random.randint: low (5) must be below high (5)")
    assert.has_error(function() lattice.random.normal({2}, {dtype = "int32"}) end,
      "random.normal: dtype must be a float type, got int32")
    assert.has_error(function() lattice.random.normal({2}, {sigma = 1}) end, "random.normal: unknown option 'sigma'")
  end)
end)

describe("views", function()
  local x = lattice.arange(24):reshape(2, 3, 4)

  it("reshape infers -1 and rejects sizes that do not match", function()
    assert.are.same({6, 4}, x:reshape(-1, 4).shape)
    assert.are.same({24}, x:reshape({-1}).shape)
    assert.has_error(function() x:reshape(5, -1) end, "reshape: cannot reshape {2,3,4} (24 elements) into {5,-1}")
    assert.has_error(function() lattice.reshape(lattice.ones(6), {2, 3.5}) end,
      "reshape: shape[2] must be an integer, got 3.5")
    assert.has_error(function() lattice.reshape(lattice.ones(6), {2, nil, 3}) end,
      "reshape: the shape has a hole at index 2")
    assert.has_error(function() x:reshape({24}, 1) end, "reshape: too many arguments (expected at most 2, got 3)")
    -- a product that overflows int64 (2^64 wraps to 0) is no size at all
    assert.has_error(function() lattice.zeros({0}):reshape(4294967296, 4294967296) end,
      "reshape: cannot reshape {0} (0 elements) into {4294967296,4294967296}")
    assert.has_error(function() lattice.zeros({0}):reshape(-1, 4294967296, 4294967296) end,
      "reshape: cannot reshape {0} (0 elements) into {-1,4294967296,4294967296}")
  end)

  it("transpose reverses or permutes axes (1-based)", function()
    local t = x:transpose()
    assert.are.same({4, 3, 2}, t.shape)
    assert.are.equal(x:tolist()[2][3][4], t:tolist()[4][3][2])
    local p = x:transpose({2, 3, 1})
    assert.are.same({3, 4, 2}, p.shape)
    assert.are.equal(x:tolist()[2][1][3], p:tolist()[1][3][2])
    assert.are.same({4, 3, 2}, x.T.shape)
    assert.has_error(function() x:transpose({1, 1, 2}) end, "transpose: axes must be a permutation of the 3 dimensions")
    assert.has_error(function() x:transpose({1, 2.5, 3}) end, "transpose: axes[2] must be an integer, got 2.5")
    assert.has_error(function() x:transpose({1, nil, 3}) end, "transpose: axes has a hole at index 2")
  end)

  it("expand_dims and squeeze", function()
    assert.are.same({2, 1, 3, 4}, x:expand_dims(2).shape)
    assert.are.same({2, 3, 4, 1}, x:expand_dims(-1).shape)
    assert.are.same({2, 3, 4}, x:expand_dims(1):squeeze(1).shape)
    assert.are.same({3}, lattice.zeros({1, 3, 1}):squeeze().shape)
    -- axes in messages count from 1, as the caller does
    assert.has_error(function() lattice.squeeze(lattice.ones({1, 2, 1}), 2) end, "squeeze: axis 2 has size 2, not 1")
    assert.has_error(function() lattice.squeeze(lattice.ones({1, 2, 1}), -2) end, "squeeze: axis 2 has size 2, not 1")
    assert.has_error(function() x:squeeze(2) end, "squeeze: axis 2 has size 3, not 1")
    assert.has_error(function() x:expand_dims(5) end, "expand_dims: axis 5 is out of range for 4 dimensions")
    assert.has_error(function() x:expand_dims(2 ^ 32 + 1) end,
      "expand_dims: axis 4294967297 is out of range for 4 dimensions")
    assert.has_error(function() x:squeeze(-2 ^ 32) end, "squeeze: axis -4294967296 is out of range for 3 dimensions")
  end)

  it("slice takes inclusive 1-based bounds, negatives from the end, and a step", function()
    local v = lattice.arange(10)
    assert.are.same({2, 3, 4}, v:slice(1, 3, 5):tolist())
    assert.are.same({7, 8, 9}, v:slice(1, -3):tolist())
    assert.are.same({0, 3, 6, 9}, v:slice(1, 1, -1, 3):tolist())
    assert.are.same({}, v:slice(1, 5, 4):tolist())
    assert.are.same({{1, 2}, {5, 6}, {9, 10}}, x[1]:slice(2, 2, 3):tolist())
    assert.has_error(function() v:slice(1, 1, 2, 0) end, "slice: step must be non-zero, got 0")
    assert.are.same({0}, v:slice(1, 1, -1, math.maxinteger):tolist())
    assert.has_error(function() v:slice(2, 1, 2) end, "slice: axis 2 is out of range for 1 dimensions")
    assert.has_error(function() v:slice(2 ^ 32 + 1, 1, 2) end, "slice: axis 4294967297 is out of range for 1 dimensions")
    assert.has_error(function() v:slice(1, 1, 2, 1, 0) end, "slice: too many arguments (expected at most 5, got 6)")
  end)

  it("slice walks backwards with a negative step, from first down to last inclusive", function()
    local v = lattice.arange(10, "int32")
    assert.are.same({9, 8, 7, 6, 5, 4, 3, 2, 1, 0}, v:slice(1, nil, nil, -1):tolist()) -- Python's v[::-1]
    assert.are.same({7, 5, 3}, v:slice(1, 8, 3, -2):tolist())    -- v[7:1:-2]
    assert.are.same({9, 6, 3, 0}, v:slice(1, -1, 1, -3):tolist()) -- down to the first element
    assert.are.same({4, 3, 2}, v:slice(1, 5, -8, -1):tolist())    -- negatives count from the end
    assert.are.same({9, 5, 1}, v:slice(1, 100, -100, -4):tolist()) -- bounds clamp
    assert.are.same({4}, v:slice(1, 5, 5, -1):tolist())
    assert.are.same({}, v:slice(1, 3, 8, -1):tolist())            -- first below last: empty
    assert.are.same({9}, v:slice(1, 10, 1, math.mininteger):tolist())
    assert.are.same({}, lattice.arange(0):slice(1, nil, nil, -1):tolist())
    local m = lattice.arange(6):reshape(2, 3)
    local r = m:slice(2, nil, nil, -1)
    assert.are.same({{2, 1, 0}, {5, 4, 3}}, r:tolist())
    assert.is_true(lattice.shares_storage(r, m)) -- a view with a negative stride
    assert.are.same({{5, 4, 3}, {2, 1, 0}}, r:slice(1, nil, nil, -1):tolist())
    assert.are.same({{2, 5}, {1, 4}, {0, 3}}, r:transpose():contiguous():tolist())
    assert.are.same({3, 12}, lattice.sum(r, 2):tolist())
    assert.are.same({7, 5, 3}, lattice.sum(r, 1):tolist())
    assert.are.same({{2, 1, 0}}, lattice.matmul(lattice.array({{1, 0}}), r):tolist())
  end)

  it("indexes rows with t[i], 1-based", function()
    assert.are.same({{12, 13, 14, 15}, {16, 17, 18, 19}, {20, 21, 22, 23}}, x[2]:tolist())
    assert.are.same({8, 9, 10, 11}, x[1][-1]:tolist())
    assert.has_error(function() return x[3] end, "index: 3 is out of range for axis 1 of size 2")
    assert.has_error(function() return lattice.ones({1})[math.mininteger] end,
      "index: -9223372036854775808 is out of range for axis 1 of size 1")
    assert.has_error(function() return x[2 ^ 32 + 1] end, "index: 4294967297 is out of range for axis 1 of size 2")
  end)

  it("takes integral numbers as Lua tables do and refuses others", function()
    assert.are.same(x[2]:tolist(), x[2.0]:tolist())
    assert.has_error(function() return x[1.5] end, "index: 1.5 is not an integer")
    assert.is_nil(x.nonexistent)
  end)

  it("share storage with their base", function()
    local base = lattice.arange(6)
    local views = {base:reshape(2, 3), base:reshape(2, 3):transpose(), base:slice(1, 2, 4), base:expand_dims(1), base[2]}
    for _, v in ipairs(views) do assert.is_true(lattice.shares_storage(v, base)) end
    assert.is_false(lattice.shares_storage(base:astype("int32"), base))
  end)

  it("reshape of a non-contiguous view copies in row-major order", function()
    local t = lattice.arange(6):reshape(2, 3):transpose()
    assert.are.same({0, 3, 1, 4, 2, 5}, t:reshape(-1):tolist())
  end)

  it("broadcast_to repeats size-1 axes", function()
    assert.are.same({{1, 2}, {1, 2}}, lattice.array({1, 2}):broadcast_to({2, 2}):tolist())
    assert.has_error(function() lattice.array({1, 2}):broadcast_to({3}) end, "broadcast_to: cannot broadcast {2} to {3}")
    assert.has_error(function() lattice.array({1}):broadcast_to({4294967296, 4294967296}) end,
      "broadcast_to: cannot broadcast {1} to {4294967296,4294967296}")
  end)

  it("are immutable", function()
    assert.has_error(function() x.shape = {1} end, "lattice.Tensor: tensors are immutable (field 'shape')")
  end)
end)

describe("concatenate, stack and split", function()
  local a, b = lattice.array({{1, 2}}), lattice.array({{3, 4}, {5, 6}})

  it("concatenate along an axis", function()
    assert.are.same({{1, 2}, {3, 4}, {5, 6}}, lattice.concatenate({a, b}):tolist())
    assert.are.same({{1, 2, 1, 2}}, lattice.concatenate({a, a}, 2):tolist())
    local many = {}
    for i = 1, 9 do many[i] = lattice.array({i}) end
    assert.are.same({1, 2, 3, 4, 5, 6, 7, 8, 9}, lattice.concatenate(many):tolist())
    assert.has_error(function() lattice.concatenate({a, b}, 2) end,
      "concatenate: shapes {1,2} and {2,2} differ outside axis 2")
    assert.has_error(function() lattice.concatenate({a, 3}) end, "concatenate: element 2 is a number, not a lattice.Tensor")
    assert.has_error(function() lattice.concatenate({a, nil, a}) end,
      "concatenate: the list of tensors has a hole at index 2")
    assert.has_error(function() lattice.concatenate({a, a}, 1, 2) end,
      "concatenate: too many arguments (expected at most 2, got 3)")
  end)

  it("say which element is closed", function()
    local c1, c2 = lattice.ones(2), lattice.ones(2)
    c1:close()
    c2:close()
    assert.has_error(function() lattice.concatenate({c1, c2}) end, "concatenate: element 1 is closed")
    assert.has_error(function() lattice.stack({a[1], c2}) end, "stack: element 2 is closed")
  end)

  it("promotes mixed dtypes", function()
    local c = lattice.concatenate({lattice.array({1}, "int32"), lattice.array({1.5})})
    assert.are.equal("float32", c.dtype)
    assert.are.same({1, 1.5}, c:tolist())
  end)

  it("stack adds an axis", function()
    assert.are.same({{1, 2}, {1, 2}}, lattice.stack({a[1], a[1]}):tolist())
    assert.are.same({{1, 1}, {2, 2}}, lattice.stack({a[1], a[1]}, -1):tolist())
    assert.has_error(function() lattice.stack({a, b}) end, "stack: all tensors must have the same shape")
  end)

  it("split into equal pieces or at 1-based positions", function()
    local v = lattice.arange(6)
    local parts = v:split(3)
    assert.are.equal(3, #parts)
    assert.are.same({2, 3}, parts[2]:tolist())
    local at = v:split({2, 5})
    assert.are.same({0}, at[1]:tolist())
    assert.are.same({1, 2, 3}, at[2]:tolist())
    assert.are.same({4, 5}, at[3]:tolist())
    assert.has_error(function() v:split(4) end, "split: axis of size 6 cannot be split into 4 equal pieces")
    assert.has_error(function() lattice.split(lattice.ones(5), math.maxinteger) end,
      "split: axis of size 5 cannot be split into 9223372036854775807 equal pieces")
    assert.has_error(function() v:split({2, 2.5}) end, "split: positions[2] must be an integer, got 2.5")
    assert.has_error(function() lattice.split(lattice.array(1), 2) end, "split: a 0-d tensor has no axis to split")
    assert.has_error(function() v:split(2, 1, 1) end, "split: too many arguments (expected at most 3, got 4)")
  end)
end)

describe("gradients of layout ops", function()
  lattice.random.seed(3)
  local w = lattice.random.normal({2, 3, 4})
  local function weighted(y) return lattice.sum(y * lattice.random.normal(y.shape)) end

  it("flow through reshape, transpose, expand_dims, squeeze, slice and broadcast_to", function()
    local x = lattice.random.normal({2, 3, 4})
    local cases = {
      function(t) return t:reshape(6, 4) end,
      function(t) return t:transpose({3, 1, 2}) end,
      function(t) return t:expand_dims(2):squeeze(2) end,
      function(t) return t:slice(3, 2, 4) end,
      function(t) return t:slice(2, 1, -1, 2) end,
      function(t) return t:slice(3, nil, nil, -1) end,
      function(t) return t:slice(2, 3, 1, -2):slice(1, 2, 1, -1) end,
      function(t) return t[2] end,
      function(t) return t:slice(1, 1, 1):broadcast_to({5, 3, 4}) end,
      function(t) return t:transpose():reshape(-1) end,
      function(t) return t:contiguous() end,
    }
    for _, op in ipairs(cases) do
      lattice.random.seed(9)
      local y = op(x)
      local probe = lattice.random.normal(y.shape)
      gradcheck.each_dtype(function(t) return lattice.sum(op(t) * probe) end, {x})
    end
    assert.is_truthy(w and weighted)
  end)

  it("flow through astype between float dtypes", function()
    -- float16's spacing (2^-10 near 1) exceeds gradcheck's step, so check exactly instead
    local g = lattice.grad(function(t) return lattice.sum(t:astype("float16") * 3) end)(lattice.array({0.1, 2}))
    assert.are.equal("float32", g.dtype)
    assert.are.same({3, 3}, g:tolist())
  end)

  it("flow through concatenate, stack and split", function()
    local a, b, c = lattice.random.normal({2, 3}), lattice.random.normal({1, 3}), lattice.random.normal({2, 3})
    local p1 = lattice.random.normal({3, 3})
    gradcheck.each_dtype(function(x, y) return lattice.sum(lattice.concatenate({x, y}) * p1) end, {a, b})
    local p2 = lattice.random.normal({2, 2, 3})
    gradcheck.each_dtype(function(x, y) return lattice.sum(lattice.stack({x, y}, 2) * p2) end, {a, c})
    gradcheck.each_dtype(function(x)
      local parts = x:split({2}, 2)
      return lattice.sum(parts[1] * 2) + lattice.sum(parts[2] * parts[2])
    end, {a})
  end)
end)

describe("tostring", function()
  it("prints like NumPy", function()
    assert.are.equal("array([[1., 2.],\n       [3., 4.]], dtype=float32)", tostring(lattice.array({{1, 2}, {3, 4}})))
    assert.are.equal("array([ 1.5 , -2.25], dtype=float32)", tostring(lattice.array({1.5, -2.25})))
    assert.are.equal("array([1, 2], dtype=int32)", tostring(lattice.array({1, 2}, "int32")))
    assert.are.equal("array(3., dtype=float32)", tostring(lattice.array(3)))
    assert.are.equal("array([ true, false], dtype=bool)", tostring(lattice.array({true, false})))
    assert.are.equal("array([0.1, 0.2], dtype=float32)", tostring(lattice.array({0.1, 0.2})))
  end)

  it("elides large tensors", function()
    local s = tostring(lattice.arange(2000, "int32"))
    assert.are.equal("array([   0,    1,    2, ..., 1997, 1998, 1999], dtype=int32)", s)
  end)

  it("prints a view of any size without copying it", function()
    -- 2^58 elements: the corners are cut through views before anything is copied
    local big = lattice.broadcast_to(lattice.arange(8):reshape(1, 8), {2 ^ 27, 2 ^ 28, 8})
    local row = "[0., 1., 2., ..., 5., 6., 7.]"
    local block = "[" .. table.concat({row, row, row, "...", row, row, row}, ",\n        ") .. "]"
    local want = "array([" .. table.concat({block, block, block, "...", block, block, block}, ",\n\n       ")
      .. "], dtype=float32)"
    assert.are.equal(want, tostring(big))
  end)

  it("prints float64 with up to 8 digits that read back", function()
    assert.are.equal("array([0.12345679, 0.33333333, 0.1       ], dtype=float64)",
      tostring(lattice.array({0.1234567891, 1 / 3, 0.1}, "float64")))
  end)
end)

describe("closing", function()
  it("releases a tensor once and rejects later use", function()
    local t = lattice.zeros({4})
    t:close()
    t:close()
    assert.has_error(function() return t + 1 end)
    assert.has_error(function() t:tolist() end, "calling 'tolist' on bad self (tensor is closed)")
    assert.has_error(function() lattice.tolist(t) end, "bad argument #1 to 'tolist' (tensor is closed)")
    assert.are.equal("lattice.Tensor (closed)", tostring(t))
  end)

  it("works with to-be-closed variables", function()
    collectgarbage()
    collectgarbage("stop") -- only the close below may release memory
    local before = lattice.memory_stats().in_use
    do
      local t <close> = lattice.zeros({1024, 1024})
      assert.are.equal(1024 * 1024, t.size)
      assert.are.equal(before + 4 * 1024 * 1024, lattice.memory_stats().in_use)
    end
    local after = lattice.memory_stats().in_use
    collectgarbage("restart")
    assert.are.equal(before, after)
  end)
end)

describe("argument checks", function()
  it("names the function and the expected type", function()
    assert.has_error(function() lattice.reshape("x", 2) end,
      "bad argument #1 to 'reshape' (lattice.Tensor expected, got string)")
    assert.has_error(function() lattice.transpose(lattice.zeros({2}), {1, 2}) end,
      "transpose: axes has 2 entries for 1 dimensions")
  end)

  it("refuse arguments past the last one a function takes", function()
    local x = lattice.zeros({2})
    assert.has_error(function() x:tolist(1) end, "tolist: too many arguments (expected at most 1, got 2)")
    assert.has_error(function() x:astype("int32", 1) end, "astype: too many arguments (expected at most 2, got 3)")
    assert.has_error(function() x:broadcast_to({2}, 1) end, "broadcast_to: too many arguments (expected at most 2, got 3)")
    assert.has_error(function() lattice.shares_storage(x, x, x) end,
      "shares_storage: too many arguments (expected at most 2, got 3)")
    assert.is_true(lattice.is_tensor(x, nil)) -- a trailing nil is no argument
  end)
end)

describe("tensor methods", function()
  it("are the listed functions of a tensor first argument, the same functions as at the top level", function()
    local x = lattice.array({1, 2})
    assert.are.equal(lattice.sum, x.sum)
    assert.are.equal(lattice.reshape, x.reshape)
    assert.are.equal(3, x:sum():item())
  end)

  it("leave out creation functions, namespaces, runtime functions and functions of lists", function()
    local x = lattice.array({1, 2})
    for _, name in ipairs({"zeros", "array", "random", "value_and_grad", "grad", "save_safetensors",
                           "load_safetensors", "set_num_threads", "blas_info", "now", "is_tensor",
                           "concatenate", "stack"}) do
      assert.is_nil(x[name], name)
    end
  end)
end)

describe("lattice.Tensor", function()
  it("is the tensor type's methods table, and its metatable's name", function()
    local x = lattice.array({1, 2})
    assert.are.equal("table", type(lattice.Tensor))
    assert.are.equal(lattice.sum, lattice.Tensor.sum)
    assert.are.equal(3, lattice.Tensor.sum(x):item())
    assert.are.equal("lattice.Tensor", getmetatable(x).__name)
    assert.is_true(lattice.is_tensor(x))
    assert.is_false(lattice.is_tensor(getmetatable(x)))
  end)

  it("takes new methods, as the string table does", function()
    local x = lattice.array({1, 2})
    function lattice.Tensor.double(t) return t * 2 end
    assert.are.same({2, 4}, x:double():tolist())
    lattice.Tensor.double = nil
    assert.is_nil(x.double)
  end)
end)

describe("the public namespace", function()
  it("keeps the benchmark and spec hooks in lattice.core only", function()
    local core = require "lattice.core"
    for _, name in ipairs({"bench_memcpy", "bench_sgemm", "peak_gflops", "unary_with_isa", "unary_grad_with_isa",
                           "tape_begin", "tape_backward"}) do
      assert.is_nil(lattice[name], name)
      assert.are.equal("function", type(core[name]), name)
    end
  end)
end)

describe("zero-size shapes with huge dimensions", function()
  -- Strides are products of the dimensions, so each must fit even when
  -- another one is 0 (issue 12, 5d: the check stopped at the first 0).
  it("are refused by creation and by reshape, whatever the order of the dimensions", function()
    local big = math.tointeger(2 ^ 53)
    assert.has_error(function() lattice.zeros({0, big, big}) end, "zeros: shape too large")
    assert.has_error(function() lattice.zeros({big, big, 0}) end, "zeros: shape too large")
    assert.has_error(function() lattice.reshape(lattice.zeros({0}), {0, big, big}) end,
      "reshape: shape {0,9007199254740992,9007199254740992} is too large")
    assert.are.same({0, big}, lattice.zeros({0, big}).shape)
  end)
end)
