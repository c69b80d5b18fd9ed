-- Coordinate utilities, as mlx_lattice.ops.coords: set operations on
-- coordinate sets, lookups, unique rows, orders (lexicographic, Morton,
-- Hilbert), downsampling, bounding boxes and dense grids. Coordinates are
-- (batch, x, y, z) rows: an (N, 4) integer tensor or table or a SparseTensor
-- (a map argument, of the set operations and lookups, may also be a
-- CoordinateMapKey); row indices are 0-based. The C side is
-- core/sparse/coord_ops.c and morton.c. Errors point at the caller's line
-- (lattice/ops/args.lua).
local lattice = require "lattice"
local core = require "lattice.core"
local sparse = require "lattice.sparse"
local args = require "lattice.ops.args"

local api, call, type_name = args.api, args.call, args.type_name
local map_of = sparse.coordinate_map
local csparse = core.sparse
local M = {}

-- Plain coordinates (duplicates allowed): a SparseTensor's, or int32 ones.
local function coords_of(v, fname)
  if sparse.is_sparse(v) then return v.coords end
  return sparse.int32_coords(v, fname)
end

local function setop(kind, fname)
  return api(function(a, b) return call(csparse.coords_setop, kind, map_of(a, fname), map_of(b, fname), fname) end)
end

--- coords_union(a, b) -> int32 (M, 4): a's rows, then b's rows that a lacks (distinct rows each).
M.coords_union = setop("union", "coords_union")
--- coords_intersection(a, b) -> int32 (M, 4): a's rows that b has, in a's order.
M.coords_intersection = setop("intersection", "coords_intersection")
--- coords_difference(a, b) -> int32 (M, 4): a's rows that b lacks, in a's order.
M.coords_difference = setop("difference", "coords_difference")

--- coords_lookup(map, query) -> int32 (Q): the row of `map` holding each query row, or −1.
M.coords_lookup = api(function(map, query)
  return call(csparse.coords_lookup, map_of(map, "coords_lookup"), coords_of(query, "coords_lookup"), "coords_lookup")
end)

-- The seed's names for the same operations (mlx_lattice.ops.coords).
M.union_coords, M.intersection_coords, M.lookup_coords = M.coords_union, M.coords_intersection, M.coords_lookup
--- inverse_map(source, target) -> int32 (T): the row of `source` at each target row, or −1 (a lookup).
M.inverse_map = M.coords_lookup

--- contains_coords(map, query) -> bool (Q): whether `map` holds each query row.
M.contains_coords = api(function(map, query)
  local rows = call(csparse.coords_lookup, map_of(map, "contains_coords"), coords_of(query, "contains_coords"),
    "contains_coords")
  return lattice.greater_equal(rows, lattice.array(0, "int32"))
end)

--- unique_coords(coords[, {return_index, return_inverse}]) -> coords[, index][, inverse]:
-- the distinct rows first seen first, each one's first row, each row's distinct row.
M.unique_coords = api(function(coords, opts)
  opts = args.options(opts, { return_index = true, return_inverse = true }, "unique_coords")
  local rows, index, inverse = call(csparse.coords_unique, coords_of(coords, "unique_coords"), "unique_coords")
  local out = { rows }
  if opts.return_index then out[#out + 1] = index end
  if opts.return_inverse then out[#out + 1] = inverse end
  return table.unpack(out)
end)

local ORDERS = { lex = true, morton = true, hilbert = true }

--- coords_sort(coords[, {order = "lex"}]) -> sorted, permutation: the rows by
-- (batch, key), equal keys by row (stable), sorted = coords[permutation].
-- lex: x, then y, then z; morton: the Z-order code; hilbert: the 3D Hilbert
-- index (consecutive cells of a full aligned cube are face neighbours). x, y,
-- z must lie in [−2^20, 2^20) for morton and hilbert; lex takes any int32.
M.coords_sort = api(function(coords, opts)
  opts = args.options(opts, { order = true }, "coords_sort")
  local order = args.choice(opts.order or "lex", ORDERS, "order", "coords_sort")
  local c = coords_of(coords, "coords_sort")
  local perm = call(csparse.coords_order, c, order, "coords_sort")
  return call(lattice.take, c, perm, 1), perm
end)

--- downsample_coords(coords[, stride = 2]) -> coords[, inverse]: the distinct
-- (b, floor(x/s), floor(y/s), floor(z/s)) first seen first, and each row's.
M.downsample_coords = api(function(coords, stride)
  local s = args.triple(stride, 2, "stride", "downsample_coords")
  for a = 1, 3 do
    if s[a] < 1 then error(("downsample_coords: stride must be positive, got %d"):format(s[a]), 0) end
  end
  local c = coords_of(coords, "downsample_coords")
  local div = lattice.array({ 1, s[1], s[2], s[3] }, "int32")
  local rows, _, inverse = call(csparse.coords_unique, call(lattice.floor_divide, c, div), "downsample_coords")
  return rows, inverse
end)

-- The number of batches of a map argument: its batch_counts, else max batch + 1.
local function batches_of(x, rows)
  if sparse.is_sparse(x) and x.batch_counts then return #x.batch_counts end
  return rows.shape[1] > 0 and lattice.max(lattice.slice(rows, 2, 1, 1)):item() + 1 or 0
end

-- The most batches bounding_box (boxes) and dense (grids) give beyond one a
-- row, when the batches come from the largest batch index (no batch_counts):
-- a batch near 2^31 would ask for gigabytes (voxelize bounds its counts so).
local MOST_BATCHES = 1 << 20

local function checked_batches(x, rows, fname)
  local b = batches_of(x, rows)
  if not (sparse.is_sparse(x) and x.batch_counts) and b > math.max(MOST_BATCHES, rows.shape[1]) then
    error(("%s: batch index %d would make %d batches, more than the rows and than %d: number the " ..
      "batches from 0"):format(fname, b - 1, b, MOST_BATCHES), 0)
  end
  return b
end

--- bounding_box(x[, {per_batch = false}]) -> min_coord, max_coord: the least
-- and greatest x, y, z of the rows, lists of 3 (nil, nil for no rows); per
-- batch, int32 (B, 3) tensors (an empty batch has min > max).
M.bounding_box = api(function(x, opts)
  opts = args.options(opts, { per_batch = true }, "bounding_box")
  local rows = coords_of(x, "bounding_box")
  if opts.per_batch then
    local map = sparse.is_sparse(x) and x or call(csparse.coords_unique, rows, "bounding_box") -- a map's rows are distinct
    return call(csparse.coords_bounds, map, checked_batches(x, rows, "bounding_box"), "bounding_box")
  end
  if rows.shape[1] == 0 then return nil, nil end
  local all = lattice.zeros({ rows.shape[1] }, "int32")
  local flat = call(csparse.coords_unique, lattice.concatenate({ all:reshape({ -1, 1 }), lattice.slice(rows, 2, 2, 4) },
    2), "bounding_box") -- one batch; a map's rows are distinct
  local lo, hi = call(csparse.coords_bounds, flat, 1, "bounding_box")
  return lo:reshape({ 3 }):tolist(), hi:reshape({ 3 }):tolist()
end)

local function int_list(v, what, fname)
  if type(v) ~= "table" or #v ~= 3 then error(("%s: %s must be a list of 3 integers, got %s"):format(fname, what,
      args.show(v)), 0) end
  for a = 1, 3 do
    if math.type(v[a]) ~= "integer" then
      error(("%s: %s must be a list of 3 integers, got %s"):format(fname, what, args.show(v)), 0)
    end
  end
  return { v[1], v[2], v[3] }
end

--- dense(x[, {shape, min_coord}]) -> Tensor (B, X, Y, Z, C): x's features at
-- cell (b, coord − min_coord) of the grid, zeros elsewhere. min_coord
-- defaults to x's bounding box minimum, shape to the box's extent; B is
-- #x.batch_counts (else the largest batch + 1, at most 2^20 or the rows). A
-- row outside the grid is an error. Differentiable in x's features.
M.dense = api(function(x, opts)
  opts = args.options(opts, { shape = true, min_coord = true }, "dense")
  args.sparse(x, "dense")
  local lo, hi = M.bounding_box(x)
  local min = opts.min_coord and int_list(opts.min_coord, "min_coord", "dense") or lo or { 0, 0, 0 }
  local shape = opts.shape and int_list(opts.shape, "shape", "dense")
  if not shape then
    shape = { 0, 0, 0 }
    for a = 1, 3 do shape[a] = hi and math.max(0, hi[a] - min[a] + 1) or 0 end
  end
  local b = checked_batches(x, x.coords, "dense")
  local index = call(csparse.dense_index, x, b, min, shape, "dense")
  local f = x.feats
  local padded = lattice.concatenate({ f, lattice.zeros({ 1, f.shape[2] }, f.dtype) }, 1)
  return lattice.take(padded, index, 1):reshape({ b, shape[1], shape[2], shape[3], f.shape[2] })
end)

--- from_dense(dense[, {min_coord = {0, 0, 0}}]) -> SparseTensor: the cells of
-- dense (B, X, Y, Z, C) with a nonzero channel, in cell order, at
-- (b, min_coord + (i, j, k)), with batch_counts. Differentiable in dense.
M.from_dense = api(function(dense, opts)
  opts = args.options(opts, { min_coord = true }, "from_dense")
  if not lattice.is_tensor(dense) then
    error(("from_dense: dense must be a lattice.Tensor, got %s"):format(type_name(dense)), 0)
  end
  local min = opts.min_coord and int_list(opts.min_coord, "min_coord", "from_dense") or { 0, 0, 0 }
  local cells, coords = call(csparse.from_dense, dense, min, "from_dense")
  local c = dense.shape[5]
  local feats = lattice.take(dense:reshape({ -1, c }), cells, 1)
  local counts, batch = {}, lattice.slice(coords, 2, 1, 1)
  for b = 1, dense.shape[1] do -- per batch, not per row
    counts[b] = math.tointeger(lattice.sum(lattice.equal(batch, lattice.array(b - 1, "int32")):astype("int32")):item())
  end
  return call(sparse.SparseTensor, coords, feats, { batch_counts = counts })
end)

return M
