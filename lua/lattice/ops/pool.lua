-- Sparse pooling, as mlx_lattice.ops.pool: local pools over the kernel
-- relation of a convolution with the same spec (cached by the coordinate
-- manager, so a pool after a conv of that spec reuses its relation), and
-- global pools per batch. The kernels are in core/sparse/pool.c and
-- global_pool.c. The helpers are tail-called, so their errors point at the
-- caller of the public function.
local core = require "lattice.core"
local args = require "lattice.ops.args"

local csparse = core.sparse
local M = {}

local MODES = { sum = true, avg = true, max = true }
local LOCAL = { kernel_size = true, stride = true, padding = true, dilation = true }

local function pool(mode, x, opts, fname)
  opts = args.options(opts, LOCAL, fname)
  args.sparse(x, fname)
  local s = args.pool_spec(opts, fname)
  return csparse.pool(mode, x, s.size, s.stride, s.padding, s.dilation, fname)
end

--- pool3d(x[, {mode = "sum", kernel_size = 2, stride = 2, padding = 0, dilation = 1}]) -> SparseTensor
-- Output support floor(p / stride) of the input rows (first seen first), the
-- tensor stride times stride; output o pools the inputs o·stride + offset −
-- padding. avg divides by the rows that contribute, not the kernel volume;
-- max takes each channel's maximum (its gradient goes to one row: the lowest
-- among equal maxima). An output no input reaches (padding) is zero.
function M.pool3d(x, opts)
  opts = args.options(opts, { mode = true, kernel_size = true, stride = true, padding = true, dilation = true },
    "pool3d")
  local rest = {}
  for k, v in pairs(opts) do
    if k ~= "mode" then rest[k] = v end
  end
  return pool(args.choice(opts.mode or "sum", MODES, "mode", "pool3d"), x, rest, "pool3d")
end

--- sum_pool3d(x[, {kernel_size = 2, stride = 2, padding = 0, dilation = 1}])
function M.sum_pool3d(x, opts) return pool("sum", x, opts, "sum_pool3d") end
--- avg_pool3d(x[, {kernel_size = 2, stride = 2, padding = 0, dilation = 1}])
function M.avg_pool3d(x, opts) return pool("avg", x, opts, "avg_pool3d") end
--- max_pool3d(x[, {kernel_size = 2, stride = 2, padding = 0, dilation = 1}])
function M.max_pool3d(x, opts) return pool("max", x, opts, "max_pool3d") end

local function global(mode, x, fname)
  args.sparse(x, fname)
  return csparse.global_pool(mode, x, fname)
end

--- global_sum_pool(x) -> Tensor (B, C): per batch of x.batch_counts, the sum of its rows.
function M.global_sum_pool(x) return global("sum", x, "global_sum_pool") end
--- global_avg_pool(x) -> Tensor (B, C): the mean of each batch's rows (0 for an empty batch).
function M.global_avg_pool(x) return global("avg", x, "global_avg_pool") end
--- global_max_pool(x) -> Tensor (B, C): each batch's maximum (an empty batch is an error).
function M.global_max_pool(x) return global("max", x, "global_max_pool") end

return M
