-- lattice: the package entry. The C module (lattice.core) holds the tensor
-- type and the ops; this file arranges them as the Lua API (MLX-style names at
-- the top level, tensor methods) and adds what is written in Lua.
local core = require "lattice.core"
local autograd = require "lattice.autograd"
local format = require "lattice.format"

local lattice = {}

-- Tape primitives stay in lattice.core; everything else is public.
local internal = {
  tape_begin = true, tape_end = true, tape_watch = true, tape_backward = true, tape_size = true, Tensor = true,
}
for name, value in pairs(core) do
  if not internal[name] then lattice[name] = value end
end

lattice.value_and_grad = autograd.value_and_grad
lattice.grad = autograd.grad

-- Every function whose first argument is a tensor is also a method:
-- x:sum(1) is lattice.sum(x, 1). Creation functions and namespaces are not.
local not_methods = {
  array = true, zeros = true, ones = true, full = true, arange = true, eye = true, random = true,
  concatenate = true, stack = true, is_tensor = true, value_and_grad = true, grad = true,
  isa = true, peak_gflops = true, bench_memcpy = true, bench_sgemm = true, unary_with_isa = true,
  unary_grad_with_isa = true, load_safetensors = true, save_safetensors = true, set_num_threads = true,
  num_threads = true, blas_info = true, memory_stats = true, set_cache_limit = true, clear_cache = true, now = true,
}
local methods = core.Tensor
for name, value in pairs(lattice) do
  if type(value) == "function" and not not_methods[name] and methods[name] == nil then methods[name] = value end
end

local meta = getmetatable(core.zeros({}))
meta.__tostring = format.tostring
meta.__name = "lattice.Tensor"

return lattice
