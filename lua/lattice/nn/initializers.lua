-- nn.init: initialisers in the MLX style. Each call returns a function of a
-- tensor that gives a new tensor of its shape:
--   lin.weight = nn.init.he_normal()(lin.weight)
--   m:apply(nn.init.normal{std = 0.02})
-- The random ones draw from the context's generator, so a seed reproduces them.
-- Options are checked when the initialiser is made, not when it is used.
--
-- The result's dtype is the `dtype` option, else the tensor's own (MLX's
-- default is float32; keeping the tensor's means m:apply(init) never turns a
-- float64 or bfloat16 model into float32 behind the caller's back).
-- glorot_* and he_* also take MLX's call-time arguments as an options table,
-- init(t, {gain = 2, mode = "fan_out"}), which win over the ones given when
-- the initialiser was made.
local lattice = require "lattice"
local module = require "lattice.nn.module"

local check_options = module.check_options

local M = {}

local FLOAT = { float32 = true, float16 = true, bfloat16 = true, float64 = true }

-- Option checks; `level` is error's level counted from the helper, so the
-- message points at the line that called the constructor or the initialiser.
local function check_number(v, what, fname, level)
  if type(v) ~= "number" then error(("%s: %s must be a number, got %s"):format(fname, what, type(v)), level) end
end

local function check_dtype(dt, fname, level)
  if dt ~= nil and not FLOAT[dt] then
    error(("%s: dtype must be a float dtype, got %s"):format(fname, tostring(dt)), level)
  end
end

local function check_mode(mode, fname, level)
  if mode ~= "fan_in" and mode ~= "fan_out" then
    error(("%s: mode must be 'fan_in' or 'fan_out', got %s"):format(fname, tostring(mode)), level)
  end
end

-- The tensor an initialiser was given (errors point at the initialiser's caller).
local function check_tensor(t, fname)
  if not lattice.is_tensor(t) then error(("%s: expected a lattice.Tensor, got %s"):format(fname, type(t)), 3) end
end

-- The dtype of the result: the option, else the tensor's, which must be a float.
local function float_dtype(t, dtype, fname)
  local dt = dtype or t.dtype
  if not FLOAT[dt] then error(("%s: the tensor must have a float dtype, got %s"):format(fname, dt), 3) end
  return dt
end

-- fan_in, fan_out of a weight of shape (out, ...receptive field, in) as MLX
-- counts them: for 2-D (out, in); beyond, the middle axes are the receptive
-- field, which multiplies both.
local function fans(t, fname)
  local shape = t.shape
  if #shape < 2 then
    error(("%s: a tensor needs at least 2 dimensions for fan_in and fan_out, got shape {%s}"):format(fname,
      table.concat(shape, ",")), 3)
  end
  local rf = 1
  for i = 2, #shape - 1 do rf = rf * shape[i] end
  return shape[#shape] * rf, shape[1] * rf
end

-- gain and mode for one call: the call's options over the constructor's.
local function call_options(opts, allowed, defaults, fname)
  opts = check_options(opts, allowed, fname)
  local gain, mode = opts.gain, opts.mode
  if gain == nil then gain = defaults.gain else check_number(gain, "gain", fname, 4) end
  if mode == nil then mode = defaults.mode else check_mode(mode, fname, 4) end
  return gain, mode
end

local function normal(t, mean, std, dtype)
  return lattice.random.normal(t.shape, { loc = mean, scale = std, dtype = dtype })
end

local function uniform(t, low, high, dtype)
  return lattice.random.uniform(low, high, t.shape, { dtype = dtype })
end

--- constant(value[, {dtype}]): every element `value`, in any dtype.
function M.constant(value, opts)
  opts = check_options(opts, { dtype = true }, "init.constant")
  if type(value) ~= "number" then error("init.constant: value must be a number, got " .. type(value), 2) end
  if opts.dtype ~= nil and not pcall(lattice.zeros, { 0 }, opts.dtype) then -- an unknown name fails now, not later
    error(("init.constant: unknown dtype %s"):format(tostring(opts.dtype)), 2)
  end
  return function(t)
    check_tensor(t, "init.constant")
    return lattice.full(t.shape, value, opts.dtype or t.dtype)
  end
end

--- normal{mean = 0, std = 1, dtype}
function M.normal(opts)
  opts = check_options(opts, { mean = true, std = true, dtype = true }, "init.normal")
  local mean, std = opts.mean or 0, opts.std or 1
  check_number(mean, "mean", "init.normal", 3)
  check_number(std, "std", "init.normal", 3)
  if std ~= std or std < 0 then error(("init.normal: std must be non-negative, got %g"):format(std), 2) end
  check_dtype(opts.dtype, "init.normal", 3)
  return function(t)
    check_tensor(t, "init.normal")
    return normal(t, mean, std, float_dtype(t, opts.dtype, "init.normal"))
  end
end

--- uniform{low = 0, high = 1, dtype}: U[low, high)
function M.uniform(opts)
  opts = check_options(opts, { low = true, high = true, dtype = true }, "init.uniform")
  local low, high = opts.low or 0, opts.high or 1
  check_number(low, "low", "init.uniform", 3)
  check_number(high, "high", "init.uniform", 3)
  if low ~= low or high ~= high or low > high then error(("init.uniform: low (%g) must not exceed high (%g)"):format(low, high), 2) end
  check_dtype(opts.dtype, "init.uniform", 3)
  return function(t)
    check_tensor(t, "init.uniform")
    return uniform(t, low, high, float_dtype(t, opts.dtype, "init.uniform"))
  end
end

-- The checked constructor options of glorot_* (mode = false) and he_*.
local function fan_options(opts, fname, with_mode)
  local allowed = { gain = true, dtype = true, mode = with_mode or nil }
  opts = check_options(opts, allowed, fname)
  local gain, mode = opts.gain or 1, opts.mode or "fan_in"
  check_number(gain, "gain", fname, 4)
  if with_mode then check_mode(mode, fname, 4) end
  check_dtype(opts.dtype, fname, 4)
  return { gain = gain, mode = mode, dtype = opts.dtype }
end

local GAIN = { gain = true }
local GAIN_MODE = { gain = true, mode = true }

--- glorot_uniform{gain = 1, dtype}: U(-a, a), a = gain sqrt(6 / (fan_in + fan_out))
function M.glorot_uniform(opts)
  local d = fan_options(opts, "init.glorot_uniform", false)
  return function(t, call)
    check_tensor(t, "init.glorot_uniform")
    local gain = call_options(call, GAIN, d, "init.glorot_uniform")
    local fi, fo = fans(t, "init.glorot_uniform")
    local a = gain * math.sqrt(6 / (fi + fo))
    return uniform(t, -a, a, float_dtype(t, d.dtype, "init.glorot_uniform"))
  end
end

--- glorot_normal{gain = 1, dtype}: N(0, std^2), std = gain sqrt(2 / (fan_in + fan_out))
function M.glorot_normal(opts)
  local d = fan_options(opts, "init.glorot_normal", false)
  return function(t, call)
    check_tensor(t, "init.glorot_normal")
    local gain = call_options(call, GAIN, d, "init.glorot_normal")
    local fi, fo = fans(t, "init.glorot_normal")
    return normal(t, 0, gain * math.sqrt(2 / (fi + fo)), float_dtype(t, d.dtype, "init.glorot_normal"))
  end
end

--- he_uniform{mode = "fan_in", gain = 1, dtype}: U(-a, a), a = gain sqrt(3 / fan)
function M.he_uniform(opts)
  local d = fan_options(opts, "init.he_uniform", true)
  return function(t, call)
    check_tensor(t, "init.he_uniform")
    local gain, mode = call_options(call, GAIN_MODE, d, "init.he_uniform")
    local fi, fo = fans(t, "init.he_uniform")
    local a = gain * math.sqrt(3 / (mode == "fan_in" and fi or fo))
    return uniform(t, -a, a, float_dtype(t, d.dtype, "init.he_uniform"))
  end
end

--- he_normal{mode = "fan_in", gain = 1, dtype}: N(0, std^2), std = gain / sqrt(fan)
function M.he_normal(opts)
  local d = fan_options(opts, "init.he_normal", true)
  return function(t, call)
    check_tensor(t, "init.he_normal")
    local gain, mode = call_options(call, GAIN_MODE, d, "init.he_normal")
    local fi, fo = fans(t, "init.he_normal")
    local std = gain / math.sqrt(mode == "fan_in" and fi or fo)
    return normal(t, 0, std, float_dtype(t, d.dtype, "init.he_normal"))
  end
end

return M
