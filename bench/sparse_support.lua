-- The sparse benchmarks' support: points on the surfaces of random boxes,
-- spheres and a ground plane, voxelized (default 5 cm) until `target`
-- distinct voxels exist (~150,000 by default), batch 0, rows in Morton order
-- as a voxelizer would give them. The same seed gives the same support, so
-- bench/sparse_conv.lua and bench/sparse_ops.lua time the same voxels.
--   local rows = require("sparse_support").surface_voxels(150000, 0.05)
local M = {}

local function spread(v) -- 21 bits of v spread to every third bit
  local r = 0
  for b = 0, 20 do r = r | (((v >> b) & 1) << (3 * b)) end
  return r
end

-- A list of {0, x, y, z} rows; math.random is seeded with `seed` (default 7).
function M.surface_voxels(target, voxel, seed)
  math.randomseed(seed or 7)
  local seen, list = {}, {}
  local function add(x, y, z)
    local i, j, k = math.floor(x / voxel), math.floor(y / voxel), math.floor(z / voxel)
    local key = (i + 4096) * 67108864 + (j + 4096) * 8192 + (k + 4096)
    if not seen[key] then
      seen[key] = true
      list[#list + 1] = {i, j, k}
    end
  end
  for _ = 1, 200000 do add(math.random() * 12 - 6, math.random() * 12 - 6, 0) end -- ground
  while #list < target do
    local cx, cy, s = math.random() * 10 - 5, math.random() * 10 - 5, 0.5 + math.random() * 1.5
    local sphere = math.random() < 0.5
    for _ = 1, 20000 do
      if sphere then
        local u, v = math.random() * 2 - 1, math.random() * 2 * math.pi
        local r = math.sqrt(1 - u * u)
        add(cx + s * r * math.cos(v), cy + s * r * math.sin(v), s + s * u)
      else
        local face, a, b = math.random(6), (math.random() - 0.5) * s, (math.random() - 0.5) * s
        local h = s / 2 * (face % 2 == 0 and 1 or -1)
        if face <= 2 then add(cx + h, cy + a, s / 2 + b) elseif face <= 4 then add(cx + a, cy + h, s / 2 + b)
        else add(cx + a, cy + b, s / 2 + h) end
      end
      if #list >= target then break end
    end
  end
  for _, v in ipairs(list) do v.m = spread(v[1] + 4096) | (spread(v[2] + 4096) << 1) | (spread(v[3] + 4096) << 2) end
  table.sort(list, function(p, q) return p.m < q.m end)
  local rows = {}
  for i, v in ipairs(list) do rows[i] = {0, v[1], v[2], v[3]} end
  return rows
end

return M
