-- lattice.nn: the module protocol, the built-in layers, containers,
-- initialisers, losses and nn.value_and_grad.
local lattice = require "lattice"
local autograd = require "lattice.autograd"
local module = require "lattice.nn.module"
local layers = require "lattice.nn.layers"
local containers = require "lattice.nn.containers"
local sparse_layers = require "lattice.nn.sparse_layers"
local sparse_pool = require "lattice.nn.sparse_pool"
local quantized = require "lattice.nn.quantized"
local quantized_conv = require "lattice.nn.quantized_conv"

local nn = {
  Module = module.Module,
  is_module = module.is_module,
  init = require "lattice.nn.initializers",
  losses = require "lattice.nn.losses",
}
for k, v in pairs(layers) do nn[k] = v end
for k, v in pairs(containers) do nn[k] = v end
for k, v in pairs(sparse_layers) do nn[k] = v end
for k, v in pairs(sparse_pool) do nn[k] = v end
for k, v in pairs(quantized) do nn[k] = v end
for k, v in pairs(quantized_conv) do nn[k] = v end
nn.MLP = require("lattice.nn.mlp").MLP

-- Puts `params` (a tree of tensors mirroring the model's) into the model,
-- writing the fields directly; returns what was written, for restore. The
-- {} that a tree keeps in a list for a frozen parameter writes nothing.
local function put(model, params)
  local written = {}
  local function into(holder_of, tree)
    local f = module.is_module(holder_of) and module.fields(holder_of) or holder_of
    for k, v in pairs(tree) do
      local cur = rawget(f, k)
      if module.is_module(cur) or (type(cur) == "table" and getmetatable(cur) == nil) then
        into(cur, v)
      elseif lattice.is_tensor(cur) and lattice.is_tensor(v) then
        written[#written + 1] = {f, k, cur, v}
        rawset(f, k, v)
      end
    end
  end
  into(model, params)
  return written
end

-- Puts back the original tensors where the forward has not replaced ours,
-- and closes the tracked views: left to the GC they would share the
-- parameters' storage, and an optimizer could no longer update those in place.
local function restore(written)
  for i = #written, 1, -1 do
    local w = written[i]
    if rawget(w[1], w[2]) == w[4] then rawset(w[1], w[2], w[3]) end
    w[4]:close()
  end
end

--- nn.value_and_grad(model, fn) -> function(...) returning fn(...)'s value,
-- the gradients of model:trainable_parameters() (a tree of the same shape),
-- and any extra values fn returned. fn takes what the returned function is
-- given, usually the model first: step(model, x, y). Frozen parameters get no
-- gradient and cost no backward work. The model's own tensors are back in
-- place when the call returns, errors included; inside fn the model holds
-- tracked views of them, which are closed when the call returns (keep
-- results, not parameters read inside fn).
function nn.value_and_grad(model, fn)
  if not module.is_module(model) then error("nn.value_and_grad: model must be a module, got " .. type(model), 2) end
  if type(fn) ~= "function" then error("nn.value_and_grad: fn must be a function, got " .. type(fn), 2) end
  -- `call` is per call, so a failed call made inside fn (a nested one)
  -- cannot restore the tensors of the call still running.
  local vg = autograd.value_and_grad(function(call, params, ...)
    call.written = put(model, params)
    return fn(...)
  end, 2)
  local function finish(call, ok, ...)
    if call.written then restore(call.written) end
    if not ok then error((...), 0) end
    return ...
  end
  return function(...)
    local call = {}
    return finish(call, pcall(vg, call, model:trainable_parameters(), ...))
  end
end

return nn
