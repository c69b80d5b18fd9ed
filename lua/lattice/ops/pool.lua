-- Sparse pooling, as mlx_lattice.ops.pool: local pools over the kernel
-- relation of a convolution with the same spec (cached by the coordinate
-- manager, so a pool after a conv of that spec reuses its relation), and
-- global pools per batch. The kernels are in core/sparse/pool.c and
-- global_pool.c. Errors point at the caller's line (lattice/ops/args.lua).
local core = require "lattice.core"
local args = require "lattice.ops.args"

local api, call = args.api, args.call
local csparse = core.sparse
local M = {}

local MODES = { sum = true, avg = true, max = true }
local LOCAL = { kernel_size = true, stride = true, padding = true, dilation = true }

local function pool(mode, x, opts, fname)
  args.sparse(x, fname)
  local s = args.pool_spec(opts, fname)
  return call(csparse.pool, mode, x, s.size, s.stride, s.padding, s.dilation, fname)
end

local function local_pool(mode, fname)
  return api(function(x, opts) return pool(mode, x, args.options(opts, LOCAL, fname), fname) end)
end

--- pool3d(x[, {mode = "sum", kernel_size = 2, stride = 2, padding = 0, dilation = 1}]) -> SparseTensor
-- Output support floor(p / stride) of the input rows (first seen first), the
-- tensor stride times stride; output o pools the inputs o·stride + offset −
-- padding. avg divides by the rows that contribute, not the kernel volume;
-- max takes each channel's maximum (its gradient goes to one row: the lowest
-- among equal maxima). An output no input reaches (padding) is zero.
M.pool3d = api(function(x, opts)
  opts = args.options(opts, { mode = true, kernel_size = true, stride = true, padding = true, dilation = true },
    "pool3d")
  return pool(args.choice(opts.mode or "sum", MODES, "mode", "pool3d"), x, opts, "pool3d")
end)

--- sum_pool3d, avg_pool3d, max_pool3d(x[, {kernel_size = 2, stride = 2, padding = 0, dilation = 1}])
M.sum_pool3d = local_pool("sum", "sum_pool3d")
M.avg_pool3d = local_pool("avg", "avg_pool3d")
M.max_pool3d = local_pool("max", "max_pool3d")

local function global(mode, fname)
  return api(function(x)
    args.sparse(x, fname)
    return call(csparse.global_pool, mode, x, fname)
  end)
end

--- global_sum_pool(x) -> Tensor (B, C): per batch of x.batch_counts, the sum of its rows.
M.global_sum_pool = global("sum", "global_sum_pool")
--- global_avg_pool(x) -> Tensor (B, C): the mean of each batch's rows (0 for an empty batch).
M.global_avg_pool = global("avg", "global_avg_pool")
--- global_max_pool(x) -> Tensor (B, C): each batch's maximum (an empty batch is an error).
M.global_max_pool = global("max", "global_max_pool")

return M
