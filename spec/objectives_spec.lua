-- lattice.train's metrics and objectives against values computed by hand in
-- Lua doubles (log-softmax written out), gradchecked where differentiable:
-- sequence_log_probs, dpo_objective and dpo_loss, soft_target_loss and
-- distillation_loss, perplexity and bits_per_byte; the curriculum helpers'
-- stages, mixtures and resumable state; every bad input.
local lattice = require "lattice"
local gradcheck = require "support.gradcheck"
local tiny = require "support.tiny_models"

local nn, train = lattice.nn, lattice.train

local function log_softmax(row)
  local m = -math.huge
  for _, v in ipairs(row) do m = math.max(m, v) end
  local s = 0
  for _, v in ipairs(row) do s = s + math.exp(v - m) end
  local out = {}
  for i, v in ipairs(row) do out[i] = v - m - math.log(s) end
  return out
end

local function softplus(x) return x > 30 and x or math.log(1 + math.exp(x)) end

local function close(got, want, tol, what)
  assert(math.abs(got - want) <= tol * (1 + math.abs(want)), ("%s: got %.12g, want %.12g"):format(what or "", got, want))
end

-- A model whose logits for ids are rows of a table it holds: logits[id + 1].
local Table = nn.Module:extend("TableLM")
function Table:init(logits) self.table = lattice.array(logits) end
function Table:forward(ids) return lattice.take(self.table, ids, 1) end

-- Sum over a sequence of log p(target) under rows of `logits` (a Lua table).
local function ref_seq_logp(logits, ids)
  local s = 0
  for t = 1, #ids - 1 do s = s + log_softmax(logits[ids[t] + 1])[ids[t + 1] + 1] end
  return s
end

local function ids(t) return lattice.array(t, "int32") end

describe("sequence_log_probs and DPO", function()
  local L = { { 0.5, -1, 2 }, { 1, 1, 0 }, { -2, 0.3, 0.1 } }

  it("sums log softmax at the targets", function()
    local logits = lattice.array({ { L[1], L[2] }, { L[3], L[1] } })
    local got = train.sequence_log_probs(logits, ids({ { 2, 0 }, { 1, 1 } })):tolist()
    close(got[1], log_softmax(L[1])[3] + log_softmax(L[2])[1], 1e-6)
    close(got[2], log_softmax(L[3])[2] + log_softmax(L[1])[2], 1e-6)
    gradcheck.each_dtype(function(x) return lattice.sum(train.sequence_log_probs(x, ids({ { 2, 0 }, { 1, 1 } }))) end,
      { lattice.random.normal({ 2, 2, 3 }) })
  end)

  it("is -log sigmoid(beta ((pc - rc) - (pr - rr))) averaged over the batch", function()
    local pc, pr, rc, rr = { -3.2, -1.0 }, { -2.5, -4.0 }, { -3.0, -1.5 }, { -2.0, -3.0 }
    local beta, want = 0.7, 0
    for i = 1, 2 do want = want + softplus(-beta * ((pc[i] - rc[i]) - (pr[i] - rr[i]))) / 2 end
    local t = function(v) return lattice.array(v, "float64") end
    close(train.dpo_objective(t(pc), t(pr), t(rc), t(rr), { beta = beta }):item(), want, 1e-14)
    gradcheck(function(a, b, c, d) return train.dpo_objective(a, b, c, d, { beta = beta }) end,
      { t(pc), t(pr), t(rc), t(rr) })
  end)

  it("computes DPO on models as the seed, the reference model giving no gradient", function()
    local policy, ref = Table(L), Table({ { 0, 0, 0 }, { 1, 0, -1 }, { 0.5, 0.5, 0 } })
    local chosen, rejected = { { 0, 2, 1 }, { 1, 1, 2 } }, { { 0, 1, 1 }, { 2, 0, 0 } }
    local ref_l = ref.table:tolist()
    local want = 0
    for i = 1, 2 do
      local z = 0.1 * ((ref_seq_logp(L, chosen[i]) - ref_seq_logp(ref_l, chosen[i]))
        - (ref_seq_logp(L, rejected[i]) - ref_seq_logp(ref_l, rejected[i])))
      want = want + softplus(-z) / 2
    end
    local loss, grads = nn.value_and_grad(policy, function(m)
      return train.dpo_loss(m, ref, ids(chosen), ids(rejected))
    end)(policy)
    close(loss:item(), want, 1e-6)
    assert.is_not_nil(grads.table)
    local _, ref_grads = nn.value_and_grad(ref, function() return train.dpo_loss(policy, ref, ids(chosen), ids(rejected)) end)(ref)
    assert.are.same(lattice.zeros({ 3, 3 }):tolist(), ref_grads.table:tolist())
    -- the policy as its own reference: every reward is 0 and the loss log 2
    close(train.dpo_loss(policy, policy, ids(chosen), ids(rejected)):item(), math.log(2), 1e-7)
  end)

  it("names bad input", function()
    local m = Table(L)
    assert.has_error(function() train.dpo_loss(m, m, ids({ 1, 2 }), ids({ { 1, 2 } })) end,
      "dpo_loss: chosen must be token ids (batch, seq_len) with seq_len >= 2, got int32 {2}")
    assert.has_error(function() train.dpo_loss(m, m, ids({ { 1 } }), ids({ { 1, 2 } })) end,
      "dpo_loss: chosen must be token ids (batch, seq_len) with seq_len >= 2, got int32 {1,1}")
    assert.has_error(function() train.dpo_loss(m, m, ids({ { 1, 2 } }), ids({ { 1, 2 }, { 0, 1 } })) end,
      "dpo_loss: chosen has 1 sequences, rejected 2")
    assert.has_error(function() train.dpo_loss(m, 3, ids({ { 1, 2 } }), ids({ { 1, 2 } })) end,
      "dpo_loss: ref_model must be a module, got number")
    assert.has_error(function() train.dpo_loss(m, m, lattice.ones({ 1, 2 }), ids({ { 1, 2 } })) end,
      "dpo_loss: chosen must be token ids (batch, seq_len) with seq_len >= 2, got float32 {1,2}")
    assert.has_error(function() train.dpo_loss(m, m, ids({ { 1, 2 } }), ids({ { 1, 2 } }), { beta = "x" }) end,
      "dpo_objective: beta must be a number, got x")
    local flat = nn.Linear(3, 3) -- a module that is no language model fails in its own forward
    assert.has_error(function() train.dpo_loss(flat, flat, ids({ { 1, 2 } }), ids({ { 1, 2 } })) end,
      "linear: x must be a float tensor, got int32")
    local wrong = Table({ { 1, 2 } })
    wrong.forward = function(self, x) return lattice.take(self.table, x:reshape({ -1 }), 1) end
    assert.has_error(function() train.dpo_loss(wrong, wrong, ids({ { 0, 0 } }), ids({ { 0, 0 } })) end,
      "dpo_loss: the model must return logits (batch, seq_len, vocab) for ids {1,1}, got {1,2}")
  end)
end)

describe("distillation", function()
  local S = { { 0.2, 1.5, -0.3, 0 }, { 1, -1, 0.5, 2 }, { 0, 0, 0, 1 }, { -1, 2, 1, 0 } }
  local T = { { 1, 0, 0, 0 }, { 0.5, 0.5, -2, 1 }, { 2, 1, 0, -1 }, { 0, 0, 3, 0 } }

  -- T² · mean over positions of KL(softmax(t/T) || softmax(s/T))
  local function ref_soft(s_rows, t_rows, temp)
    local sum = 0
    for i = 1, #s_rows do
      local ss, tt = {}, {}
      for j = 1, #s_rows[i] do ss[j], tt[j] = s_rows[i][j] / temp, t_rows[i][j] / temp end
      local ls, lt = log_softmax(ss), log_softmax(tt)
      for j = 1, #ls do sum = sum + math.exp(lt[j]) * (lt[j] - ls[j]) end
    end
    return sum / #s_rows * temp * temp
  end

  it("soft_target_loss is T² times the mean KL of the softened distributions", function()
    local s, t = lattice.array({ S }, "float64"), lattice.array({ T }, "float64")
    for _, temp in ipairs({ 1, 2, 4.5 }) do
      close(train.soft_target_loss(s, t, { temperature = temp }):item(), ref_soft(S, T, temp), 1e-13)
    end
    close(train.soft_target_loss(s, t):item(), ref_soft(S, T, 4), 1e-13)
    gradcheck.each_dtype(function(a, b) return train.soft_target_loss(a, b, { temperature = 2 }) end,
      { lattice.array({ S }), lattice.array({ T }) })
  end)

  it("distillation_loss is alpha · T² · KL + (1 - alpha) · CE, the teacher giving no gradient", function()
    local student, teacher = Table(S), Table(T)
    local tokens = { { 0, 1, 2, 3 }, { 3, 3, 0, 1 } }
    local s_rows, t_rows, ce, n = {}, {}, 0, 0
    for _, seq in ipairs(tokens) do
      for p = 1, 3 do
        s_rows[#s_rows + 1], t_rows[#t_rows + 1] = S[seq[p] + 1], T[seq[p] + 1]
        ce, n = ce - log_softmax(S[seq[p] + 1])[seq[p + 1] + 1], n + 1
      end
    end
    ce = ce / n
    local kl = ref_soft(s_rows, t_rows, 3)
    -- float32 logits: log-softmax and means of order 1, rounding ~1e-7
    close(train.distillation_loss(student, teacher, ids(tokens), { temperature = 3, alpha = 0.25 }):item(),
      0.25 * kl + 0.75 * ce, 1e-6)
    close(train.distillation_loss(student, teacher, ids(tokens), { temperature = 3, alpha = 1 }):item(), kl, 1e-6)
    close(train.distillation_loss(student, teacher, ids(tokens), { temperature = 3, alpha = 0 }):item(), ce, 1e-6)
    close(train.distillation_loss(student, teacher, ids(tokens)):item(),
      0.7 * ref_soft(s_rows, t_rows, 4) + 0.3 * ce, 1e-6)
    local _, g = nn.value_and_grad(teacher, function(m) return train.distillation_loss(student, m, ids(tokens)) end)(teacher)
    assert.are.same(lattice.zeros({ 4, 4 }):tolist(), g.table:tolist())
  end)

  it("names bad input", function()
    local m = Table(S)
    local tok = ids({ { 0, 1 } })
    assert.has_error(function() train.distillation_loss(m, m, tok, { alpha = 1.5 }) end,
      "distillation_loss: alpha must be a number in [0, 1], got 1.5")
    assert.has_error(function() train.distillation_loss(m, m, tok, { temperature = 0 }) end,
      "distillation_loss: temperature must be a finite number > 0, got 0")
    assert.has_error(function() train.distillation_loss(m, m, tok, { temp = 1 }) end,
      "distillation_loss: unknown option 'temp'")
    assert.has_error(function() train.distillation_loss(3, m, tok) end, "distillation_loss: student must be a module, got number")
    assert.has_error(function() train.soft_target_loss(lattice.ones({ 2, 3 }), lattice.ones({ 2, 4 })) end,
      "soft_target_loss: student and teacher logits must be tensors of one shape, got {2,3} and {2,4}")
    assert.has_error(function() train.soft_target_loss(lattice.ones({ 2 }), lattice.ones({ 2 }), { temperature = -1 }) end,
      "soft_target_loss: temperature must be a finite number > 0, got -1")
  end)
end)

describe("perplexity and bits_per_byte", function()
  local L = { { 0.5, -1, 2 }, { 1, 1, 0 }, { -2, 0.3, 0.1 } }
  local batches = { { { 0, 1, 2, 2 }, { 1, 0, 0, 1 } }, { { 2, 2, 1, 0 } } }

  -- the seed's mean of the batches' mean cross-entropies
  local function ref_loss()
    local total = 0
    for _, b in ipairs(batches) do
      local sum, n = 0, 0
      for _, seq in ipairs(b) do
        for p = 1, #seq - 1 do sum, n = sum - log_softmax(L[seq[p] + 1])[seq[p + 1] + 1], n + 1 end
      end
      total = total + sum / n
    end
    return total / #batches
  end

  it("are exp(mean loss) and mean loss / (ln 2 · bytes per token), in evaluation mode", function()
    local m = Table(L)
    local data = { ids(batches[1]), ids(batches[2]) }
    close(train.perplexity(m, data), math.exp(ref_loss()), 1e-6)
    close(train.bits_per_byte(m, data), ref_loss() / math.log(2), 1e-6)
    close(train.bits_per_byte(m, data, { bytes_per_token = 3.5 }), ref_loss() / math.log(2) / 3.5, 1e-6)
    close(train.lm_loss(m, data[2]):item(), (function()
      local s = 0
      for p = 1, 3 do s = s - log_softmax(L[batches[2][1][p] + 1])[batches[2][1][p + 1] + 1] end
      return s / 3
    end)(), 1e-6)
    local dropout = tiny.TinyLM(3, 4, 0.9)
    assert.are.equal(train.perplexity(dropout, data), train.perplexity(dropout, data))
    assert.is_true(dropout.training)
  end)

  it("names bad input", function()
    local m = Table(L)
    assert.has_error(function() train.perplexity(m, {}) end, "perplexity: data must be a non-empty list of token batches")
    assert.has_error(function() train.perplexity(m, { ids({ 1, 2 }) }) end,
      "perplexity: data[1] must be token ids (batch, seq_len) with seq_len >= 2, got int32 {2}")
    assert.has_error(function() train.bits_per_byte(m, { ids({ { 1, 2 } }) }, { bytes_per_token = 0 }) end,
      "bits_per_byte: bytes_per_token must be a number > 0, got 0")
  end)
end)

describe("curricula", function()
  it("length_curriculum grows seq_len stage by stage, skipping stages the text cannot fill", function()
    local tokens = lattice.arange(200, "int32")
    -- stages of 4, 36, 68, 100: (200 - 1) // 100 = 1 sequence of 100, fewer than 2
    local c = train.length_curriculum(tokens, { batch_size = 2, min_seq_len = 4, max_seq_len = 100, n_stages = 4,
      batches_per_stage = 3 })
    assert.are.same({ 4, 36, 68 }, c.seq_lens)
    assert.are.equal(9, c.total)
    local shapes = {}
    for x, y in function() return c:next() end do
      shapes[#shapes + 1] = x.shape[2]
      for r = 1, 2 do
        local xr, yr = x[r]:tolist(), y[r]:tolist()
        for j = 1, #xr do assert.are.equal(xr[1] + j - 1, xr[j]) end
        for j = 1, #yr do assert.are.equal(xr[j] + 1, yr[j]) end
        assert(xr[1] >= 0 and xr[1] < 200 - #xr - 1)
      end
    end
    assert.are.same({ 4, 4, 4, 36, 36, 36, 68, 68, 68 }, shapes)
  end)

  it("difficulty_curriculum moves from easy to hard windows", function()
    local easy, hard = lattice.arange(0, 100, "int32"), lattice.arange(1000, 1100, "int32")
    local c = train.difficulty_curriculum(easy, hard, { batch_size = 4, seq_len = 5, n_batches = 5, warmup_fraction = 0.5 })
    local hard_rows = {}
    for x in function() return c:next() end do
      local n = 0
      for r = 1, 4 do
        local first = x[r]:tolist()[1]
        if first >= 1000 then n = n + 1 else assert.are.equal(0, n) end -- easy rows first
      end
      hard_rows[#hard_rows + 1] = n
    end
    -- batch i: floor(4 · min(i / 4 / 0.5, 1)) hard rows
    assert.are.same({ 0, 2, 4, 4, 4 }, hard_rows)
  end)

  it("replays its batches from a saved state and the generator's", function()
    local tokens = lattice.arange(300, "int32")
    local opts = { batch_size = 3, min_seq_len = 5, max_seq_len = 20, n_stages = 3, batches_per_stage = 4 }
    local a = train.length_curriculum(tokens, opts)
    lattice.random.seed(4)
    for _ = 1, 5 do a:next() end
    local state, rng = a:state(), lattice.random.get_state()
    local want = {}
    for _ = 1, 7 do want[#want + 1] = a:next():tolist() end
    local b = train.length_curriculum(tokens, opts):set_state(state)
    lattice.random.set_state(rng)
    for i = 1, 7 do assert.are.same(want[i], b:next():tolist()) end
    assert.is_nil(b:next())
    assert.has_error(function() b:set_state({ index = 1, total = 3 }) end,
      "Curriculum:set_state: the state is not of this curriculum (12 batches)")
  end)

  it("names bad input", function()
    local t = lattice.arange(50, "int32")
    assert.has_error(function() train.length_curriculum(t, {}) end, "length_curriculum: batch_size must be a positive integer, got nil")
    assert.has_error(function() train.length_curriculum(t, { batch_size = 1, min_seq_len = 10, max_seq_len = 5 }) end,
      "length_curriculum: max_seq_len must be an integer >= 10, got 5")
    assert.has_error(function() train.length_curriculum(lattice.ones({ 5 }), { batch_size = 1 }) end,
      "length_curriculum: tokens must be a 1-D tensor of token ids")
    assert.has_error(function() train.difficulty_curriculum(t, t, { batch_size = 1, seq_len = 60 }) end,
      "difficulty_curriculum: easy has 50 tokens, too few for windows of 60")
    assert.has_error(function() train.difficulty_curriculum(t, t, { batch_size = 1, seq_len = 5, warmup_fraction = 0 }) end,
      "difficulty_curriculum: warmup_fraction must be a number in (0, 1], got 0")
  end)
end)
