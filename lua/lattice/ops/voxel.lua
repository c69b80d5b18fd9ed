-- Points and voxels, as mlx_lattice.ops.quantization: quantizing points onto
-- a voxel lattice (sparse_quantize, unique_coords' point form), reducing point
-- features per voxel (voxelize) and sampling voxel features at points
-- (devoxelize). A point p of batch b lies in voxel (b, floor(u)) with
-- u = (p − origin) / voxel_size computed in float32; voxels are listed in the
-- order first seen. The C side is core/sparse/quantize.c, voxelize.c and
-- devoxelize.c. Errors point at the caller's line (lattice/ops/args.lua).
local lattice = require "lattice"
local core = require "lattice.core"
local args = require "lattice.ops.args"

local api, call, type_name = args.api, args.call, args.type_name
local csparse = core.sparse
local M = {}

-- A number or a list of 3 numbers, as a list of 3 (the C core checks ranges).
local function float_triple(v, default, what, fname)
  if v == nil then v = default end
  local t = type(v) == "number" and { v, v, v } or v
  local ok = type(t) == "table" and #t == 3
  for a = 1, 3 do ok = ok and type(t[a]) == "number" end
  if not ok then error(("%s: %s must be a number or a list of 3 numbers, got %s"):format(fname, what, args.show(v)), 0) end
  for a = 1, 3 do -- the C core sees float32: past its range a finite value would read as inf (or a size as 0)
    local x, f = t[a], string.unpack("f", string.pack("f", t[a]))
    if math.abs(x) < math.huge and (math.abs(f) == math.huge or f == 0 and x ~= 0 and what == "voxel_size") then
      error(("%s: %s is %g on %s, which float32 reads as %g (the grid is taken as float32)"):format(fname, what, x,
        ("xyz"):sub(a, a), f), 0)
    end
  end
  return { t[1], t[2], t[3] }
end

local function check_points(points, fname)
  if not lattice.is_tensor(points) then
    error(("%s: points must be a lattice.Tensor, got %s"):format(fname, type_name(points)), 0)
  end
end

-- The batch option: nil, an integer (every point of that batch) or an integer
-- (N) tensor; with the number of batches it spans (max + 1).
local function batch_of(b, n, fname)
  if b == nil then return nil, 1 end
  if math.type(b) == "integer" then
    if b < 0 or b > 2147483647 then error(("%s: batch must be in 0..2147483647, got %d"):format(fname, b), 0) end
    return lattice.full({ n }, b, "int32"), b + 1
  end
  if not lattice.is_tensor(b) then
    error(("%s: batch must be an integer or an integer tensor, got %s"):format(fname, type_name(b)), 0)
  end
  if b.dtype ~= "int32" and b.dtype ~= "int64" and b.dtype ~= "uint8" then
    error(("%s: batch must be an integer tensor, got %s"):format(fname, b.dtype), 0)
  end
  return b, (b.ndim == 1 and b.size > 0) and math.max(0, lattice.max(b):item()) + 1 or 0
end

local function grid(opts, fname)
  return float_triple(opts.voxel_size, 1, "voxel_size", fname), float_triple(opts.origin, 0, "origin", fname)
end

-- The most batches voxelize's batch_counts list (one entry a batch, 0 .. the
-- largest index) may have beyond one a point.
local MOST_BATCHES = 1 << 20

local QUANTIZE = { voxel_size = true, origin = true, batch = true, return_index = true, return_inverse = true }

--- sparse_quantize(points[, {voxel_size = 1, origin = 0, batch, return_index, return_inverse}])
-- -> coords[, index][, inverse]: the distinct voxels (M, 4) int32 (batch, x, y,
-- z) of points (N, 3), first seen first; index (M): each voxel's first point;
-- inverse (N): each point's voxel (coords[inverse[i]] holds point i).
M.sparse_quantize = api(function(points, opts)
  local fname = "sparse_quantize"
  opts = args.options(opts, QUANTIZE, fname)
  check_points(points, fname)
  local size, origin = grid(opts, fname)
  local batch = batch_of(opts.batch, points.shape[1] or 0, fname)
  local coords, index, inverse = call(csparse.quantize, points, batch, size, origin, fname)
  local out = { coords }
  if opts.return_index then out[#out + 1] = index end
  if opts.return_inverse then out[#out + 1] = inverse end
  return table.unpack(out)
end)

local REDUCTIONS = { mean = true, sum = true, max = true }

--- voxelize(points, point_feats[, {voxel_size = 1, origin = 0, reduction = "mean", batch}]) -> SparseTensor
-- One row per distinct voxel of the points (first seen first, tensor stride
-- 1), its features the mean, sum or per-channel max of its points' features
-- (the max's gradient goes to the first point holding it); batch_counts span
-- batches 0 .. the largest batch. Differentiable in point_feats.
M.voxelize = api(function(points, feats, opts)
  local fname = "voxelize"
  opts = args.options(opts, { voxel_size = true, origin = true, reduction = true, batch = true }, fname)
  check_points(points, fname)
  if not lattice.is_tensor(feats) then
    error(("%s: point_feats must be a lattice.Tensor, got %s"):format(fname, type_name(feats)), 0)
  end
  local size, origin = grid(opts, fname)
  local reduction = args.choice(opts.reduction or "mean", REDUCTIONS, "reduction", fname)
  local batch, batches = batch_of(opts.batch, points.shape[1] or 0, fname)
  if batches > math.max(MOST_BATCHES, points.shape[1] or 0) then -- a list that long: gigabytes for a batch near 2^31
    error(("%s: batch index %d would make batch_counts %d long, more than the points and than %d: number the " ..
      "batches from 0"):format(fname, batches - 1, batches, MOST_BATCHES), 0)
  end
  return call(csparse.voxelize, points, feats, batch, size, origin, reduction, batches, fname)
end)

local MODES = { nearest = true, trilinear = true }

--- devoxelize(points, voxels[, {voxel_size = 1, origin = 0, mode = "trilinear", renormalize = false, batch}])
-- -> Tensor (N, C): the voxels' features at the points. nearest: the voxel at
-- floor(u + 0.5); trilinear: the voxels floor(u) + {0,1}^3 weighted by
-- prod(f or 1 − f), f = u − floor(u); absent voxels count as zeros, or, with
-- renormalize, the present weights are divided by their sum. Differentiable
-- in the voxels' features.
M.devoxelize = api(function(points, voxels, opts)
  local fname = "devoxelize"
  opts = args.options(opts, { voxel_size = true, origin = true, mode = true, renormalize = true, batch = true }, fname)
  check_points(points, fname)
  if not require("lattice.sparse").is_sparse(voxels) then
    error(("%s: voxels must be a SparseTensor, got %s"):format(fname, type_name(voxels)), 0)
  end
  local size, origin = grid(opts, fname)
  local mode = args.choice(opts.mode or "trilinear", MODES, "mode", fname)
  if opts.renormalize ~= nil and type(opts.renormalize) ~= "boolean" then
    error(("%s: renormalize must be a boolean, got %s"):format(fname, type_name(opts.renormalize)), 0)
  end
  local batch = batch_of(opts.batch, points.shape[1] or 0, fname)
  return call(csparse.devoxelize, points, voxels, batch, size, origin, mode, opts.renormalize or false, fname)
end)

return M
