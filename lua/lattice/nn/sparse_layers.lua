-- The sparse convolution modules: Conv3d, SubmConv3d, ConvTranspose3d,
-- GenerativeConvTranspose3d, with mlx_lattice.nn's options and
-- initialisation (weight (C_out, Kx, Ky, Kz, C_in) uniform in
-- ±sqrt(1 / (C_in · kernel volume)), bias zeros). The types are in
-- core/lua/nn_sparse.c; their forward is the op of lattice.ops.
local lattice = require "lattice"
local core = require "lattice.core"
local module = require "lattice.nn.module"
local args = require "lattice.ops.args"

local check_options = module.check_options
local cnn = core.nn

local M = {}

local function triple(v, default, what, fname)
  if v == nil then v = default end
  if math.type(v) == "integer" then return { v, v, v } end
  if type(v) == "table" and #v == 3 and math.type(v[1]) == "integer" and math.type(v[2]) == "integer"
    and math.type(v[3]) == "integer" then
    return { v[1], v[2], v[3] }
  end
  error(("%s: %s must be an integer or a list of 3 integers, got %s"):format(fname, what, args.show(v)), 3)
end

-- The ranges the relations take (core/sparse/relation.c checks them again at
-- the forward): checked here, before the weight is made from kernel_size and
-- before the values become C ints, which would wrap one past int32.
local KERNEL_MAX = 7
local INT32_MAX = 2147483647

local function check_spec(f, fname, odd)
  local function fail(fmt, ...) error(("%s: " .. fmt):format(fname, ...), 4) end
  for _, what in ipairs({ "kernel_size", "stride", "padding", "dilation" }) do
    for a = 1, 3 do
      local v = f[what][a]
      if v < -INT32_MAX - 1 or v > INT32_MAX then fail("%s must fit in int32, got %d", what, v) end
    end
  end
  for a = 1, 3 do
    local k, s, p, d = f.kernel_size[a], f.stride[a], f.padding[a], f.dilation[a]
    if k < 1 or k > KERNEL_MAX then fail("kernel_size must be in 1..%d, got %d", KERNEL_MAX, k) end
    if odd and k % 2 == 0 then fail("a submanifold kernel_size must be odd, got %d", k) end
    if s < 1 then fail("stride must be positive, got %d", s) end
    if p < 0 then fail("padding must be non-negative, got %d", p) end
    if d < 1 then fail("dilation must be positive, got %d", d) end
  end
end

local function check_channels(v, what, fname)
  if math.type(v) ~= "integer" or v < 1 then
    error(("%s: %s must be a positive integer, got %s"):format(fname, what, tostring(v)), 3)
  end
end

-- name: the type; allowed: its options; defaults: kernel_size, stride.
local function conv_module(name, allowed, defaults)
  M[name] = function(in_channels, out_channels, opts)
    opts = check_options(opts, allowed, name)
    check_channels(in_channels, "in_channels", name)
    check_channels(out_channels, "out_channels", name)
    local bias = module.bool_option(opts, "bias", true, name)
    local f = { training = true, _order = { "weight", "bias" }, _frozen = {} }
    f.in_channels, f.out_channels = in_channels, out_channels
    f.kernel_size = triple(opts.kernel_size, defaults.kernel_size, "kernel_size", name)
    f.stride = triple(opts.stride, defaults.stride, "stride", name)
    f.padding = triple(opts.padding, 0, "padding", name)
    f.dilation = triple(opts.dilation, 1, "dilation", name)
    check_spec(f, name, name == "SubmConv3d")
    local k = f.kernel_size
    local scale = math.sqrt(1 / (in_channels * k[1] * k[2] * k[3]))
    f.weight = lattice.random.uniform(-scale, scale, { out_channels, k[1], k[2], k[3], in_channels })
    if bias then f.bias = lattice.zeros({ out_channels }) end
    return cnn.sparse_conv(name, f)
  end
  cnn.methods[name]._extra_repr = function(m)
    local function t(v) return "(" .. table.concat(v, ", ") .. ")" end
    return ("%d, %d, kernel_size=%s, stride=%s, padding=%s, dilation=%s, bias=%s"):format(m.in_channels,
      m.out_channels, t(m.kernel_size), t(m.stride), t(m.padding), t(m.dilation), tostring(m.bias ~= nil))
  end
end

--- Conv3d(in, out[, {kernel_size = 3, stride = 1, padding = 0, dilation = 1, bias = true}]); m(x[, coordinates])
conv_module("Conv3d", { kernel_size = true, stride = true, padding = true, dilation = true, bias = true },
  { kernel_size = 3, stride = 1 })
--- SubmConv3d(in, out[, {kernel_size = 3, dilation = 1, bias = true}]): the input's support.
conv_module("SubmConv3d", { kernel_size = true, dilation = true, bias = true }, { kernel_size = 3, stride = 1 })
--- ConvTranspose3d(in, out[, {kernel_size = 2, stride = 2, padding = 0, dilation = 1, bias = true}]); m(x[, coordinates])
conv_module("ConvTranspose3d", { kernel_size = true, stride = true, padding = true, dilation = true, bias = true },
  { kernel_size = 2, stride = 2 })
--- GenerativeConvTranspose3d(in, out[, {kernel_size = 2, stride = 2, bias = true}])
conv_module("GenerativeConvTranspose3d", { kernel_size = true, stride = true, bias = true },
  { kernel_size = 2, stride = 2 })

return M
