-- lattice.lora: low-rank adaptation (Hu et al. 2021) with the names and
-- semantics of the seed's lmxlab.core.lora and lmxlab.core.qlora:
-- LoRALinear, apply_lora, merge_lora, lora_parameters, save_lora_adapters,
-- load_lora_adapters; LoRAQuantizedLinear and apply_qlora.
--
-- LoRALinear computes y = x W^T + b + (alpha / rank) (x A) B with W (out, in)
-- and b frozen, A (in, rank) Kaiming-normal and B (rank, out) zero at first,
-- so it starts as the layer it adapts. LoRAQuantizedLinear is the same with W
-- a frozen QuantizedWeight (QLoRA): its product is the quantized kernel's,
-- and the input gradient goes back through it tile by tile (lattice.linear
-- with a QuantizedWeight), never dequantizing W whole. A SparseTensor input
-- has its features transformed and its coordinates kept, as the sparse
-- nn.Linear does.
local lattice = require "lattice"
local core = require "lattice.core"
local module = require "lattice.nn.module"
local checks = require "lattice.checks"
local nn = require "lattice.nn"

local check_options = module.check_options
local is_sparse = require("lattice.sparse").is_sparse

local M = {}

local LoRALinear = module.Module:extend("LoRALinear")
M.LoRALinear = LoRALinear
local LoRAQuantizedLinear = module.Module:extend("LoRAQuantizedLinear")
M.LoRAQuantizedLinear = LoRAQuantizedLinear

-- (a tail call: the check takes the wrapper's place, and its level)
local function positive_integer(v, what, who, level) return checks.integer(v, 1, what, who, level) end
local finite_number = checks.finite

-- rank and alpha from opts, with the seed's defaults (8, 1.0).
local function rank_alpha(opts, who, level)
  local rank = opts.rank == nil and 8 or positive_integer(opts.rank, "rank", who, level)
  local alpha = opts.alpha == nil and 1.0 or finite_number(opts.alpha, "alpha", who, level)
  return rank, alpha + 0.0 -- a float, as the seed types it (and writes it in adapter_config.json)
end

-- The LoRA matrices and configuration on a module whose weight (out, in) is set.
local function add_adapter(self, input_dims, output_dims, rank, alpha)
  self.input_dims, self.output_dims, self.rank, self.alpha = input_dims, output_dims, rank, alpha
  self.scaling = alpha / rank
  self.lora_A = lattice.random.normal({ input_dims, rank }, { scale = math.sqrt(2 / input_dims) })
  self.lora_B = lattice.zeros({ rank, output_dims })
  self:freeze({ keys = { "weight", "bias" }, recurse = false })
end

--- LoRALinear(input_dims, output_dims[, {rank = 8, alpha = 1.0, bias = false}]):
-- the base weight uniform in ±1/sqrt(input_dims) and the bias zeros, as the seed
-- makes them (from_linear takes an existing layer's instead).
function LoRALinear:init(input_dims, output_dims, opts)
  local who = "LoRALinear"
  opts = check_options(opts, { rank = true, alpha = true, bias = true, _base = true }, who)
  if opts._base then -- from_linear: the base layer's tensors, no draws for them
    self.weight, self.bias = opts._base.weight, opts._base.bias
  else
    positive_integer(input_dims, "input_dims", who, 4)
    positive_integer(output_dims, "output_dims", who, 4)
    if opts.bias ~= nil and type(opts.bias) ~= "boolean" then
      error(who .. ": bias must be a boolean, got " .. type(opts.bias), 3)
    end
    local scale = math.sqrt(1 / input_dims)
    self.weight = lattice.random.uniform(-scale, scale, { output_dims, input_dims })
    if opts.bias then self.bias = lattice.zeros({ output_dims }) end
  end
  local rank, alpha = rank_alpha(opts, who, 5)
  add_adapter(self, input_dims, output_dims, rank, alpha)
end

-- x (..., in) -> (..., out)
function LoRALinear:_dense(x)
  local y = lattice.linear(x, self.weight, self.bias)
  local delta = lattice.matmul(lattice.matmul(x, self.lora_A), self.lora_B)
  return y + delta * self.scaling
end

function LoRALinear:forward(x)
  if is_sparse(x) then return x:with_feats(self:_dense(x.feats)) end
  if not lattice.is_tensor(x) then
    error("LoRALinear: input must be a lattice.Tensor or a SparseTensor, got " .. type(x), 0)
  end
  local n = x.shape[x.ndim]
  if x.ndim == 0 or n ~= self.input_dims then
    error(("LoRALinear: input has %d features on its last axis, the layer takes %d"):format(x.ndim == 0 and 0 or n,
      self.input_dims), 0)
  end
  return self:_dense(x)
end

function LoRALinear:_extra_repr()
  return ("input_dims=%d, output_dims=%d, rank=%d, alpha=%g, bias=%s"):format(self.input_dims, self.output_dims,
    self.rank, self.alpha, tostring(self.bias ~= nil))
end

local function is_linear(m) return module.is_module(m) and module.type_name(m) == "Linear" end
-- Either kind of adapted layer.
local function is_lora(m)
  local mt = getmetatable(m)
  return mt == LoRALinear or mt == LoRAQuantizedLinear
end
M.is_lora = is_lora

--- LoRALinear.from_linear(linear[, {rank = 8, alpha = 1.0}]): adapts an
-- nn.Linear; the base weight and bias are the linear's own tensors (shared,
-- frozen), only the LoRA matrices are drawn.
function LoRALinear.from_linear(linear, opts)
  local who = "LoRALinear.from_linear"
  if not is_linear(linear) then
    error(("%s: linear must be an nn.Linear, got %s"):format(who, module.is_module(linear)
      and module.type_name(linear) or type(linear)), 2)
  end
  opts = check_options(opts, { rank = true, alpha = true }, who)
  local rank, alpha = rank_alpha(opts, who, 3)
  local w = linear.weight
  return LoRALinear(w.shape[2], w.shape[1], { rank = rank, alpha = alpha,
    _base = { weight = w, bias = linear.bias } })
end

-- W + scaling (A B)^T in the weight's dtype, computed in float32 (or float64).
local function merged_weight(self)
  local w = self.weight
  local cdt = w.dtype == "float64" and "float64" or "float32"
  local delta = lattice.matmul(self.lora_A:astype(cdt), self.lora_B:astype(cdt)):transpose() * self.scaling
  return (w:astype(cdt) + delta):astype(w.dtype)
end

--- lora:to_linear(): an nn.Linear with the merged weight W + scaling (A B)^T
-- and the same bias tensor.
function LoRALinear:to_linear()
  local w = self.weight
  local linear = nn.Linear(w.shape[2], w.shape[1], { bias = self.bias ~= nil })
  local f = module.fields(linear)
  f.weight, f.bias = merged_weight(self), self.bias
  return linear
end

-- ---- QLoRA ----

-- The packed parts never train, whatever unfreeze is asked (MLX's names).
LoRAQuantizedLinear._buffers = { "weight", "scales", "biases" }

-- {group_size, bits} per mode, as nn.QuantizedLinear (MLX) defaults them.
local QUANT_DEFAULTS = { affine = { 64, 4 }, mxfp8 = { 32, 8 }, nvfp4 = { 16, 4 } }

--- LoRAQuantizedLinear(input_dims, output_dims[, {rank = 8, alpha = 1.0,
-- bias = false, group_size, bits, mode = "affine"}]): group_size and bits
-- default per mode as nn.QuantizedLinear's (affine 64 and 4); a base weight
-- uniform in ±1/sqrt(input_dims) quantized as the seed makes it
-- (from_quantized takes an existing layer's parts instead).
function LoRAQuantizedLinear:init(input_dims, output_dims, opts)
  local who = "LoRAQuantizedLinear"
  opts = check_options(opts, { rank = true, alpha = true, bias = true, group_size = true, bits = true, mode = true,
    _base = true }, who)
  local base = opts._base
  if not base then
    positive_integer(input_dims, "input_dims", who, 4)
    positive_integer(output_dims, "output_dims", who, 4)
    if opts.bias ~= nil and type(opts.bias) ~= "boolean" then
      error(who .. ": bias must be a boolean, got " .. type(opts.bias), 3)
    end
    local mode = opts.mode == nil and "affine" or opts.mode
    local d = QUANT_DEFAULTS[mode] or {}
    local cfg = { mode = mode, group_size = opts.group_size or d[1], bits = opts.bits or d[2] }
    local scale = math.sqrt(1 / input_dims)
    local ok, qw = pcall(lattice.quantize_weight, lattice.random.uniform(-scale, scale, { output_dims, input_dims }),
      cfg)
    if not ok then error((tostring(qw):gsub("^quantize_weight:", who .. ":", 1)), 3) end
    base = { weight = qw.weight, scales = qw.scales, biases = qw.biases, bits = qw.bits, group_size = qw.group_size,
      mode = qw.mode, bias = opts.bias and lattice.zeros({ output_dims }) or nil }
  end
  self.weight, self.scales, self.biases, self.bias = base.weight, base.scales, base.biases, base.bias
  self.bits, self.group_size, self.mode = base.bits, base.group_size, base.mode
  local rank, alpha = rank_alpha(opts, who, 5)
  add_adapter(self, input_dims, output_dims, rank, alpha)
  self:freeze({ keys = { "weight", "scales", "biases", "bias" }, recurse = false })
end

--- ql:quantized_weight(): the QuantizedWeight of the layer's parts (shared).
function LoRAQuantizedLinear:quantized_weight()
  return lattice.QuantizedWeight(self.weight, self.scales, self.biases,
    { bits = self.bits, group_size = self.group_size, mode = self.mode })
end

-- x (..., in) -> (..., out)
function LoRAQuantizedLinear:_dense(x)
  local y = lattice.linear(x, self:quantized_weight(), self.bias)
  local delta = lattice.matmul(lattice.matmul(x, self.lora_A), self.lora_B)
  return y + delta * self.scaling
end

LoRAQuantizedLinear.forward = function(self, x)
  if is_sparse(x) then return x:with_feats(self:_dense(x.feats)) end
  if not lattice.is_tensor(x) then
    error("LoRAQuantizedLinear: input must be a lattice.Tensor or a SparseTensor, got " .. type(x), 0)
  end
  local n = x.shape[x.ndim]
  if x.ndim == 0 or n ~= self.input_dims then
    error(("LoRAQuantizedLinear: input has %d features on its last axis, the layer takes %d"):format(
      x.ndim == 0 and 0 or n, self.input_dims), 0)
  end
  return self:_dense(x)
end

function LoRAQuantizedLinear:_extra_repr()
  return ("input_dims=%d, output_dims=%d, rank=%d, alpha=%g, bias=%s, group_size=%d, bits=%d, mode=%s"):format(
    self.input_dims, self.output_dims, self.rank, self.alpha, tostring(self.bias ~= nil), self.group_size, self.bits,
    self.mode)
end

local function is_quantized_linear(m) return module.is_module(m) and module.type_name(m) == "QuantizedLinear" end

--- LoRAQuantizedLinear.from_quantized(ql[, {rank = 8, alpha = 1.0}]): adapts
-- an nn.QuantizedLinear; the packed parts and bias are the layer's own
-- tensors (shared, frozen), only the LoRA matrices are drawn.
function LoRAQuantizedLinear.from_quantized(ql, opts)
  local who = "LoRAQuantizedLinear.from_quantized"
  if not is_quantized_linear(ql) then
    error(("%s: ql must be an nn.QuantizedLinear, got %s"):format(who, module.is_module(ql)
      and module.type_name(ql) or type(ql)), 2)
  end
  opts = check_options(opts, { rank = true, alpha = true }, who)
  local rank, alpha = rank_alpha(opts, who, 3)
  local shape = ql:quantized_weight().shape
  return LoRAQuantizedLinear(shape[2], shape[1], { rank = rank, alpha = alpha, _base = {
    weight = ql.weight, scales = ql.scales, biases = ql.biases, bias = ql.bias, bits = ql.bits,
    group_size = ql.group_size, mode = ql.mode } })
end

--- ql:to_linear(): an nn.Linear with the dequantized weight plus scaling
-- (A B)^T, and the same bias tensor: the layer merged into float weights.
function LoRAQuantizedLinear:to_linear()
  local w = self:quantized_weight():dequantize()
  local linear = nn.Linear(w.shape[2], w.shape[1], { bias = self.bias ~= nil })
  local f = module.fields(linear)
  f.weight, f.bias = merged_weight({ weight = w, lora_A = self.lora_A, lora_B = self.lora_B,
    scaling = self.scaling }), self.bias
  return linear
end

-- ---- over a model ----

local DEFAULT_TARGETS = { "attention" }

-- The dotted components of a name ("blocks.0.attention.q_proj").
local function parts(name)
  local out = {}
  for p in name:gmatch("[^.]+") do out[#out + 1] = p end
  return out
end

-- Whether the components of `target` appear, consecutively, among those of name.
local function matches(name_parts, target_parts)
  for i = 1, #name_parts - #target_parts + 1 do
    local ok = true
    for j = 1, #target_parts do ok = ok and name_parts[i + j - 1] == target_parts[j] end
    if ok then return true end
  end
  return false
end

local function check_targets(targets, who)
  if targets == nil then return DEFAULT_TARGETS end
  if type(targets) == "string" then targets = { targets } end
  if type(targets) ~= "table" or #targets == 0 then
    error(who .. ": targets must be a non-empty list of names", 3)
  end
  for i, t in ipairs(targets) do
    if type(t) ~= "string" or t == "" or t:find("^%.") or t:find("%.$") or t:find("%.%.") then
      error(("%s: targets[%d] must be a dotted name such as 'attention' or 'ffn.up', got %s"):format(who, i,
        tostring(t)), 3)
    end
  end
  return targets
end

-- {dotted name, module} of every module under model (not model itself), in walk order.
local function named_modules(model)
  local out = {}
  module.walk(model, nil, function(m, name) if name ~= "" then out[#out + 1] = { name, m } end end)
  return out
end

-- Replaces, in place, every module of model that is_base selects and whose
-- dotted name holds a target by make(module, {rank, alpha}); then freezes
-- everything but the LoRA matrices. `what` names the base type in messages.
local function adapt(model, opts, who, is_base, what, make)
  if not module.is_module(model) then error(who .. ": model must be a module, got " .. type(model), 2) end
  opts = check_options(opts, { rank = true, alpha = true, targets = true }, who)
  local rank, alpha = rank_alpha(opts, who, 3)
  local targets = check_targets(opts.targets, who)
  local chosen, used = {}, {}
  for _, nm in ipairs(named_modules(model)) do
    if is_base(nm[2]) then
      local np = parts(nm[1])
      for i, t in ipairs(targets) do
        if matches(np, parts(t)) then
          used[i] = true
          chosen[#chosen + 1] = nm
          break
        end
      end
    end
  end
  for i, t in ipairs(targets) do
    if not used[i] then error(("%s: no %s in the model matches the target '%s'"):format(who, what, t), 2) end
  end
  for _, nm in ipairs(chosen) do model:set_child(nm[1], make(nm[2], { rank = rank, alpha = alpha })) end
  model:freeze()
  model:unfreeze({ keys = { "lora_A", "lora_B" } })
  return model
end

--- apply_lora(model[, {rank = 8, alpha = 1.0, targets = {"attention"}}]):
-- replaces, in place, every nn.Linear whose dotted name holds one of the
-- targets as whole components ("attention" matches blocks.0.attention.q_proj,
-- "ffn.up" matches blocks.0.ffn.up; lmxlab names the attention projections
-- q_proj, k_proj, v_proj, o_proj under `attention` and the FFN's gate, up,
-- down under `ffn`) by a LoRALinear, then freezes everything but the LoRA
-- matrices. A target that matches no nn.Linear is an error, raised before
-- the model changes. Returns the model.
function M.apply_lora(model, opts)
  return adapt(model, opts, "apply_lora", is_linear, "nn.Linear", LoRALinear.from_linear)
end

--- apply_qlora(model[, {rank = 8, alpha = 1.0, targets = {"attention"}}]):
-- apply_lora for a quantized model (lattice.quantize_model first): every
-- nn.QuantizedLinear the targets match becomes a LoRAQuantizedLinear, and
-- only the LoRA matrices train.
function M.apply_qlora(model, opts)
  return adapt(model, opts, "apply_qlora", is_quantized_linear, "nn.QuantizedLinear",
    LoRAQuantizedLinear.from_quantized)
end

--- merge_lora(model): every LoRALinear (and LoRAQuantizedLinear) under model
-- replaced by its to_linear(), an nn.Linear; the model returned (a LoRA layer
-- given itself comes back merged).
function M.merge_lora(model)
  if not module.is_module(model) then error("merge_lora: model must be a module, got " .. type(model), 2) end
  if is_lora(model) then return model:to_linear() end
  local found = {}
  for _, nm in ipairs(named_modules(model)) do
    if is_lora(nm[2]) then found[#found + 1] = nm end
  end
  for _, nm in ipairs(found) do model:set_child(nm[1], nm[2]:to_linear()) end
  return model
end

local function is_lora_key(owner, key) return is_lora(owner) and (key == "lora_A" or key == "lora_B") end

--- lora_parameters(model): the tree of parameters() holding only the LoRA matrices.
function M.lora_parameters(model)
  if not module.is_module(model) then error("lora_parameters: model must be a module, got " .. type(model), 2) end
  return module.tree_of(model, is_lora_key)
end

-- {dotted name = {holder, key, tensor}} of the LoRA matrices.
local function lora_slots(model)
  local slots, any = {}, false
  module.walk(model, function(holder, key, v, name, owner, top)
    if is_lora_key(owner, top) then
      slots[name], any = { holder, key, v }, true
    end
  end)
  return slots, any
end

-- rank and alpha shared by every LoRA layer, or nil.
local function common_config(model)
  local rank, alpha, same = nil, nil, true
  for _, nm in ipairs(named_modules(model)) do
    if is_lora(nm[2]) then
      same = same and (rank == nil or (rank == nm[2].rank and alpha == nm[2].alpha))
      rank, alpha = nm[2].rank, nm[2].alpha
    end
  end
  if same then return rank, alpha end
end

--- save_lora_adapters(dir, model[, {rank, alpha, metadata}]): dir/adapter.safetensors
-- (the LoRA matrices under their dotted names) and dir/adapter_config.json
-- ({rank, alpha} and the metadata's entries), as the seed writes them; each
-- file replaced atomically. rank and alpha default to the layers' own when
-- they all share them.
function M.save_lora_adapters(dir, model, opts)
  local who = "save_lora_adapters"
  if type(dir) ~= "string" then error(who .. ": dir must be a string, got " .. type(dir), 2) end
  if not module.is_module(model) then error(who .. ": model must be a module, got " .. type(model), 2) end
  opts = check_options(opts, { rank = true, alpha = true, metadata = true }, who)
  if opts.metadata ~= nil and type(opts.metadata) ~= "table" then
    error(who .. ": metadata must be a table, got " .. type(opts.metadata), 2)
  end
  local slots, any = lora_slots(model)
  if not any then error(who .. ": the model has no LoRA layers (apply_lora first)", 2) end
  local rank, alpha = common_config(model)
  local config = {}
  for k, v in pairs(opts.metadata or {}) do config[k] = v end
  config.rank = opts.rank == nil and rank or positive_integer(opts.rank, "rank", who, 2)
  config.alpha = opts.alpha == nil and alpha or finite_number(opts.alpha, "alpha", who, 2) + 0.0
  local ok, text = pcall(lattice.json.encode, config, { indent = 2 })
  if not ok then error(("%s: metadata: %s"):format(who, text), 2) end
  local tensors = {}
  for name, slot in pairs(slots) do tensors[name] = slot[3] end
  core.fs_mkdirs(dir, who)
  local saved, err = pcall(lattice.save_safetensors, dir .. "/adapter.safetensors", tensors)
  if not saved then error((tostring(err):gsub("^save_safetensors:", who .. ":", 1)), 2) end
  core.fs_write(dir .. "/adapter_config.json", text .. "\n", who)
  return model
end

local function read_config(path, who)
  local f = io.open(path, "rb")
  if not f then return {} end
  local text = f:read("a")
  f:close()
  local ok, config = pcall(lattice.json.decode, text)
  if not ok then error(("%s: %s: %s"):format(who, path, config), 3) end
  if type(config) ~= "table" then error(("%s: %s does not hold a JSON object"):format(who, path), 3) end
  return config
end

--- load_lora_adapters(dir, model) -> the adapter's config: the LoRA matrices
-- of dir/adapter.safetensors into model, which must hold LoRA layers of the
-- same names and shapes (all of them, no others: a mismatched adapter is an
-- error and changes nothing).
function M.load_lora_adapters(dir, model)
  local who = "load_lora_adapters"
  if type(dir) ~= "string" then error(who .. ": dir must be a string, got " .. type(dir), 2) end
  if not module.is_module(model) then error(who .. ": model must be a module, got " .. type(model), 2) end
  if core.fs_kind(dir) ~= "directory" then error(("%s: adapter directory not found: %s"):format(who, dir), 2) end
  local path = dir .. "/adapter.safetensors"
  if core.fs_kind(path) ~= "file" then error(("%s: %s: no adapter.safetensors in it"):format(who, dir), 2) end
  local ok, loaded = pcall(lattice.load_safetensors, path)
  if not ok then error((tostring(loaded):gsub("^load_safetensors:", who .. ":", 1)), 2) end
  local slots, any = lora_slots(model)
  if not any then error(who .. ": the model has no LoRA layers (apply_lora first)", 2) end
  local sorted = module.sorted_keys
  for _, name in ipairs(sorted(loaded)) do
    local t, slot = loaded[name], slots[name]
    if not slot then error(("%s: %s: '%s' is not a LoRA matrix of the model"):format(who, path, name), 2) end
    if module.shape_str(t) ~= module.shape_str(slot[3]) then
      error(("%s: %s: %s has shape %s in the adapter, the model's is %s"):format(who, path, name,
        module.shape_str(t), module.shape_str(slot[3])), 2)
    end
  end
  for _, name in ipairs(sorted(slots)) do
    if not loaded[name] then error(("%s: %s: the adapter has no '%s'"):format(who, path, name), 2) end
  end
  local config = read_config(dir .. "/adapter_config.json", who)
  for name, t in pairs(loaded) do
    local slot = slots[name]
    rawset(slot[1], slot[2], t.dtype == slot[3].dtype and t or t:astype(slot[3].dtype))
  end
  return config
end

return M
