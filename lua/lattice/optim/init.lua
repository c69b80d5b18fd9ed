-- lattice.optim: optimizers with MLX's names, options and formulas, each step
-- one fused C pass per parameter (lattice.core.optim_update) that updates the
-- parameter and its state in place; learning-rate schedules; clip_grad_norm.
--
-- In place means: a caller holding a model's parameter tensor sees its values
-- change, as with PyTorch's parameters. Tensors that share its storage (views
-- made with reshape, slicing, ...) are never changed behind their back: a
-- parameter with such a view is replaced in the model by an updated copy.
local lattice = require "lattice"
local core = require "lattice.core"
local module = require "lattice.nn.module"
local schedules = require "lattice.optim.schedules"

local check_options = module.check_options
local is_tensor, is_module, fields = lattice.is_tensor, module.is_module, module.fields

local optim = {}
for k, v in pairs(schedules) do optim[k] = v end

local Optimizer = {}
optim.Optimizer = Optimizer

-- Errors in the constructors: the helpers below raise at level 3, the
-- caller of the constructor that called them (optim.Adam's `return adam(...)`
-- is a tail call, so adam stands in its place).
local function check_number(v, what, fname, lo, positive)
  if type(v) ~= "number" or v ~= v or (lo and v < lo) or (positive and v <= 0) then
    local bound = positive and " > 0" or lo and (" >= " .. lo) or ""
    error(("%s: %s must be a number%s, got %s"):format(fname, what, bound, tostring(v)), 3)
  end
  return v
end

local function check_boolean(v, what, fname, default)
  if v == nil then return default end
  if type(v) ~= "boolean" then error(("%s: %s must be a boolean, got %s"):format(fname, what, type(v)), 3) end
  return v
end

local function check_betas(v, fname, default)
  v = v or default
  if type(v) ~= "table" or type(v[1]) ~= "number" or type(v[2]) ~= "number" then
    error(fname .. ": betas must be a list of two numbers", 3)
  end
  return v
end

-- A new optimizer of `kind` whose learning rate (a number or a schedule) comes from opts.
-- Called in tail position by the constructors, so level 2 is their caller.
local function new(kind, opts, hyper, lr_required)
  local lr = opts.learning_rate
  if lr == nil and lr_required then error(kind .. ": learning_rate is required", 2) end
  if lr ~= nil and type(lr) ~= "number" and type(lr) ~= "function" then
    error(("%s: learning_rate must be a number or a schedule (a function of the step), got %s"):format(kind, type(lr)), 2)
  end
  local schedule = type(lr) == "function" and lr or nil
  if schedule then
    lr = schedule(0)
    if type(lr) ~= "number" then
      error(("%s: the learning rate schedule returned %s at step 0, not a number"):format(kind, type(lr)), 2)
    end
  end
  local state = { step = 0, learning_rate = lr or 0 }
  -- _names: the state names of a parameter by its number of axes (optimizer_names)
  return setmetatable({ kind = kind, hyper = hyper, state = state, schedule = schedule, _names = {} }, Optimizer)
end

--- SGD{learning_rate, momentum = 0, weight_decay = 0, dampening = 0, nesterov = false}
function optim.SGD(opts)
  opts = check_options(opts, { learning_rate = true, momentum = true, weight_decay = true, dampening = true,
    nesterov = true }, "SGD")
  local h = {
    momentum = check_number(opts.momentum or 0, "momentum", "SGD", 0),
    weight_decay = check_number(opts.weight_decay or 0, "weight_decay", "SGD"),
    dampening = check_number(opts.dampening or 0, "dampening", "SGD"),
    nesterov = check_boolean(opts.nesterov, "nesterov", "SGD", false),
  }
  if h.nesterov and (h.momentum <= 0 or h.dampening ~= 0) then
    error("SGD: Nesterov momentum requires a momentum and zero dampening", 2)
  end
  return new("SGD", opts, h, true)
end

local function adam(kind, opts, default_wd)
  local allowed = { learning_rate = true, betas = true, eps = true, bias_correction = true }
  if default_wd then allowed.weight_decay = true end
  opts = check_options(opts, allowed, kind)
  local betas = check_betas(opts.betas, kind, { 0.9, 0.999 })
  return new(kind, opts, {
    beta1 = betas[1], beta2 = betas[2], eps = check_number(opts.eps or 1e-8, "eps", kind, 0),
    bias_correction = check_boolean(opts.bias_correction, "bias_correction", kind, false),
    weight_decay = check_number(opts.weight_decay or default_wd or 0, "weight_decay", kind),
  }, true)
end

--- Adam{learning_rate, betas = {0.9, 0.999}, eps = 1e-8, bias_correction = false}
function optim.Adam(opts) return adam("Adam", opts, nil) end
--- AdamW{learning_rate, betas = {0.9, 0.999}, eps = 1e-8, weight_decay = 0.01, bias_correction = false}
function optim.AdamW(opts) return adam("AdamW", opts, 0.01) end

--- Lion{learning_rate, betas = {0.9, 0.99}, weight_decay = 0}
function optim.Lion(opts)
  opts = check_options(opts, { learning_rate = true, betas = true, weight_decay = true }, "Lion")
  local betas = check_betas(opts.betas, "Lion", { 0.9, 0.99 })
  return new("Lion", opts, { beta1 = betas[1], beta2 = betas[2],
    weight_decay = check_number(opts.weight_decay or 0, "weight_decay", "Lion") }, true)
end

--- RMSprop{learning_rate, alpha = 0.99, eps = 1e-8}
function optim.RMSprop(opts)
  opts = check_options(opts, { learning_rate = true, alpha = true, eps = true }, "RMSprop")
  return new("RMSprop", opts, { beta1 = check_number(opts.alpha or 0.99, "alpha", "RMSprop", 0),
    eps = check_number(opts.eps or 1e-8, "eps", "RMSprop", 0) }, true)
end

--- Adagrad{learning_rate, eps = 1e-8}
function optim.Adagrad(opts)
  opts = check_options(opts, { learning_rate = true, eps = true }, "Adagrad")
  return new("Adagrad", opts, { eps = check_number(opts.eps or 1e-8, "eps", "Adagrad", 0) }, true)
end

--- Adafactor{learning_rate, eps = {1e-30, 1e-3}, clip_threshold = 1, decay_rate = -0.8,
-- beta_1, weight_decay = 0, scale_parameter = true, relative_step = true, warmup_init = false}
function optim.Adafactor(opts)
  opts = check_options(opts, { learning_rate = true, eps = true, clip_threshold = true, decay_rate = true,
    beta_1 = true, weight_decay = true, scale_parameter = true, relative_step = true, warmup_init = true },
    "Adafactor")
  local eps = opts.eps or { 1e-30, 1e-3 }
  if type(eps) ~= "table" or type(eps[1]) ~= "number" or type(eps[2]) ~= "number" then
    error("Adafactor: eps must be a list of two numbers", 2)
  end
  local relative = check_boolean(opts.relative_step, "relative_step", "Adafactor", true)
  if not relative and opts.learning_rate == nil then
    error("Adafactor: learning_rate is required when relative_step is false", 2)
  end
  return new("Adafactor", opts, {
    eps = eps[1], eps2 = eps[2], clip_threshold = check_number(opts.clip_threshold or 1, "clip_threshold", "Adafactor", nil, true),
    decay_rate = check_number(opts.decay_rate or -0.8, "decay_rate", "Adafactor"),
    beta1 = opts.beta_1 and check_number(opts.beta_1, "beta_1", "Adafactor", 0) or 0,
    first_moment = opts.beta_1 ~= nil,
    weight_decay = check_number(opts.weight_decay or 0, "weight_decay", "Adafactor"),
    scale_parameter = check_boolean(opts.scale_parameter, "scale_parameter", "Adafactor", true),
    relative_step = relative, warmup_init = check_boolean(opts.warmup_init, "warmup_init", "Adafactor", false),
  }, false)
end

-- ---- the step ----

-- The {holder, key, parameter, gradient, name} of each gradient in `grads`
-- with the model's parameter at the same place, or nil and a message.
local function collect(model, grads, kind)
  local found = {}
  local function walk(node, tree, prefix)
    local list = not is_module(node)
    local f = list and node or fields(node)
    for k, g in pairs(tree) do
      local name = (prefix == "" and "" or prefix .. ".") .. ((list and type(k) == "number") and tostring(k - 1) or k)
      local cur = rawget(f, k)
      if is_tensor(g) then
        if not is_tensor(cur) then return ("%s: the gradient %s has no parameter in the model"):format(kind, name) end
        found[#found + 1] = { f, k, cur, g, name }
      elseif type(g) ~= "table" or is_tensor(cur) then
        return ("%s: %s: expected a gradient tensor, got %s"):format(kind, name, type(g))
      elseif is_module(cur) or type(cur) == "table" then
        local err = walk(cur, g, name)
        if err then return err end
      elseif next(g) ~= nil then
        return ("%s: the gradient %s has no parameter in the model"):format(kind, name)
      end
    end
  end
  local err = walk(model, grads, "")
  if err then return nil, err end
  return found
end

-- The names of a parameter's state tensors, in the order the C kernel takes
-- them; they depend on the kind, its options and the parameter's number of
-- axes (Adafactor factors matrices), so they are asked once per ndim.
local function optimizer_names(self, param)
  local cache = rawget(self, "_names")
  local names = cache[param.ndim]
  if not names then
    names = select(2, core.optim_state_shapes(self.kind, self.hyper, param))
    cache[param.ndim] = names
  end
  return names
end

-- The state tensors of a parameter as a list, and its state table when it
-- is new (zeros, float32; the caller keeps it once every check has passed);
-- or nil, nil and a message.
local function state_for(self, name, param)
  local names = optimizer_names(self, param)
  local st, fresh = self.state[name], nil
  if st == nil then
    fresh = {}
    for i, shape in ipairs((core.optim_state_shapes(self.kind, self.hyper, param))) do
      fresh[names[i]] = lattice.zeros(shape)
    end
    st = fresh
  elseif type(st) ~= "table" then
    return nil, nil, ("%s: the state of %s is a %s, not a table of tensors"):format(self.kind, name, type(st))
  end
  local list = {}
  for i, n in ipairs(names) do
    list[i] = st[n]
    if not is_tensor(list[i]) then return nil, nil, ("%s: the state of %s has no '%s'"):format(self.kind, name, n) end
  end
  return list, fresh
end

-- The learning rate of the next update: the schedule at the updates made so
-- far (0 at the first), as MLX evaluates it before counting the update.
local function next_learning_rate(self)
  local state, schedule = self.state, self.schedule
  if not schedule then return state.learning_rate end
  local lr = schedule(state.step)
  if type(lr) ~= "number" then
    return nil, ("%s: the learning rate schedule returned %s at step %d, not a number"):format(self.kind, type(lr),
      state.step)
  end
  return lr
end

--- opt:update(model, grads): one step for every parameter that has a gradient
-- (grads as nn.value_and_grad gives them). Every gradient, parameter and
-- state is checked before any is changed: a bad one raises and leaves the
-- model, the state and the step count as they were.
function Optimizer:update(model, grads)
  local kind = self.kind
  if not is_module(model) then error(kind .. ":update: model must be a module, got " .. type(model), 2) end
  if type(grads) ~= "table" then error(kind .. ":update: grads must be a table, got " .. type(grads), 2) end
  local found, err = collect(model, grads, kind)
  if not found then error(err, 2) end
  local lr
  lr, err = next_learning_rate(self)
  if not lr then error(err, 2) end
  local state, h = self.state, self.hyper
  h.learning_rate, h.step = lr, state.step + 1
  local lists, fresh = {}, {}
  for i, e in ipairs(found) do
    lists[i], fresh[i], err = state_for(self, e[5], e[3])
    if not lists[i] then error(err, 2) end
    local ok, msg = core.optim_check(kind, h, e[5], e[3], e[4], table.unpack(lists[i]))
    if not ok then error(msg, 2) end
  end
  state.learning_rate, state.step = lr, h.step
  for i, e in ipairs(found) do
    if fresh[i] then state[e[5]] = fresh[i] end
    local updated = core.optim_update(kind, h, e[3], e[4], table.unpack(lists[i]))
    if updated ~= e[3] then rawset(e[1], e[2], updated) end
  end
  return self
end

--- opt.learning_rate: the rate of the last update (or of the first, before
-- any); opt.step: the updates made. Setting opt.learning_rate to a number
-- replaces any schedule.
function Optimizer:__index(key)
  if key == "learning_rate" then return rawget(self, "state").learning_rate end
  if key == "step" then return rawget(self, "state").step end
  return Optimizer[key]
end

function Optimizer:__newindex(key, value)
  if key ~= "learning_rate" then error(("%s: field '%s' cannot be set"):format(rawget(self, "kind"), tostring(key)), 2) end
  if type(value) ~= "number" then error(rawget(self, "kind") .. ": learning_rate must be a number", 2) end
  rawget(self, "state").learning_rate = value
  rawset(self, "schedule", nil)
end

-- ---- state on disk ----

--- opt:save_state(path): "step", "learning_rate" and "<parameter>.<state>" as
-- MLX flattens its optimizer state, in a safetensors file.
function Optimizer:save_state(path)
  local flat = {
    step = lattice.array(self.state.step, "int64"),
    -- float64: the rate in the file is the double the next updates use
    learning_rate = lattice.array(self.state.learning_rate, "float64"),
  }
  for name, st in pairs(self.state) do
    if type(st) == "table" then
      for k, t in pairs(st) do flat[name .. "." .. k] = t end
    end
  end
  lattice.save_safetensors(path, flat, { optimizer = self.kind })
  return self
end

--- opt:load_state(path): the state saved by save_state, for an exact resume.
function Optimizer:load_state(path)
  local flat, meta = lattice.load_safetensors(path)
  local fname = self.kind .. ":load_state"
  if meta.optimizer and meta.optimizer ~= self.kind then
    error(("%s: %s holds the state of %s, not %s"):format(fname, path, meta.optimizer, self.kind), 2)
  end
  if not flat.step then error(("%s: %s has no 'step'"):format(fname, path), 2) end
  local step = flat.step.ndim == 0 and math.tointeger(flat.step:item())
  if not step or step < 0 then error(("%s: %s: 'step' must be one integer >= 0"):format(fname, path), 2) end
  local lr = flat.learning_rate
  if lr and lr.ndim ~= 0 then error(("%s: %s: 'learning_rate' must be one number"):format(fname, path), 2) end
  local state = { step = step, learning_rate = lr and lr:item() }
  for key, t in pairs(flat) do
    local name, k = key:match("^(.*)%.([^.]+)$")
    if name then
      state[name] = state[name] or {}
      state[name][k] = t:astype("float32")
    elseif key ~= "step" and key ~= "learning_rate" then
      error(("%s: %s has an unknown entry '%s'"):format(fname, path, key), 2)
    end
  end
  state.learning_rate = state.learning_rate or self.state.learning_rate
  self.state = state
  return self
end

-- ---- clipping ----

--- clip_grad_norm(grads, max_norm) -> clipped grads, the global norm before
-- clipping (a number): every gradient times max_norm / (norm + 1e-6) when the
-- norm is at least max_norm, else the gradients unchanged, as MLX does.
function optim.clip_grad_norm(grads, max_norm)
  if type(grads) ~= "table" then error("clip_grad_norm: grads must be a table, got " .. type(grads), 2) end
  if type(max_norm) ~= "number" or max_norm < 0 then error("clip_grad_norm: max_norm must be a number >= 0", 2) end
  local sq = 0
  local function total(t)
    for _, v in pairs(t) do
      if is_tensor(v) then sq = sq + core.sum_squares(v) elseif type(v) == "table" then total(v) end
    end
  end
  total(grads)
  local norm = math.sqrt(sq)
  if norm < max_norm then return grads, norm end
  local scale = max_norm / (norm + 1e-6)
  local function map(t)
    local out = {}
    for k, v in pairs(t) do
      if is_tensor(v) then out[k] = v * scale elseif type(v) == "table" then out[k] = map(v) else out[k] = v end
    end
    return out
  end
  return map(grads), norm
end

return optim
