-- nn.init (lua/lattice/nn/initializers.lua): bounds and standard deviations
-- from fan_in and fan_out computed by hand, exact bounds for the uniform ones,
-- statistical checks whose tolerances are a stated number of standard errors
-- of the estimate, and every bad option with its message.
--
-- The draws are seeded, so each check is deterministic; the tolerances say how
-- far a correct initialiser may stray for any seed (5 standard errors: a
-- failure once in ~3 million seeds), while every wrong fan or formula below
-- is off by 20% or more, many standard errors away.
local lattice = require "lattice"
local nn = require "lattice.nn"
local ref = require "support.reference"

local init, flat, f32 = nn.init, ref.flat, ref.f32

-- mean, std (population), min and max of a tensor's elements.
local function stats(t)
  local v = flat(t)
  local n, s, lo, hi = #v, 0, math.huge, -math.huge
  for _, x in ipairs(v) do
    s, lo, hi = s + x, math.min(lo, x), math.max(hi, x)
  end
  local mean, sq = s / n, 0
  for _, x in ipairs(v) do sq = sq + (x - mean) ^ 2 end
  return mean, math.sqrt(sq / n), lo, hi, n
end

-- Asserts the sample std of n normal draws is std within 5 standard errors
-- (relative standard error 1/sqrt(2n)) and the mean 0 within 5 (std/sqrt(n)).
local function assert_normal(t, mean, std, what)
  local m, s, _, _, n = stats(t)
  assert(math.abs(m - mean) < 5 * std / math.sqrt(n), ("%s: mean %g, want %g"):format(what, m, mean))
  assert(math.abs(s / std - 1) < 5 / math.sqrt(2 * n), ("%s: std %g, want %g"):format(what, s, std))
end

-- Asserts every draw lies in [-a, a] (a as float32 rounds it: the last
-- rounding may land on it), some lie within 1% of each end (for n >= 16384
-- draws the chance that none does is below 0.995^16384 ~ 1e-36), and the
-- std is a/sqrt(3) within 5 standard errors (relative 0.45/sqrt(n) for U(-a, a)).
local function assert_uniform(t, a, what)
  local m, s, lo, hi, n = stats(t)
  local a32 = f32(a)
  assert(lo >= -a32 and hi <= a32, ("%s: draws in [%g, %g], bound %g"):format(what, lo, hi, a))
  assert(lo < -0.99 * a and hi > 0.99 * a, ("%s: draws in [%g, %g] do not reach %g"):format(what, lo, hi, a))
  assert(math.abs(m) < 5 * a / math.sqrt(3 * n), ("%s: mean %g"):format(what, m))
  assert(math.abs(s / (a / math.sqrt(3)) - 1) < 5 * 0.45 / math.sqrt(n), ("%s: std %g, want %g"):format(what, s,
    a / math.sqrt(3)))
end

-- A conv-like weight (out, kh, kw, in) = (64, 3, 3, 32): receptive field 9,
-- fan_in = 32 * 9 = 288, fan_out = 64 * 9 = 576, fan_in + fan_out = 864;
-- 18432 elements.
local CONV = { 64, 3, 3, 32 }
-- A linear weight (out, in) = (256, 64): fan_in 64, fan_out 256; 16384 elements.
local LINEAR = { 256, 64 }

describe("nn.init", function()
  before_each(function() lattice.random.seed(42) end)

  describe("constant", function()
    it("fills the tensor's shape with the value, in its dtype or the one asked", function()
      local t = init.constant(0.5)(lattice.zeros({ 2, 3 }, "float64"))
      assert.are.equal("float64", t.dtype)
      assert.are.same({ { 0.5, 0.5, 0.5 }, { 0.5, 0.5, 0.5 } }, t:tolist())
      assert.are.same({ 7, 7 }, init.constant(7)(lattice.zeros({ 2 }, "int32")):tolist())
      assert.are.equal("bfloat16", init.constant(1, { dtype = "bfloat16" })(lattice.zeros({ 2 })).dtype)
    end)
  end)

  describe("uniform", function()
    it("draws U[low, high) with the std of the interval", function()
      local t = init.uniform { low = -2, high = 3 }(lattice.zeros({ 128, 128 }))
      local m, s, lo, hi, n = stats(t)
      assert(lo >= -2 and hi <= 3)
      -- mean 0.5 with a standard error of 5/sqrt(12 n); std 5/sqrt(12)
      assert(math.abs(m - 0.5) < 5 * 5 / math.sqrt(12 * n), "mean " .. m)
      assert(math.abs(s / (5 / math.sqrt(12)) - 1) < 5 * 0.45 / math.sqrt(n), "std " .. s)
    end)

    it("defaults to [0, 1)", function()
      local _, _, lo, hi = stats(init.uniform()(lattice.zeros({ 4096 })))
      assert(lo >= 0 and lo < 0.01 and hi <= 1 and hi > 0.99) -- 1 only by float32 rounding
    end)
  end)

  describe("normal", function()
    it("draws N(mean, std^2)", function()
      assert_normal(init.normal { mean = 3, std = 0.5 }(lattice.zeros({ 128, 128 })), 3, 0.5, "normal")
      assert_normal(init.normal()(lattice.zeros({ 128, 128 })), 0, 1, "normal()")
    end)

    it("gives the mean itself for std = 0", function()
      assert.are.same({ 2, 2 }, init.normal { mean = 2, std = 0 }(lattice.zeros({ 2 })):tolist())
    end)
  end)

  describe("glorot_uniform", function()
    it("bounds a conv weight by sqrt(6 / (fan_in + fan_out)) = 1/12", function()
      assert_uniform(init.glorot_uniform()(lattice.zeros(CONV)), 1 / 12, "glorot_uniform")
    end)

    it("scales by gain, given when made or when called (MLX)", function()
      assert_uniform(init.glorot_uniform { gain = 2 }(lattice.zeros(CONV)), 2 / 12, "gain 2")
      assert_uniform(init.glorot_uniform()(lattice.zeros(CONV), { gain = 3 }), 3 / 12, "gain 3 at the call")
      -- (256, 64): sqrt(6 / 320)
      assert_uniform(init.glorot_uniform()(lattice.zeros(LINEAR)), math.sqrt(6 / 320), "linear")
    end)
  end)

  describe("glorot_normal", function()
    it("has std sqrt(2 / (fan_in + fan_out))", function()
      assert_normal(init.glorot_normal()(lattice.zeros(CONV)), 0, math.sqrt(2 / 864), "conv")
      assert_normal(init.glorot_normal { gain = 0.5 }(lattice.zeros(LINEAR)), 0, 0.5 * math.sqrt(2 / 320), "linear")
    end)
  end)

  describe("he_uniform", function()
    it("bounds by gain sqrt(3 / fan), fan_in by default", function()
      assert_uniform(init.he_uniform()(lattice.zeros(CONV)), math.sqrt(3 / 288), "fan_in")
      assert_uniform(init.he_uniform { mode = "fan_out" }(lattice.zeros(CONV)), math.sqrt(3 / 576), "fan_out")
      -- (256, 64): fan_in 64 gives sqrt(3) / 8
      assert_uniform(init.he_uniform { gain = 2 }(lattice.zeros(LINEAR)), 2 * math.sqrt(3) / 8, "linear gain 2")
      assert_uniform(init.he_uniform()(lattice.zeros(LINEAR), { mode = "fan_out" }), math.sqrt(3 / 256), "at the call")
    end)
  end)

  describe("he_normal", function()
    it("has std gain / sqrt(fan)", function()
      assert_normal(init.he_normal()(lattice.zeros(CONV)), 0, 1 / math.sqrt(288), "fan_in")
      assert_normal(init.he_normal { mode = "fan_out" }(lattice.zeros(CONV)), 0, 1 / 24, "fan_out")
      assert_normal(init.he_normal()(lattice.zeros(LINEAR)), 0, 1 / 8, "linear fan_in")
      assert_normal(init.he_normal()(lattice.zeros(LINEAR), { mode = "fan_out", gain = 4 }), 0, 4 / 16, "at the call")
    end)

    it("counts a 3-D weight's middle axis as its receptive field", function()
      -- (128, 4, 32): fan_in = 32 * 4 = 128
      assert_normal(init.he_normal()(lattice.zeros({ 128, 4, 32 })), 0, 1 / math.sqrt(128), "3-D")
    end)
  end)

  it("keeps the tensor's shape and float dtype, or the dtype asked", function()
    for _, dt in ipairs({ "float32", "float64", "float16", "bfloat16" }) do
      local t = init.he_normal()(lattice.zeros({ 3, 4 }, dt))
      assert.are.equal(dt, t.dtype)
      assert.are.same({ 3, 4 }, t.shape)
    end
    assert.are.equal("float64", init.uniform { dtype = "float64" }(lattice.zeros({ 2 })).dtype)
    assert.are.equal("float32", init.glorot_normal { dtype = "float32" }(lattice.zeros({ 2, 2 }, "float16")).dtype)
  end)

  it("reproduces its draws with a seed", function()
    local f = init.glorot_uniform()
    lattice.random.seed(9)
    local a = f(lattice.zeros({ 8, 8 })):tolist()
    lattice.random.seed(9)
    assert.are.same(a, f(lattice.zeros({ 8, 8 })):tolist())
  end)

  it("works with m:apply on every parameter", function()
    local lin = nn.Linear(4, 3)
    lin:apply(init.constant(0.25))
    assert.are.same({ 0.25, 0.25, 0.25 }, lin.bias:tolist())
    assert.are.same({ 0.25, 0.25, 0.25, 0.25 }, lin.weight:tolist()[1])
  end)

  describe("rejects, when made", function()
    it("bad numbers", function()
      assert.has_error(function() init.constant("a") end, "init.constant: value must be a number, got string")
      assert.has_error(function() init.normal { std = "a" } end, "init.normal: std must be a number, got string")
      assert.has_error(function() init.normal { mean = {} } end, "init.normal: mean must be a number, got table")
      assert.has_error(function() init.normal { std = -1 } end, "init.normal: std must be non-negative, got -1")
      assert.has_error(function() init.uniform { low = 1, high = 0 } end, "init.uniform: low (1) must not exceed high (0)")
      assert.has_error(function() init.uniform { high = "a" } end, "init.uniform: high must be a number, got string")
      assert.has_error(function() init.glorot_uniform { gain = "a" } end,
        "init.glorot_uniform: gain must be a number, got string")
      assert.has_error(function() init.he_normal { gain = true } end, "init.he_normal: gain must be a number, got boolean")
    end)

    it("a bad mode, dtype or option name", function()
      assert.has_error(function() init.he_uniform { mode = "x" } end,
        "init.he_uniform: mode must be 'fan_in' or 'fan_out', got x")
      assert.has_error(function() init.he_normal { mode = 1 } end,
        "init.he_normal: mode must be 'fan_in' or 'fan_out', got 1")
      assert.has_error(function() init.normal { dtype = "int32" } end, "init.normal: dtype must be a float dtype, got int32")
      assert.has_error(function() init.constant(1, { dtype = "float8" }) end, "init.constant: unknown dtype float8")
      assert.has_error(function() init.glorot_uniform { mode = "fan_in" } end, "init.glorot_uniform: unknown option 'mode'")
      assert.has_error(function() init.normal { stddev = 1 } end, "init.normal: unknown option 'stddev'")
      assert.has_error(function() init.uniform(1) end, "init.uniform: options must be a table, got number")
    end)
  end)

  describe("rejects, when used", function()
    it("a tensor without fans, not a tensor, or not a float", function()
      assert.has_error(function() init.he_uniform()(lattice.zeros({ 3 })) end,
        "init.he_uniform: a tensor needs at least 2 dimensions for fan_in and fan_out, got shape {3}")
      assert.has_error(function() init.glorot_normal()(lattice.zeros({})) end,
        "init.glorot_normal: a tensor needs at least 2 dimensions for fan_in and fan_out, got shape {}")
      assert.has_error(function() init.normal()({ 1, 2 }) end, "init.normal: expected a lattice.Tensor, got table")
      assert.has_error(function() init.constant(1)(nil) end, "init.constant: expected a lattice.Tensor, got nil")
      assert.has_error(function() init.glorot_uniform()(lattice.zeros({ 3, 3 }, "int32")) end,
        "init.glorot_uniform: the tensor must have a float dtype, got int32")
    end)

    it("bad call-time options", function()
      assert.has_error(function() init.he_normal()(lattice.zeros({ 2, 2 }), { mode = "fan" }) end,
        "init.he_normal: mode must be 'fan_in' or 'fan_out', got fan")
      assert.has_error(function() init.glorot_uniform()(lattice.zeros({ 2, 2 }), { gain = "2" }) end,
        "init.glorot_uniform: gain must be a number, got string")
      assert.has_error(function() init.glorot_uniform()(lattice.zeros({ 2, 2 }), { mode = "fan_in" }) end,
        "init.glorot_uniform: unknown option 'mode'")
    end)
  end)
end)
