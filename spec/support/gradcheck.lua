-- gradcheck(fn, inputs[, opts]): asserts that lattice.grad of fn matches central
-- finite differences for every float input.
--
-- fn receives the inputs as separate arguments and returns a scalar tensor.
-- The differences are taken in float64 (Lua numbers) over a float32 forward:
-- with eps = 1e-3 the truncation error is O(eps^2 * f''') ~ 1e-6 and the
-- rounding error is O(ulp(f) / eps) ~ 1e-4 * |f|, so the defaults
-- atol = 1e-3, rtol = 1e-2 leave an order of magnitude of margin on values of
-- order 1 while still catching any wrong factor or sign.
local lattice = require "lattice"

local function f32(v) return (string.unpack("f", string.pack("f", v))) end

local function is_float(t)
  return lattice.is_tensor(t) and (t.dtype == "float32" or t.dtype == "float16" or t.dtype == "bfloat16")
end

local function call(fn, inputs, n)
  local y = fn(table.unpack(inputs, 1, n))
  assert(lattice.is_tensor(y) and y.size == 1, "gradcheck: fn must return a scalar tensor")
  return y:item()
end

local function check_input(fn, inputs, n, i, grad, opts, failures)
  local x = inputs[i]
  local shape, flat = x.shape, x:reshape(-1):astype("float32"):tolist()
  local analytic = grad:reshape(-1):astype("float32"):tolist()
  for j = 1, #flat do
    local orig = flat[j]
    local xp, xm = f32(orig + opts.eps), f32(orig - opts.eps)
    flat[j] = xp
    inputs[i] = lattice.array(flat):reshape(shape)
    local fp = call(fn, inputs, n)
    flat[j] = xm
    inputs[i] = lattice.array(flat):reshape(shape)
    local fm = call(fn, inputs, n)
    flat[j] = orig
    local numeric = (fp - fm) / (xp - xm)
    if math.abs(numeric - analytic[j]) > opts.atol + opts.rtol * math.abs(numeric) then
      failures[#failures + 1] = ("input %d element %d: analytic %.6g, numeric %.6g"):format(i, j, analytic[j], numeric)
    end
  end
  inputs[i] = x
end

return function(fn, inputs, opts)
  opts = opts or {}
  opts.eps, opts.atol, opts.rtol = opts.eps or 1e-3, opts.atol or 1e-3, opts.rtol or 1e-2
  local n = #inputs
  local argnums = {}
  for i = 1, n do
    if is_float(inputs[i]) then argnums[#argnums + 1] = i end
  end
  assert(#argnums > 0, "gradcheck: no float inputs")
  local grads = lattice.grad(fn, argnums)(table.unpack(inputs, 1, n))
  local failures = {}
  for k, i in ipairs(argnums) do
    assert(grads[k].ndim == inputs[i].ndim, "gradcheck: gradient rank differs from input rank")
    check_input(fn, inputs, n, i, grads[k], opts, failures)
  end
  if #failures > 0 then
    error("gradcheck failed:\n  " .. table.concat(failures, "\n  ", 1, math.min(#failures, 10)), 2)
  end
  return true
end
