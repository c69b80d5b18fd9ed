local lattice = require "lattice"
local core = require "lattice.core" -- unary_with_isa, exp_shift_with_isa, peak_gflops, bench_memcpy: test hooks
local ref = require "support.reference"

-- Every ISA variant of the unary kernels against the plain _ref kernel, in one
-- process: lattice.core.unary_with_isa(op, x, isa) runs the forward with one ISA's
-- table ("scalar" is the _ref kernels), lowered to what the CPU (and
-- LATTICE_ISA) allows, and returns the ISA it used; an ISA this machine lacks
-- is reported as pending.

local isas = {"avx2", "avx512"}
local nan, inf = 0 / 0, math.huge

local flat = ref.flat

-- A dense grid over [-12, 12], a wide one over [-110, 100] (past exp's
-- overflow and underflow), and the special values.
local function inputs(lo)
  local xs = {}
  for i = 0, 4000 do xs[#xs + 1] = -12 + 24 * i / 4000 end
  for i = 0, 4000 do xs[#xs + 1] = -110 + 210 * i / 4000 end
  for _, v in ipairs({nan, inf, -inf, 0, -0.0, 88.72, 88.73, -87.5, -103, -104.5, 1e-30, -1e-30, 1e-4, -1e-4}) do
    xs[#xs + 1] = v
  end
  if lo then
    for i, v in ipairs(xs) do xs[i] = math.abs(v) end
  end
  return xs
end

-- Tolerances relative to the _ref kernel's value. IEEE operations (neg, abs,
-- square, sqrt, 1/sqrt, selects) must match bit for bit. exp is SLEEF's 1-ulp
-- polynomial against glibc's correctly rounded expf: 2 ulp apart at most
-- (2.4e-7 relative). The others compose exp with a division (and gelu a
-- polynomial for the Mills ratio, 4e-9) and were measured at <= 7 ulp from a
-- double-precision reference (6.2 ulp for gelu near 0, where 1 - Q(x) cancels
-- one bit), so 1e-6 leaves margin without hiding a wrong coefficient.
local rtol = {
  neg = 0, abs = 0, square = 0, sqrt = 0, rsqrt = 0, relu = 0, leaky_relu = 0,
  exp = 2.4e-7, tanh = 5e-7, sigmoid = 5e-7, silu = 1e-6, gelu = 1e-6, gelu_approx = 1e-6,
}

local function same(got, want, tol, atol)
  if want ~= want then return got ~= got end
  if tol == 0 then return got == want and (1 / got > 0) == (1 / want > 0) or (got == want and want ~= 0) end
  if want == inf or want == -inf then return got == want end
  return math.abs(got - want) <= tol * math.abs(want) + atol
end

local function compare(name, got, want, xs, tol, atol)
  local bad = 0
  local first
  for i = 1, #xs do
    if not same(got[i], want[i], tol, atol) then
      bad = bad + 1
      first = first or ("x = %.9g: got %.9g, ref %.9g"):format(xs[i], got[i], want[i])
    end
  end
  assert(bad == 0, ("%s: %d mismatches, first %s"):format(name, bad, first))
end

describe("lattice.isa", function()
  it("names the ISA lattice's own kernels use", function()
    local isa = lattice.isa()
    assert(isa == "scalar" or isa == "avx2" or isa == "avx512", isa)
    local forced = os.getenv("LATTICE_ISA")
    if forced == "scalar" then assert.equal("scalar", isa) end
  end)

  it("is lowered by LATTICE_ISA in a new process", function()
    local exe = arg and arg[-1] or "lua5.4"
    local code = ("package.path = %q; package.cpath = %q; io.write(require('lattice').isa())"):format(
      package.path, package.cpath)
    local p = assert(io.popen("LATTICE_ISA=scalar '" .. exe .. "' -e " .. ("%q"):format(code) .. " 2>&1"))
    local out = p:read("a")
    p:close()
    assert.equal("scalar", out)
  end)

  it("says once on stderr that it ignores an unknown LATTICE_ISA, and runs at the CPU's best", function()
    local exe = arg and arg[-1] or "lua5.4"
    -- peak_gflops asks for the ISA again: still one line
    local code = ("package.path = %q; package.cpath = %q; require('lattice.core').peak_gflops('scalar', 0.001);"
      .. "io.write(require('lattice').isa())"):format(package.path, package.cpath)
    local function run(value)
      local err = os.tmpname()
      local p = assert(io.popen(value .. " '" .. exe .. "' -e " .. ("%q"):format(code) .. " 2>" .. err))
      local out = p:read("a")
      p:close()
      local f = assert(io.open(err))
      local msg = f:read("a")
      f:close()
      os.remove(err)
      return out, msg
    end
    local best = run("env -u LATTICE_ISA")
    local out, msg = run("LATTICE_ISA=avx9000")
    assert.equal(best, out)
    assert.equal("lattice: ignoring LATTICE_ISA='avx9000' (expected scalar, avx2 or avx512); using " .. best .. "\n", msg)
    assert.equal("", select(2, run("LATTICE_ISA=scalar")))
    assert.equal(best, (run("LATTICE_ISA=")))
  end)

  it("rejects an unknown ISA name", function()
    assert.has_error(function() core.unary_with_isa("exp", lattice.zeros({1}), "sse9") end,
      "unary_with_isa: unknown ISA 'sse9' (expected scalar, avx2 or avx512)")
    assert.has_error(function() core.unary_with_isa("expo", lattice.zeros({1}), "avx2") end,
      "unary_with_isa: unknown unary op 'expo'")
  end)
end)

for _, isa in ipairs(isas) do
  describe(isa .. " unary kernels", function()
    for name, tol in pairs(rtol) do
      it(name .. " matches the _ref kernel", function()
        local lo = name == "sqrt" or name == "rsqrt"
        local xs = inputs(lo)
        local x = lattice.array(xs)
        local got, used = core.unary_with_isa(name, x, isa, 0.1)
        if used ~= isa then return pending(isa .. " is not available here") end
        local want = core.unary_with_isa(name, x, "scalar", 0.1)
        -- A subnormal intermediate (e^-|x|, or sigmoid below 1.2e-38) is quantised
        -- to 1.4e-45, which a factor |x| <= 110 scales to 1.5e-43: absolute 2e-43.
        compare(name, flat(got), flat(want), xs, tol, tol == 0 and 0 or 2e-43)
      end)
    end

    it("handles every tail length like the full vectors", function()
      local xs = {}
      for i = 1, 40 do xs[i] = (i - 20) * 0.37 end
      local full = flat(core.unary_with_isa("silu", lattice.array(xs), isa))
      for n = 1, 40 do
        local part = {}
        for i = 1, n do part[i] = xs[i] end
        local got, used = core.unary_with_isa("silu", lattice.array(part), isa)
        if used ~= isa then return pending(isa .. " is not available here") end
        local g = flat(got)
        for i = 1, n do assert.equal(full[i], g[i]) end
      end
    end)

    -- Backward kernels: gx = g f'(x). Near a zero of f' (silu at -1.28, gelu at
    -- -0.75, tanh's 1 - y^2 for large |x|) the terms cancel, so the tolerance
    -- is relative to |g| as well: 1e-6 |g| absolute, 2e-6 relative.
    for _, name in ipairs({"relu", "leaky_relu", "exp", "tanh", "sigmoid", "silu", "gelu", "gelu_approx"}) do
      it(name .. "'s backward matches the _ref kernel", function()
        local xs, gs = {}, {}
        for i = 0, 3000 do
          xs[#xs + 1] = -30 + 60 * i / 3000
          gs[#gs + 1] = 1 + (i % 7) * 0.3
        end
        if name == "exp" then
          for i, v in ipairs(xs) do xs[i] = v / 2 end
        end
        local x, g = lattice.array(xs), lattice.array(gs)
        local got, used = core.unary_grad_with_isa(name, g, x, isa, 0.1)
        if used ~= isa then return pending(isa .. " is not available here") end
        local want = flat(core.unary_grad_with_isa(name, g, x, "scalar", 0.1))
        got = flat(got)
        for i = 1, #xs do
          local ok = math.abs(got[i] - want[i]) <= 2e-6 * math.abs(want[i]) + 1e-6 * gs[i]
          assert(ok, ("%s' at %.9g: got %.9g, ref %.9g"):format(name, xs[i], got[i], want[i]))
        end
      end)
    end
  end)
end

-- The exp kernel inside softmax, logsumexp and cross_entropy (kernels/exp.c):
-- every variant, the portable one included, against glibc's expf (the _ref of
-- the unary exp), 2 ulp apart at most as above. The portable variant has no
-- FMA and rounds its polynomial's steps twice: 3 ulp (3.6e-7) leaves it margin.
describe("the exp kernel", function()
  for _, isa in ipairs({"scalar", "avx2", "avx512"}) do
    it(isa .. " matches expf over the range, specials and every tail length", function()
      local xs = inputs(false)
      local got, used = core.exp_shift_with_isa(lattice.array(xs), 3.5, isa)
      if used ~= isa then return pending(isa .. " is not available here") end
      local shifted = {}
      for i, v in ipairs(xs) do shifted[i] = ref.f32(ref.f32(v) - 3.5) end -- as the kernel subtracts, in float32
      local want = core.unary_with_isa("exp", lattice.array(shifted), "scalar")
      compare("exp_shift " .. isa, flat(got), flat(want), xs, isa == "scalar" and 3.6e-7 or 2.4e-7, 2e-43)
      local full = flat(got)
      for n = 1, 37 do
        local part = {}
        for i = 1, n do part[i] = xs[i] end
        local g = flat(core.exp_shift_with_isa(lattice.array(part), 3.5, isa))
        for i = 1, n do assert.equal(full[i], g[i]) end
      end
    end)
  end
end)

describe("peak_gflops", function()
  it("measures a positive rate for the ISAs the CPU has and declines the others", function()
    for _, isa in ipairs({"scalar", "avx2", "avx512"}) do
      local g, msg = core.peak_gflops(isa, 0.01)
      if g then
        assert(g > 0.1, isa)
      else
        assert.equal("peak_gflops: " .. isa .. " is not available on this CPU (or LATTICE_ISA)", msg)
      end
    end
    assert.has_error(function() core.peak_gflops("avx", 0.1) end,
      "peak_gflops: unknown ISA 'avx' (expected scalar, avx2 or avx512)")
  end)

  it("bench_memcpy returns seconds per copy", function()
    local s = core.bench_memcpy(1 << 20, 3)
    assert(s > 0 and s < 1)
    assert.has_error(function() core.bench_memcpy(1024, 0) end, "bench_memcpy: reps must be in [1, 10000]")
  end)
end)
