local lattice = require "lattice"
local gradcheck = require "support.gradcheck"
local ref = require "support.reference"

-- Inputs come from Lua's generator; expected values are textbook softmax in Lua doubles.
math.randomseed(314159)

local numel, randn, tensor, flat = ref.numel, ref.randn, ref.tensor, ref.flat

-- Calls fn(positions) for every line of `shape` along 1-based `axis`, where
-- positions are the 1-based flat indices of that line's elements in order.
local function each_line(shape, axis, fn)
  local inner = 1
  for i = axis + 1, #shape do inner = inner * shape[i] end
  local n, outer = shape[axis], numel(shape) // (shape[axis] * inner)
  for o = 0, outer - 1 do
    for c = 0, inner - 1 do
      local pos = {}
      for r = 0, n - 1 do pos[#pos + 1] = (o * n + r) * inner + c + 1 end
      fn(pos)
    end
  end
end

local function ref_softmax(vals, shape, axis, log)
  local out = {}
  each_line(shape, axis, function(pos)
    local m, s = -math.huge, 0
    for _, p in ipairs(pos) do m = math.max(m, vals[p]) end
    for _, p in ipairs(pos) do s = s + math.exp(vals[p] - m) end
    for _, p in ipairs(pos) do out[p] = log and vals[p] - m - math.log(s) or math.exp(vals[p] - m) / s end
  end)
  return out
end

-- float32: expf and the final scaling each add about one ulp (2^-24 relative), and
-- the float32 difference x - max (up to ~16 for these inputs) adds 16 * 2^-24;
-- log_softmax subtracts values of order 1-10, so its error is absolute.
local function assert_close(expected, actual, rtol, atol, what)
  assert.are.equal(#expected, #actual, what)
  for i = 1, #expected do
    local e, a = expected[i], actual[i]
    if e == -math.huge or e ~= e then
      assert(a == e or (e ~= e and a ~= a), ("%s[%d]: expected %s, got %s"):format(what, i, e, a))
    else
      assert(math.abs(e - a) <= atol + rtol * math.abs(e), ("%s[%d]: expected %.9g, got %.9g"):format(what, i, e, a))
    end
  end
end

describe("softmax and log_softmax", function()
  it("match the textbook formula along every axis, negative axes included", function()
    for _, shape in ipairs({{7}, {3, 5}, {2, 3, 4}, {2, 70, 3}, {3, 130}, {2, 3, 100}}) do
      local vals = randn(numel(shape), 3)
      local x = tensor(vals, shape)
      for axis = -#shape, #shape do
        if axis ~= 0 then
          local a = axis < 0 and axis + #shape + 1 or axis
          local what = ("{%s} axis %d"):format(table.concat(shape, ","), axis)
          local y = lattice.softmax(x, axis)
          assert.are.same(shape, y.shape)
          assert.are.equal("float32", y.dtype)
          assert_close(ref_softmax(vals, shape, a, false), flat(y), 2e-6, 1e-7, "softmax " .. what)
          assert_close(ref_softmax(vals, shape, a, true), flat(lattice.log_softmax(x, axis)), 1e-6, 1e-6,
            "log_softmax " .. what)
        end
      end
    end
  end)

  it("use the last axis by default and work on strided views", function()
    local vals = randn(12)
    local x = tensor(vals, {3, 4})
    assert.are.same(flat(lattice.softmax(x, -1)), flat(lattice.softmax(x)))
    assert.are.same(flat(lattice.log_softmax(x, 2)), flat(lattice.log_softmax(x)))
    assert.are.same(flat(x:softmax()), flat(lattice.softmax(x)))
    local xt = x:transpose()
    local copy = tensor(flat(xt), xt.shape)
    assert.are.same(flat(lattice.softmax(copy, 1)), flat(lattice.softmax(xt, 1)))
    assert.are.same(flat(lattice.log_softmax(copy)), flat(lattice.log_softmax(xt)))
  end)

  it("handle many long rows (the parallel path)", function()
    local shape = {64, 1000}
    local vals = randn(numel(shape), 5)
    local x = tensor(vals, shape)
    -- x - max reaches ~35 here: the float32 difference alone is off by up to
    -- 35 * 2^-24 ~ 2e-6, which exp turns into that relative error
    assert_close(ref_softmax(vals, shape, 2, false), flat(lattice.softmax(x)), 3e-6, 1e-8, "softmax")
    assert_close(ref_softmax(vals, shape, 1, true), flat(lattice.log_softmax(x, 1)), 1e-6, 1e-5, "log_softmax")
  end)

  it("are stable for large inputs and exact for masked (-inf) entries", function()
    local y = lattice.softmax(lattice.array({1000, 1001})):tolist()
    assert(math.abs(y[1] - 1 / (1 + math.exp(1))) < 1e-7)
    local l = lattice.log_softmax(lattice.array({-1000, -1000})):tolist()
    assert(math.abs(l[1] - math.log(0.5)) < 1e-6)
    assert.are.same({1, 0, 0}, lattice.softmax(lattice.array({0, -math.huge, -math.huge})):tolist())
    assert.are.same({0, -math.huge}, lattice.log_softmax(lattice.array({5, -math.huge})):tolist())
    assert.are.same({{0.5, 0.5}, {0.5, 0.5}}, lattice.softmax(lattice.zeros({2, 2}), 1):tolist())
  end)

  it("agree with exp over its whole float32 range, subnormal results and NaN included", function()
    local function f32(v) return (string.unpack("f", string.pack("f", v))) end
    local t = 0
    while t < 104 do
      local u = f32(t)
      local y = lattice.softmax(lattice.array({0, -u})):tolist()
      local want = math.exp(-u) / (1 + math.exp(-u))
      -- about one ulp from exp and one from the scaling; below 2^-126 the
      -- result is subnormal and only its absolute spacing 2^-149 counts
      assert(math.abs(y[2] - want) <= 2e-7 * want + 2 ^ -149, ("t = %.9g: %.9g vs %.9g"):format(u, y[2], want))
      -- logsumexp sums 1 + exp(-u) in double: its 2^-52 spacing bounds the absolute error
      local l = lattice.logsumexp(lattice.array({0, -u})):item()
      assert(math.abs(l - math.log(1 + math.exp(-u))) <= 1e-7 * math.exp(-u) + 2 ^ -51, ("lse %.9g: %.9g vs %.9g"):format(u, l, math.log(1 + math.exp(-u))))
      t = t + 0.37
    end
    local n = lattice.softmax(lattice.array({1, 0 / 0})):tolist()
    assert(n[1] ~= n[1] and n[2] ~= n[2])
  end)

  it("compute integer inputs in float32 and keep 16-bit float dtypes", function()
    local yi = lattice.softmax(lattice.array({0, 0, 0, 0}, "int32"))
    assert.are.equal("float32", yi.dtype)
    assert.are.same({0.25, 0.25, 0.25, 0.25}, yi:tolist())
    -- one 16-bit rounding of the result: 2^-11 (float16), 2^-8 (bfloat16) relative
    for dtype, rtol in pairs({float16 = 2 ^ -11, bfloat16 = 2 ^ -8}) do
      local x = tensor(randn(24), {2, 3, 4}, dtype)
      local vals = flat(x)
      for _, axis in ipairs({2, 3}) do
        local y = lattice.softmax(x, axis)
        assert.are.equal(dtype, y.dtype)
        assert_close(ref_softmax(vals, x.shape, axis, false), flat(y), rtol, 1e-6, dtype)
        local ly = lattice.log_softmax(x, axis)
        assert.are.equal(dtype, ly.dtype)
        assert_close(ref_softmax(vals, x.shape, axis, true), flat(ly), rtol, 1e-3, dtype)
      end
    end
  end)

  it("accept empty tensors", function()
    assert.are.same({0, 3}, lattice.softmax(lattice.zeros({0, 3})).shape)
    assert.are.same({3, 0}, lattice.log_softmax(lattice.zeros({3, 0})).shape)
  end)

  it("reject bad arguments with clear messages", function()
    local x = lattice.zeros({2, 3})
    assert.has_error(function() lattice.softmax(x, 3) end, "softmax: axis 3 is out of range for 2 dimensions")
    assert.has_error(function() lattice.log_softmax(x, -3) end, "log_softmax: axis -3 is out of range for 2 dimensions")
    assert.has_error(function() lattice.softmax(x, 0) end, "softmax: axis 0 is out of range for 2 dimensions")
    assert.has_error(function() lattice.softmax(lattice.array(1)) end,
      "softmax: axis -1 is out of range for 0 dimensions")
    assert.has_error(function() lattice.softmax(x, 2 ^ 32 + 2) end,
      "softmax: axis 4294967298 is out of range for 2 dimensions")
    assert.has_error(function() lattice.softmax(x, 2, 3) end, "softmax: too many arguments (expected at most 2, got 3)")
    assert.has_error(function() lattice.softmax({1, 2}) end,
      "bad argument #1 to 'softmax' (lattice.Tensor expected, got table)")
    assert.has_error(function() lattice.log_softmax(x, "a") end,
      "bad argument #2 to 'log_softmax' (number expected, got string)")
  end)
end)

describe("softmax gradients", function()
  -- sum(y * w) with a fixed random w, so the gradient is not trivially zero
  local function weighted(y, w)
    return lattice.matmul(y:reshape({1, y.size}), w:reshape({y.size, 1}))
  end

  it("pass finite differences along the last and other axes", function()
    for _, name in ipairs({"softmax", "log_softmax"}) do
      for _, case in ipairs({{{3, 5}, -1}, {{3, 5}, 1}, {{2, 3, 4}, 2}, {{2, 3, 4}, 3}, {{6}, 1}}) do
        local shape, axis = case[1], case[2]
        local x = tensor(randn(numel(shape)), shape)
        local w = tensor(randn(numel(shape)), shape)
        gradcheck.each_dtype(function(t) return weighted(lattice[name](t, axis), w) end, {x})
      end
    end
  end)

  it("match the closed forms on rows wider than a column block", function()
    -- softmax: gx = y * (g - sum(g*y)); log_softmax: gx = g - softmax * sum(g)
    for _, axis in ipairs({1, 2}) do
      local shape = {70, 90}
      local x, w = tensor(randn(6300), shape), tensor(randn(6300), shape)
      local y = flat(lattice.softmax(x, axis))
      local g = flat(w)
      local want_s, want_l = {}, {}
      each_line(shape, axis, function(pos)
        local sgy, sg = 0, 0
        for _, p in ipairs(pos) do sgy, sg = sgy + g[p] * y[p], sg + g[p] end
        for _, p in ipairs(pos) do want_s[p], want_l[p] = y[p] * (g[p] - sgy), g[p] - y[p] * sg end
      end)
      local gs = lattice.grad(function(t) return weighted(lattice.softmax(t, axis), w) end)(x)
      local gl = lattice.grad(function(t) return weighted(lattice.log_softmax(t, axis), w) end)(x)
      assert_close(want_s, flat(gs), 1e-5, 1e-6, "softmax grad")
      assert_close(want_l, flat(gl), 1e-5, 1e-5, "log_softmax grad")
    end
  end)

  it("return gradients in the input's 16-bit dtype", function()
    for _, dtype in ipairs({"float16", "bfloat16"}) do
      local x = lattice.array({{1, 2, 3}, {0, 0, 0}}, dtype)
      local w = lattice.array({{1, 0, 0}, {0, 1, 0}})
      local g = lattice.grad(function(t) return weighted(lattice.log_softmax(t), w) end)(x)
      assert.are.equal(dtype, g.dtype)
      -- row 2: g - softmax * sum(g) = {0,1,0} - 1/3
      local row = g:tolist()[2]
      assert(math.abs(row[2] - 2 / 3) < 2 ^ -7 and math.abs(row[1] + 1 / 3) < 2 ^ -7)
    end
  end)
end)

describe("float64 softmax and log_softmax", function()
  -- exp and log in double, sums of at most 130 terms: 1e-13 relative.
  it("compute in double and match the textbook formula along every axis", function()
    for _, shape in ipairs({{7}, {3, 130}, {2, 3, 4}}) do
      local vals = randn(numel(shape), 3)
      local x = tensor(vals, shape, "float64")
      for axis = 1, #shape do
        local y = lattice.softmax(x, axis)
        assert.are.equal("float64", y.dtype)
        assert_close(ref_softmax(vals, shape, axis, false), flat(y), 1e-13, 1e-300, "softmax axis " .. axis)
        assert_close(ref_softmax(vals, shape, axis, true), flat(lattice.log_softmax(x, axis)), 1e-13, 1e-14,
          "log_softmax axis " .. axis)
      end
    end
  end)

  it("have the closed-form gradient in double", function()
    local vals = randn(5, 1)
    local w = {0.3, -1, 2, 0.5, -0.25}
    local g = lattice.grad(function(t) return lattice.sum(lattice.softmax(t) * lattice.array(w, "float64")) end)(
      lattice.array(vals, "float64"))
    assert.are.equal("float64", g.dtype)
    local y, s = ref_softmax(vals, {5}, 1, false), 0
    for i = 1, 5 do s = s + w[i] * y[i] end
    local want = {}
    for i = 1, 5 do want[i] = y[i] * (w[i] - s) end
    assert_close(want, flat(g), 1e-13, 1e-15, "softmax gradient")
  end)
end)
