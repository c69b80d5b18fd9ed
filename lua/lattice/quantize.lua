-- Quantizing whole models in place, as MLX's nn.quantize does:
--   lattice.quantize_model(model[, {bits = 4, group_size = 64, mode = "affine",
--                                   quantize_input = false, predicate = nil}])
--   lattice.dequantize_model(model)
-- quantize_model replaces every leaf module that has to_quantized (Linear,
-- Embedding) by its quantized form; norms and everything else stay. A
-- predicate(path, module) chooses: false or nil leaves the module, true
-- quantizes it with the call's options, a table gives its own to_quantized
-- options. quantize_input applies to Linear layers (QQLinear); embeddings are
-- quantized weight-only. Every replacement is made before any is put in
-- place, so an error leaves the model as it was. dequantize_model puts the
-- float layers back (their weights dequantized). Both return the model.
local module = require "lattice.nn.module"

local M = {}

local function check_model(model, fname)
  if not module.is_module(model) then error(("%s: model must be a module, got %s"):format(fname, type(model)), 3) end
end

-- The modules under model (not model itself) with no module below them.
local function leaves(model)
  local out = {}
  model:apply_to_modules(function(name, mod)
    if name ~= "" and next(mod:children()) == nil then out[#out + 1] = { name, mod } end
  end)
  return out
end

-- The to_quantized options for one module, or nil to leave it.
local function choice(opts, name, mod)
  local pick = true
  if opts.predicate then pick = opts.predicate(name, mod) end
  if pick == false or pick == nil then return nil end
  if type(pick) == "table" then return pick end
  if pick ~= true then
    error(("quantize_model: predicate must return a boolean or an options table, got %s for '%s'"):format(type(pick),
      name), 0)
  end
  local o = { bits = opts.bits, group_size = opts.group_size, mode = opts.mode }
  if opts.quantize_input and module.type_name(mod) == "Linear" then o.quantize_input = true end
  return o
end

-- Replaces the modules in `plan` ({path, new} pairs), all of them.
local function put(model, plan)
  for _, p in ipairs(plan) do model:set_child(p[1], p[2]) end
  return model
end

-- Calls fn, naming the module in its error (instead of a source position).
local function named(name, fn, ...)
  local ok, r = pcall(fn, ...)
  if not ok then error(("%s: %s"):format(name, (tostring(r):gsub("^[^:]*:%d+: ", ""))), 0) end
  return r
end

function M.quantize_model(model, opts)
  check_model(model, "quantize_model")
  opts = module.check_options(opts,
    { bits = true, group_size = true, mode = true, quantize_input = true, predicate = true }, "quantize_model")
  if opts.predicate ~= nil and type(opts.predicate) ~= "function" then
    error("quantize_model: predicate must be a function, got " .. type(opts.predicate), 2)
  end
  if opts.quantize_input ~= nil and type(opts.quantize_input) ~= "boolean" then
    error("quantize_model: quantize_input must be a boolean, got " .. type(opts.quantize_input), 2)
  end
  -- bits and group_size left out take the mode's defaults (affine: 4 and 64)
  opts = { bits = opts.bits, group_size = opts.group_size, mode = opts.mode or "affine",
    quantize_input = opts.quantize_input, predicate = opts.predicate }
  local plan = {}
  for _, leaf in ipairs(leaves(model)) do
    local name, mod = leaf[1], leaf[2]
    local o = (mod.to_quantized or opts.predicate) and choice(opts, name, mod)
    if o then
      if not mod.to_quantized then
        error(("quantize_model: '%s' (%s) cannot be quantized"):format(name, module.type_name(mod)), 2)
      end
      plan[#plan + 1] = { name, named(name, mod.to_quantized, mod, o) }
    end
  end
  return put(model, plan)
end

function M.dequantize_model(model)
  check_model(model, "dequantize_model")
  local plan = {}
  for _, leaf in ipairs(leaves(model)) do
    local mod = leaf[2]
    if mod.dequantized and mod.quantized_weight then plan[#plan + 1] = { leaf[1], mod:dequantized() } end
  end
  return put(model, plan)
end

return M
