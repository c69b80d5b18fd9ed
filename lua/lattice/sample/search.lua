-- Searching over completions, as lmxlab's inference/sampling.py and
-- inference/beam_search.py: best_of_n (draw n, keep the most likely),
-- majority_vote (draw n, count the distinct ones) and beam_search (the
-- beam_width most likely continuations, one token at a time). Beam search
-- decodes with the KV cache, rows reordered as beams are kept (the seed runs
-- the whole prefix again at every step).
local lattice = require "lattice"
local sparse = require "lattice.sparse"
local gen = require "lattice.sample.generate"

local M = {}
local api, type_name = sparse.api, sparse.type_name

local function one_prompt(prompt, fname)
  local p, flat = gen._prompt(prompt, fname)
  if p.shape[1] ~= 1 then error(("%s: prompt must be one sequence, got a batch of %d"):format(fname, p.shape[1]), 0) end
  return p, flat
end

-- n copies of the (1, P) prompt as (n, P).
local function repeated(prompt, n)
  local t = {}
  for i = 1, n do t[i] = prompt end
  return n == 1 and prompt or lattice.concatenate(t, 1)
end

-- The log-probability each row of sequences (n, L) gives its own tokens
-- after the first P (the seed's _score_sequences): one full forward.
local function score_sequences(model, seqs, P)
  local L = seqs.shape[2]
  local logits = model(seqs:slice(2, 1, L - 1))
  local lp = lattice.log_softmax(logits, -1)
  local targets = seqs:slice(2, 2, L):astype("int64")
  local tok = lattice.take_along_axis(lp, lattice.expand_dims(targets, -1), -1):squeeze(-1)
  return lattice.sum(tok:slice(2, P, L - 1), 2)
end

-- A score_fn's scores as a Lua list of n numbers.
local function user_scores(fn, seqs, n, fname)
  local s = fn(seqs)
  if not lattice.is_tensor(s) then
    error(("%s: score_fn must return a tensor of %d scores, got %s"):format(fname, n, type_name(s)), 0)
  end
  if s.ndim == 2 and s.shape[2] == 1 then s = s:squeeze(2) end
  if s.ndim ~= 1 or s.shape[1] ~= n then
    error(("%s: score_fn must return %d scores, got shape {%s}"):format(fname, n, table.concat(s.shape, ",")), 0)
  end
  return s:astype("float64"):tolist()
end

-- The sampling draws of n completions of one prompt: (n, P + max_tokens).
local function completions(model, prompt, n, o, seed)
  return gen.generate(model, repeated(prompt, n), { max_tokens = o.max_tokens, temperature = o.temperature, seed = seed })
end

local function draw_options(opts, fname, allowed, n_default, max_default)
  opts = gen._check_options(opts, allowed, fname)
  local o = {
    n = gen._count(opts.n, n_default, 1, "n", fname),
    max_tokens = gen._count(opts.max_tokens, max_default, 1, "max_tokens", fname),
    temperature = gen._sampling({ temperature = opts.temperature }, fname, { temperature = 0.8 }).temperature,
  }
  if opts.seed ~= nil and math.type(opts.seed) ~= "integer" then
    error(("%s: seed must be an integer, got %s"):format(fname, type_name(opts.seed)), 0)
  end
  return o, opts
end

--- best_of_n(model, prompt[, {n = 4, max_tokens = 100, temperature = 0.8,
-- score_fn = "log_prob", seed}]): n completions of prompt (1, P) drawn at
-- once, and the best of them (1, P + max_tokens): by the total
-- log-probability the model gives the generated tokens ("log_prob"), that
-- divided by their count ("length_normalized"), or score_fn(completions)
-- returning n scores. Ties go to the first.
M.best_of_n = api(function(model, prompt, opts)
  local fname = "best_of_n"
  gen._check_model(model, fname)
  local p, flat = one_prompt(prompt, fname)
  local o
  o, opts = draw_options(opts, fname, { n = true, max_tokens = true, temperature = true, score_fn = true, seed = true },
    4, 100)
  local score_fn = opts.score_fn == nil and "log_prob" or opts.score_fn
  if type(score_fn) ~= "function" and score_fn ~= "log_prob" and score_fn ~= "length_normalized" then
    error(("%s: score_fn must be 'log_prob', 'length_normalized' or a function, got %s"):format(fname,
      type(score_fn) == "string" and "'" .. score_fn .. "'" or type_name(score_fn)), 0)
  end
  local seqs = completions(model, p, o.n, o, opts.seed)
  local scores
  if type(score_fn) == "function" then
    scores = user_scores(score_fn, seqs, o.n, fname)
  else
    scores = score_sequences(model, seqs, p.shape[2]):astype("float64"):tolist()
    if score_fn == "length_normalized" then
      for i = 1, #scores do scores[i] = scores[i] / o.max_tokens end
    end
  end
  local best = 1
  for i = 2, #scores do if scores[i] > scores[best] then best = i end end
  local row = seqs:slice(1, best, best)
  return flat and row:reshape(row.shape[2]) or row
end)

--- majority_vote(model, prompt[, {n = 5, max_tokens = 50, temperature =
-- 0.8, seed}]): n completions drawn, grouped by their generated tokens: a
-- list of {tokens = {id, ...}, count = c}, the most frequent first (ties in
-- the order they were first drawn).
M.majority_vote = api(function(model, prompt, opts)
  local fname = "majority_vote"
  gen._check_model(model, fname)
  local p = one_prompt(prompt, fname)
  local o
  o, opts = draw_options(opts, fname, { n = true, max_tokens = true, temperature = true, seed = true }, 5, 50)
  local seqs = completions(model, p, o.n, o, opts.seed)
  local P, groups, by_key = p.shape[2], {}, {}
  for i, row in ipairs(seqs:tolist()) do
    local toks = table.move(row, P + 1, #row, 1, {})
    local key = table.concat(toks, ",")
    local g = by_key[key]
    if not g then
      g = { tokens = toks, count = 0, first = i }
      by_key[key] = g
      groups[#groups + 1] = g
    end
    g.count = g.count + 1
  end
  table.sort(groups, function(a, b) return a.count > b.count or (a.count == b.count and a.first < b.first) end)
  for _, g in ipairs(groups) do g.first = nil end
  return groups
end)

-- ---- beam search ----

-- The next beams from the log-probabilities lp (W, V) of the current ones:
-- each beam's best k tokens, then the W best candidates overall, ties in
-- the order (beam, rank) as the seed's stable sort keeps them.
local function expand(lp, scores, W)
  local k = math.min(W, lp.shape[2])
  local vals, idx = lattice.topk(lp, k)
  vals, idx = vals:astype("float64"):tolist(), idx:tolist()
  local cands = {}
  for i = 1, W do
    if scores[i] > -math.huge then
      for j = 1, k do
        cands[#cands + 1] = { score = scores[i] + vals[i][j], parent = i, token = idx[i][j], order = #cands }
      end
    end
  end
  table.sort(cands, function(a, b) return a.score > b.score or (a.score == b.score and a.order < b.order) end)
  return cands
end

--- beam_search(model, prompt[, {beam_width = 4, max_tokens = 100,
-- score_fn}]): the beam_width continuations of prompt (1, P) with the
-- highest total log-probability after max_tokens tokens, as a list of
-- {tokens = (1, P + max_tokens) ids, score = total log-probability}, the best
-- first; score_fn(sequences) returning one score per beam reranks them. The
-- beams decode together with one KV cache whose rows follow their parents.
M.beam_search = api(function(model, prompt, opts)
  local fname = "beam_search"
  gen._check_model(model, fname)
  local p, flat = one_prompt(prompt, fname)
  opts = gen._check_options(opts, { beam_width = true, max_tokens = true, score_fn = true }, fname)
  local W = gen._count(opts.beam_width, 4, 1, "beam_width", fname)
  local T = gen._count(opts.max_tokens, 100, 1, "max_tokens", fname)
  if opts.score_fn ~= nil and type(opts.score_fn) ~= "function" then
    error(("%s: score_fn must be a function, got %s"):format(fname, type_name(opts.score_fn)), 0)
  end
  local P = p.shape[2]
  local cache = model:make_cache(W, P + T - 1)
  local logits = model(repeated(p, W), { cache = cache })
  local scores, seqs = { 0 }, {}
  for i = 1, W do
    scores[i] = i == 1 and 0 or -math.huge -- one beam to start from, as the seed's
    seqs[i] = {}
  end
  for step = 1, T do
    local cands = expand(lattice.log_softmax(gen._last(logits), -1), scores, W)
    local parents, tokens, new_seqs, moved = {}, {}, {}, false
    for i = 1, W do
      local c = cands[i]
      if c then
        scores[i], parents[i], tokens[i] = c.score, c.parent - 1, c.token
      else -- fewer candidates than beams (a vocabulary below beam_width): an idle row
        scores[i], parents[i], tokens[i] = -math.huge, cands[1].parent - 1, cands[1].token
      end
      new_seqs[i] = table.move(seqs[parents[i] + 1], 1, step - 1, 1, {})
      new_seqs[i][step] = tokens[i]
      moved = moved or parents[i] ~= i - 1
    end
    seqs = new_seqs
    if step == T then break end
    if moved then cache:reorder(lattice.array(parents, "int64")) end
    logits = model(lattice.array(tokens, p.dtype):reshape(W, 1), { cache = cache })
  end
  local beams = {}
  for i = 1, W do
    if scores[i] > -math.huge then
      local row = lattice.concatenate({ p, lattice.array({ seqs[i] }, p.dtype) }, 2)
      beams[#beams + 1] = { tokens = flat and row:reshape(row.shape[2]) or row, score = scores[i] }
    end
  end
  if opts.score_fn then
    local all = {}
    for i, b in ipairs(beams) do all[i] = flat and b.tokens:reshape(1, b.tokens.shape[1]) or b.tokens end
    local s = user_scores(opts.score_fn, lattice.concatenate(all, 1), #beams, fname)
    for i, b in ipairs(beams) do b.score, b.order = s[i], i end
    table.sort(beams, function(a, b) return a.score > b.score or (a.score == b.score and a.order < b.order) end)
    for _, b in ipairs(beams) do b.order = nil end
  end
  return beams
end)

M._score_sequences = score_sequences

return M
