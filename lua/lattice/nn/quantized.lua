-- The quantized layers (MLX's mlx.nn QuantizedLinear, QuantizedEmbedding and
-- QQLinear): constructors that make the fields table (a QuantizedWeight's
-- parts under MLX's names weight, scales, biases) for the C types of
-- lattice.core.nn, from_linear / from_embedding, to_quantized on Linear and
-- Embedding, and dequantized() back to the float layer.
--
-- The quantized parts are buffers: frozen when the layer is made and through
-- any unfreeze, since no gradient flows to them (the input's does, tile by
-- tile). A bias starts frozen too, as in MLX; unfreeze makes it trainable.
local lattice = require "lattice"
local core = require "lattice.core"
local module = require "lattice.nn.module"
local layers = require "lattice.nn.layers"

local cnn = core.nn
local check_options = module.check_options

local M = {}

-- MLX's defaults per mode: {group_size, bits}.
local DEFAULTS = { affine = { 64, 4 }, mxfp8 = { 32, 8 }, nvfp4 = { 16, 4 } }
local PARTS = { "weight", "scales", "biases" }

local function check_mode(mode, fname)
  if DEFAULTS[mode] == nil then
    error(("%s: mode must be 'affine', 'mxfp8' or 'nvfp4', got %s"):format(fname, tostring(mode)), 4)
  end
end

local function check_bool(v, what, fname)
  if type(v) ~= "boolean" then error(("%s: %s must be a boolean, got %s"):format(fname, what, type(v)), 4) end
end

-- group_size, bits and mode from opts, MLX's defaults for the mode filling in.
local function config(opts, default_mode, fname)
  local mode = opts.mode or default_mode
  check_mode(mode, fname)
  local gs, bits = opts.group_size or DEFAULTS[mode][1], opts.bits or DEFAULTS[mode][2]
  return { group_size = gs, bits = bits, mode = mode }
end

-- The fields of a quantized layer: the parts of qw, its configuration, and
-- every parameter frozen (the parts for good).
local function quantized_fields(qw, order)
  local parts = { weight = true, scales = true, biases = true }
  local f = { training = true, _order = order, _frozen = setmetatable({ bias = true }, { __index = parts }) }
  for _, k in ipairs(PARTS) do f[k] = qw[k] end
  f.bits, f.group_size, f.mode = qw.bits, qw.group_size, qw.mode
  return f
end

-- A QuantizedWeight of w; errors name fname (and, like the core's, no position).
local function quantize(w, cfg, fname)
  local ok, qw = pcall(lattice.quantize_weight, w, cfg)
  if not ok then error((tostring(qw):gsub("^quantize_weight:", fname .. ":", 1)), 0) end
  return qw
end

-- A callable table: T(...) constructs, T.from_x(...) converts.
local function constructor(new, extras)
  extras.new = new
  return setmetatable(extras, { __call = function(_, ...) return new(...) end })
end

local function set_extra_repr(name, fn) cnn.methods[name]._extra_repr = fn end

local function config_repr(m) return ("group_size=%d, bits=%d, mode=%s"):format(m.group_size, m.bits, m.mode) end

for _, name in ipairs({ "QuantizedLinear", "QQLinear", "QuantizedEmbedding" }) do
  cnn.methods[name]._buffers = PARTS
end

-- ---- QuantizedLinear ----

local function linear_dims(m)
  local s = m:quantized_weight().shape
  return s[2], s[1]
end

local function new_qlinear(qw, bias, make)
  local f = quantized_fields(qw, { "weight", "scales", "biases", "bias" })
  f.input_dims, f.output_dims = qw.shape[2], qw.shape[1]
  f.bias = bias
  return make(f)
end

local function linear_bias(linear) return linear.bias end

local function check_dims(v, what, fname)
  if math.type(v) ~= "integer" or v < 1 then
    error(("%s: %s must be a positive integer, got %s"):format(fname, what, tostring(v)), 4)
  end
end

-- Uniform in +-1/sqrt(input_dims), as MLX (and nn.Linear) initialise.
local function initial_weight(input_dims, output_dims)
  local scale = math.sqrt(1 / input_dims)
  return lattice.random.uniform(-scale, scale, { output_dims, input_dims })
end

local function check_linear(linear, fname)
  if module.type_name(linear) ~= "Linear" then
    error(("%s: expected a Linear, got %s"):format(fname, module.is_module(linear) and module.type_name(linear)
      or type(linear)), 3)
  end
end

local LINEAR_OPTIONS = { bias = true, group_size = true, bits = true, mode = true }
local CONFIG_OPTIONS = { group_size = true, bits = true, mode = true }

-- QuantizedLinear and QQLinear alike: the constructor of the C type `name`
-- with from_linear, the mode and bias they default to, and check(cfg,
-- fname) for the modes they refuse.
local function linear_layer(name, default_mode, default_bias, check)
  local make = cnn[name]
  set_extra_repr(name, function(m)
    local i, o = linear_dims(m)
    return ("input_dims=%d, output_dims=%d, bias=%s, %s"):format(i, o, tostring(m.bias ~= nil), config_repr(m))
  end)
  local from = name .. ".from_linear"
  return constructor(function(input_dims, output_dims, opts)
    opts = check_options(opts, LINEAR_OPTIONS, name)
    check_dims(input_dims, "input_dims", name)
    check_dims(output_dims, "output_dims", name)
    local bias = opts.bias
    if bias == nil then bias = default_bias end
    check_bool(bias, "bias", name)
    local cfg = config(opts, default_mode, name)
    check(cfg, name)
    local qw = quantize(initial_weight(input_dims, output_dims), cfg, name)
    return new_qlinear(qw, bias and lattice.zeros({ output_dims }) or nil, make)
  end, {
    -- from_linear(linear[, {group_size, bits, mode}]): the bias is shared.
    from_linear = function(linear, opts)
      check_linear(linear, from)
      opts = check_options(opts, CONFIG_OPTIONS, from)
      local cfg = config(opts, default_mode, from)
      check(cfg, from)
      return new_qlinear(quantize(linear.weight, cfg, from), linear_bias(linear), make)
    end,
  })
end

--- QuantizedLinear(input_dims, output_dims[, {bias = true, group_size, bits, mode = "affine"}]),
-- QuantizedLinear.from_linear(linear[, {group_size, bits, mode = "affine"}])
M.QuantizedLinear = linear_layer("QuantizedLinear", "affine", true, function() end)

--- QQLinear(input_dims, output_dims[, {bias = false, group_size, bits, mode = "nvfp4"}]),
-- QQLinear.from_linear: the input quantized too, in the weight's mode (mxfp8 or nvfp4).
M.QQLinear = linear_layer("QQLinear", "nvfp4", false, function(cfg, fname)
  if cfg.mode == "affine" then
    error(("%s: quantized activations are only supported for modes 'mxfp8' and 'nvfp4', got 'affine'"):format(fname),
      4)
  end
end)

-- ---- QuantizedEmbedding ----

local function new_qembedding(qw)
  local f = quantized_fields(qw, { "weight", "scales", "biases" })
  f.num_embeddings, f.dims = qw.shape[1], qw.shape[2]
  return cnn.QuantizedEmbedding(f)
end

--- QuantizedEmbedding(num_embeddings, dims[, {group_size, bits, mode = "affine"}])
M.QuantizedEmbedding = constructor(function(num_embeddings, dims, opts)
  opts = check_options(opts, CONFIG_OPTIONS, "QuantizedEmbedding")
  check_dims(num_embeddings, "num_embeddings", "QuantizedEmbedding")
  check_dims(dims, "dims", "QuantizedEmbedding")
  local w = lattice.random.normal({ num_embeddings, dims }, { scale = math.sqrt(1 / dims) })
  return new_qembedding(quantize(w, config(opts, "affine", "QuantizedEmbedding"), "QuantizedEmbedding"))
end, {
  --- QuantizedEmbedding.from_embedding(embedding[, {group_size, bits, mode = "affine"}])
  from_embedding = function(embedding, opts)
    if module.type_name(embedding) ~= "Embedding" then
      error(("QuantizedEmbedding.from_embedding: expected an Embedding, got %s"):format(
        module.is_module(embedding) and module.type_name(embedding) or type(embedding)), 2)
    end
    opts = check_options(opts, CONFIG_OPTIONS, "QuantizedEmbedding.from_embedding")
    return new_qembedding(quantize(embedding.weight, config(opts, "affine", "QuantizedEmbedding.from_embedding"),
      "QuantizedEmbedding.from_embedding"))
  end,
})
set_extra_repr("QuantizedEmbedding", function(m)
  return ("%d, %d, %s"):format(m.num_embeddings, m.dims, config_repr(m))
end)

-- ---- to_quantized and back ----

local TO_QUANTIZED = { group_size = true, bits = true, mode = true, quantize_input = true }

--- linear:to_quantized{group_size, bits, mode = "affine", quantize_input = false}:
-- a QuantizedLinear, or with quantize_input a QQLinear (modes mxfp8, nvfp4).
cnn.methods.Linear.to_quantized = function(self, opts)
  opts = check_options(opts, TO_QUANTIZED, "to_quantized")
  local qi = opts.quantize_input or false
  check_bool(qi, "quantize_input", "to_quantized")
  local cfg = { group_size = opts.group_size, bits = opts.bits, mode = opts.mode or "affine" }
  if not qi then return M.QuantizedLinear.from_linear(self, cfg) end
  check_mode(cfg.mode, "to_quantized")
  if cfg.mode == "affine" then
    error("to_quantized: quantized activations are only supported for modes 'mxfp8' and 'nvfp4', got 'affine'", 2)
  end
  return M.QQLinear.from_linear(self, cfg)
end

--- embedding:to_quantized{group_size, bits, mode = "affine"}: a QuantizedEmbedding.
-- quantize_input = true is refused (an embedding has no input to quantize).
cnn.methods.Embedding.to_quantized = function(self, opts)
  opts = check_options(opts, TO_QUANTIZED, "to_quantized")
  if opts.quantize_input then error("to_quantized: an Embedding takes no quantize_input", 2) end
  return M.QuantizedEmbedding.from_embedding(self, { group_size = opts.group_size, bits = opts.bits, mode = opts.mode })
end

-- The float layer holding the dequantized weight (the bias shared).
local function to_linear(self)
  local w = self:quantized_weight():dequantize()
  local lin = layers.Linear(w.shape[2], w.shape[1], { bias = self.bias ~= nil })
  local f = module.fields(lin)
  f.weight, f.bias = w, self.bias -- rawset through the fields: the dtype may differ from float32
  return lin
end

--- ql:dequantized() -> the Linear it stands for; qe:dequantized() -> the Embedding.
cnn.methods.QuantizedLinear.dequantized = to_linear
cnn.methods.QQLinear.dequantized = to_linear
cnn.methods.QuantizedEmbedding.dequantized = function(self)
  local w = self:quantized_weight():dequantize()
  local emb = layers.Embedding(w.shape[1], w.shape[2])
  module.fields(emb).weight = w
  return emb
end

return M
