-- lattice.ops: the sparse operations, with mlx_lattice.ops's names; its
-- keyword arguments are one options table. Sizes, strides, paddings and
-- dilations are a number or a list of 3 (x, y, z). The convolutions and
-- relations are here; each other family is a file under lattice/ops/ whose
-- functions are merged in below.
local lattice = require "lattice"
local core = require "lattice.core"
local sparse = require "lattice.sparse"
local args = require "lattice.ops.args"

local check_options, triple, check_sparse = args.options, args.triple, args.sparse

local ops = {}

-- The kernel size from the options, or from the weight (C_out, Kx, Ky, Kz, C_in).
local function kernel_size(opts, w, fname)
  if not lattice.is_tensor(w) then error(("%s: weight must be a lattice.Tensor, got %s"):format(fname, type(w)), 3) end
  if w.ndim ~= 5 then
    error(("%s: weight must have shape {C_out,Kx,Ky,Kz,C_in}, got {%s}"):format(fname, table.concat(w.shape, ",")), 3)
  end
  return triple(opts.kernel_size, { w.shape[2], w.shape[3], w.shape[4] }, "kernel_size", fname)
end

local function conv(kind, fname, x, w, opts, allowed, defaults)
  opts = check_options(opts, allowed, fname)
  check_sparse(x, fname)
  local spec = {
    size = kernel_size(opts, w, fname),
    stride = triple(opts.stride, defaults.stride or 1, "stride", fname),
    padding = triple(opts.padding, 0, "padding", fname),
    dilation = triple(opts.dilation, 1, "dilation", fname),
  }
  local target = opts.coordinates
  if target ~= nil and not (sparse.is_sparse(target) or lattice.is_tensor(target)
      or tostring(target):find("^CoordinateMapKey")) then
    error(fname .. ": coordinates must be a SparseTensor, a CoordinateMapKey or an int32 coordinate tensor", 2)
  end
  return core.sparse_conv(kind, x, w, opts.bias, spec, target, fname)
end

--- conv3d(x, weight[, {kernel_size, stride = 1, padding = 0, dilation = 1, bias, coordinates}])
-- weight (C_out, Kx, Ky, Kz, C_in); the output support is floor(p / stride) of
-- the input rows, unless `coordinates` gives another.
function ops.conv3d(x, w, opts)
  return conv("conv", "conv3d", x, w, opts, { kernel_size = true, stride = true, padding = true, dilation = true,
    bias = true, coordinates = true }, {})
end

--- subm_conv3d(x, weight[, {kernel_size, dilation = 1, bias}]): the input's support, identity kept; odd sizes.
function ops.subm_conv3d(x, w, opts)
  return conv("subm", "subm_conv3d", x, w, opts, { kernel_size = true, dilation = true, bias = true }, {})
end

--- conv_transpose3d(x, weight[, {kernel_size, stride = 2, padding = 0, dilation = 1, bias, coordinates}])
-- outputs p stride + offset - padding on the finer lattice, or onto `coordinates`.
function ops.conv_transpose3d(x, w, opts)
  return conv("transposed", "conv_transpose3d", x, w, opts, { kernel_size = true, stride = true, padding = true,
    dilation = true, bias = true, coordinates = true }, { stride = 2 })
end

--- generative_conv_transpose3d(x, weight[, {kernel_size, stride = 2, bias}]): every output reached.
function ops.generative_conv_transpose3d(x, w, opts)
  return conv("generative", "generative_conv_transpose3d", x, w, opts, { kernel_size = true, stride = true,
    bias = true }, { stride = 2 })
end

--- build_kernel_relation(coords[, {kernel_size = 3, stride = 1, padding = 0, dilation = 1}]) -> Relation
-- coords: an int32 (N, 4) tensor, a SparseTensor or a CoordinateMapKey. The
-- relation's in_row, out_row, kernel_id (0-based int32 edges, by output row
-- then offset), out_coords, counts (per offset) and kernel_offsets.
function ops.build_kernel_relation(coords, opts)
  opts = check_options(opts, { kernel_size = true, stride = true, padding = true, dilation = true },
    "build_kernel_relation")
  if lattice.is_tensor(coords) or type(coords) == "table" then
    coords = sparse.SparseTensor(coords, lattice.zeros({ type(coords) == "table" and #coords or coords.shape[1], 0 }))
  end
  local spec = {
    size = triple(opts.kernel_size, 3, "kernel_size", "build_kernel_relation"),
    stride = triple(opts.stride, 1, "stride", "build_kernel_relation"),
    padding = triple(opts.padding, 0, "padding", "build_kernel_relation"),
    dilation = triple(opts.dilation, 1, "dilation", "build_kernel_relation"),
  }
  return core.kernel_relation("conv", coords, spec)
end

for _, family in ipairs { "pool", "feature", "algebra", "rows" } do
  for name, fn in pairs(require("lattice.ops." .. family)) do
    assert(ops[name] == nil, name)
    ops[name] = fn
  end
end

return ops
