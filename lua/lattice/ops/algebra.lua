-- Sparse algebra aligned by coordinate value, as mlx_lattice.ops.tensor: two
-- SparseTensors at the same tensor stride are matched by their coordinates
-- and combined under a join; a row one side lacks reads as zeros. Two tensors
-- of the same coordinate identity combine row by row with no hash at all.
-- The alignment and the kernels are in core/sparse/align.c and algebra.c.
-- Errors point at the caller's line (lattice/ops/args.lua).
local core = require "lattice.core"
local sparse = require "lattice.sparse"
local args = require "lattice.ops.args"

local api, call, type_name = args.api, args.call, args.type_name
local csparse = core.sparse
local M = {}

local JOINS = { inner = true, left = true, right = true, outer = true }

local function binary(op, default_join, fname)
  return api(function(a, b, opts)
    opts = args.options(opts, { join = true }, fname)
    args.sparse(a, fname)
    if not sparse.is_sparse(b) then error(("%s: b must be a SparseTensor, got %s"):format(fname, type_name(b)), 0) end
    return call(csparse.binary, op, a, b, args.choice(opts.join or default_join, JOINS, "join", fname), fname)
  end)
end

--- sparse_add(a, b[, {join = "outer"}]), sparse_sub(a, b[, {join = "outer"}])
-- join: "inner" (a ∩ b: a's rows b has, in a's order), "left" (a), "right"
-- (b), "outer" (a ∪ b: a's rows, then b's new rows in b's order).
M.sparse_add = binary("add", "outer", "sparse_add")
M.sparse_sub = binary("sub", "outer", "sparse_sub")
--- sparse_mul(a, b[, {join = "inner"}]), sparse_maximum, sparse_minimum (join "inner" too)
M.sparse_mul = binary("mul", "inner", "sparse_mul")
M.sparse_maximum = binary("maximum", "inner", "sparse_maximum")
M.sparse_minimum = binary("minimum", "inner", "sparse_minimum")

--- sparse_cat_aligned(a, b[, {join = "inner"}]): a's channels then b's, on the joined support.
M.sparse_cat_aligned = binary("cat", "inner", "sparse_cat_aligned")

--- cat(tensors[, {join = "inner"}]): the channels of every tensor in the
-- list, in order, on their joined support; the join folds left to right
-- (outer: the first tensor's rows, then each next one's new rows; right: the
-- last one's support). Tensors of one coordinate identity just concatenate
-- their features.
M.cat = api(function(tensors, opts)
  opts = args.options(opts, { join = true }, "cat")
  if type(tensors) ~= "table" or #tensors == 0 then error("cat: tensors must be a non-empty list of SparseTensors", 0) end
  for i = 1, #tensors do -- not ipairs: a hole (nil) is an entry the fold below would meet
    if not sparse.is_sparse(tensors[i]) then
      error(("cat: tensors[%d] must be a SparseTensor, got %s"):format(i, type_name(tensors[i])), 0)
    end
  end
  local join = args.choice(opts.join or "inner", JOINS, "join", "cat")
  local y = tensors[1]
  for i = 2, #tensors do y = call(csparse.binary, "cat", y, tensors[i], join, "cat") end
  return y
end)

return M
