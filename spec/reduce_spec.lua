local lattice = require "lattice"
local gradcheck = require "support.gradcheck"
local ref = require "support.reference"

-- Inputs are generated here with Lua's own generator, and every expected value is
-- computed in plain Lua doubles from the values the tensor actually holds.
math.randomseed(20240607)

local numel, randn, tensor, flat = ref.numel, ref.randn, ref.tensor, ref.flat

-- Normalises Lua axes (nil, a number, or a table) into a set of 1-based axes.
local function axis_set(axes, ndim)
  local set = {}
  if axes == nil then
    for i = 1, ndim do set[i] = true end
  else
    for _, a in ipairs(type(axes) == "table" and axes or {axes}) do set[a < 0 and a + ndim + 1 or a] = true end
  end
  return set
end

-- Groups the elements of x (row-major `vals`, `shape`) by output position.
local function groups(vals, shape, set)
  local ndim = #shape
  local strides, s = {}, 1
  for i = ndim, 1, -1 do
    if not set[i] then strides[i], s = s, s * shape[i] else strides[i] = 0 end
  end
  local out_count = s
  local g = {}
  for o = 1, out_count do g[o] = {} end
  local idx = {}
  for i = 1, ndim do idx[i] = 0 end
  for k = 1, #vals do
    local o = 1
    for i = 1, ndim do o = o + idx[i] * strides[i] end
    g[o][#g[o] + 1] = vals[k]
    for i = ndim, 1, -1 do
      idx[i] = idx[i] + 1
      if idx[i] < shape[i] then break end
      idx[i] = 0
    end
  end
  return g
end

local ref_ops = {
  sum = function(v) local s = 0 for _, x in ipairs(v) do s = s + x end return s end,
  max = function(v) local m = -math.huge for _, x in ipairs(v) do if x ~= x then return x end m = math.max(m, x) end return m end,
  min = function(v) local m = math.huge for _, x in ipairs(v) do if x ~= x then return x end m = math.min(m, x) end return m end,
}
ref_ops.mean = function(v) return ref_ops.sum(v) / #v end
ref_ops.var = function(v, ddof)
  local m, s = ref_ops.mean(v), 0
  for _, x in ipairs(v) do s = s + (x - m) ^ 2 end
  return s / (#v - (ddof or 0))
end
ref_ops.logsumexp = function(v)
  local m, s = ref_ops.max(v), 0
  for _, x in ipairs(v) do s = s + math.exp(x - m) end
  return m + math.log(s)
end

local function reference(op, x, axes, ddof)
  local g = groups(flat(x), x.shape, axis_set(axes, x.ndim))
  local out = {}
  for o = 1, #g do out[o] = ref_ops[op](g[o], ddof) end
  return out
end

local function expected_shape(shape, axes, keepdims)
  local set, out = axis_set(axes, #shape), {}
  for i = 1, #shape do
    if not set[i] then out[#out + 1] = shape[i] elseif keepdims then out[#out + 1] = 1 end
  end
  return out
end

-- float32 results: one rounding of a double-accumulated value (2^-24 relative),
-- plus a few float32 ulps from expf in logsumexp; 1e-6 relative leaves margin.
local function assert_close(expected, actual, rtol, atol, what)
  assert.are.equal(#expected, #actual, what)
  for i = 1, #expected do
    local e, a = expected[i], actual[i]
    if e ~= e then
      assert(a ~= a, ("%s[%d]: expected nan, got %s"):format(what, i, tostring(a)))
    elseif e == math.huge or e == -math.huge then
      assert.are.equal(e, a, what)
    else
      assert(math.abs(e - a) <= atol + rtol * math.abs(e),
        ("%s[%d]: expected %.9g, got %.9g"):format(what, i, e, a))
    end
  end
end

local ops = {"sum", "mean", "max", "min", "var", "logsumexp"}
local shapes = {{5}, {3, 4}, {2, 3, 4}, {2, 3, 4, 5}, {1, 3, 1, 4}, {3, 1}}
local axis_choices = {false, 1, -1, 2, {1, 3}, {2, 4}, {-1, -2}, {1, 2, 3}, {3, 1}, {1, 4}}

describe("reductions", function()
  it("match a plain Lua reference over shapes, axes (negative, tables) and keepdims", function()
    for _, shape in ipairs(shapes) do
      local x = tensor(randn(numel(shape)), shape)
      for _, axes in ipairs(axis_choices) do
        local ok = true
        for _, a in ipairs(type(axes) == "table" and axes or {axes or 1}) do ok = ok and math.abs(a) <= #shape end
        if ok then
          axes = axes or nil
          for _, op in ipairs(ops) do
            for _, keepdims in ipairs({false, true}) do
              local y = lattice[op](x, axes, keepdims)
              local what = ("%s of {%s} over %s"):format(op, table.concat(shape, ","),
                type(axes) == "table" and "{" .. table.concat(axes, ",") .. "}" or tostring(axes))
              assert.are.same(expected_shape(shape, axes, keepdims), y.shape, what)
              assert.are.equal("float32", y.dtype)
              assert_close(reference(op, x, axes), flat(y), 1e-6, 1e-6, what)
            end
          end
        end
      end
    end
  end)

  it("stay exact on long rows, long columns and middle axes (chunked, parallel paths)", function()
    local cases = {
      {{40001}, nil},          -- one long row: split into chunks
      {{3, 20000}, 2},         -- few long rows
      {{30000, 3}, 1},         -- few narrow columns: rows split into chunks
      {{3, 600}, 1},           -- several column blocks, the last partial
      {{300, 700}, 1},         -- a bias gradient
      {{4, 500, 30}, 2},       -- a middle axis
      {{6, 7, 8, 9}, {1, 3}},  -- axes that do not merge: permuted
    }
    for _, c in ipairs(cases) do
      local x = tensor(randn(numel(c[1])), c[1])
      for _, op in ipairs({"sum", "mean", "max", "var", "logsumexp"}) do
        assert_close(reference(op, x, c[2]), flat(lattice[op](x, c[2])), 1e-6, 1e-5,
          op .. " of {" .. table.concat(c[1], ",") .. "}")
      end
    end
  end)

  it("gives the same bits whatever the thread count", function()
    local x = tensor(randn(200000), {50, 4000})
    local threads = lattice.num_threads()
    lattice.set_num_threads(1)
    local a, b = flat(lattice.sum(x, 1)), flat(lattice.var(x))
    lattice.set_num_threads(2)
    local c, d = flat(lattice.sum(x, 1)), flat(lattice.var(x))
    lattice.set_num_threads(threads)
    assert.are.same(a, c)
    assert.are.same(b, d)
  end)

  it("reduce strided views as their values", function()
    local base = tensor(randn(24), {4, 6})
    local x = base:transpose()
    local xc = tensor(flat(x), x.shape)
    for _, op in ipairs(ops) do
      assert.are.same(flat(lattice[op](xc, 2)), flat(lattice[op](x, 2)))
      assert.are.same(flat(lattice[op](xc, 1)), flat(lattice[op](x, 1)))
    end
  end)

  it("compute small cases by hand", function()
    local x = lattice.array({{1, 2, 3}, {4, 5, 6}})
    assert.are.equal(21, lattice.sum(x):item())
    assert.are.same({}, lattice.sum(x).shape)
    assert.are.same({5, 7, 9}, lattice.sum(x, 1):tolist())
    assert.are.same({{6}, {15}}, lattice.sum(x, -1, true):tolist())
    assert.are.same({{21}}, lattice.sum(x, {1, 2}, true):tolist())
    assert.are.same({2.5, 3.5, 4.5}, lattice.mean(x, 1):tolist())
    assert.are.same({3, 6}, lattice.max(x, 2):tolist())
    assert.are.same({1, 2, 3}, lattice.min(x, 1):tolist())
    assert.are.same({2.25, 2.25, 2.25}, lattice.var(x, 1):tolist())
    assert.are.same({4.5, 4.5, 4.5}, lattice.var(x, 1, false, 1):tolist())
    assert.are.equal(17.5 / 5, lattice.var(x, nil, false, 1):item())
    assert.are.equal(6, x:sum(2):tolist()[1]) -- as a method
    -- logsumexp(0, log 3) = log 4; large values do not overflow
    local l4 = lattice.logsumexp(lattice.array({0, math.log(3)})):item()
    assert(math.abs(l4 - math.log(4)) < 1e-6)
    local big = lattice.logsumexp(lattice.array({1000, 1000})):item()
    assert(math.abs(big - (1000 + math.log(2))) < 1e-4)
    assert.are.equal(-math.huge, lattice.logsumexp(lattice.array({-math.huge, -math.huge})):item())
    assert.are.equal(math.huge, lattice.logsumexp(lattice.array({1, math.huge})):item())
  end)

  it("propagate NaN through max, min and sum", function()
    local x = lattice.array({{1, 0 / 0, 3}, {4, 5, 6}})
    local m = lattice.max(x, 2):tolist()
    assert(m[1] ~= m[1])
    assert.are.equal(6, m[2])
    local n = lattice.min(x):item()
    assert(n ~= n)
    local s = lattice.sum(x, 1):tolist()
    assert(s[2] ~= s[2])
    assert.are.same({1, 3}, {s[1] - 4, s[3] - 6})
  end)

  it("handle empty reductions: sum 0, mean NaN, logsumexp -inf", function()
    local e = lattice.zeros({0, 3})
    assert.are.same({0, 0, 0}, lattice.sum(e, 1):tolist())
    assert.are.same({0}, lattice.sum(e, 2).shape)
    assert.are.equal(0, lattice.sum(e):item())
    local m = lattice.mean(e):item()
    assert(m ~= m)
    assert.are.same({-math.huge, -math.huge, -math.huge}, lattice.logsumexp(e, 1):tolist())
    assert.are.same({0}, lattice.max(e, 2).shape) -- nothing is reduced over an empty set
    assert.are.equal(0, lattice.sum(lattice.zeros({0}, "int32")):item())
  end)

  it("sum integers to int64 exactly and keep the dtype for max and min", function()
    local big = 2 ^ 53
    local x = lattice.array({{math.tointeger(big), 1}, {1, -3}}, "int64")
    local s = lattice.sum(x)
    assert.are.equal("int64", s.dtype)
    assert.are.equal(math.tointeger(big) - 1, s:item())
    local i32 = lattice.array({{2147483647, 2147483647}, {-5, 7}}, "int32")
    assert.are.same({4294967294, 2}, lattice.sum(i32, 2):tolist())
    assert.are.equal("int64", lattice.sum(i32, 2).dtype)
    assert.are.same({2147483647, 2147483647}, lattice.max(i32, 1):tolist())
    assert.are.equal("int32", lattice.max(i32, 1).dtype)
    assert.are.same({-5, 7}, lattice.min(i32, 1):tolist())
    local u8 = lattice.array({200, 7, 255}, "uint8")
    assert.are.equal("uint8", lattice.max(u8).dtype)
    assert.are.equal(255, lattice.max(u8):item())
    assert.are.equal(462, lattice.sum(u8):item())
    local b = lattice.array({{true, false, true}, {true, true, true}})
    assert.are.same({2, 3}, lattice.sum(b, 2):tolist())
    assert.are.equal("int64", lattice.sum(b).dtype)
    assert.are.equal("bool", lattice.max(b).dtype)
    assert.are.same({false, true}, lattice.min(b, 2):tolist())
  end)

  it("compute mean, var and logsumexp of integers in float32", function()
    local x = lattice.array({{1, 2}, {3, 5}}, "int32")
    assert.are.equal("float32", lattice.mean(x).dtype)
    assert.are.same({1.5, 4}, lattice.mean(x, 2):tolist())
    assert.are.same({1, 2.25}, lattice.var(x, 1):tolist())
    local l = lattice.logsumexp(x, 2):tolist()
    assert(math.abs(l[1] - (2 + math.log(1 + math.exp(-1)))) < 1e-6)
  end)

  it("keep float16 and bfloat16 results within their rounding", function()
    -- the reference uses the 16-bit values the tensor holds, so only the
    -- result's rounding differs: 2^-11 (float16) and 2^-8 (bfloat16) relative
    for dtype, rtol in pairs({float16 = 2 ^ -11, bfloat16 = 2 ^ -8}) do
      local x = tensor(randn(60), {3, 4, 5}, dtype)
      for _, op in ipairs(ops) do
        for _, axes in ipairs({false, 2, {1, 3}}) do
          local y = lattice[op](x, axes or nil)
          assert.are.equal(dtype, y.dtype)
          -- a variance's absolute error follows the squares it sums
          assert_close(reference(op, x, axes or nil), flat(y), rtol, 1e-3, dtype .. " " .. op)
        end
      end
    end
  end)

  it("reduce nothing over an empty table of axes, as NumPy does", function()
    local x = lattice.array({{1, 2}, {3, 4}})
    for _, name in ipairs({"sum", "mean", "max", "min", "logsumexp"}) do
      local y = lattice[name](x, {})
      assert.are.same({2, 2}, y.shape)
      assert.are.same({{1, 2}, {3, 4}}, y:tolist(), name)
    end
    assert.are.same({{0, 0}, {0, 0}}, lattice.var(x, {}):tolist())
    local i = lattice.array({1, 2}, "int32")
    assert.are.equal("int64", lattice.sum(i, {}).dtype)
    assert.are.equal("float32", lattice.mean(i, {}).dtype)
    assert.are.equal("int32", lattice.max(i, {}).dtype)
    local g = lattice.grad(function(t) return lattice.sum(lattice.sum(t, {}) * 3) end)(x)
    assert.are.same({{3, 3}, {3, 3}}, g:tolist())
  end)

  it("reject bad arguments with clear messages", function()
    local x = lattice.zeros({2, 3})
    assert.has_error(function() lattice.sum(x, 3) end, "sum: axis 3 is out of range for 2 dimensions")
    assert.has_error(function() lattice.mean(x, -3) end, "mean: axis -3 is out of range for 2 dimensions")
    assert.has_error(function() lattice.max(x, 0) end, "max: axis 0 is out of range for 2 dimensions")
    assert.has_error(function() lattice.var(x, {1, 1}) end, "var: axis 1 is repeated")
    assert.has_error(function() lattice.min(x, {2, -1}) end, "min: axis -1 is repeated")
    assert.has_error(function() lattice.logsumexp(x, {1, "a"}) end, "logsumexp: axes must be integers")
    assert.has_error(function() lattice.sum(x, {1, 2, 3}) end, "sum: axis 3 is out of range for 2 dimensions")
    assert.has_error(function() lattice.sum(3) end, "bad argument #1 to 'sum' (lattice.Tensor expected, got number)")
    assert.has_error(function() lattice.sum(x, 1, 1) end, "bad argument #3 to 'sum' (boolean expected, got number)")
    assert.has_error(function() lattice.var(x, 1, false, -1) end, "var: ddof must be a non-negative integer, got -1")
    assert.has_error(function() lattice.max(lattice.zeros({0, 3}), 1) end, "max: zero-size reduction")
    assert.has_error(function() lattice.min(lattice.zeros({0})) end, "min: zero-size reduction")
    assert.has_error(function() lattice.max(lattice.zeros({2, 0}, "int32")) end, "max: zero-size reduction")
    assert.has_error(function() lattice.sum(x, 1, true, 4) end, "sum: too many arguments (expected at most 3, got 4)")
    assert.has_error(function() lattice.var(x, 1, true, 0, 5) end, "var: too many arguments (expected at most 4, got 5)")
  end)

  it("count axes in messages as Lua does, however large", function()
    local x = lattice.zeros({2, 3})
    -- 2^32 + 1 once wrapped to axis 1 in the message
    assert.has_error(function() lattice.sum(x, 2 ^ 32 + 1) end, "sum: axis 4294967297 is out of range for 2 dimensions")
    assert.has_error(function() lattice.mean(x, {1, 2 ^ 32 + 1}) end,
      "mean: axis 4294967297 is out of range for 2 dimensions")
    assert.has_error(function() lattice.sum(x, {[1] = 1, [3] = 2}) end, "sum: the axes table has a hole at index 2")
  end)
end)

describe("argmax and argmin", function()
  local function ref_arg(vals, is_max)
    local best, bi = vals[1], 0
    for i = 2, #vals do
      local v = vals[i]
      if best == best and (v ~= v or (is_max and v > best) or (not is_max and v < best)) then best, bi = v, i - 1 end
    end
    return bi
  end

  it("match a plain Lua reference along every axis and over the flattened tensor", function()
    for _, shape in ipairs({{7}, {4, 5}, {3, 4, 5}, {2, 300, 3}}) do
      local x = tensor(randn(numel(shape)), shape)
      for axis = -#shape, #shape do
        if axis ~= 0 then
          for _, is_max in ipairs({true, false}) do
            local g = groups(flat(x), shape, axis_set(axis, #shape))
            local want = {}
            for o = 1, #g do want[o] = ref_arg(g[o], is_max) end
            local y = (is_max and lattice.argmax or lattice.argmin)(x, axis)
            assert.are.equal("int64", y.dtype)
            assert.are.same(expected_shape(shape, axis, false), y.shape)
            assert.are.same(want, flat(y))
          end
        end
      end
      assert.are.equal(ref_arg(flat(x), true), lattice.argmax(x):item())
      assert.are.equal(ref_arg(flat(x), false), lattice.argmin(x):item())
    end
  end)

  it("take the first of ties, let NaN win, and keep dims on request", function()
    local x = lattice.array({{1, 3, 3}, {2, 2, 0}})
    assert.are.same({1, 0}, lattice.argmax(x, 2):tolist())
    assert.are.same({0, 2}, lattice.argmin(x, -1):tolist())
    assert.are.same({{1}, {0}}, lattice.argmax(x, 2, true):tolist())
    assert.are.same({{1, 0, 0}}, lattice.argmax(x, 1, true):tolist())
    assert.are.equal(1, lattice.argmax(x):item())
    assert.are.same({1, 1}, lattice.argmax(x, nil, true).shape)
    assert.are.same({}, lattice.argmax(x).shape)
    local n = lattice.array({1, 0 / 0, 5, 0 / 0})
    assert.are.equal(1, lattice.argmax(n):item())
    assert.are.equal(1, lattice.argmin(n):item())
  end)

  it("work on integer and 16-bit inputs", function()
    local big = math.tointeger(2 ^ 53)
    local x = lattice.array({big, big + 1, big - 1}, "int64")
    assert.are.equal(1, lattice.argmax(x):item())
    assert.are.equal(2, lattice.argmin(x):item())
    assert.are.same({2, 0}, lattice.argmax(lattice.array({{0, 1, 9}, {200, 3, 4}}, "uint8"), 2):tolist())
    assert.are.same({1, 0}, lattice.argmax(lattice.array({{0.5, 2}, {3, -1}}, "bfloat16"), 2):tolist())
    assert.are.same({0, 1}, lattice.argmin(lattice.array({{0.5, 2}, {3, -1}}, "float16"), 2):tolist())
  end)

  it("count axes in messages as Lua does, however large", function()
    local x = lattice.zeros({2, 3})
    assert.has_error(function() lattice.argmax(x, -2 ^ 40) end,
      "argmax: axis -1099511627776 is out of range for 2 dimensions")
    assert.has_error(function() lattice.argmin(x, 1, false, 1) end,
      "argmin: too many arguments (expected at most 3, got 4)")
  end)

  it("reject bad axes and empty inputs", function()
    local x = lattice.zeros({2, 3})
    assert.has_error(function() lattice.argmax(x, 3) end, "argmax: axis 3 is out of range for 2 dimensions")
    assert.has_error(function() lattice.argmin(x, -3) end, "argmin: axis -3 is out of range for 2 dimensions")
    assert.has_error(function() lattice.argmax(lattice.zeros({0})) end, "argmax: zero-size reduction")
    assert.has_error(function() lattice.argmin(lattice.zeros({3, 0}), 2) end, "argmin: zero-size reduction")
    assert.has_error(function() lattice.argmax(x, {1}) end,
      "bad argument #2 to 'argmax' (number expected, got table)")
  end)
end)

describe("reduction gradients", function()
  -- A fixed random weighting makes every output's gradient matter: sum(y * w).
  local function weighted(y, w)
    return lattice.matmul(y:reshape({1, y.size}), w:reshape({y.size, 1}))
  end

  local function check(op, shape, axes, keepdims, extra, vals)
    local x = tensor(vals or randn(numel(shape)), shape)
    local y0 = lattice[op](x, axes, keepdims, extra)
    local w = tensor(randn(y0.size), y0.shape)
    gradcheck.each_dtype(function(t) return weighted(lattice[op](t, axes, keepdims, extra), w) end, {x})
  end

  -- distinct values spaced far beyond the finite-difference step, so max/min
  -- do not switch elements while the check perturbs them
  local function spread(n)
    local v = {}
    for i = 1, n do v[i] = (i - 1) * 0.1 end
    for i = n, 2, -1 do
      local j = math.random(i)
      v[i], v[j] = v[j], v[i]
    end
    return v
  end

  it("pass finite differences for sum, mean, var and logsumexp over various axes", function()
    for _, op in ipairs({"sum", "mean", "var", "logsumexp"}) do
      check(op, {3, 4}, nil, false)
      check(op, {3, 4}, 1, false)
      check(op, {3, 4}, -1, true)
      check(op, {2, 3, 4}, 2, false)
      check(op, {2, 3, 4}, {1, 3}, true)
    end
    check("var", {4, 5}, 2, false, 1)
    check("var", {2, 3, 4}, {1, 3}, false, 2)
  end)

  it("pass finite differences for max and min", function()
    for _, op in ipairs({"max", "min"}) do
      check(op, {3, 4}, nil, false, nil, spread(12))
      check(op, {3, 4}, 1, true, nil, spread(12))
      check(op, {2, 3, 4}, -1, false, nil, spread(24))
      check(op, {2, 3, 4}, {1, 3}, false, nil, spread(24))
    end
  end)

  it("split the gradient of max and min evenly among ties", function()
    local x = lattice.array({{1, 3, 3}, {2, 2, 0}})
    local gmax = lattice.grad(function(t) return lattice.sum(lattice.max(t, 2)) end)(x)
    assert.are.same({{0, 0.5, 0.5}, {0.5, 0.5, 0}}, gmax:tolist())
    local gall = lattice.grad(function(t) return lattice.max(t) end)(x)
    assert.are.same({{0, 0.5, 0.5}, {0, 0, 0}}, gall:tolist())
    local gmin = lattice.grad(function(t) return lattice.sum(lattice.min(t, 1)) end)(x)
    assert.are.same({{1, 0, 0}, {0, 1, 1}}, gmin:tolist())
  end)

  it("give the textbook gradients on a small case", function()
    local x = lattice.array({{1, 3, 3}, {2, 2, 0}})
    local gv = lattice.grad(function(t) return lattice.sum(lattice.var(t, 1)) end)(x)
    assert.are.same({{-0.5, 0.5, 1.5}, {0.5, -0.5, -1.5}}, gv:tolist())
    local gm = lattice.grad(function(t) return lattice.sum(lattice.mean(t, 2)) end)(x)
    for _, v in ipairs(flat(gm)) do assert(math.abs(v - 1 / 3) < 1e-7) end
    local gl = lattice.grad(function(t) return lattice.sum(lattice.logsumexp(t, 2)) end)(x)
    local row = flat(gl)
    assert(math.abs(row[1] + row[2] + row[3] - 1) < 1e-6) -- softmax rows sum to 1
    assert(math.abs(row[1] - 1 / (1 + 2 * math.exp(2))) < 1e-6)
  end)

  it("return gradients in the input's 16-bit dtype", function()
    for _, dtype in ipairs({"float16", "bfloat16"}) do
      local x = lattice.array({{1, 2}, {3, 4}}, dtype)
      for _, op in ipairs(ops) do
        local g = lattice.grad(function(t) return lattice.sum(lattice[op](t, 2)) end)(x)
        assert.are.equal(dtype, g.dtype)
        assert.are.same({2, 2}, g.shape)
      end
      local gs = lattice.grad(function(t) return lattice.sum(lattice.sum(t, 1)) end)(x)
      assert.are.same({{1, 1}, {1, 1}}, gs:tolist())
    end
  end)
end)

describe("float64 reductions", function()
  -- Plain double sums of N terms are exact to ~N ulps of the largest partial
  -- sum (2.2e-16 each): 1e-12 relative holds for these sizes.
  it("compute in double and match a plain Lua reference over shapes and axes", function()
    for _, shape in ipairs({{7}, {3, 4}, {2, 3, 4, 5}, {300, 7}}) do
      local x = tensor(randn(numel(shape)), shape, "float64")
      for _, axes in ipairs({false, 1, -1, {1, 3}, {2, 4}, {1, 2}}) do
        local ok = true
        for _, a in ipairs(type(axes) == "table" and axes or {axes or 1}) do ok = ok and math.abs(a) <= #shape end
        if ok then
          axes = axes or nil
          for _, op in ipairs(ops) do
            local y = lattice[op](x, axes)
            local what = ("float64 %s of {%s}"):format(op, table.concat(shape, ","))
            assert.are.equal("float64", y.dtype, what)
            assert_close(reference(op, x, axes), flat(y), 1e-12, 1e-13, what)
          end
        end
      end
    end
  end)

  it("keep ddof, NaN and the arg reductions in double", function()
    local v = {1e-9, 2e-9, 3e-9 + 1e-20}
    local x = lattice.array(v, "float64")
    assert_close({ref_ops.var(v, 1)}, {lattice.var(x, nil, false, 1):item()}, 1e-12, 0, "var ddof 1")
    local m = lattice.array({{1, 0 / 0, 3}, {0.1, 0.1 + 1e-15, 0.1}}, "float64")
    assert(lattice.max(m, 2):tolist()[1] ~= lattice.max(m, 2):tolist()[1])
    assert.are.same({1, 1}, lattice.argmax(m, 2):tolist()) -- NaN wins; 1e-15 apart is not a tie
    assert.are.same({1, 0}, lattice.argmin(m, 2):tolist())
    local t = lattice.array({{1, 3, 3}, {2, 2, 0}}, "float64")
    local gmax = lattice.grad(function(u) return lattice.sum(lattice.max(u, 2)) end)(t)
    assert.are.equal("float64", gmax.dtype)
    assert.are.same({{0, 0.5, 0.5}, {0.5, 0.5, 0}}, gmax:tolist()) -- ties split the gradient
    local c = lattice.array({{0.1, 0.2}, {0.1 + 1e-15, 0.2 - 1e-15}}, "float64")
    assert.are.same({1, 0}, lattice.argmax(c, 1):tolist())
    assert.are.same({0, 1}, lattice.argmin(c, 1):tolist())
  end)
end)
