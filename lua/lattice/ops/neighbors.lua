-- Neighbour relations, as mlx_lattice.ops.relations' knn_relation and
-- radius_relation (build_knn_relation, build_radius_relation): for each query
-- row, the source rows of its batch by squared Euclidean distance of the
-- coordinates, nearest first, equal distances by source row, a query that is
-- also a source included (at distance 0). Built on a hash grid of the source
-- rows (core/sparse/neighbors.c), not by comparing every pair. Errors point at
-- the caller's line (lattice/ops/args.lua).
local lattice = require "lattice"
local core = require "lattice.core"
local sparse = require "lattice.sparse"
local args = require "lattice.ops.args"

local api, call, type_name = args.api, args.call, args.type_name
local map_of = sparse.coordinate_map
local csparse = core.sparse
local M = {}

--- build_knn_relation(source[, query = source], {k}) -> relation: a table of
-- query_row, source_row, neighbor_id (the rank, 0 nearest) int32 (E),
-- distances float32 (E) (squared) and row_offsets int64 (Q + 1); at most k
-- edges per query (fewer when its batch has fewer source rows).
M.build_knn_relation = api(function(source, query, opts)
  if opts == nil and type(query) == "table" and not sparse.is_sparse(query) and query.k ~= nil then
    query, opts = nil, query
  end
  opts = args.options(opts, { k = true }, "build_knn_relation")
  local k = opts.k
  if math.type(k) ~= "integer" or k < 1 then
    error(("build_knn_relation: k must be a positive integer, got %s"):format(args.show(k)), 0)
  end
  local s = map_of(source, "build_knn_relation")
  return call(csparse.neighbors, "knn", s, query == nil and s or map_of(query, "build_knn_relation"), k, 0,
    "build_knn_relation")
end)

--- build_radius_relation(source[, query = source], {radius[, max_neighbors]}) -> relation:
-- as build_knn_relation, the source rows within `radius` (d² <= radius²),
-- all of them or the nearest max_neighbors.
M.build_radius_relation = api(function(source, query, opts)
  if opts == nil and type(query) == "table" and not sparse.is_sparse(query) and query.radius ~= nil then
    query, opts = nil, query
  end
  local fname = "build_radius_relation"
  opts = args.options(opts, { radius = true, max_neighbors = true }, fname)
  local r, cap = opts.radius, opts.max_neighbors
  if type(r) ~= "number" or r ~= r or r < 0 then
    error(("%s: radius must be a non-negative number, got %s"):format(fname, args.show(r)), 0)
  end
  if cap ~= nil and (math.type(cap) ~= "integer" or cap < 1) then
    error(("%s: max_neighbors must be a positive integer, got %s"):format(fname, args.show(cap)), 0)
  end
  local s = map_of(source, fname)
  return call(csparse.neighbors, "radius", s, query == nil and s or map_of(query, fname), cap or 0, r, fname)
end)

--- gather_neighbor_features(source, relation) -> Tensor (E, C): the source
-- features (a SparseTensor's, or a dense (N, C) tensor) in edge order, row
-- e holding source_row[e]'s. Differentiable in the features.
M.gather_neighbor_features = api(function(source, relation)
  local fname = "gather_neighbor_features"
  local feats = sparse.is_sparse(source) and source.feats or source
  if not lattice.is_tensor(feats) then
    error(("%s: source must be a SparseTensor or a lattice.Tensor, got %s"):format(fname, type_name(source)), 0)
  end
  local rows = type(relation) == "table" and relation.source_row
  if not lattice.is_tensor(rows) then
    error(("%s: relation must be a neighbour relation (a table with source_row), got %s"):format(fname,
      type_name(relation)), 0)
  end
  local ok, out = pcall(lattice.take, feats, rows, 1)
  if ok then return out end
  -- take names itself and its axis; say which argument is wrong (a pass over
  -- the edges only once the gather has failed)
  local n, top = feats.shape[1] or 0, rows.size > 0 and lattice.max(rows):item() or -1
  if feats.ndim > 0 and math.type(top) == "integer" and top >= n then
    error(("%s: the relation reaches source row %d (0-based), the source has %d rows: a relation of another source?")
      :format(fname, top, n), 0)
  end
  error(("%s: %s"):format(fname, out), 0)
end)

return M
