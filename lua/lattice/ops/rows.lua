-- Row and support operations, as mlx_lattice.ops.tensor and its coordinate
-- helpers: subsets of a tensor's rows (prune, prune_mask, crop, topk_rows),
-- batching scenes (sparse_collate), new features on the same support
-- (replace_feature), and the Morton order and octree occupancy of coordinates
-- that completion decoders and octree coders build on. Row indices are
-- 0-based, as everything stored in a tensor. The C side is
-- core/sparse/rows.c, morton.c and occupancy.c. Errors point at the caller's
-- line (lattice/ops/args.lua).
local lattice = require "lattice"
local core = require "lattice.core"
local sparse = require "lattice.sparse"
local args = require "lattice.ops.args"

local api, call, type_name = args.api, args.call, args.type_name
local csparse = core.sparse
local M = {}

local INT32_MIN, INT32_MAX = -2147483648, 2147483647

-- An integer index tensor from a tensor or a Lua list.
local function index_tensor(v, what, fname)
  if type(v) == "table" then
    for i = 1, #v do -- not ipairs: a hole (nil) is an entry too
      if math.type(v[i]) ~= "integer" then
        error(("%s: %s[%d] must be an integer, got %s"):format(fname, what, i, tostring(v[i])), 0)
      end
    end
    return lattice.array(v, "int64")
  end
  if not lattice.is_tensor(v) then
    error(("%s: %s must be a lattice.Tensor or a list, got %s"):format(fname, what, type_name(v)), 0)
  end
  return v
end

-- The coordinates an ordering op takes: a SparseTensor's, or int32 (N, 4) ones.
local function coords_of(v, fname)
  if sparse.is_sparse(v) then return v.coords end
  return sparse.int32_coords(v, fname)
end

--- prune(x, rows): the SparseTensor of x's rows listed in `rows` (0-based
-- indices, in that order, none twice: an integer tensor or a list), or of the
-- rows where `rows` is true when it is a bool mask. Features follow the rows
-- (differentiably); the coordinates get their own identity unless they are
-- exactly x's.
M.prune = api(function(x, rows)
  args.sparse(x, "prune")
  if lattice.is_tensor(rows) and rows.dtype == "bool" then
    return call(csparse.select, x, call(csparse.mask_rows, rows, #x, "prune"), "prune")
  end
  return call(csparse.select, x, index_tensor(rows, "rows", "prune"), "prune")
end)

--- prune_mask(x, mask): x's rows where the bool (N) mask is true, in order.
M.prune_mask = api(function(x, mask)
  args.sparse(x, "prune_mask")
  if not lattice.is_tensor(mask) then
    error(("prune_mask: mask must be a bool lattice.Tensor, got %s"):format(type_name(mask)), 0)
  end
  return call(csparse.select, x, call(csparse.mask_rows, mask, #x, "prune_mask"), "prune_mask")
end)

local function bound(v, default, what)
  if v == nil then return { default, default, default } end
  if type(v) == "table" and #v == 3 then
    for a = 1, 3 do
      if math.type(v[a]) ~= "integer" or v[a] < INT32_MIN or v[a] > INT32_MAX then
        error(("crop: %s must be a list of 3 int32 integers"):format(what), 0)
      end
    end
    return { v[1], v[2], v[3] }
  end
  local got = type(v) == "table" and ("a list of %d"):format(#v) or type(v)
  error(("crop: %s must be a list of 3 integers, got %s"):format(what, got), 0)
end

--- crop(x[, {min_coord = {x, y, z}, max_coord = {x, y, z}}]): x's rows inside
-- the inclusive box (lattice indices; either bound may be left out; the batch
-- is not filtered), in order.
M.crop = api(function(x, opts)
  opts = args.options(opts, { min_coord = true, max_coord = true }, "crop")
  args.sparse(x, "crop")
  local lo, hi = bound(opts.min_coord, INT32_MIN, "min_coord"), bound(opts.max_coord, INT32_MAX, "max_coord")
  return call(csparse.select, x, call(csparse.crop_rows, x, lo, hi, "crop"), "crop")
end)

--- topk_rows(x, counts[, {rho = 1}]) -> int32 rows: for each batch in turn,
-- its floor(counts[b] · rho) rows (at most all of them) with the largest first
-- feature, largest first, equal scores by lower row. Needs x.batch_counts.
M.topk_rows = api(function(x, counts, opts)
  opts = args.options(opts, { rho = true }, "topk_rows")
  args.sparse(x, "topk_rows")
  local rho = opts.rho == nil and 1 or opts.rho
  if type(rho) ~= "number" or rho ~= rho or rho <= 0 then
    error(("topk_rows: rho must be a positive number, got %s"):format(tostring(rho)), 0)
  end
  local have = x.batch_counts
  if not have then error("topk_rows: x has no batch_counts, which the per-batch selection needs", 0) end
  if type(counts) ~= "table" or #counts ~= #have then
    error(("topk_rows: counts must be a list of %d integers (one per batch)"):format(#have), 0)
  end
  local keep = {}
  for b = 1, #counts do -- not ipairs: a hole (nil) is a count too
    local k = counts[b]
    if math.type(k) ~= "integer" or k < 0 then
      error(("topk_rows: counts[%d] must be a non-negative integer, got %s"):format(b, tostring(k)), 0)
    end
    -- floor(k * rho) as an integer: a product past 2^62 (rho = math.huge, or
    -- a float rho with a huge count) keeps every row, as any count past them
    -- does; a count of 0 keeps none, whatever rho (0 * math.huge is NaN)
    local v = k * rho
    keep[b] = k == 0 and 0 or v >= 2 ^ 62 and math.maxinteger or math.floor(v)
  end
  return call(csparse.topk_rows, x, keep, "topk_rows")
end)

--- replace_feature(x, feats): x's coordinates (identity kept) with new features (N, C').
M.replace_feature = api(function(x, feats)
  args.sparse(x, "replace_feature")
  if not lattice.is_tensor(feats) then
    error(("replace_feature: feats must be a lattice.Tensor, got %s"):format(type_name(feats)), 0)
  end
  local ok, y = pcall(x.with_feats, x, feats)
  if not ok then error((tostring(y):gsub("^with_feats:", "replace_feature:")), 0) end -- the caller's name
  return y
end)

-- ---- sparse_collate ----

-- The scenes as (N_i, 3) coordinates and (N_i, C) features, and the stride.
local function scenes_of(a, b, fname)
  local coords, feats, stride = {}, {}, nil
  if type(a) ~= "table" or #a == 0 then error(fname .. ": expected a non-empty list of scenes", 0) end
  if sparse.is_sparse(a[1]) then
    if b ~= nil then args.options(b, {}, fname) end
    for i = 1, #a do -- not ipairs: a hole (nil) must not end the list unseen
      local t = a[i]
      if not sparse.is_sparse(t) then error(("%s: scene %d must be a SparseTensor, got %s"):format(fname, i, type_name(t)), 0) end
      local c = t.coords
      local batch = lattice.slice(c, 2, 1, 1)
      if #t > 0 and lattice.min(batch):item() ~= lattice.max(batch):item() then
        error(("%s: scene %d holds more than one batch"):format(fname, i), 0)
      end
      if stride and table.concat(stride, ",") ~= table.concat(t.stride, ",") then
        error(("%s: scene %d has tensor stride {%s}, scene 1 {%s}"):format(fname, i, table.concat(t.stride, ","),
          table.concat(stride, ",")), 0)
      end
      stride = stride or t.stride
      coords[i], feats[i] = lattice.slice(c, 2, 2, 4), t.feats
    end
    return coords, feats, stride
  end
  if type(b) ~= "table" or #b ~= #a then error(fname .. ": coords and feats must be lists of the same length", 0) end
  for i = 1, #a do
    local c = sparse.int32_coords(a[i], fname)
    if c.ndim ~= 2 or c.shape[2] ~= 3 then
      error(("%s: coords[%d] must have shape {N,3}, got {%s}"):format(fname, i, table.concat(c.shape, ",")), 0)
    end
    if not lattice.is_tensor(b[i]) or b[i].ndim ~= 2 or b[i].shape[1] ~= c.shape[1] then
      error(("%s: feats[%d] must be a tensor of %d rows (N, C)"):format(fname, i, c.shape[1]), 0)
    end
    coords[i], feats[i] = c, b[i]
  end
  return coords, feats, nil
end

--- sparse_collate(scenes) or sparse_collate(coords, feats[, {stride = 1}]):
-- one batch of several scenes, scene i as batch i − 1, with batch_counts.
-- scenes: SparseTensors of one batch each (at one tensor stride); or lists
-- of (N_i, 3) coordinates and (N_i, C) features, as mlx_lattice takes them.
M.sparse_collate = api(function(a, b, opts)
  local coords, feats, stride = scenes_of(a, b, "sparse_collate")
  if not sparse.is_sparse(a[1]) then stride = args.options(opts, { stride = true }, "sparse_collate").stride end
  local rows, counts = {}, {}
  for i, c in ipairs(coords) do
    local n = c.shape[1]
    if feats[i].shape[2] ~= feats[1].shape[2] then
      error(("sparse_collate: scene %d has %d channels, scene 1 has %d"):format(i, feats[i].shape[2],
        feats[1].shape[2]), 0)
    end
    rows[i] = lattice.concatenate({ lattice.full({ n, 1 }, i - 1, "int32"), c:astype("int32") }, 2)
    counts[i] = n
  end
  return call(sparse.SparseTensor, lattice.concatenate(rows, 1), lattice.concatenate(feats, 1),
    { batch_counts = counts, stride = stride })
end)

-- ---- ordering and occupancy ----

--- morton_codes(coords) -> int64 (N): the Z-order code of each row's x, y, z
-- (each in [-2^20, 2^20): offset by 2^20, bits interleaved x lowest). The
-- batch is not part of the code. coords: int32 (N, 4) or a SparseTensor.
M.morton_codes = api(function(coords)
  return call(csparse.morton_codes, coords_of(coords, "morton_codes"), "morton_codes")
end)

--- morton_order(coords) -> int32 (N): the rows sorted by (batch, Morton code), equal keys by row.
M.morton_order = api(function(coords)
  return (call(csparse.morton_order, coords_of(coords, "morton_order"), "morton_order"))
end)

--- morton_sort_coords(coords) -> {coords, order, inverse_rows}: the rows in
-- Morton order, the order (sorted[i] = coords[order[i]]) and its inverse.
M.morton_sort_coords = api(function(coords)
  local c = coords_of(coords, "morton_sort_coords")
  local order, inverse = call(csparse.morton_order, c, "morton_sort_coords")
  return { coords = call(lattice.take, c, order, 1), order = order, inverse_rows = inverse }
end)

--- occupancy_downsample(coords) -> {coords, occupancy}: the parents
-- (b, floor(x/2), floor(y/2), floor(z/2)) in the order first seen, and per
-- parent the bits 1 << child of its children, child = (x&1) | (y&1)<<1 | (z&1)<<2.
M.occupancy_downsample = api(function(coords)
  local parents, occupancy = call(csparse.occupancy_downsample, coords_of(coords, "occupancy_downsample"),
    "occupancy_downsample")
  return { coords = parents, occupancy = occupancy }
end)

--- occupancy_expand(coords, occupancy) -> {coords, parent_rows, child_indices}:
-- the children each parent's occupancy bits mark, parents in order, children
-- by increasing index, at (b, 2x + (i&1), 2y + (i>>1&1), 2z + (i>>2&1)).
M.occupancy_expand = api(function(coords, occupancy)
  local c = coords_of(coords, "occupancy_expand")
  if type(occupancy) == "table" then occupancy = index_tensor(occupancy, "occupancy", "occupancy_expand") end
  if not lattice.is_tensor(occupancy) then
    error(("occupancy_expand: occupancy must be an integer tensor, got %s"):format(type_name(occupancy)), 0)
  end
  local children, parent_rows, child = call(csparse.occupancy_expand, c, occupancy, "occupancy_expand")
  return { coords = children, parent_rows = parent_rows, child_indices = child }
end)

--- child_coords_from_indices(parent_coords, child_indices) -> int32 (N, 4):
-- each parent's child of the given index (0..7).
M.child_coords_from_indices = api(function(parents, child_indices)
  local c = coords_of(parents, "child_coords_from_indices")
  if type(child_indices) == "table" then
    child_indices = index_tensor(child_indices, "child_indices", "child_coords_from_indices")
  end
  if not lattice.is_tensor(child_indices) then
    error(("child_coords_from_indices: child_indices must be an integer tensor, got %s"):format(type_name(child_indices)), 0)
  end
  return call(csparse.child_coords, c, child_indices, "child_coords_from_indices")
end)

return M
