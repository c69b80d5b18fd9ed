-- Trainer: the training loop of the seed's lmxlab.training.Trainer, with
-- gradient accumulation, clipping, evaluation (loss and perplexity),
-- callbacks, a progress display and checkpoints that resume bit for bit.
--
--   local trainer = train.Trainer{model = m, optimizer = opt, loss_fn = f, train_data = it, eval_data = val}
--   local history = trainer:fit{steps = 1000, eval_every = 100, checkpoint_every = 200, checkpoint_dir = "ckpt"}
--
-- loss_fn(model, ...) gets the values a batch has (train_data:next() returns
-- them) and returns a scalar loss tensor. Exact resume restores everything
-- the next steps read: the weights, the optimizer's state and step count, the
-- generator (dropout masks, random starts), train_data's position and the
-- callbacks' states; the same code on the same thread count then computes
-- the same bits.
local lattice = require "lattice"
local core = require "lattice.core"
local module = require "lattice.nn.module"
local checks = require "lattice.checks"
local nn = require "lattice.nn"
local optim = require "lattice.optim"
local checkpoint = require "lattice.train.checkpoint"
local progress = require "lattice.train.progress"
local is_sparse = require("lattice.sparse").is_sparse

local check_options = module.check_options

local M = {}

local Trainer = {}
Trainer.__index = Trainer
Trainer.__name = "lattice.train.Trainer"
M.Trainer = Trainer

local function is_data(v) return type(v) == "function" or (type(v) == "table" and type(v.next) == "function") end

local function check_writer(v)
  return v ~= nil and (io.type(v) == "file" or (type(v) == "table" and type(v.write) == "function"))
end

--- Trainer{model, optimizer, loss_fn, train_data, eval_data, eval_fn, config,
-- output = io.stdout, progress = "auto", count_fn, clock = lattice.now}
function M.new(opts)
  local who = "Trainer"
  opts = check_options(opts, { model = true, optimizer = true, loss_fn = true, train_data = true, eval_data = true,
    eval_fn = true, config = true, output = true, progress = true, count_fn = true, clock = true }, who)
  if not module.is_module(opts.model) then error(who .. ": model must be a module, got " .. type(opts.model), 2) end
  if getmetatable(opts.optimizer) ~= optim.Optimizer then
    error(who .. ": optimizer must be a lattice.optim optimizer, got " .. type(opts.optimizer), 2)
  end
  for _, k in ipairs({ "loss_fn", "eval_fn", "count_fn", "clock" }) do
    if opts[k] ~= nil and type(opts[k]) ~= "function" then
      error(("%s: %s must be a function, got %s"):format(who, k, type(opts[k])), 2)
    end
  end
  if opts.loss_fn == nil then error(who .. ": loss_fn is required", 2) end
  if opts.train_data ~= nil and not is_data(opts.train_data) then
    error(who .. ": train_data must have a next() method (a BatchIterator) or be a function", 2)
  end
  if opts.eval_data ~= nil and not is_data(opts.eval_data) and type(opts.eval_data) ~= "table" then
    error(who .. ": eval_data must be a BatchIterator, a list of batches or a function", 2)
  end
  if opts.config ~= nil and type(opts.config) ~= "table" then
    error(who .. ": config must be a table, got " .. type(opts.config), 2)
  end
  local output = opts.output or io.stdout
  if not check_writer(output) then error(who .. ": output must be a file or have a write() method", 2) end
  if opts.progress ~= nil and not progress.MODES[opts.progress] then
    error(who .. ": progress must be 'auto', 'bar', 'lines' or 'none', got " .. tostring(opts.progress), 2)
  end
  local self = setmetatable({
    model = opts.model, optimizer = opts.optimizer, loss_fn = opts.loss_fn, train_data = opts.train_data,
    eval_data = opts.eval_data, eval_fn = opts.eval_fn or opts.loss_fn, config = opts.config, output = output,
    progress = opts.progress or "auto", count_fn = opts.count_fn, _clock = opts.clock or lattice.now, step = 0,
    _callback_state = nil, _progress = nil,
  }, Trainer)
  self._value_and_grad = nn.value_and_grad(self.model, self.loss_fn)
  return self
end

function Trainer:clock() return self._clock() end

--- trainer:log(line): a line on the trainer's output, between progress updates.
function Trainer:log(line)
  if self._progress then
    self._progress:message(line)
  elseif self.progress ~= "none" then
    self.output:write(line, "\n")
  end
end

-- ---- one step ----

-- How many items a batch counts for the throughput: count_fn's answer, else
-- the ids of an integer tensor (tokens), the scenes of a SparseTensor, the
-- rows of a float tensor (samples).
local function count_items(self, batch)
  if self.count_fn then return self.count_fn(table.unpack(batch, 1, batch.n)) end
  local x = batch[1]
  if lattice.is_tensor(x) then
    if not x.dtype:find("float") then return x.size, "tok" end
    return x.ndim > 0 and x.shape[1] or 1, "samples"
  end
  if is_sparse(x) then return x.batch_counts and #x.batch_counts or 1, "scenes" end
  return 1, "batches"
end

local function next_batch(data)
  if type(data) == "function" then return table.pack(data()) end
  return table.pack(data:next())
end

-- a + b over two gradient trees of the same shape ({} where a tree has no tensor).
local function tree_add(a, b)
  if lattice.is_tensor(a) then return a + b end
  local out = {}
  for k, v in pairs(a) do out[k] = tree_add(v, b[k]) end
  return out
end

local function tree_scale(a, s)
  if lattice.is_tensor(a) then return a * s end
  local out = {}
  for k, v in pairs(a) do out[k] = tree_scale(v, s) end
  return out
end

-- Forward and backward over grad_accum micro-batches, gradients averaged,
-- clipped, one update. Nil when train_data has no batch left.
function Trainer:_train_step(grad_accum, clip)
  local grads, total, n, items, unit = nil, 0, 0, 0, nil
  for _ = 1, grad_accum do
    local batch = next_batch(self.train_data)
    if batch[1] == nil then break end
    local loss, g = self._value_and_grad(self.model, table.unpack(batch, 1, batch.n))
    total, n = total + loss:item(), n + 1
    grads = grads and tree_add(grads, g) or g
    local c, u = count_items(self, batch)
    items, unit = items + c, u
  end
  if n == 0 then return nil end
  if n > 1 then grads = tree_scale(grads, 1 / n) end
  local norm
  grads, norm = optim.clip_grad_norm(grads, clip or math.huge)
  self.optimizer:update(self.model, grads)
  self.step = self.step + 1
  return { step = self.step, loss = total / n, learning_rate = self.optimizer.learning_rate, grad_norm = norm,
    items = items, unit = unit }
end

-- ---- evaluation ----

-- Calls fn(batch values...) for every batch of eval_data, at most max of them.
local function each_eval_batch(data, max, fn)
  local count = 0
  local function visit(...)
    if select("#", ...) == 0 or (...) == nil or (max and count >= max) then return false end
    count = count + 1
    fn(...)
    return true
  end
  if type(data) == "function" then
    local gen = data()
    while visit(gen()) do end
  elseif type(data.next) == "function" then
    if data.reset then data:reset() end
    while visit(data:next()) do end
  else
    for _, batch in ipairs(data) do
      if not visit(table.unpack(batch)) then break end
    end
  end
  return count
end

--- trainer:evaluate([max_batches]) -> {eval_loss, eval_perplexity}: the mean
-- of eval_fn over eval_data's batches (the seed's mean of batch means), in
-- evaluation mode; perplexity = exp(eval_loss).
function Trainer:evaluate(max_batches)
  local who = "Trainer:evaluate"
  if self.eval_data == nil then error(who .. ": the trainer has no eval_data", 2) end
  local model = self.model
  local was = model.training
  model:eval()
  local total = 0
  local ok, count = pcall(each_eval_batch, self.eval_data, max_batches, function(...)
    total = total + self.eval_fn(model, ...):item()
  end)
  model:train(was)
  if not ok then error(count, 0) end
  if count == 0 then error(who .. ": eval_data gave no batches", 2) end
  local loss = total / count
  return { eval_loss = loss, eval_perplexity = math.exp(loss) }
end

-- ---- checkpoints ----

-- A config value as JSON values: an object with to_table() (a BlockConfig, a
-- ModelConfig) becomes its table, recursively, since a ModelConfig's table
-- holds its BlockConfig; plain tables are walked; anything else (tables with
-- a metatable included, such as lattice.json's markers) is kept as it is.
local function json_value(v)
  local to_table = (type(v) == "table" or type(v) == "userdata") and v.to_table
  if type(to_table) == "function" then v = v:to_table() end
  if type(v) ~= "table" or getmetatable(v) ~= nil then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = json_value(x) end
  return out
end

local function json_config(config)
  if config == nil then return nil end
  return json_value(config)
end

local function has_state(data) return type(data) == "table" and type(data.state) == "function"
  and type(data.set_state) == "function" end

local function callback_states(callbacks)
  local out = {}
  for i, cb in ipairs(callbacks or {}) do
    if type(cb.state) == "function" then out[tostring(i)] = cb:state() end
  end
  return out
end

-- The metadata of a checkpoint now: step, data position, generator, configs.
function Trainer:_metadata(metrics)
  return {
    format = checkpoint.FORMAT, version = checkpoint.VERSION, step = self.step,
    optimizer = self.optimizer.kind, optimizer_step = self.optimizer.step,
    rng = checkpoint.rng_to_json(lattice.random.get_state()),
    data = self.train_data and has_state(self.train_data) and self.train_data:state() or nil,
    config = json_config(self.config), metrics = metrics, callbacks = callback_states(self._callbacks),
  }
end

--- trainer:save_checkpoint(dir[, {keep = 3}]) -> the checkpoint's path
-- (<dir>/step-<step>), written atomically; all but the `keep` newest
-- checkpoints in dir removed (keep = false keeps all).
function Trainer:save_checkpoint(dir, opts, metrics)
  local who = "Trainer:save_checkpoint"
  if type(dir) ~= "string" then error(who .. ": dir must be a string, got " .. type(dir), 2) end
  opts = check_options(opts, { keep = true }, who)
  local keep = opts.keep
  if keep == nil then keep = 3 end
  if keep ~= false and (math.type(keep) ~= "integer" or keep < 1) then
    error(who .. ": keep must be a positive integer or false, got " .. tostring(keep), 2)
  end
  if self.train_data and not has_state(self.train_data) then
    error(who .. ": train_data has no state() and set_state(), so a resume could not continue where it left off", 2)
  end
  local ok, text = pcall(lattice.json.encode, self:_metadata(metrics), { indent = 2 })
  if not ok then error(("%s: the metadata: %s"):format(who, text), 2) end
  return checkpoint.save(dir, self.step, function(path)
    self.model:save_weights(path .. "/model.safetensors")
    self.optimizer:save_state(path .. "/optimizer.safetensors")
    core.fs_write(path .. "/metadata.json", text .. "\n", who)
  end, keep or nil, who)
end

-- The checkpoint a path names: itself when it holds metadata.json, else the
-- latest one in it.
local function find_checkpoint(path, who)
  if core.fs_kind(path .. "/metadata.json") == "file" then return path end
  local latest = core.fs_kind(path) == "directory" and checkpoint.latest(path)
  if not latest then error(("%s: %s: no checkpoint there"):format(who, path), 3) end
  return latest
end

-- Puts back what a failed resume may have changed.
local function restore(self, params, opt_state, rng)
  self.model:update(params, { strict = false })
  rawset(self.optimizer, "state", opt_state)
  lattice.random.set_state(rng)
end

--- trainer:resume(path) -> the checkpoint's metadata: path is a checkpoint
-- or a directory of them (the latest is taken). Weights, optimizer state,
-- generator, train_data's position, step and callback states all come back,
-- or (on any error) none of them.
function Trainer:resume(path)
  local who = "Trainer:resume"
  if type(path) ~= "string" then error(who .. ": path must be a string, got " .. type(path), 2) end
  local dir = find_checkpoint(path, who)
  local meta = checkpoint.read_metadata(dir, who)
  local file = dir .. "/metadata.json"
  local rng = checkpoint.rng_from_json(meta.rng, who, file)
  if meta.data ~= nil and not (self.train_data and has_state(self.train_data)) then
    error(("%s: %s saved a data position, but train_data has no set_state()"):format(who, dir), 2)
  end
  if meta.optimizer ~= self.optimizer.kind then
    error(("%s: %s holds the state of %s, not %s"):format(who, dir, tostring(meta.optimizer), self.optimizer.kind), 2)
  end
  local params, opt_state, old_rng = self.model:parameters(), rawget(self.optimizer, "state"), lattice.random.get_state()
  local ok, err = pcall(function()
    self.model:load_weights(dir .. "/model.safetensors")
    self.optimizer:load_state(dir .. "/optimizer.safetensors")
    if meta.data ~= nil then self.train_data:set_state(meta.data) end
  end)
  if not ok then
    restore(self, params, opt_state, old_rng)
    error(("%s: %s: %s"):format(who, dir, tostring(err):gsub("^[^:]*:%d+: ", "")), 2)
  end
  lattice.random.set_state(rng)
  self.step = meta.step
  self._callback_state = meta.callbacks
  return meta
end

-- ---- fit ----

local function optional_positive(v, what, who)
  if v == nil then return nil end
  return checks.integer(v, 1, what, who, 4) -- a tail call: its level is this function's
end

local function fit_options(self, opts)
  local who = "Trainer:fit"
  opts = check_options(opts, { steps = true, eval_every = true, log_every = true, checkpoint_every = true,
    checkpoint_dir = true, keep_checkpoints = true, grad_accum = true, clip_grad_norm = true, callbacks = true,
    eval_batches = true }, who)
  if math.type(opts.steps) ~= "integer" or opts.steps < 0 then
    error(who .. ": steps must be an integer >= 0 (the step to train up to), got " .. tostring(opts.steps), 3)
  end
  local o = {
    steps = opts.steps, eval_every = optional_positive(opts.eval_every, "eval_every", who),
    log_every = optional_positive(opts.log_every, "log_every", who) or 10,
    checkpoint_every = optional_positive(opts.checkpoint_every, "checkpoint_every", who),
    grad_accum = optional_positive(opts.grad_accum, "grad_accum", who) or 1,
    eval_batches = optional_positive(opts.eval_batches, "eval_batches", who),
    checkpoint_dir = opts.checkpoint_dir, keep = opts.keep_checkpoints, clip = opts.clip_grad_norm,
    callbacks = opts.callbacks or {},
  }
  if o.keep == nil then o.keep = 3 end
  if o.keep ~= false and (math.type(o.keep) ~= "integer" or o.keep < 1) then
    error(who .. ": keep_checkpoints must be a positive integer or false, got " .. tostring(o.keep), 3)
  end
  if o.clip ~= nil and (type(o.clip) ~= "number" or o.clip ~= o.clip or o.clip <= 0) then
    error(who .. ": clip_grad_norm must be a number > 0, got " .. tostring(o.clip), 3)
  end
  if o.checkpoint_every and type(o.checkpoint_dir) ~= "string" then
    error(who .. ": checkpoint_every needs a checkpoint_dir (a string)", 3)
  end
  if o.checkpoint_every and not has_state(self.train_data) then
    error(who .. ": checkpoints need train_data with state() and set_state() (a BatchIterator has them)", 3)
  end
  if o.eval_every and self.eval_data == nil then error(who .. ": eval_every needs the trainer's eval_data", 3) end
  if type(o.callbacks) ~= "table" then error(who .. ": callbacks must be a list", 3) end
  for i, cb in ipairs(o.callbacks) do
    if type(cb) ~= "table" then error(("%s: callbacks[%d] must be a table, got %s"):format(who, i, type(cb)), 3) end
  end
  if self.train_data == nil then error(who .. ": the trainer has no train_data", 3) end
  return o
end

local function call_all(callbacks, hook, ...)
  for _, cb in ipairs(callbacks) do
    if cb[hook] then cb[hook](cb, ...) end
  end
end

local function should_stop(callbacks)
  for _, cb in ipairs(callbacks) do
    if cb.should_stop then return true end
  end
  return false
end

-- Throughput and time left, from the steps of this fit so far.
local function add_rates(m, start, now, items, done, left)
  local elapsed = now - start
  m.elapsed = elapsed
  if elapsed > 0 then
    m.items_per_sec = items / elapsed
    m.eta = left * elapsed / done
  end
end

--- trainer:fit{steps, eval_every, log_every = 10, checkpoint_every, checkpoint_dir,
-- keep_checkpoints = 3, grad_accum = 1, clip_grad_norm, callbacks, eval_batches}
-- -> history (the metrics of each step): trains until trainer.step = steps.
function Trainer:fit(opts)
  local o = fit_options(self, opts)
  self._callbacks = o.callbacks
  for i, cb in ipairs(o.callbacks) do
    local s = self._callback_state and self._callback_state[tostring(i)]
    if s ~= nil and type(cb.set_state) == "function" then cb:set_state(s) end
  end
  self._callback_state = nil
  local bar = progress.new({ output = self.output, mode = self.progress, total = o.steps, log_every = o.log_every,
    clock = self._clock })
  self._progress = bar
  call_all(o.callbacks, "on_train_begin", self)
  local history, first, start, items = {}, self.step, self:clock(), 0
  while self.step < o.steps do
    local m = self:_train_step(o.grad_accum, o.clip)
    if not m then break end
    items = items + m.items
    add_rates(m, start, self:clock(), items, self.step - first, o.steps - self.step)
    history[#history + 1] = m
    bar:step(self.step, m)
    call_all(o.callbacks, "on_step_end", self.step, m, self)
    if o.eval_every and self.step % o.eval_every == 0 then
      local e = self:evaluate(o.eval_batches)
      m.eval_loss, m.eval_perplexity = e.eval_loss, e.eval_perplexity
      bar:message(("step %d | eval loss %.4f | perplexity %.3f"):format(self.step, e.eval_loss, e.eval_perplexity))
      call_all(o.callbacks, "on_eval_end", self.step, m, self)
    end
    if o.checkpoint_every and self.step % o.checkpoint_every == 0 then
      local saved = {} -- JSON holds no NaN or infinity: a diverged loss is left out
      for _, k in ipairs({ "step", "loss", "learning_rate", "grad_norm", "eval_loss" }) do
        local v = m[k]
        if v ~= nil and v == v and v ~= math.huge and v ~= -math.huge then saved[k] = v end
      end
      local path = self:save_checkpoint(o.checkpoint_dir, { keep = o.keep }, saved)
      bar:message("checkpoint " .. path)
    end
    if should_stop(o.callbacks) then break end
  end
  bar:close()
  self._progress = nil
  call_all(o.callbacks, "on_train_end", history, self)
  return history
end

function Trainer:__tostring()
  return ("Trainer(step=%d, optimizer=%s)"):format(self.step, self.optimizer.kind)
end

return M
