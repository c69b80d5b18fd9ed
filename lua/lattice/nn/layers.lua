-- Constructors of the built-in layers: each makes the fields table (initial
-- weights as MLX makes them, configuration for Lua to read) and hands it to
-- the C type of lattice.core.nn, whose forward is one C call. The
-- _extra_repr methods give tostring its shape summary.
local lattice = require "lattice"
local core = require "lattice.core"
local module = require "lattice.nn.module"

local cnn = core.nn
local check_options = module.check_options

local M = {}

local function check_dims(v, what, fname)
  if math.type(v) ~= "integer" or v < 1 then
    error(("%s: %s must be a positive integer, got %s"):format(fname, what, tostring(v)), 3)
  end
end

local function check_bool(v, what, fname)
  if type(v) ~= "boolean" then error(("%s: %s must be a boolean, got %s"):format(fname, what, type(v)), 3) end
end

-- level: where the error points, 3 (the constructor's caller) unless given.
local function check_number(v, what, fname, level)
  if type(v) ~= "number" then error(("%s: %s must be a number, got %s"):format(fname, what, type(v)), level or 3) end
end

-- eps of the norms: a number >= 0 (not NaN).
local function check_eps(v, fname)
  check_number(v, "eps", fname, 4)
  if v ~= v or v < 0 then error(("%s: eps must be non-negative, got %g"):format(fname, v), 3) end
end

-- A number in [lo, hi] (or [lo, hi) when open), written as the message says.
local function check_range(v, what, fname, lo, hi, open)
  check_number(v, what, fname, 4)
  if not (v >= lo and (v < hi or (not open and v == hi))) then
    error(("%s: %s must be in [%g, %g%s, got %g"):format(fname, what, lo, hi, open and ")" or "]", v), 3)
  end
end

-- The fields every built-in starts with; `order` lists its parameters.
local function base_fields(order)
  return { training = true, _order = order, _frozen = {} }
end

local function set_extra_repr(name, fn) cnn.methods[name]._extra_repr = fn end
local function b(v) return tostring(v) end

--- Linear(input_dims, output_dims[, {bias = true}]): y = x W^T + b, W (output_dims, input_dims),
-- both initialised uniformly in [-1/sqrt(input_dims), 1/sqrt(input_dims)].
function M.Linear(input_dims, output_dims, opts)
  opts = check_options(opts, { bias = true }, "Linear")
  check_dims(input_dims, "input_dims", "Linear")
  check_dims(output_dims, "output_dims", "Linear")
  local bias = opts.bias
  if bias == nil then bias = true end
  check_bool(bias, "bias", "Linear")
  local scale = math.sqrt(1 / input_dims)
  local f = base_fields({ "weight", "bias" })
  f.input_dims, f.output_dims = input_dims, output_dims
  f.weight = lattice.random.uniform(-scale, scale, { output_dims, input_dims })
  if bias then f.bias = lattice.random.uniform(-scale, scale, { output_dims }) end
  return cnn.Linear(f)
end
set_extra_repr("Linear", function(m)
  return ("input_dims=%d, output_dims=%d, bias=%s"):format(m.weight.shape[2], m.weight.shape[1], b(m.bias ~= nil))
end)

--- Embedding(num_embeddings, dims): a lookup table initialised N(0, 1/dims).
-- It takes no options (PyTorch's padding_idx and max_norm are not here): a
-- table of them is an error rather than silently ignored.
function M.Embedding(num_embeddings, dims, opts)
  check_options(opts, {}, "Embedding")
  check_dims(num_embeddings, "num_embeddings", "Embedding")
  check_dims(dims, "dims", "Embedding")
  local f = base_fields({ "weight" })
  f.num_embeddings, f.dims = num_embeddings, dims
  f.weight = lattice.random.normal({ num_embeddings, dims }, { scale = math.sqrt(1 / dims) })
  return cnn.Embedding(f)
end
set_extra_repr("Embedding", function(m) return ("%d, %d"):format(m.weight.shape[1], m.weight.shape[2]) end)

--- LayerNorm(dims[, {eps = 1e-5, affine = true, bias = true}])
function M.LayerNorm(dims, opts)
  opts = check_options(opts, { eps = true, affine = true, bias = true }, "LayerNorm")
  check_dims(dims, "dims", "LayerNorm")
  local eps, affine, bias = opts.eps or 1e-5, opts.affine, opts.bias
  if affine == nil then affine = true end
  if bias == nil then bias = true end
  check_eps(eps, "LayerNorm")
  check_bool(affine, "affine", "LayerNorm")
  check_bool(bias, "bias", "LayerNorm")
  local f = base_fields({ "weight", "bias" })
  f.dims, f.eps, f.affine = dims, eps, affine
  if affine then
    f.weight = lattice.ones({ dims })
    if bias then f.bias = lattice.zeros({ dims }) end
  end
  return cnn.LayerNorm(f)
end
set_extra_repr("LayerNorm", function(m) return ("%d, eps=%g, affine=%s"):format(m.dims, m.eps, b(m.affine)) end)

--- RMSNorm(dims[, {eps = 1e-5}])
function M.RMSNorm(dims, opts)
  opts = check_options(opts, { eps = true }, "RMSNorm")
  check_dims(dims, "dims", "RMSNorm")
  local eps = opts.eps or 1e-5
  check_eps(eps, "RMSNorm")
  local f = base_fields({ "weight" })
  f.dims, f.eps = dims, eps
  f.weight = lattice.ones({ dims })
  return cnn.RMSNorm(f)
end
set_extra_repr("RMSNorm", function(m) return ("%d, eps=%g"):format(m.dims, m.eps) end)

-- The running statistics stay frozen whatever unfreeze does (on the layer or
-- on a model holding it): an optimizer must never move them (weight decay
-- would shrink running_var). The protocol reads _frozen[k] with a plain index
-- and unfreeze clears keys to nil, so these defaults show through.
local ALWAYS_FROZEN = { __index = { running_mean = true, running_var = true } }

--- BatchNorm(num_features[, {eps = 1e-5, momentum = 0.1, affine = true, track_running_stats = true}])
-- over the last (channel) axis. The running statistics are parameters that
-- are frozen: saved with the weights, never trained.
function M.BatchNorm(num_features, opts)
  opts = check_options(opts, { eps = true, momentum = true, affine = true, track_running_stats = true }, "BatchNorm")
  check_dims(num_features, "num_features", "BatchNorm")
  local eps, momentum, affine, track = opts.eps or 1e-5, opts.momentum or 0.1, opts.affine, opts.track_running_stats
  if affine == nil then affine = true end
  if track == nil then track = true end
  check_eps(eps, "BatchNorm")
  check_range(momentum, "momentum", "BatchNorm", 0, 1)
  check_bool(affine, "affine", "BatchNorm")
  check_bool(track, "track_running_stats", "BatchNorm")
  local f = base_fields({ "weight", "bias", "running_mean", "running_var" })
  f.num_features, f.eps, f.momentum, f.affine, f.track_running_stats = num_features, eps, momentum, affine, track
  if affine then
    f.weight, f.bias = lattice.ones({ num_features }), lattice.zeros({ num_features })
  end
  if track then
    f.running_mean, f.running_var = lattice.zeros({ num_features }), lattice.ones({ num_features })
    f._frozen = setmetatable({}, ALWAYS_FROZEN)
  end
  return cnn.BatchNorm(f)
end
set_extra_repr("BatchNorm", function(m)
  return ("%d, eps=%g, momentum=%g, affine=%s, track_running_stats=%s"):format(m.num_features, m.eps, m.momentum,
    b(m.affine), b(m.track_running_stats))
end)

--- Dropout[{p = 0.5}]: zeroes elements with probability p in training mode
-- (the rest scaled by 1/(1-p)); the identity in evaluation mode.
function M.Dropout(opts)
  opts = check_options(opts, { p = true }, "Dropout")
  local f = base_fields({})
  f.p = opts.p or 0.5
  check_range(f.p, "p", "Dropout", 0, 1, true)
  return cnn.Dropout(f)
end
set_extra_repr("Dropout", function(m) return ("p=%g"):format(m.p) end)

function M.Identity() return cnn.Identity(base_fields({})) end

-- ---- activations ----

-- check(f) validates the filled-in fields, so errors name the caller's line.
local function activation(name, defaults, repr, check)
  M[name] = function(opts)
    local allowed = {}
    for k in pairs(defaults) do allowed[k] = true end
    opts = check_options(opts, allowed, name)
    local f = base_fields({})
    for k, v in pairs(defaults) do
      if opts[k] == nil then f[k] = v else f[k] = opts[k] end
    end
    if check then check(f) end
    return cnn.activation(name, f)
  end
  if repr then set_extra_repr(name, repr) end
end

-- GELU's approximations: MLX's "precise" is PyTorch's "tanh" (MLX takes both).
local GELU_APPROX = { none = true, tanh = true, precise = true }

activation("ReLU", {})
activation("LeakyReLU", { negative_slope = 0.01 }, function(m) return ("negative_slope=%g"):format(m.negative_slope) end,
  function(f) check_number(f.negative_slope, "negative_slope", "LeakyReLU", 4) end)
activation("GELU", { approx = "none" }, function(m) return ("approx=%q"):format(m.approx) end, function(f)
  if not GELU_APPROX[f.approx] then
    error(("GELU: approx must be 'none', 'tanh' or 'precise', got %s"):format(tostring(f.approx)), 3)
  end
end)
activation("SiLU", {})
activation("Sigmoid", {})
activation("Tanh", {})
activation("Softplus", {})

return M
