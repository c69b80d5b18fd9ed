-- The sparse pooling modules, as mlx_lattice.nn.pool: Pool3d (mode "sum",
-- "avg" or "max"), SumPool3d, AvgPool3d, MaxPool3d over a kernel (options
-- kernel_size = 2, stride = 2, padding = 0, dilation = 1), and GlobalSumPool,
-- GlobalAvgPool, GlobalMaxPool returning dense (B, C). No parameters. The
-- types are in core/lua/sparse_pool.c; their forward is the op of lattice.ops.
local core = require "lattice.core"
local args = require "lattice.ops.args"

local cnn = core.nn
local M = {}

local MODES = { sum = true, avg = true, max = true }
local SPEC = { kernel_size = true, stride = true, padding = true, dilation = true }

local function fields(mode)
  return { training = true, _order = {}, _frozen = {}, mode = mode }
end

local function t(v) return "(" .. table.concat(v, ", ") .. ")" end

-- name: the type; mode: its mode, nil for Pool3d (an option then).
local function local_pool(name, mode)
  M[name] = args.api(function(opts)
    local allowed = mode and SPEC or { mode = true, kernel_size = true, stride = true, padding = true, dilation = true }
    opts = args.options(opts, allowed, name)
    local f = fields(mode or args.choice(opts.mode or "sum", MODES, "mode", name))
    local spec = args.pool_spec(opts, name)
    f.kernel_size, f.stride, f.padding, f.dilation = spec.size, spec.stride, spec.padding, spec.dilation
    return cnn.sparse_pool(name, f)
  end)
  cnn.methods[name]._extra_repr = function(m)
    return ("%skernel_size=%s, stride=%s, padding=%s, dilation=%s"):format(mode and "" or ("mode=%q, "):format(m.mode),
      t(m.kernel_size), t(m.stride), t(m.padding), t(m.dilation))
  end
end

local function global_pool(name, mode)
  M[name] = args.api(function(opts)
    args.options(opts, {}, name)
    return cnn.sparse_pool(name, fields(mode))
  end)
end

--- Pool3d([{mode = "sum", kernel_size = 2, stride = 2, padding = 0, dilation = 1}]); m(x) -> SparseTensor
local_pool("Pool3d")
--- SumPool3d, AvgPool3d, MaxPool3d([{kernel_size = 2, stride = 2, padding = 0, dilation = 1}])
local_pool("SumPool3d", "sum")
local_pool("AvgPool3d", "avg")
local_pool("MaxPool3d", "max")
--- GlobalSumPool(), GlobalAvgPool(), GlobalMaxPool(); m(x) -> Tensor (B, C), x with batch_counts
global_pool("GlobalSumPool", "sum")
global_pool("GlobalAvgPool", "avg")
global_pool("GlobalMaxPool", "max")

return M
