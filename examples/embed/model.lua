-- A small model for the embedding example (host.c). The host passes an (N, 3)
-- float32 tensor of points it owns; each function returns a new tensor that
-- the host reads back. The weights belong to the script.
local lattice = require "lattice"

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

return model
