-- Evaluation metrics and training objectives of the seed's eval and training
-- packages: perplexity, bits_per_byte (lmxlab.eval.metrics), dpo_loss
-- (training/dpo.py), distillation_loss and soft_target_loss
-- (training/distillation.py). A language model here is a module whose call
-- on token ids (B, T) returns logits (B, T, V) first (a cache may follow).
local lattice = require "lattice"
local module = require "lattice.nn.module"
local losses = require "lattice.nn.losses"

local check_options = module.check_options
local shape_str = module.shape_str

local M = {}

local function is_ids(t) return lattice.is_tensor(t) and not t.dtype:find("float") and t.dtype ~= "bool" end

-- tokens (B, T) integer ids with T >= 2, as every objective here needs.
local function check_tokens(t, what, who)
  if not is_ids(t) or t.ndim ~= 2 or t.shape[2] < 2 then
    error(("%s: %s must be token ids (batch, seq_len) with seq_len >= 2, got %s"):format(who, what,
      lattice.is_tensor(t) and (t.dtype .. " " .. shape_str(t)) or type(t)), 3)
  end
end

local function check_model(m, what, who)
  if not module.is_module(m) then error(("%s: %s must be a module, got %s"):format(who, what, type(m)), 3) end
end

-- The logits the model gives for ids (B, T), checked to be (B, T, V).
local function logits_of(model, ids, who)
  local logits = model(ids)
  if not lattice.is_tensor(logits) or logits.ndim ~= 3 or logits.shape[1] ~= ids.shape[1]
    or logits.shape[2] ~= ids.shape[2] then
    error(("%s: the model must return logits (batch, seq_len, vocab) for ids %s, got %s"):format(who, shape_str(ids),
      lattice.is_tensor(logits) and shape_str(logits) or type(logits)), 0)
  end
  return logits
end

-- tokens[:, :-1] and tokens[:, 1:].
local function shifted(tokens) return lattice.slice(tokens, 2, 1, -2), lattice.slice(tokens, 2, 2, -1) end

--- lm_loss(model, tokens) -> mean cross-entropy of each next token.
function M.lm_loss(model, tokens)
  local who = "lm_loss"
  check_model(model, "model", who)
  check_tokens(tokens, "tokens", who)
  local x, y = shifted(tokens)
  return losses.cross_entropy(logits_of(model, x, who), y, { reduction = "mean" })
end

-- The mean of lm_loss over data (a list of token tensors, a BatchIterator or
-- a function giving an iterator), in evaluation mode.
local function mean_loss(model, data, who)
  check_model(model, "model", who)
  local list = data
  if type(data) == "function" then
    list = {}
    for t in data() do list[#list + 1] = t end
  elseif type(data) == "table" and type(data.next) == "function" then
    list = {}
    if data.reset then data:reset() end
    for t in function() return data:next() end do list[#list + 1] = t end
  end
  if type(list) ~= "table" or #list == 0 then error(who .. ": data must be a non-empty list of token batches", 3) end
  for i, t in ipairs(list) do check_tokens(t, ("data[%d]"):format(i), who) end
  local was = model.training
  model:eval()
  local ok, total = pcall(function()
    local sum = 0
    for _, t in ipairs(list) do sum = sum + M.lm_loss(model, t):item() end
    return sum
  end)
  model:train(was)
  if not ok then error(total, 0) end
  return total / #list
end

--- perplexity(model, data) -> exp(mean cross-entropy), over the batches of data.
function M.perplexity(model, data) return math.exp(mean_loss(model, data, "perplexity")) end

--- bits_per_byte(model, data[, {bytes_per_token = 1}]) -> mean cross-entropy / (ln 2 · bytes_per_token).
function M.bits_per_byte(model, data, opts)
  opts = check_options(opts, { bytes_per_token = true }, "bits_per_byte")
  local bpt = opts.bytes_per_token or 1
  if type(bpt) ~= "number" or bpt ~= bpt or bpt <= 0 then
    error("bits_per_byte: bytes_per_token must be a number > 0, got " .. tostring(bpt), 2)
  end
  return mean_loss(model, data, "bits_per_byte") / (math.log(2) * bpt)
end

--- sequence_log_probs(logits (B, T, V), targets (B, T)) -> (B): the sum over
-- each sequence of log softmax(logits) at the target ids.
function M.sequence_log_probs(logits, targets)
  local lp = lattice.log_softmax(logits, -1)
  local picked = lattice.take_along_axis(lp, lattice.expand_dims(targets:astype("int32"), -1), -1)
  return lattice.sum(lattice.squeeze(picked, -1), -1)
end

--- dpo_objective(policy_chosen, policy_rejected, ref_chosen, ref_rejected[, {beta = 0.1}])
-- -> mean of -log sigmoid(beta ((pc - rc) - (pr - rr))) over the batch, from
-- sequence log-probabilities (B); computed as softplus(-z).
function M.dpo_objective(pc, pr, rc, rr, opts)
  opts = check_options(opts, { beta = true }, "dpo_objective")
  local beta = opts.beta or 0.1
  if type(beta) ~= "number" or beta ~= beta then error("dpo_objective: beta must be a number, got " .. tostring(beta), 2) end
  local z = (pc - rc) * beta - (pr - rr) * beta
  return lattice.mean(lattice.softplus(-z))
end

--- dpo_loss(model, ref_model, chosen, rejected[, {beta = 0.1}]): DPO (Rafailov
-- et al. 2023) as the seed computes it; the reference model's side carries no
-- gradient.
function M.dpo_loss(model, ref_model, chosen, rejected, opts)
  local who = "dpo_loss"
  check_model(model, "model", who)
  check_model(ref_model, "ref_model", who)
  check_tokens(chosen, "chosen", who)
  check_tokens(rejected, "rejected", who)
  if chosen.shape[1] ~= rejected.shape[1] then
    error(("%s: chosen has %d sequences, rejected %d"):format(who, chosen.shape[1], rejected.shape[1]), 2)
  end
  local function logps(m, tokens)
    local x, y = shifted(tokens)
    return M.sequence_log_probs(logits_of(m, x, who), y)
  end
  local rc, rr = lattice.stop_gradient(logps(ref_model, chosen)), lattice.stop_gradient(logps(ref_model, rejected))
  return M.dpo_objective(logps(model, chosen), logps(model, rejected), rc, rr, opts)
end

local function check_temperature(t, who)
  if type(t) ~= "number" or t ~= t or t <= 0 or t == math.huge then
    error(("%s: temperature must be a finite number > 0, got %s"):format(who, tostring(t)), 3)
  end
end

local function soft_target(student_logits, teacher_logits, t)
  local s = lattice.log_softmax(student_logits / t, -1)
  local q = lattice.log_softmax(teacher_logits / t, -1)
  local kl = lattice.sum(lattice.exp(q) * (q - s), -1)
  return lattice.mean(kl) * (t * t)
end

--- soft_target_loss(student_logits, teacher_logits[, {temperature = 4}]) ->
-- T² · mean KL(teacher_T || student_T) over the positions, the distributions
-- softened by T (Hinton et al. 2015).
function M.soft_target_loss(student_logits, teacher_logits, opts)
  local who = "soft_target_loss"
  opts = check_options(opts, { temperature = true }, who)
  local t = opts.temperature or 4.0
  check_temperature(t, who)
  if not lattice.is_tensor(student_logits) or not lattice.is_tensor(teacher_logits)
    or shape_str(student_logits) ~= shape_str(teacher_logits) then
    error(("%s: student and teacher logits must be tensors of one shape, got %s and %s"):format(who,
      lattice.is_tensor(student_logits) and shape_str(student_logits) or type(student_logits),
      lattice.is_tensor(teacher_logits) and shape_str(teacher_logits) or type(teacher_logits)), 2)
  end
  return soft_target(student_logits, teacher_logits, t)
end

--- distillation_loss(student, teacher, tokens[, {temperature = 4, alpha = 0.7}])
-- -> alpha · T² · KL + (1 - alpha) · CE on the next tokens; the teacher's
-- side carries no gradient. alpha = 1 is the KL term alone.
function M.distillation_loss(student, teacher, tokens, opts)
  local who = "distillation_loss"
  check_model(student, "student", who)
  check_model(teacher, "teacher", who)
  check_tokens(tokens, "tokens", who)
  opts = check_options(opts, { temperature = true, alpha = true }, who)
  local t, alpha = opts.temperature or 4.0, opts.alpha or 0.7
  check_temperature(t, who)
  if type(alpha) ~= "number" or not (alpha >= 0 and alpha <= 1) then
    error(who .. ": alpha must be a number in [0, 1], got " .. tostring(alpha), 2)
  end
  local x, y = shifted(tokens)
  local s = logits_of(student, x, who)
  local q = lattice.stop_gradient(logits_of(teacher, x, who))
  local kl = soft_target(s, q, t)
  if alpha >= 1 then return kl end
  local ce = losses.cross_entropy(s, y, { reduction = "mean" })
  return kl * alpha + ce * (1 - alpha)
end

return M
