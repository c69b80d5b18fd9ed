-- Small helpers shared by the specs for building inputs and checking results
-- against plain-Lua references:
--   local ref = require "support.reference"
--   local generator, rand = ref.generator, ref.rand
-- Helpers that differ between specs (special-value handling, tolerances of
-- one op) stay local to their spec.
local lattice = require "lattice"
-- busted's assert (luassert): a required module sees the built-in assert, not
-- the one busted gives spec files.
local assert = require "luassert"

local M = {}

-- generator(seed): a small linear congruential generator returning a function
-- that yields the next value in [-1, 1). It is independent of lattice's random
-- numbers and of math.random, so reference data is the same on every run.
function M.generator(seed)
  local s = seed
  return function()
    s = (s * 1103515245 + 12345) % 2147483648
    return s / 2147483648 * 2 - 1
  end
end

-- rand(shape, gen): a nested Lua table of the given shape filled by gen()
-- (d is the current depth, used by the recursion).
local function rand(shape, gen, d)
  d = d or 1
  local t = {}
  for i = 1, shape[d] do t[i] = d == #shape and gen() or rand(shape, gen, d + 1) end
  return t
end
M.rand = rand

-- randn(n[, scale]): a flat list of n normal samples (Box-Muller) times scale
-- (default 1), drawn from math.random, so each spec seeds it with
-- math.randomseed for reproducible inputs.
function M.randn(n, scale)
  local t = {}
  for i = 1, n do
    t[i] = (scale or 1) * math.sqrt(-2 * math.log(1 - math.random())) * math.cos(2 * math.pi * math.random())
  end
  return t
end

-- f32(v): v rounded to float32 and back to a double, i.e. the value a float32
-- tensor holds, so references are computed from the tensor's actual inputs.
function M.f32(v) return (string.unpack("f", string.pack("f", v))) end

-- flat(t): the elements of tensor t as a flat Lua list in row-major order.
function M.flat(t) return t:reshape({t.size}):tolist() end

-- numel(shape): the number of elements of a shape (a list of sizes).
function M.numel(shape)
  local n = 1
  for _, d in ipairs(shape) do n = n * d end
  return n
end

-- i64(t): an int64 tensor from a (nested) Lua table, e.g. indices or targets.
function M.i64(t) return lattice.array(t, "int64") end

-- tensor(flat, shape[, dtype]): a tensor of the given shape from a flat list.
function M.tensor(flat, shape, dtype) return lattice.array(flat, dtype):reshape(shape) end

-- |g - w| <= tol (1 + |w|), false for NaN (so not written as a >)
local function near(g, w, tol) return type(g) == "number" and math.abs(g - w) <= tol * (1 + math.abs(w)) end

-- assert_close(got, want, tol[, where]): asserts that the nested tables (or
-- numbers) got and want have the same lengths and that every element satisfies
-- |got - want| <= tol * (1 + |want|); where names the position in messages.
-- NaN and infinities never pass. (reduce_spec and softmax_spec keep their own
-- flat-list assert_close(expected, actual, rtol, atol, what), which treats NaN
-- and infinities specially.)
local function assert_close(got, want, tol, where)
  where = where or ""
  if type(want) == "table" then
    if type(got) ~= "table" or #want ~= #got then
      assert.are.equal(#want, type(got) == "table" and #got or type(got), "length at " .. where)
    end
    for i = 1, #want do
      local g, w = got[i], want[i]
      -- the position's name built only for a table or a failure (tables of 10^5 rows are checked)
      if type(w) == "table" or not near(g, w, tol) then
        assert_close(g, w, tol, where .. "[" .. i .. "]")
      end
    end
  elseif not near(got, want, tol) then
    assert(false, ("at %s: got %s, want %.9g"):format(where, type(got) == "number" and ("%.9g"):format(got)
      or tostring(got), want))
  end
end
M.assert_close = assert_close

-- weighted(y): a scalar loss for gradient checks that weighs every element of y
-- differently (a dot product of y flattened with fixed values from
-- generator(99)), so a wrong gradient cannot hide behind symmetry.
function M.weighted(y)
  local gen = M.generator(99)
  local w = {}
  for i = 1, y.size do w[i] = gen() end
  return lattice.matmul(y:reshape(-1), lattice.array(w))
end

-- erf and erfc in doubles: the Maclaurin series below 2.5 (at most 4 of 16
-- digits lost to cancellation), the continued fraction of erfc above (60
-- terms, converged to double precision for z >= 2.5).
local function erf_series(z)
  local sum, term, n = z, z, 0
  repeat
    n = n + 1
    term = -term * z * z / n
    sum = sum + term / (2 * n + 1)
  until math.abs(term) <= 1e-17 * math.abs(sum)
  return 2 / math.sqrt(math.pi) * sum
end

function M.erfc(z)
  if z < 0 then return 2 - M.erfc(-z) end
  if z < 2.5 then return 1 - erf_series(z) end
  local f = z
  for k = 60, 1, -1 do f = z + (k / 2) / f end
  return math.exp(-z * z) / math.sqrt(math.pi) / f
end

function M.erf(z) return 1 - M.erfc(z) end

-- The exact GELU, x Phi(x), written with erfc so that it keeps its digits for
-- negative x too.
function M.gelu(x) return 0.5 * x * M.erfc(-x / math.sqrt(2)) end

return M
