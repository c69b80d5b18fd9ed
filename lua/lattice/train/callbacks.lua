-- Training callbacks, with the seed's hooks (lmxlab.training.callbacks and
-- metric_callbacks). A callback is any table with some of:
--   cb:on_train_begin(trainer)
--   cb:on_step_end(step, metrics, trainer)   metrics may be added to
--   cb:on_eval_end(step, metrics, trainer)
--   cb:on_train_end(history, trainer)
--   cb.should_stop                           true stops fit after this step
--   cb:state() / cb:set_state(t)             kept in checkpoints (JSON values)
local lattice = require "lattice"
local module = require "lattice.nn.module"
local checks = require "lattice.checks"
local nn = require "lattice.nn"

local check_options = module.check_options

local M = {}

local function positive_integer(v, default, what, who) return checks.integer(v, 1, what, who, 3, default) end -- a tail call

local function class(name)
  local cls = { __name = "lattice.train." .. name }
  cls.__index = cls
  return cls
end

-- ---- EarlyStopping ----

local EarlyStopping = class("EarlyStopping")

--- EarlyStopping{patience = 5, min_delta = 0.001, monitor = "eval_loss"}:
-- stops once `patience` evaluations in a row have not improved the best
-- value by more than min_delta.
function M.EarlyStopping(opts)
  local who = "EarlyStopping"
  opts = check_options(opts, { patience = true, min_delta = true, monitor = true }, who)
  local min_delta = opts.min_delta or 0.001
  if type(min_delta) ~= "number" or min_delta < 0 then
    error(who .. ": min_delta must be a number >= 0, got " .. tostring(min_delta), 2)
  end
  local monitor = opts.monitor or "eval_loss"
  if type(monitor) ~= "string" then error(who .. ": monitor must be a string, got " .. type(monitor), 2) end
  return setmetatable({ patience = positive_integer(opts.patience, 5, "patience", who), min_delta = min_delta,
    monitor = monitor, best = math.huge, wait = 0, should_stop = false }, EarlyStopping)
end

function EarlyStopping:on_train_begin() self.should_stop = false end

function EarlyStopping:on_eval_end(step, metrics, trainer)
  local v = metrics[self.monitor]
  if type(v) ~= "number" then return end
  if v < self.best - self.min_delta then
    self.best, self.wait = v, 0
  else
    self.wait = self.wait + 1
    if self.wait >= self.patience then
      self.should_stop = true
      if trainer then trainer:log(("early stopping at step %d (best %s %.4f)"):format(step, self.monitor, self.best)) end
    end
  end
end

-- best is absent while it is +inf, which JSON cannot write.
function EarlyStopping:state() return { best = self.best < math.huge and self.best or nil, wait = self.wait } end
function EarlyStopping:set_state(t)
  self.best, self.wait = t.best or math.huge, t.wait or 0
end

-- ---- ThroughputMonitor ----

local ThroughputMonitor = class("ThroughputMonitor")

--- ThroughputMonitor{log_every = 10, tokens_per_step}: adds steps_per_sec
-- (and tokens_per_sec when tokens_per_step is given) over the last
-- log_every steps to the metrics, logs them every log_every steps and a
-- summary at the end.
function M.ThroughputMonitor(opts)
  local who = "ThroughputMonitor"
  opts = check_options(opts, { log_every = true, tokens_per_step = true }, who)
  return setmetatable({ log_every = positive_integer(opts.log_every, 10, "log_every", who),
    tokens_per_step = opts.tokens_per_step ~= nil and positive_integer(opts.tokens_per_step, nil, "tokens_per_step", who)
      or nil, _times = {}, _steps = 0 }, ThroughputMonitor)
end

function ThroughputMonitor:on_train_begin(trainer)
  self._start = trainer:clock()
  self._last, self._times, self._steps = self._start, {}, 0
end

function ThroughputMonitor:on_step_end(step, metrics, trainer)
  local now = trainer:clock()
  local t = self._times
  t[#t + 1] = now - self._last
  if #t > self.log_every then table.remove(t, 1) end
  self._last, self._steps = now, self._steps + 1
  local sum = 0
  for _, dt in ipairs(t) do sum = sum + dt end
  if sum <= 0 then return end
  metrics.steps_per_sec = #t / sum
  if self.tokens_per_step then metrics.tokens_per_sec = metrics.steps_per_sec * self.tokens_per_step end
  if step % self.log_every == 0 then
    trainer:log(("step %d: %.1f steps/s%s"):format(step, metrics.steps_per_sec,
      metrics.tokens_per_sec and (", %.0f tok/s"):format(metrics.tokens_per_sec) or ""))
  end
end

function ThroughputMonitor:on_train_end(_, trainer)
  local elapsed = trainer:clock() - self._start
  if self._steps == 0 or elapsed <= 0 then return end
  local rate = self._steps / elapsed
  trainer:log(("throughput: %d steps in %.1f s (%.1f steps/s%s)"):format(self._steps, elapsed, rate,
    self.tokens_per_step and (", %.0f tok/s"):format(rate * self.tokens_per_step) or ""))
end

-- ---- gradient and weight statistics ----

-- {dotted name, tensor} of every tensor of a parameter tree, names as in
-- named_parameters (list positions from 0), sorted by name.
local function flatten(tree, prefix, out)
  out = out or {}
  for k, v in pairs(tree) do
    local name = (prefix and prefix .. "." or "") .. (math.type(k) == "integer" and tostring(k - 1) or tostring(k))
    if lattice.is_tensor(v) then
      out[#out + 1] = { name, v }
    elseif type(v) == "table" then
      flatten(v, name, out)
    end
  end
  if not prefix then table.sort(out, function(a, b) return a[1] < b[1] end) end
  return out
end
M.flatten = flatten

local function norm(t) return math.sqrt(lattice.sum(lattice.square(t:astype("float64"))):item()) end

local GradientStats = class("GradientStats")

--- GradientStats{probe_batch = {x, y, ...}, loss_fn, log_every = 100}: every
-- log_every steps the gradient of loss_fn (default: the trainer's) on the
-- probe batch, in evaluation mode, per parameter: metrics exp_grad_norm_mean,
-- exp_grad_norm_std (over the parameters), exp_grad_norm_max and
-- exp_grad_norm_max_name (the parameter with the largest norm).
function M.GradientStats(opts)
  local who = "GradientStats"
  opts = check_options(opts, { probe_batch = true, loss_fn = true, log_every = true }, who)
  if type(opts.probe_batch) ~= "table" then error(who .. ": probe_batch must be a list of the batch's values", 2) end
  if opts.loss_fn ~= nil and type(opts.loss_fn) ~= "function" then
    error(who .. ": loss_fn must be a function, got " .. type(opts.loss_fn), 2)
  end
  return setmetatable({ probe_batch = opts.probe_batch, loss_fn = opts.loss_fn,
    log_every = positive_integer(opts.log_every, 100, "log_every", who) }, GradientStats)
end

function GradientStats:on_step_end(step, metrics, trainer)
  if step % self.log_every ~= 0 then return end
  local model = trainer.model
  local was = model.training
  model:eval()
  local ok, err, grads = pcall(nn.value_and_grad(model, self.loss_fn or trainer.loss_fn), model,
    table.unpack(self.probe_batch))
  model:train(was)
  if not ok then error(err, 0) end
  local norms, sum, best = {}, 0, nil
  for _, e in ipairs(flatten(grads)) do
    local v = norm(e[2])
    norms[#norms + 1], sum = v, sum + v
    if best == nil or v > best[2] then best = { e[1], v } end
  end
  if #norms == 0 then return end
  local mean, var = sum / #norms, 0
  for _, v in ipairs(norms) do var = var + (v - mean) ^ 2 end
  metrics.exp_grad_norm_mean, metrics.exp_grad_norm_std = mean, math.sqrt(var / #norms)
  metrics.exp_grad_norm_max, metrics.exp_grad_norm_max_name = best[2], best[1]
end

local WeightStats = class("WeightStats")

--- WeightStats{log_every = 100}: every log_every steps the L2 norm of all
-- trainable parameters (exp_weight_norm) and how far it moved from its value
-- when training began (exp_weight_delta = |norm - initial norm|).
function M.WeightStats(opts)
  opts = check_options(opts, { log_every = true }, "WeightStats")
  return setmetatable({ log_every = positive_integer(opts.log_every, 100, "log_every", "WeightStats") }, WeightStats)
end

local function weight_norm(model)
  local sq = 0
  for _, e in ipairs(flatten(model:trainable_parameters())) do sq = sq + norm(e[2]) ^ 2 end
  return math.sqrt(sq)
end

-- A resumed run keeps the norm its first run began with.
function WeightStats:on_train_begin(trainer)
  if not self._restored then self.initial_norm = weight_norm(trainer.model) end
  self._restored = nil
end

function WeightStats:on_step_end(step, metrics, trainer)
  if step % self.log_every ~= 0 then return end
  local current = weight_norm(trainer.model)
  metrics.exp_weight_norm, metrics.exp_weight_delta = current, math.abs(current - self.initial_norm)
end

function WeightStats:state() return { initial_norm = self.initial_norm } end
function WeightStats:set_state(t) self.initial_norm, self._restored = t.initial_norm, t.initial_norm ~= nil end

return M
