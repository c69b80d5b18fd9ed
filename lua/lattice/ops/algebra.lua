-- Sparse algebra aligned by coordinate value, as mlx_lattice.ops.tensor: two
-- SparseTensors at the same tensor stride are matched by their coordinates
-- and combined under a join; a row one side lacks reads as zeros. Two tensors
-- of the same coordinate identity combine row by row with no hash at all.
-- The alignment and the kernels are in core/sparse/align.c and algebra.c.
local core = require "lattice.core"
local sparse = require "lattice.sparse"
local args = require "lattice.ops.args"

local csparse = core.sparse
local M = {}

local JOINS = { inner = true, left = true, right = true, outer = true }

-- Tail-called by the ops: level 3 of the checks it calls is the ops' caller.
local function binary(op, a, b, opts, default_join, fname)
  opts = args.options(opts, { join = true }, fname)
  args.sparse(a, fname)
  if not sparse.is_sparse(b) then error(("%s: b must be a SparseTensor, got %s"):format(fname, type(b)), 2) end
  local join = args.choice(opts.join or default_join, JOINS, "join", fname)
  return csparse.binary(op, a, b, join, fname)
end

--- sparse_add(a, b[, {join = "outer"}]), sparse_sub(a, b[, {join = "outer"}])
-- join: "inner" (a ∩ b: a's rows b has, in a's order), "left" (a), "right"
-- (b), "outer" (a ∪ b: a's rows, then b's new rows in b's order).
function M.sparse_add(a, b, opts) return binary("add", a, b, opts, "outer", "sparse_add") end
function M.sparse_sub(a, b, opts) return binary("sub", a, b, opts, "outer", "sparse_sub") end
--- sparse_mul(a, b[, {join = "inner"}]), sparse_maximum, sparse_minimum (join "inner" too)
function M.sparse_mul(a, b, opts) return binary("mul", a, b, opts, "inner", "sparse_mul") end
function M.sparse_maximum(a, b, opts) return binary("maximum", a, b, opts, "inner", "sparse_maximum") end
function M.sparse_minimum(a, b, opts) return binary("minimum", a, b, opts, "inner", "sparse_minimum") end

--- sparse_cat_aligned(a, b[, {join = "inner"}]): a's channels then b's, on the joined support.
function M.sparse_cat_aligned(a, b, opts) return binary("cat", a, b, opts, "inner", "sparse_cat_aligned") end

--- cat(tensors[, {join = "inner"}]): the channels of every tensor in the
-- list, in order, on their joined support; the join folds left to right
-- (outer: the first tensor's rows, then each next one's new rows; right: the
-- last one's support). Tensors of one coordinate identity just concatenate
-- their features.
function M.cat(tensors, opts)
  opts = args.options(opts, { join = true }, "cat")
  if type(tensors) ~= "table" or #tensors == 0 then
    error("cat: tensors must be a non-empty list of SparseTensors", 2)
  end
  for i, t in ipairs(tensors) do
    if not sparse.is_sparse(t) then error(("cat: tensors[%d] must be a SparseTensor, got %s"):format(i, type(t)), 2) end
  end
  local join = args.choice(opts.join or "inner", JOINS, "join", "cat")
  local y = tensors[1]
  for i = 2, #tensors do y = csparse.binary("cat", y, tensors[i], join, "cat") end
  return y
end

return M
