-- gradcheck(fn, inputs[, opts]): asserts that lattice.grad of fn matches central
-- finite differences for every float input.
-- gradcheck.each_dtype(fn, inputs[, opts]): the same check twice, with the
-- float32 inputs as given and then with them cast to float64 (opts.float64
-- holds the options of that second run, the float64 defaults otherwise).
--
-- fn receives the inputs as separate arguments and returns a scalar tensor.
-- The differences are always taken in Lua numbers (doubles); the mode follows
-- the inputs: float64 when every float input is float64, else float32.
--
-- float32: the forward runs in float32. With eps = 1e-3 the truncation error
-- is O(eps^2 * f''') ~ 1e-6 and the rounding error is O(ulp(f) / eps) ~
-- 1e-4 * |f|, so the defaults atol = 1e-3, rtol = 1e-2 leave an order of
-- magnitude of margin on values of order 1 while still catching any wrong
-- factor or sign.
--
-- float64: the forward and the gradient run in double. With eps = 1e-6 the
-- truncation error is O(eps^2 * f''') ~ 1e-12 and the rounding error is
-- O(ulp(f) / eps) ~ 2.2e-16 / 1e-6 * |f| ~ 2e-10 * |f|, so atol = 1e-7,
-- rtol = 1e-6 leave two to three orders of margin on values up to ~10 and
-- catch an error in the sixth significant digit of a gradient, which the
-- float32 tolerances let through (a wrong edge term in a sum over many rows).
local lattice = require "lattice"

local function f32(v) return (string.unpack("f", string.pack("f", v))) end
local function f64(v) return v end

local float_dtypes = { float32 = true, float16 = true, bfloat16 = true, float64 = true }

local function is_float(t) return lattice.is_tensor(t) and float_dtypes[t.dtype] end

local defaults = {
  float32 = { eps = 1e-3, atol = 1e-3, rtol = 1e-2 },
  float64 = { eps = 1e-6, atol = 1e-7, rtol = 1e-6 },
}

local function call(fn, inputs, n)
  local y = fn(table.unpack(inputs, 1, n))
  assert(lattice.is_tensor(y) and y.size == 1, "gradcheck: fn must return a scalar tensor")
  return y:item()
end

-- A perturbed input is rebuilt as float64 when it is float64, else as float32.
local function check_input(fn, inputs, n, i, grad, opts, failures)
  local x = inputs[i]
  local dtype = x.dtype == "float64" and "float64" or "float32"
  local round = dtype == "float64" and f64 or f32
  local shape, flat = x.shape, x:reshape(-1):astype(dtype):tolist()
  local analytic = grad:reshape(-1):astype(dtype):tolist()
  for j = 1, #flat do
    local orig = flat[j]
    local xp, xm = round(orig + opts.eps), round(orig - opts.eps)
    flat[j] = xp
    inputs[i] = lattice.array(flat, dtype):reshape(shape)
    local fp = call(fn, inputs, n)
    flat[j] = xm
    inputs[i] = lattice.array(flat, dtype):reshape(shape)
    local fm = call(fn, inputs, n)
    flat[j] = orig
    local numeric = (fp - fm) / (xp - xm)
    if math.abs(numeric - analytic[j]) > opts.atol + opts.rtol * math.abs(numeric) then
      failures[#failures + 1] = ("%s input %d element %d: analytic %.10g, numeric %.10g"):format(
        dtype, i, j, analytic[j], numeric)
    end
  end
  inputs[i] = x
end

-- The float inputs' positions, and the mode they ask for.
local function float_inputs(inputs, n)
  local argnums, all64 = {}, true
  for i = 1, n do
    if is_float(inputs[i]) then
      argnums[#argnums + 1] = i
      all64 = all64 and inputs[i].dtype == "float64"
    end
  end
  assert(#argnums > 0, "gradcheck: no float inputs")
  return argnums, all64 and "float64" or "float32"
end

local function gradcheck(fn, inputs, opts)
  local n = #inputs
  local argnums, mode = float_inputs(inputs, n)
  local o = {}
  for k, v in pairs(defaults[mode]) do o[k] = v end
  for k, v in pairs(opts or {}) do
    if k ~= "float64" then o[k] = v end
  end
  local grads = lattice.grad(fn, argnums)(table.unpack(inputs, 1, n))
  local failures = {}
  for k, i in ipairs(argnums) do
    assert(grads[k].ndim == inputs[i].ndim, "gradcheck: gradient rank differs from input rank")
    assert(mode ~= "float64" or grads[k].dtype == "float64",
      "gradcheck: a float64 input got a " .. grads[k].dtype .. " gradient")
    check_input(fn, inputs, n, i, grads[k], o, failures)
  end
  if #failures > 0 then
    error("gradcheck failed:\n  " .. table.concat(failures, "\n  ", 1, math.min(#failures, 10)), 3)
  end
  return true
end

local M = {}

function M.each_dtype(fn, inputs, opts)
  gradcheck(fn, inputs, opts)
  local wide = {}
  for i = 1, #inputs do
    local x = inputs[i]
    wide[i] = (lattice.is_tensor(x) and x.dtype == "float32") and x:astype("float64") or x
  end
  local ok = gradcheck(fn, wide, opts and opts.float64) -- not a tail call: errors point at the spec
  return ok
end

return setmetatable(M, {
  __call = function(_, fn, inputs, opts)
    local ok = gradcheck(fn, inputs, opts)
    return ok
  end,
})
