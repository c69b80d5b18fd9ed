-- nn.init: initialisers in the MLX style. Each call returns a function of a
-- tensor that gives a new tensor of its shape and dtype:
--   lin.weight = nn.init.he_normal()(lin.weight)
--   m:apply(nn.init.normal{std = 0.02})
-- The random ones draw from the context's generator, so a seed reproduces them.
local lattice = require "lattice"
local module = require "lattice.nn.module"

local check_options = module.check_options

local M = {}

-- fan_in, fan_out of a weight of shape (out, in, ...receptive field) as MLX
-- counts them: for 2-D (out, in); beyond, the middle axes are the receptive field.
local function fans(t, fname)
  local shape = t.shape
  if #shape < 2 then
    error(("%s: a tensor needs at least 2 dimensions for fan_in and fan_out, got shape {%s}"):format(fname,
      table.concat(shape, ", ")), 3)
  end
  if #shape == 2 then return shape[2], shape[1] end
  local rf = 1
  for i = 2, #shape - 1 do rf = rf * shape[i] end
  return shape[#shape] * rf, shape[1] * rf
end

local function float_dtype(t, fname)
  local dt = t.dtype
  if dt ~= "float32" and dt ~= "float16" and dt ~= "bfloat16" and dt ~= "float64" then
    error(("%s: the tensor must have a float dtype, got %s"):format(fname, dt), 3)
  end
  return dt
end

local function check_tensor(t, fname)
  if not lattice.is_tensor(t) then error(("%s: expected a lattice.Tensor, got %s"):format(fname, type(t)), 3) end
end

local function normal(t, mean, std, fname)
  return lattice.random.normal(t.shape, { loc = mean, scale = std, dtype = float_dtype(t, fname) })
end

local function uniform(t, low, high, fname)
  return lattice.random.uniform(low, high, t.shape, { dtype = float_dtype(t, fname) })
end

--- constant(value)
function M.constant(value)
  if type(value) ~= "number" then error("init.constant: value must be a number, got " .. type(value), 2) end
  return function(t)
    check_tensor(t, "init.constant")
    return lattice.full(t.shape, value, t.dtype)
  end
end

--- normal{mean = 0, std = 1}
function M.normal(opts)
  opts = check_options(opts, { mean = true, std = true }, "init.normal")
  local mean, std = opts.mean or 0, opts.std or 1
  return function(t)
    check_tensor(t, "init.normal")
    return normal(t, mean, std, "init.normal")
  end
end

--- uniform{low = 0, high = 1}
function M.uniform(opts)
  opts = check_options(opts, { low = true, high = true }, "init.uniform")
  local low, high = opts.low or 0, opts.high or 1
  return function(t)
    check_tensor(t, "init.uniform")
    return uniform(t, low, high, "init.uniform")
  end
end

--- glorot_uniform{gain = 1}: U(-a, a), a = gain sqrt(6 / (fan_in + fan_out))
function M.glorot_uniform(opts)
  opts = check_options(opts, { gain = true }, "init.glorot_uniform")
  local gain = opts.gain or 1
  return function(t)
    check_tensor(t, "init.glorot_uniform")
    local fi, fo = fans(t, "init.glorot_uniform")
    local a = gain * math.sqrt(6 / (fi + fo))
    return uniform(t, -a, a, "init.glorot_uniform")
  end
end

--- glorot_normal{gain = 1}: N(0, std^2), std = gain sqrt(2 / (fan_in + fan_out))
function M.glorot_normal(opts)
  opts = check_options(opts, { gain = true }, "init.glorot_normal")
  local gain = opts.gain or 1
  return function(t)
    check_tensor(t, "init.glorot_normal")
    local fi, fo = fans(t, "init.glorot_normal")
    return normal(t, 0, gain * math.sqrt(2 / (fi + fo)), "init.glorot_normal")
  end
end

local function fan_for(t, mode, fname)
  local fi, fo = fans(t, fname)
  if mode == "fan_in" then return fi end
  if mode == "fan_out" then return fo end
  error(("%s: mode must be 'fan_in' or 'fan_out', got %s"):format(fname, tostring(mode)), 3)
end

--- he_uniform{mode = "fan_in", gain = 1}: U(-a, a), a = gain sqrt(3 / fan)
function M.he_uniform(opts)
  opts = check_options(opts, { mode = true, gain = true }, "init.he_uniform")
  local mode, gain = opts.mode or "fan_in", opts.gain or 1
  return function(t)
    check_tensor(t, "init.he_uniform")
    local a = gain * math.sqrt(3 / fan_for(t, mode, "init.he_uniform"))
    return uniform(t, -a, a, "init.he_uniform")
  end
end

--- he_normal{mode = "fan_in", gain = 1}: N(0, std^2), std = gain / sqrt(fan)
function M.he_normal(opts)
  opts = check_options(opts, { mode = true, gain = true }, "init.he_normal")
  local mode, gain = opts.mode or "fan_in", opts.gain or 1
  return function(t)
    check_tensor(t, "init.he_normal")
    return normal(t, 0, gain / math.sqrt(fan_for(t, mode, "init.he_normal")), "init.he_normal")
  end
end

return M
