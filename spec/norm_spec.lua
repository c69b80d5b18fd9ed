-- layer_norm and rms_norm over the last axis, against a plain Lua reference.
local lattice = require "lattice"
local gradcheck = require "support.gradcheck"
local ref = require "support.reference"

local generator, rand, assert_close = ref.generator, ref.rand, ref.assert_close
-- weighted, not a plain sum: a normalised row sums to a constant, so a plain
-- sum would hide a wrong gradient.
local weighted = ref.weighted

-- Reference over the rows of a nested table, in double precision.
local function ref_norm(x, w, b, eps, center)
  if type(x[1]) == "table" then
    local out = {}
    for i, r in ipairs(x) do out[i] = ref_norm(r, w, b, eps, center) end
    return out
  end
  local n, mean, var = #x, 0, 0
  if center then
    for _, v in ipairs(x) do mean = mean + v end
    mean = mean / n
  end
  for _, v in ipairs(x) do var = var + (v - mean) ^ 2 end
  local rstd = 1 / math.sqrt(var / n + eps)
  local y = {}
  for j, v in ipairs(x) do y[j] = (v - mean) * rstd * (w and w[j] or 1) + (b and b[j] or 0) end
  return y
end

-- Outputs are O(1) values computed in float32 from double-accumulated row
-- statistics: a few ulps (~1e-7 each) of error; 1e-6 leaves a margin.
local TOL = 1e-6

describe("layer_norm", function()
  local gen = generator(11)

  it("normalises a hand-computed row", function()
    -- mean 2.5, variance 1.25: (x - 2.5) / sqrt(1.25)
    local y = lattice.layer_norm(lattice.array({ { 1, 2, 3, 4 } }), nil, nil, 0)
    local s = math.sqrt(1.25)
    assert_close(y:tolist(), { { -1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s } }, TOL)
  end)

  it("applies weight and bias", function()
    -- x = {0, 2}: xhat = {-1, 1}; y = xhat * {2, 3} + {1, -1}
    local y = lattice.layer_norm(lattice.array({ 0, 2 }), lattice.array({ 2, 3 }), lattice.array({ 1, -1 }), 0)
    assert_close(y:tolist(), { -1, 2 }, TOL)
  end)

  it("uses eps = 1e-5 by default", function()
    -- x = {0, 1}: variance 0.25, so y = +-0.5 / sqrt(0.25 + 1e-5) = +-0.99998
    local y = lattice.layer_norm(lattice.array({ 0, 1 }))
    local v = 0.5 / math.sqrt(0.25 + 1e-5)
    assert_close(y:tolist(), { -v, v }, TOL)
    assert(math.abs(y:tolist()[2] - 1) > 1e-5)
  end)

  it("matches the reference on a 3-D input with weight and bias", function()
    local X, W, B = rand({ 2, 3, 7 }, gen), rand({ 7 }, gen), rand({ 7 }, gen)
    local y = lattice.layer_norm(lattice.array(X), lattice.array(W), lattice.array(B), 1e-5)
    assert.are.same({ 2, 3, 7 }, y.shape)
    assert_close(y:tolist(), ref_norm(X, W, B, 1e-5, true), TOL)
  end)

  it("keeps its accuracy when the mean is large", function()
    -- rows offset by 1e3: a one-pass E[x^2] - E[x]^2 in float32 would lose the variance
    local X = rand({ 4, 16 }, gen)
    for _, r in ipairs(X) do
      for j = 1, #r do r[j] = 1000 + r[j] end
    end
    local x = lattice.array(X)
    -- the reference reads the float32 values lattice holds
    assert_close(lattice.layer_norm(x):tolist(), ref_norm(x:tolist(), nil, nil, 1e-5, true), 1e-4)
  end)

  it("reads non-contiguous input", function()
    local X = rand({ 5, 3 }, gen)
    local xt = lattice.array(X):transpose()
    assert_close(lattice.layer_norm(xt):tolist(), ref_norm(xt:tolist(), nil, nil, 1e-5, true), TOL)
  end)

  it("keeps float16 and bfloat16", function()
    local X = rand({ 3, 8 }, gen)
    for dt, tol in pairs({ float16 = 2 ^ -10, bfloat16 = 2 ^ -7 }) do
      local x = lattice.array(X, dt)
      local y = lattice.layer_norm(x, lattice.array({ 1, 1, 1, 1, 2, 2, 2, 2 }, dt))
      assert.are.equal(dt, y.dtype)
      -- reference from the 16-bit values themselves; only the output rounding differs
      local W = { 1, 1, 1, 1, 2, 2, 2, 2 }
      assert_close(y:tolist(), ref_norm(x:tolist(), W, nil, 1e-5, true), 2 * tol)
    end
  end)

  describe("gradient", function()
    it("matches finite differences with weight and bias", function()
      local x, w = lattice.array(rand({ 3, 5 }, gen)), lattice.array(rand({ 5 }, gen))
      local b = lattice.array(rand({ 5 }, gen))
      gradcheck.each_dtype(function(x_, w_, b_) return weighted(lattice.layer_norm(x_, w_, b_)) end, { x, w, b })
    end)

    it("matches finite differences without weight and bias", function()
      local x = lattice.array(rand({ 2, 2, 4 }, gen))
      gradcheck.each_dtype(function(x_) return weighted(lattice.layer_norm(x_)) end, { x })
    end)

    it("matches finite differences with weight only", function()
      local x, w = lattice.array(rand({ 4, 3 }, gen)), lattice.array(rand({ 3 }, gen))
      gradcheck.each_dtype(function(x_, w_) return weighted(lattice.layer_norm(x_, w_, nil)) end, { x, w })
    end)

    it("is the same for one thread and two", function()
      -- 256 x 160 rows pass the parallel threshold; the weight and bias sums are
      -- taken in fixed row chunks, so the thread count changes no bit
      local x, w = lattice.array(rand({ 256, 160 }, gen)), lattice.array(rand({ 160 }, gen))
      local b = lattice.array(rand({ 160 }, gen))
      local f = lattice.grad(function(x_, w_, b_) return weighted(lattice.layer_norm(x_, w_, b_)) end, { 1, 2, 3 })
      local threads = lattice.num_threads()
      lattice.set_num_threads(1)
      local one = f(x, w, b)
      lattice.set_num_threads(2)
      local two = f(x, w, b)
      lattice.set_num_threads(threads)
      for k = 1, 3 do assert.are.same(one[k]:tolist(), two[k]:tolist()) end
    end)
  end)

  describe("rejects", function()
    it("a weight or bias of the wrong shape", function()
      local x = lattice.zeros({ 2, 4 })
      assert.has_error(function() lattice.layer_norm(x, lattice.zeros({ 5 })) end,
        "layer_norm: weight has shape {5}, expected {4}")
      assert.has_error(function() lattice.layer_norm(x, nil, lattice.zeros({ 1, 4 })) end,
        "layer_norm: bias has shape {1,4}, expected {4}")
    end)

    it("integer inputs and weights", function()
      assert.has_error(function() lattice.layer_norm(lattice.zeros({ 2, 4 }, "int32")) end,
        "layer_norm: integer inputs are not supported, got int32")
      assert.has_error(function() lattice.layer_norm(lattice.zeros({ 2, 4 }), lattice.zeros({ 4 }, "int64")) end,
        "layer_norm: weight must be a float tensor, got int64")
    end)

    it("a 0-d input and a negative eps", function()
      assert.has_error(function() lattice.layer_norm(lattice.array(1)) end,
        "layer_norm: x must have at least 1 dimension, got a 0-d array")
      assert.has_error(function() lattice.layer_norm(lattice.zeros({ 4 }), nil, nil, -1) end,
        "layer_norm: eps must be non-negative, got -1")
    end)

    it("a weight that is not a tensor", function()
      assert.has_error(function() lattice.layer_norm(lattice.zeros({ 4 }), "w") end,
        "bad argument #2 to 'layer_norm' (lattice.Tensor expected, got string)")
    end)

    it("an argument past eps", function()
      assert.has_error(function() lattice.layer_norm(lattice.zeros({ 4 }), nil, nil, 1e-5, 0) end,
        "layer_norm: too many arguments (expected at most 4, got 5)")
      assert.has_error(function() lattice.rms_norm(lattice.zeros({ 4 }), nil, 1e-5, 0) end,
        "rms_norm: too many arguments (expected at most 3, got 4)")
    end)
  end)
end)

describe("rms_norm", function()
  local gen = generator(23)

  it("normalises a hand-computed row", function()
    -- x = {3, 4}: mean of squares 12.5, so y = x / sqrt(12.5)
    local y = lattice.rms_norm(lattice.array({ 3, 4 }), nil, 0)
    local s = math.sqrt(12.5)
    assert_close(y:tolist(), { 3 / s, 4 / s }, TOL)
  end)

  it("applies the weight and eps = 1e-5 by default", function()
    local y = lattice.rms_norm(lattice.array({ { 3, 4 } }), lattice.array({ 2, -1 }))
    local s = math.sqrt(12.5 + 1e-5)
    assert_close(y:tolist(), { { 6 / s, -4 / s } }, TOL)
  end)

  it("matches the reference on a 3-D input", function()
    local X, W = rand({ 2, 2, 9 }, gen), rand({ 9 }, gen)
    local y = lattice.rms_norm(lattice.array(X), lattice.array(W), 1e-6)
    assert_close(y:tolist(), ref_norm(X, W, nil, 1e-6, false), TOL)
  end)

  it("keeps bfloat16", function()
    local x = lattice.array(rand({ 2, 6 }, gen), "bfloat16")
    local y = lattice.rms_norm(x)
    assert.are.equal("bfloat16", y.dtype)
    assert_close(y:tolist(), ref_norm(x:tolist(), nil, nil, 1e-5, false), 2 ^ -7)
  end)

  describe("gradient", function()
    it("matches finite differences with a weight", function()
      local x, w = lattice.array(rand({ 3, 5 }, gen)), lattice.array(rand({ 5 }, gen))
      gradcheck.each_dtype(function(x_, w_) return weighted(lattice.rms_norm(x_, w_)) end, { x, w })
    end)

    it("matches finite differences without a weight", function()
      local x = lattice.array(rand({ 2, 3, 4 }, gen))
      gradcheck.each_dtype(function(x_) return weighted(lattice.rms_norm(x_)) end, { x })
    end)
  end)

  describe("rejects", function()
    it("a weight of the wrong shape", function()
      assert.has_error(function() lattice.rms_norm(lattice.zeros({ 3, 4 }), lattice.zeros({ 3 })) end,
        "rms_norm: weight has shape {3}, expected {4}")
    end)

    it("integer inputs", function()
      assert.has_error(function() lattice.rms_norm(lattice.zeros({ 4 }, "uint8")) end,
        "rms_norm: integer inputs are not supported, got uint8")
    end)
  end)
end)

describe("float64 norms", function()
  local gen = generator(5)

  it("compute in double and match the reference to 1e-12", function()
    local X, W, B = rand({ 4, 9 }, gen), rand({ 9 }, gen), rand({ 9 }, gen)
    local x, w, b = lattice.array(X, "float64"), lattice.array(W, "float64"), lattice.array(B, "float64")
    local y = lattice.layer_norm(x, w, b)
    assert.are.equal("float64", y.dtype)
    assert_close(y:tolist(), ref_norm(X, W, B, 1e-5, true), 1e-12)
    local r = lattice.rms_norm(x, w)
    assert.are.equal("float64", r.dtype)
    assert_close(r:tolist(), ref_norm(X, W, nil, 1e-5, false), 1e-12)
  end)

  it("give float64 when the weight or bias is, and gradients in each input's dtype", function()
    local X, W = rand({ 2, 5 }, gen), rand({ 5 }, gen)
    local x, w = lattice.array(X), lattice.array(W, "float64")
    local y = lattice.layer_norm(x, w, nil)
    assert.are.equal("float64", y.dtype)
    assert_close(y:tolist(), ref_norm(x:tolist(), W, nil, 1e-5, true), 1e-12)
    assert.are.equal("float32", lattice.rms_norm(x, nil).dtype)
    local gx, gw = table.unpack(lattice.grad(function(a, c) return weighted(lattice.layer_norm(a, c, nil)) end,
      { 1, 2 })(x, w))
    assert.are.equal("float32", gx.dtype)
    assert.are.equal("float64", gw.dtype)
  end)
end)
