-- The model of the embedding example (host.c). The host passes an (N, 3)
-- float32 tensor of points it owns (zero-copy); each function returns a new
-- tensor that the host reads back. The weights belong to the script.
local lattice = require "lattice"
local ops = lattice.ops

local model = {}

-- A fixed linear layer R^3 -> R^2: (N, 3) @ (3, 2) -> (N, 2).
local W = lattice.array({ { 1, 0 }, { 0, 1 }, { 0.5, -0.5 } })

function model.project(points)
  return lattice.matmul(points, W)
end

-- The points' Gram matrix: (3, N) @ (N, 3) -> (3, 3).
function model.gram(points)
  return lattice.matmul(lattice.transpose(points), points)
end

-- A submanifold 3x3x3 convolution from 3 to 2 channels with fixed small
-- integer weights (C_out, Kx, Ky, Kz, C_in), so that host.c can compute the
-- same logits in plain C: weight[c][ix][iy][iz][ci] = ((c+1)(9ix+3iy+iz) + ci) mod 5 - 2.
local function conv_weight()
  local flat = {}
  for c = 0, 1 do
    for k = 0, 26 do
      for ci = 0, 2 do flat[#flat + 1] = ((c + 1) * k + ci) % 5 - 2 end
    end
  end
  return lattice.array(flat):reshape({ 2, 3, 3, 3, 3 })
end
local CONV = conv_weight()

-- Per-point logits of a point cloud: the points go into unit voxels (each
-- voxel's feature the mean of its points), one submanifold convolution runs
-- on the voxels, and every point reads the logits of its voxel back
-- (sparse_quantize numbers the voxels in the same first-seen order).
function model.segment(points)
  if points.ndim ~= 2 or points.shape[2] ~= 3 then
    error(("segment: points must be (N, 3), got {%s}"):format(table.concat(points.shape, ",")), 2)
  end
  local voxels = ops.voxelize(points, points, { voxel_size = 1, reduction = "mean" })
  local logits = ops.subm_conv3d(voxels, CONV, { kernel_size = 3 })
  local _, inverse = ops.sparse_quantize(points, { voxel_size = 1, return_inverse = true })
  return lattice.take(logits.feats, inverse, 1)
end

return model
