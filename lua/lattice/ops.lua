-- lattice.ops: the sparse operations, with mlx_lattice.ops's names; its
-- keyword arguments are one options table. Sizes, strides, paddings and
-- dilations are a number or a list of 3 (x, y, z). The convolutions and
-- relations are here; each other family is a file under lattice/ops/ whose
-- functions are merged in below. Errors name the function called and point at
-- the caller's line (lattice/ops/args.lua).
local lattice = require "lattice"
local core = require "lattice.core"
local sparse = require "lattice.sparse"
local args = require "lattice.ops.args"

local api, call, check_options, triple, check_sparse = args.api, args.call, args.options, args.triple, args.sparse
local type_name = args.type_name

local ops = {}

-- The kernel size from the options, or from the weight (C_out, Kx, Ky, Kz,
-- C_in): a tensor, or a QuantizedWeight of that logical shape.
local function kernel_size(opts, w, fname)
  local quantized = lattice.is_quantized_weight(w)
  if not (quantized or lattice.is_tensor(w)) then
    error(("%s: weight must be a lattice.Tensor or a QuantizedWeight, got %s"):format(fname, type_name(w)), 0)
  end
  local shape = w.shape
  if #shape ~= 5 then
    error(("%s: %sweight must have shape {C_out,Kx,Ky,Kz,C_in}, got {%s}"):format(fname,
      quantized and "quantized " or "", table.concat(shape, ",")), 0)
  end
  return triple(opts.kernel_size, { shape[2], shape[3], shape[4] }, "kernel_size", fname)
end

local function conv(kind, fname, allowed, defaults)
  return api(function(x, w, opts)
    opts = check_options(opts, allowed, fname)
    check_sparse(x, fname)
    local spec = {
      size = kernel_size(opts, w, fname),
      stride = triple(opts.stride, defaults.stride or 1, "stride", fname),
      padding = triple(opts.padding, 0, "padding", fname),
      dilation = triple(opts.dilation, 1, "dilation", fname),
    }
    if opts.bias ~= nil and not lattice.is_tensor(opts.bias) then
      error(("%s: bias must be a lattice.Tensor, got %s"):format(fname, type_name(opts.bias)), 0)
    end
    -- coordinates: checked in C, which nn's modules share
    return call(core.sparse_conv, kind, x, w, opts.bias, spec, opts.coordinates, fname)
  end)
end

--- conv3d(x, weight[, {kernel_size, stride = 1, padding = 0, dilation = 1, bias, coordinates}])
-- weight (C_out, Kx, Ky, Kz, C_in), a tensor or a QuantizedWeight of that
-- shape (lattice.quantize_weight of one; every convolution takes either); the output support is floor(p / stride) of
-- the input rows, unless `coordinates` gives another.
ops.conv3d = conv("conv", "conv3d", { kernel_size = true, stride = true, padding = true, dilation = true, bias = true,
  coordinates = true }, {})

--- subm_conv3d(x, weight[, {kernel_size, dilation = 1, bias}]): the input's support, identity kept; odd sizes.
ops.subm_conv3d = conv("subm", "subm_conv3d", { kernel_size = true, dilation = true, bias = true }, {})

--- conv_transpose3d(x, weight[, {kernel_size, stride = 2, padding = 0, dilation = 1, bias, coordinates}])
-- outputs p stride + offset - padding on the finer lattice, or onto `coordinates`.
ops.conv_transpose3d = conv("transposed", "conv_transpose3d", { kernel_size = true, stride = true, padding = true,
  dilation = true, bias = true, coordinates = true }, { stride = 2 })

--- generative_conv_transpose3d(x, weight[, {kernel_size, stride = 2, bias}]): every output reached.
ops.generative_conv_transpose3d = conv("generative", "generative_conv_transpose3d", { kernel_size = true,
  stride = true, bias = true }, { stride = 2 })

--- build_kernel_relation(coords[, {kernel_size = 3, stride = 1, padding = 0, dilation = 1}]) -> Relation
-- coords: an (N, 4) integer tensor or table, a SparseTensor or a
-- CoordinateMapKey. The relation's in_row, out_row, kernel_id (0-based int32
-- edges, by output row then offset), out_coords, counts (per offset) and
-- kernel_offsets.
ops.build_kernel_relation = api(function(coords, opts)
  local fname = "build_kernel_relation"
  opts = check_options(opts, { kernel_size = true, stride = true, padding = true, dilation = true }, fname)
  if type(coords) == "table" or lattice.is_tensor(coords) then coords = sparse.int32_coords(coords, fname) end
  local spec = {
    size = triple(opts.kernel_size, 3, "kernel_size", fname),
    stride = triple(opts.stride, 1, "stride", fname),
    padding = triple(opts.padding, 0, "padding", fname),
    dilation = triple(opts.dilation, 1, "dilation", fname),
  }
  return call(core.kernel_relation, "conv", coords, spec)
end)

for _, family in ipairs { "pool", "feature", "algebra", "rows", "voxel", "coords", "neighbors" } do
  for name, fn in pairs(require("lattice.ops." .. family)) do
    assert(ops[name] == nil, name)
    ops[name] = fn
  end
end

return ops
