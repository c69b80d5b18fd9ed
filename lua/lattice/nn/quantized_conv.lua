-- The quantized sparse convolutions (mlx_lattice.nn.quantized_conv):
-- QuantizedConv3d, QuantizedSubmConv3d, QuantizedConvTranspose3d and
-- QuantizedGenerativeConvTranspose3d, each with from_conv(source[, {group_size,
-- bits, mode}]) and dequantized() back to its float module. The types are in
-- core/lua/nn_sparse.c; their forward is the op of lattice.ops with the
-- module's QuantizedWeight, so output coordinates, the coordinate key and
-- batch counts are those of the float module with the same options.
--
-- The weight (C_out, Kx, Ky, Kz, C_in) is quantized as lattice.quantize_weight
-- quantizes it: per (output channel, kernel offset), in groups of group_size
-- input channels (docs/quantization.md draws it). Defaults as the seed's:
-- bits 4, group_size 64 when C_in >= 64 and 32 otherwise, mode "affine"; C_in
-- must be a multiple of group_size (the seed pads the storage instead). The
-- parts are buffers, frozen for good; the bias starts frozen, as the seed
-- freezes the whole module, and unfreeze makes it trainable.
local lattice = require "lattice"
local core = require "lattice.core"
local module = require "lattice.nn.module"
local sparse_layers = require "lattice.nn.sparse_layers"

local check_options = module.check_options
local cnn = core.nn

local M = {}

local PARTS = { "weight", "scales", "biases" }
local CONFIG = { group_size = true, bits = true, mode = true }

-- {group_size, bits, mode} from opts for c_in input channels.
local function config(opts, c_in, fname)
  local gs = opts.group_size
  if gs == nil then gs = c_in >= 64 and 64 or 32 end
  local cfg = { group_size = gs, bits = opts.bits or 4, mode = opts.mode or "affine" }
  if math.type(gs) == "integer" and gs > 0 and c_in % gs ~= 0 then
    error(("%s: in_channels %d is not divisible by group_size %d"):format(fname, c_in, gs), 4)
  end
  return cfg
end

local function quantize(w, cfg, fname)
  local ok, qw = pcall(lattice.quantize_weight, w, cfg)
  if not ok then error((tostring(qw):gsub("^quantize_weight:", fname .. ":", 1)), 4) end
  return qw
end

local function copy3(t) return { t[1], t[2], t[3] } end

-- The module `name` of the float conv `source` with its weight quantized.
local function from_source(name, source, cfg, fname)
  local qw = quantize(source.weight, cfg, fname)
  local parts = { weight = true, scales = true, biases = true }
  local f = { training = true, _order = { "weight", "scales", "biases", "bias" },
    _frozen = setmetatable({ bias = true }, { __index = parts }) }
  for _, k in ipairs(PARTS) do f[k] = qw[k] end
  f.bits, f.group_size, f.mode = qw.bits, qw.group_size, qw.mode
  f.in_channels, f.out_channels = source.in_channels, source.out_channels
  for _, k in ipairs({ "kernel_size", "stride", "padding", "dilation" }) do f[k] = copy3(source[k]) end
  f.bias = source.bias
  return cnn.sparse_conv(name, f)
end

local function type_of(v) return module.is_module(v) and module.type_name(v) or type(v) end

-- name: the quantized type; float: its float type; allowed: the float
-- constructor's options (the spec's options its module keeps).
local function quantized_conv(name, float, allowed)
  local ctor_options = { group_size = true, bits = true, mode = true }
  for k in pairs(allowed) do ctor_options[k] = true end
  local from = name .. ".from_conv"
  local extras = {
    --- from_conv(source[, {group_size, bits = 4, mode = "affine"}]): the bias is shared.
    from_conv = function(source, opts)
      if type_of(source) ~= float then
        error(("%s: expected a %s, got %s"):format(from, float, type_of(source)), 2)
      end
      opts = check_options(opts, CONFIG, from)
      return from_source(name, source, config(opts, source.in_channels, from), from)
    end,
  }
  --- Name(in_channels, out_channels[, {the float module's options, group_size, bits, mode}])
  M[name] = setmetatable(extras, { __call = function(_, in_channels, out_channels, opts)
    opts = check_options(opts, ctor_options, name)
    local fopts = {}
    for k in pairs(allowed) do fopts[k] = opts[k] end
    local ok, source = pcall(sparse_layers[float], in_channels, out_channels, fopts)
    if not ok then error((tostring(source):gsub("^[^:]*:%d+: ", ""):gsub("^" .. float .. ":", name .. ":", 1)), 2) end
    return from_source(name, source, config(opts, in_channels, name), name)
  end })
  local methods = cnn.methods[name]
  methods._buffers = PARTS
  local float_repr = cnn.methods[float]._extra_repr
  methods._extra_repr = function(m)
    return ("%s, group_size=%d, bits=%d, mode=%s"):format(float_repr(m), m.group_size, m.bits, m.mode)
  end
  --- m:dequantized(): the float module, its weight dequantized and the bias shared.
  methods.dequantized = function(self)
    local fopts = { bias = self.bias ~= nil }
    for k in pairs(allowed) do
      if k ~= "bias" then fopts[k] = copy3(self[k]) end
    end
    local conv = sparse_layers[float](self.in_channels, self.out_channels, fopts)
    local f = module.fields(conv)
    f.weight, f.bias = self:quantized_weight():dequantize(), self.bias -- rawset: the dtype may differ
    return conv
  end
end

quantized_conv("QuantizedConv3d", "Conv3d", { kernel_size = true, stride = true, padding = true, dilation = true,
  bias = true })
quantized_conv("QuantizedSubmConv3d", "SubmConv3d", { kernel_size = true, dilation = true, bias = true })
quantized_conv("QuantizedConvTranspose3d", "ConvTranspose3d", { kernel_size = true, stride = true, padding = true,
  dilation = true, bias = true })
quantized_conv("QuantizedGenerativeConvTranspose3d", "GenerativeConvTranspose3d", { kernel_size = true,
  stride = true, bias = true })

return M
