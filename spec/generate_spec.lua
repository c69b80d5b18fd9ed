-- Generation (lattice.sample): the cached decode loops against plain loops
-- that run the model over the whole sequence at every step, as the seed's
-- beam search and speculative decoding do, on a Lua model whose cache holds
-- real per-row state (spec/support/counting_lm.lua).
local lattice = require "lattice"
local sample = require "lattice.sample"
local CountingLM = require("support.counting_lm").CountingLM

local V = 11

local function last_row(logits, b)
  local T = logits.shape[2]
  return logits:slice(2, T, T):reshape(logits.shape[1], logits.shape[3])[b]
end

-- The seed's generate without a cache: the whole sequence every step, each
-- token drawn by next_token from the full forward's last logits.
local function ref_generate(model, prompt, opts)
  local rows = prompt:tolist()
  local gen = {}
  for b = 1, #rows do gen[b] = {} end
  local o = {}
  for _, k in ipairs({ "temperature", "top_k", "top_p", "repetition_penalty" }) do o[k] = opts[k] end
  local stop = {}
  for _, t in ipairs(opts.stop or {}) do stop[t] = true end
  local saved = lattice.random.get_state()
  if opts.seed then lattice.random.seed(opts.seed) end
  for step = 1, opts.max_tokens do
    local logits = model(lattice.array(rows, "int32"))
    local T = logits.shape[2]
    local lastl = logits:slice(2, T, T):reshape(#rows, logits.shape[3])
    if (opts.repetition_penalty or 1) ~= 1 then
      o.history = step == 1 and lattice.zeros({ #rows, 0 }, "int64") or lattice.array(gen, "int64")
    end
    local ids = sample.next_token(lastl, o):tolist()
    local stopped = false
    for _, t in ipairs(ids) do stopped = stopped or stop[t] end
    if stopped then break end
    for b = 1, #rows do
      rows[b][#rows[b] + 1] = ids[b]
      gen[b][#gen[b] + 1] = ids[b]
    end
  end
  if opts.seed then lattice.random.set_state(saved) end
  return rows
end

describe("sample.generate", function()
  local lm = CountingLM(V, 3)
  local prompt = lattice.array({ { 1, 4, 2 }, { 7, 7, 0 } }, "int32")

  it("greedy: each token is the argmax of a full forward over the sequence before it", function()
    local out = sample.generate(lm, prompt, { max_tokens = 12, temperature = 0 })
    assert.same({ 2, 15 }, out.shape)
    assert.equal("int32", out.dtype)
    local rows = out:tolist()
    for b = 1, 2 do
      for t = 4, 15 do
        local logits = lm(lattice.array({ table.move(rows[b], 1, t - 1, 1, {}) }, "int32"))
        assert.equal(lattice.argmax(last_row(logits, 1)):item(), rows[b][t])
      end
    end
  end)

  local cases = {
    { name = "a plain draw", o = {} },
    { name = "top_k and temperature", o = { top_k = 3, temperature = 0.7 } },
    { name = "top_p", o = { top_p = 0.8 } },
    { name = "the repetition penalty over the tokens generated so far", o = { repetition_penalty = 3, temperature = 0.5 } },
    { name = "a greedy decode with the repetition penalty", o = { repetition_penalty = 2.5, temperature = 0 } },
  }
  for _, c in ipairs(cases) do
    it("draws what next_token draws from full forwards, for " .. c.name, function()
      local o = { max_tokens = 10, seed = 17 }
      for k, v in pairs(c.o) do o[k] = v end
      assert.same(ref_generate(lm, prompt, o), sample.generate(lm, prompt, o):tolist())
    end)
  end

  it("repeats itself under a seed and leaves lattice.random's state alone", function()
    lattice.random.seed(5)
    local s = lattice.random.get_state()
    local a = sample.generate(lm, prompt, { max_tokens = 20, seed = 9 }):tolist()
    assert.same(s, lattice.random.get_state())
    assert.same(a, sample.generate(lm, prompt, { max_tokens = 20, seed = 9 }):tolist())
    assert.are_not.same(a, sample.generate(lm, prompt, { max_tokens = 20, seed = 10 }):tolist())
    -- without a seed it draws from the generator, moving it on
    local b = sample.generate(lm, prompt, { max_tokens = 20 }):tolist()
    assert.are_not.same(s, lattice.random.get_state())
    lattice.random.set_state(s)
    assert.same(b, sample.generate(lm, prompt, { max_tokens = 20 }):tolist())
  end)

  it("stops when any row draws a stop token, which it does not keep", function()
    local full = sample.generate(lm, prompt, { max_tokens = 12, temperature = 0 }):tolist()
    local stop_at, stop_tok = nil, full[2][8] -- row 2's 5th generated token
    for t = 4, 15 do
      if stop_at == nil and (full[1][t] == stop_tok or full[2][t] == stop_tok) then stop_at = t end
    end
    local out = sample.generate(lm, prompt, { max_tokens = 12, temperature = 0, stop = { 100, stop_tok } })
    assert.same({ 2, stop_at - 1 }, out.shape)
    assert.same(ref_generate(lm, prompt, { max_tokens = 12, temperature = 0, stop = { stop_tok } }), out:tolist())
  end)

  it("decodes with one cache made for the whole call, feeding one token per step", function()
    local made = {}
    local spy = setmetatable({ make_cache = function(self, b, n)
      made[#made + 1] = { b, n }
      return lm.make_cache(self, b, n)
    end }, { __index = lm, __call = function(_, ...) return lm(...) end })
    lm.calls = 0
    sample.generate(spy, prompt, { max_tokens = 6, temperature = 0 })
    assert.same({ { 2, 3 + 6 - 1 } }, made)
    assert.equal(6, lm.calls) -- the prefill and 5 steps: the last token is not fed back
  end)

  it("takes a 1-D prompt and returns a 1-D sequence; max_tokens 0 returns the prompt", function()
    local p = lattice.array({ 3, 1 }, "int64")
    local out = sample.generate(lm, p, { max_tokens = 4, temperature = 0 })
    assert.same({ 6 }, out.shape)
    assert.equal("int64", out.dtype)
    assert.same(sample.generate(lm, p:reshape(1, 2), { max_tokens = 4, temperature = 0 }):tolist()[1], out:tolist())
    assert.same({ 3, 1 }, sample.generate(lm, p, { max_tokens = 0 }):tolist())
  end)

  it("refuses bad input, naming the problem", function()
    local function err(msg, ...)
      local args = table.pack(...)
      assert.has_error(function() sample.generate(table.unpack(args, 1, args.n)) end, msg)
    end
    err("generate: model must be a language model (callable, with make_cache), got table", {}, prompt)
    err("generate: prompt must be an int32 or int64 tensor (P) or (B, P) of token ids, got float32 {2}", lm,
      lattice.array({ 1, 2 }))
    err("generate: prompt must be an int32 or int64 tensor (P) or (B, P) of token ids, got table", lm, { 1, 2 })
    err("generate: prompt must hold at least one token", lm, lattice.zeros({ 1, 0 }, "int32"))
    err("generate: unknown option 'stop_tokens'", lm, prompt, { stop_tokens = { 1 } })
    err("generate: max_tokens must be an integer >= 0, got -1", lm, prompt, { max_tokens = -1 })
    err("generate: temperature must be a finite number, got inf", lm, prompt, { temperature = math.huge })
    err("generate: top_p must be a number in [0, 1], got -0.5", lm, prompt, { top_p = -0.5 })
    err("generate: top_k must be an integer >= 0, got 2.5", lm, prompt, { top_k = 2.5 })
    err("generate: repetition_penalty must be a positive finite number, got -1", lm, prompt, { repetition_penalty = -1 })
    err("generate: stop must be a list of token ids, got number", lm, prompt, { stop = 3 })
    err("generate: stop[2] must be a token id (an integer >= 0), got -3", lm, prompt, { stop = { 1, -3 } })
    err("generate: seed must be an integer, got string", lm, prompt, { seed = "1" })
  end)
end)

describe("sample.stream_generate", function()
  local lm = CountingLM(V, 8)
  local prompt = lattice.array({ { 5, 2 } }, "int32")

  it("calls back with each token as generate draws it, and stops when the callback returns false", function()
    local seen = {}
    local out = sample.stream_generate(lm, prompt, { max_tokens = 9, seed = 4 }, function(tok, step)
      assert.equal(#seen + 1, step)
      seen[step] = tok
    end)
    local want = sample.generate(lm, prompt, { max_tokens = 9, seed = 4 }):tolist()[1]
    assert.same(want, out:tolist()[1])
    assert.same(table.move(want, 3, 11, 1, {}), seen)
    local n = 0
    local cut = sample.stream_generate(lm, prompt, { max_tokens = 9, seed = 4 }, function()
      n = n + 1
      return n < 3
    end)
    assert.same(table.move(want, 1, 5, 1, {}), cut:tolist()[1])
  end)

  it("refuses a batch and a missing callback", function()
    assert.has_error(function() sample.stream_generate(lm, lattice.zeros({ 2, 2 }, "int32"), {}, print) end,
      "stream_generate: prompt must be one sequence, got a batch of 2")
    assert.has_error(function() sample.stream_generate(lm, prompt, {}) end,
      "stream_generate: fn must be a function, got nil")
  end)
end)

-- log-probabilities of the generated tokens after position P, in plain Lua
-- over the model's full-forward logits (float32 logits, double sums).
local function ref_scores(lm, seqs, P)
  local out = {}
  for i, row in ipairs(seqs) do
    local logits = lm(lattice.array({ row }, "int32")):astype("float64"):tolist()[1]
    local s = 0
    for t = P, #row - 1 do
      local l, m, z = logits[t], -math.huge, 0
      for j = 1, V do m = math.max(m, l[j]) end
      for j = 1, V do z = z + math.exp(l[j] - m) end
      s = s + l[row[t + 1] + 1] - m - math.log(z)
    end
    out[i] = s
  end
  return out
end

describe("sample.best_of_n and sample.majority_vote", function()
  local lm = CountingLM(V, 21)
  local prompt = lattice.array({ { 3, 9 } }, "int32")

  local function draws(n, max_tokens, seed)
    return ref_generate(lm, lattice.concatenate({ prompt, prompt, prompt, prompt, prompt, prompt }, 1):slice(1, 1, n),
      { max_tokens = max_tokens, temperature = 0.8, seed = seed })
  end

  it("keeps the completion with the highest log-probability, or length-normalised, or by score_fn", function()
    local seqs = draws(6, 5, 13)
    local scores = ref_scores(lm, seqs, 2)
    local best = 1
    for i = 2, 6 do if scores[i] > scores[best] then best = i end end
    local got = sample.best_of_n(lm, prompt, { n = 6, max_tokens = 5, seed = 13 })
    assert.same({ seqs[best] }, got:tolist())
    assert.same({ seqs[best] }, sample.best_of_n(lm, prompt, { n = 6, max_tokens = 5, seed = 13,
      score_fn = "length_normalized" }):tolist())
    -- a score_fn sees all n completions; here the one with the largest last token wins
    local picked = sample.best_of_n(lm, prompt, { n = 6, max_tokens = 5, seed = 13, score_fn = function(c)
      assert.same(seqs, c:tolist())
      return c:slice(2, 7, 7):astype("float32")
    end })
    local want = 1
    for i = 2, 6 do if seqs[i][7] > seqs[want][7] then want = i end end
    assert.same({ seqs[want] }, picked:tolist())
  end)

  it("counts the distinct completions, the most frequent first", function()
    local seqs = draws(6, 2, 3)
    local want, index = {}, {}
    for _, row in ipairs(seqs) do
      local key = row[3] .. "," .. row[4]
      if not index[key] then
        want[#want + 1] = { tokens = { row[3], row[4] }, count = 0 }
        index[key] = want[#want]
      end
      index[key].count = index[key].count + 1
    end
    table.sort(want, function(a, b) return a.count > b.count end) -- stable enough: checked below
    local got = sample.majority_vote(lm, prompt, { n = 6, max_tokens = 2, seed = 3 })
    local total = 0
    for i, g in ipairs(got) do
      total = total + g.count
      if i > 1 then assert.is_true(got[i - 1].count >= g.count) end
      assert.equal(index[g.tokens[1] .. "," .. g.tokens[2]].count, g.count)
    end
    assert.equal(6, total)
    assert.equal(#want, #got)
  end)

  it("refuses bad input", function()
    assert.has_error(function() sample.best_of_n(lm, prompt, { score_fn = "best" }) end,
      "best_of_n: score_fn must be 'log_prob', 'length_normalized' or a function, got 'best'")
    assert.has_error(function() sample.best_of_n(lm, prompt, { n = 0 }) end, "best_of_n: n must be a positive integer, got 0")
    assert.has_error(function() sample.best_of_n(lm, prompt, { score_fn = function() return 1 end, max_tokens = 2 }) end,
      "best_of_n: score_fn must return a tensor of 4 scores, got number")
    assert.has_error(function() sample.majority_vote(lm, lattice.zeros({ 2, 1 }, "int32")) end,
      "majority_vote: prompt must be one sequence, got a batch of 2")
    assert.has_error(function() sample.majority_vote(lm, prompt, { max_tokens = 0 }) end,
      "majority_vote: max_tokens must be a positive integer, got 0")
  end)
end)

-- The seed's beam search: every beam's whole sequence through the model at every step.
local function ref_beam(lm, prompt, W, T)
  local beams = { { seq = prompt:tolist()[1], score = 0 } }
  for _ = 1, T do
    local cands = {}
    for _, b in ipairs(beams) do
      local logits = lm(lattice.array({ b.seq }, "int32"))
      local lp = lattice.log_softmax(last_row(logits, 1), -1)
      local vals, idx = lattice.topk(lp, math.min(W, V))
      vals, idx = vals:astype("float64"):tolist(), idx:tolist()
      for j = 1, #idx do
        local seq = table.move(b.seq, 1, #b.seq, 1, {})
        seq[#seq + 1] = idx[j]
        cands[#cands + 1] = { seq = seq, score = b.score + vals[j], order = #cands }
      end
    end
    table.sort(cands, function(a, b) return a.score > b.score or (a.score == b.score and a.order < b.order) end)
    beams = table.move(cands, 1, math.min(W, #cands), 1, {})
  end
  return beams
end

describe("sample.beam_search", function()
  local lm = CountingLM(V, 30)
  local prompt = lattice.array({ { 2, 6, 1 } }, "int32")

  it("keeps the beams a full recomputation keeps, decoding with the cache", function()
    for _, W in ipairs({ 1, 3, 5 }) do
      local want = ref_beam(lm, prompt, W, 6)
      local got = sample.beam_search(lm, prompt, { beam_width = W, max_tokens = 6 })
      assert.equal(#want, #got)
      for i = 1, #want do
        assert.same({ want[i].seq }, got[i].tokens:tolist())
        assert.near(want[i].score, got[i].score, 1e-9)
      end
    end
  end)

  it("reorders the cache's rows when beams change places, and reranks by score_fn", function()
    local reorders = 0
    local spy = setmetatable({ make_cache = function(self, b, n)
      local c = lm.make_cache(self, b, n)
      local reorder = c.reorder
      c.reorder = function(cc, rows)
        reorders = reorders + 1
        return reorder(cc, rows)
      end
      return c
    end }, { __index = lm, __call = function(_, ...) return lm(...) end })
    local got = sample.beam_search(spy, prompt, { beam_width = 4, max_tokens = 5 })
    assert.is_true(reorders > 0)
    local reranked = sample.beam_search(lm, prompt, { beam_width = 4, max_tokens = 5, score_fn = function(s)
      return lattice.sum(s, 2):astype("float32")
    end })
    local sums = {}
    for i, b in ipairs(got) do
      local s = 0
      for _, t in ipairs(b.tokens:tolist()[1]) do s = s + t end
      sums[i] = s
    end
    for i = 2, #reranked do assert.is_true(reranked[i - 1].score >= reranked[i].score) end
    table.sort(sums, function(a, b) return a > b end)
    for i, b in ipairs(reranked) do assert.equal(sums[i], b.score) end
  end)

  it("keeps fewer beams than beam_width when the vocabulary is smaller", function()
    local small = CountingLM(3, 5)
    local got = sample.beam_search(small, lattice.array({ 1 }, "int32"), { beam_width = 5, max_tokens = 1 })
    assert.equal(3, #got)
    assert.same({ 2 }, got[1].tokens.shape)
  end)

  it("refuses bad input", function()
    assert.has_error(function() sample.beam_search(lm, prompt, { beam_width = 0 }) end,
      "beam_search: beam_width must be a positive integer, got 0")
    assert.has_error(function() sample.beam_search(lm, prompt, { score_fn = 1 }) end,
      "beam_search: score_fn must be a function, got number")
  end)
end)

describe("sample.speculative_decode", function()
  local target = CountingLM(V, 40)
  local prompt = lattice.array({ { 4, 0, 8 } }, "int32")

  it("gives the target's greedy decoding, whatever the draft proposes", function()
    local want = sample.generate(target, prompt, { max_tokens = 17, temperature = 0 }):tolist()
    for _, d in ipairs({ 1, 3, 8 }) do
      local out, stats = sample.speculative_decode(target, CountingLM(V, 41), prompt, { max_tokens = 17, draft_tokens = d })
      assert.same(want, out:tolist())
      assert.is_true(stats.total_accepted <= stats.total_drafted)
      assert.equal(stats.total_accepted / math.max(stats.total_drafted, 1), stats.acceptance_rate)
    end
  end)

  it("accepts every proposal of a draft that is the target, in rounds of draft_tokens + 1", function()
    local out, stats = sample.speculative_decode(target, target, lattice.array({ 5 }, "int64"),
      { max_tokens = 10, draft_tokens = 4 })
    assert.same(sample.generate(target, lattice.array({ 5 }, "int64"), { max_tokens = 10, temperature = 0 }):tolist(),
      out:tolist())
    -- rounds of 4 + 1, 4 + 1: 8 proposals, all accepted
    assert.same({ acceptance_rate = 1, total_drafted = 8, total_accepted = 8 }, stats)
  end)

  it("refuses sampling and bad input", function()
    assert.has_error(function() sample.speculative_decode(target, target, prompt, { temperature = 0.5 }) end,
      "speculative_decode: only greedy decoding is supported (temperature 0), got temperature 0.5")
    assert.has_error(function() sample.speculative_decode(target, nil, prompt) end,
      "speculative_decode: model must be a language model (callable, with make_cache), got nil")
    assert.has_error(function() sample.speculative_decode(target, target, prompt, { draft_tokens = 0 }) end,
      "speculative_decode: draft_tokens must be a positive integer, got 0")
  end)
end)

describe("generation with nn.LanguageModel", function()
  local models = lattice.models
  local function build(name, seed)
    lattice.random.seed(seed or 1)
    local m = lattice.nn.LanguageModel(models[name]())
    m:eval()
    return m
  end
  local prompt = lattice.array({ { 5, 17, 200, 3 }, { 9, 9, 1, 64 } }, "int32")

  for _, name in ipairs({ "gpt_tiny", "llama_tiny", "gemma3_tiny", "smollm3_tiny", "qwen3_tiny", "mistral_tiny" }) do
    it(name .. ": greedy decoding is the argmax of a full forward at every step", function()
      local m = build(name)
      -- past gemma3_tiny's window of 16, so the sliding layers drop keys while decoding
      local out = m:generate(prompt, { max_tokens = 20, temperature = 0 }):tolist()
      for b = 1, 2 do
        local logits = m(lattice.array({ table.move(out[b], 1, 23, 1, {}) }, "int32"))
        local want = lattice.argmax(logits, 3):tolist()[1]
        for t = 5, 24 do assert.equal(want[t - 1], out[b][t]) end
      end
    end)
  end

  it("draws what next_token draws from full forwards, under a seed, and stops at a stop token", function()
    local m = build("llama_tiny", 2)
    local o = { max_tokens = 12, seed = 8, top_k = 20, temperature = 0.9, repetition_penalty = 1.3 }
    local want = ref_generate(m, prompt, o)
    assert.same(want, m:generate(prompt, o):tolist())
    assert.same(want, m:generate(prompt, o):tolist())
    o.stop = { want[1][9] }
    local cut = m:generate(prompt, o)
    assert.is_true(cut.shape[2] <= 8)
    assert.same(ref_generate(m, prompt, o), cut:tolist())
    local seen = {}
    m:stream_generate(prompt:slice(1, 1, 1), { max_tokens = 5, seed = 3 }, function(t) seen[#seen + 1] = t end)
    assert.same(table.move(m:generate(prompt:slice(1, 1, 1), { max_tokens = 5, seed = 3 }):tolist()[1], 5, 9, 1, {}), seen)
  end)

  it("beam search with the cache keeps the beams a full recomputation keeps", function()
    local m = build("gpt_tiny", 4)
    local p = prompt:slice(1, 1, 1)
    local want = ref_beam(m, p, 3, 5)
    local got = sample.beam_search(m, p, { beam_width = 3, max_tokens = 5 })
    for i = 1, 3 do
      assert.same({ want[i].seq }, got[i].tokens:tolist())
      assert.near(want[i].score, got[i].score, 1e-4)
    end
  end)

  it("speculative decoding gives the target's greedy decoding", function()
    local target, draft = build("llama_tiny", 5), build("llama_tiny", 6)
    local p = prompt:slice(1, 2, 2)
    local want = target:generate(p, { max_tokens = 15, temperature = 0 }):tolist()
    local out, stats = sample.speculative_decode(target, draft, p, { max_tokens = 15, draft_tokens = 3 })
    assert.same(want, out:tolist())
    assert.equal(15, #out:tolist()[1] - 4)
    assert.is_true(stats.total_drafted > 0)
    local same = sample.speculative_decode(target, target, p, { max_tokens = 15, draft_tokens = 3 })
    assert.same(want, same:tolist())
  end)

  it("counts the parameters the presets' models have", function()
    for _, name in ipairs({ "gpt_tiny", "llama_tiny", "gemma_tiny", "gemma3_tiny", "mistral_tiny", "qwen_tiny", "qwen3_tiny",
      "olmo2_tiny", "smollm3_tiny", "gpt_10m", "llama_10m" }) do
      local cfg = models[name]()
      assert.equal(models.count_parameters(cfg), lattice.nn.LanguageModel(cfg):num_parameters(), name)
    end
  end)

  it("refuses a bad reorder of a cache", function()
    local m = build("llama_tiny")
    local c = m:make_cache(2, 8)
    assert.has_error(function() c:reorder(lattice.array({ 0 }, "int64")) end,
      "Cache: reorder: rows must be an int32 or int64 tensor of 2 row indices")
    assert.has_error(function() c:reorder(lattice.array({ 0, 2 }, "int64")) end, "Cache: reorder: row indices must be in [0, 2), got 0 .. 2")
  end)
end)
