-- lattice: the package entry. The C module (lattice.core) holds the tensor
-- type and the ops; this file arranges them as the Lua API (MLX-style names at
-- the top level, tensor methods) and adds what is written in Lua.
local core = require "lattice.core"
local autograd = require "lattice.autograd"
local format = require "lattice.format"

local lattice = {}

-- Stay in lattice.core: the tape primitives, and the hooks that benchmarks and
-- specs measure or compare kernels with (bench/, spec/isa_spec.lua). The rest
-- is public.
local internal = {
  tape_begin = true, tape_end = true, tape_watch = true, tape_backward = true, tape_size = true, nn = true,
  peak_gflops = true, bench_memcpy = true, bench_sgemm = true, unary_with_isa = true, unary_grad_with_isa = true,
  exp_shift_with_isa = true, optim_update = true, optim_check = true, optim_state_shapes = true, sum_squares = true,
  SparseTensor = true, SparseTensor_methods = true, kernel_relation = true, sparse_conv = true,
  attention_with_isa = true, attention_grad_with_isa = true, gemm_tile_with_isa = true,
  -- lattice.data's tokenizer kernels and the directory operations of
  -- lattice.train and lattice.lora
  tokens_bytes = true, tokens_char_vocab = true, tokens_chars = true, bpe_train = true, bpe_check = true,
  bpe_encode = true, pieces = true, fs_mkdirs = true, fs_remove_tree = true, fs_write = true, fs_kind = true,
  fs_list = true, fs_tempdir = true,
  sparse = true,
  ggemm_with_isa = true, ggemm_wgrad_with_isa = true, bench_ggemm = true, bench_ggemm_wgrad = true,
  sgemm_with_isa = true, bench_lt_sgemm = true,
  quant_linear_with_isa = true, quant_linear_grad_with_isa = true, quant_pack_int8 = true, quant_linear_int8 = true,
  -- the token choosers behind lattice.sample and lattice.topk
  sample_logits = true, topk_indices = true,
  -- the KV cache's in-place write (lattice.transformer.KVCache)
  kv_cache_write = true,
}
for name, value in pairs(core) do
  if not internal[name] then lattice[name] = value end
end

lattice.value_and_grad = autograd.value_and_grad
lattice.grad = autograd.grad

--- topk(x, k): the k largest entries of each row of x's last axis, largest
-- first (ties to the lower position), and their int64 positions (0-based).
-- The values are take_along_axis of x, so they carry its gradient.
function lattice.topk(x, k)
  local idx = core.topk_indices(x, k)
  return core.take_along_axis(x, idx, -1), idx
end

-- The tensor methods, listed: x:sum(1) is lattice.sum(x, 1). Each is a
-- function whose first argument is a tensor; a new top-level function becomes
-- a method only by being named here.
local method_names = {
  -- elementwise
  "abs", "add", "clip", "cos", "divide", "equal", "exp", "floor_divide", "gelu", "gelu_approx", "greater",
  "greater_equal", "leaky_relu", "less", "less_equal", "log", "maximum", "minimum", "multiply", "neg", "not_equal",
  "power", "relu", "remainder", "rsqrt", "sigmoid", "silu", "sin", "softplus", "sqrt", "square", "subtract", "tanh",
  "where",
  -- reductions, softmax
  "argmax", "argmin", "logsumexp", "max", "mean", "min", "sum", "var", "softmax", "log_softmax",
  -- linear algebra, norms, indexing, losses
  "matmul", "linear", "linear_act", "rope", "topk", "dropout", "layer_norm", "rms_norm", "take", "take_along_axis",
  "gather", "embedding", "cross_entropy", "mse_loss",
  -- layout and conversion
  "astype", "broadcast_to", "contiguous", "expand_dims", "reshape", "slice", "split", "squeeze", "transpose",
  "item", "tolist", "zeros_like", "ones_like", "shares_storage", "stop_gradient", "close",
}
local methods = core.Tensor
for _, name in ipairs(method_names) do
  methods[name] = assert(lattice[name] or core[name], name)
end
-- lattice.Tensor is the methods table, as `string` is for strings: x:f(...)
-- is lattice.Tensor.f(x, ...), and a function stored there becomes a method.
lattice.Tensor = methods

local meta = getmetatable(core.zeros({}))
meta.__tostring = format.tostring
meta.__name = "lattice.Tensor"

-- The libraries written on top of the tensors require "lattice" themselves:
-- it is registered first, so they get this table.
package.loaded["lattice"] = lattice
lattice.SparseTensor = require("lattice.sparse").SparseTensor
lattice.ops = require "lattice.ops"
lattice.nn = require "lattice.nn"
lattice.optim = require "lattice.optim"
-- Transformers: the component registries, then the components that fill them.
local registry = require "lattice.registry"
lattice.Registry = registry.Registry
lattice.registry = registry.registries
lattice.transformer = require "lattice.transformer"
lattice.nn.ConfigurableBlock = lattice.transformer.ConfigurableBlock
lattice.nn.LanguageModel = lattice.transformer.LanguageModel
for k, v in pairs(require "lattice.quantize") do lattice[k] = v end

-- Loaded on first use: lattice.train, lattice.data, lattice.lora,
-- lattice.sample (generation) and lattice.models (presets, the converter).
-- __lazy names them for the REPL's completion, which runs no __index function.
local lazy = { train = "lattice.train", data = "lattice.data", lora = "lattice.lora", sample = "lattice.sample",
  models = "lattice.models" }
setmetatable(lattice, { __lazy = lazy, __index = function(t, k)
  local name = lazy[k]
  if name == nil then return nil end
  local v = require(name)
  rawset(t, k, v)
  return v
end })

return lattice
