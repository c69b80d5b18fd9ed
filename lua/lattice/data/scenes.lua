-- Batches of sparse point-cloud scenes: each scene a SparseTensor (its own
-- batch index ignored), optionally with per-row labels; a batch is one
-- SparseTensor whose batch column numbers the scenes 0 .. B-1, with
-- batch_counts, and the labels concatenated in the same row order.
local lattice = require "lattice"
local batches = require "lattice.data.batches"
local sparse = require "lattice.sparse"

local M = {}

local function shape(t) return "{" .. table.concat(t.shape, ",") .. "}" end

-- Scene i as {x = SparseTensor, labels = tensor or nil}, checked against the first.
local function check_scene(s, i, first, who)
  local x, labels = s, nil
  if not sparse.is_sparse(s) then
    if type(s) ~= "table" or not sparse.is_sparse(s.x) then
      error(("%s: scene %d must be a SparseTensor or {x = SparseTensor, labels = tensor}"):format(who, i), 3)
    end
    x, labels = s.x, s.labels
  end
  local rows = #x
  if labels ~= nil and (not lattice.is_tensor(labels) or labels.ndim < 1 or labels.shape[1] ~= rows) then
    error(("%s: scene %d has %d rows but labels %s"):format(who, i, rows,
      lattice.is_tensor(labels) and shape(labels) or type(labels)), 3)
  end
  if first then
    local f, g = first.x.feats, x.feats
    if f.shape[2] ~= g.shape[2] or f.dtype ~= g.dtype then
      error(("%s: scene %d has %d %s channels, scene 1 has %d %s"):format(who, i, g.shape[2], g.dtype, f.shape[2],
        f.dtype), 3)
    end
    if (first.labels == nil) ~= (labels == nil) then
      error(("%s: scene %d %s labels, scene 1 %s"):format(who, i, labels and "has" or "has no",
        first.labels and "has" or "has none"), 3)
    end
    if table.concat(first.x.stride, ",") ~= table.concat(x.stride, ",") then
      error(("%s: scene %d has stride {%s}, scene 1 {%s}"):format(who, i, table.concat(x.stride, ","),
        table.concat(first.x.stride, ",")), 3)
    end
  end
  return { x = x, labels = labels }
end

--- collate_scenes(scenes) -> SparseTensor[, labels]: scenes (a list as
-- SceneBatches takes) as one batch, scene k (1-based) with batch index k-1.
function M.collate_scenes(scenes, who)
  who = who or "collate_scenes"
  if type(scenes) ~= "table" or #scenes == 0 then error(who .. ": scenes must be a non-empty list", 2) end
  local first, coords, feats, labels, counts = nil, {}, {}, {}, {}
  for k, s in ipairs(scenes) do
    local sc = check_scene(s, k, first, who)
    first = first or sc
    local c, n = sc.x.coords, #sc.x
    local b = lattice.full({ n, 1 }, k - 1, "int32")
    coords[k] = lattice.concatenate({ b, lattice.slice(c, 2, 2, 4) }, 2)
    feats[k], labels[k], counts[k] = sc.x.feats, sc.labels, n
  end
  local x = sparse.SparseTensor(lattice.concatenate(coords, 1), lattice.concatenate(feats, 1),
    { batch_counts = counts, stride = first.x.stride })
  if first.labels then return x, lattice.concatenate(labels, 1) end
  return x
end

--- SceneBatches(scenes, {batch_size, shuffle = true, seed = 0, drop_last = true, epochs})
-- -> a BatchIterator of collated batches (SparseTensor[, labels]).
function M.SceneBatches(scenes, opts)
  local who = "SceneBatches"
  if type(scenes) ~= "table" or #scenes == 0 then error(who .. ": scenes must be a non-empty list", 2) end
  local first
  for i, s in ipairs(scenes) do
    local sc = check_scene(s, i, first, who)
    first = first or sc
  end
  local list = { table.unpack(scenes) } -- the list as given now, later changes unseen
  local it = batches.new({ size = #list, collate = function(idx)
    local picked = {}
    for k, i in ipairs(idx:tolist()) do picked[k] = list[i + 1] end
    return M.collate_scenes(picked, who)
  end }, opts, who)
  return it
end

return M
