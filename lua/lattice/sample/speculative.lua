-- Greedy speculative decoding, as lmxlab's inference/speculative.py: a small
-- draft model proposes draft_tokens tokens one at a time, the target model
-- checks them all in one forward pass, the proposals it agrees with are kept
-- and its own token follows the first it does not (or the last, when it
-- agrees with all). Both models decode with their KV caches, rewound past
-- what was refused (the seed runs both over the whole sequence at every
-- step). The result is the target's greedy decoding.
--
-- Where the seed's code departs from this: on a refusal it keeps only the
-- target's token and drops the accepted proposals before it, and its
-- acceptance count includes the target's own tokens (a rate above 1 is
-- possible); here total_accepted counts the proposals the target agreed with.
local lattice = require "lattice"
local core = require "lattice.core"
local sparse = require "lattice.sparse"
local gen = require "lattice.sample.generate"

local M = {}
local api = sparse.api

local GREEDY = { temperature = 0 }

-- The argmax of each position of logits (1, n, V), as a Lua list.
local function argmaxes(logits) return lattice.argmax(logits, 3):reshape(logits.shape[2]):tolist() end

-- Feeds the tokens seq[from .. to] (1-based) to model with its cache.
local function feed(model, cache, seq, from, to, dtype)
  return model(lattice.array({ table.move(seq, from, to, 1, {}) }, dtype), { cache = cache })
end

-- Rewinds a cache holding positions it should not past `keep`.
local function rewind(cache, keep)
  if cache.offset > keep then cache:truncate(keep) end
end

--- speculative_decode(target, draft, prompt[, {max_tokens = 100,
-- draft_tokens = 4, temperature = 0}]) -> tokens (1, P + max_tokens), stats
-- {acceptance_rate, total_drafted, total_accepted}. Greedy only, as the
-- seed's: a temperature other than 0 is an error.
M.speculative_decode = api(function(target, draft, prompt, opts)
  local fname = "speculative_decode"
  gen._check_model(target, fname)
  gen._check_model(draft, fname)
  local p, flat = gen._prompt(prompt, fname)
  if p.shape[1] ~= 1 then error(("%s: prompt must be one sequence, got a batch of %d"):format(fname, p.shape[1]), 0) end
  opts = gen._check_options(opts, { max_tokens = true, draft_tokens = true, temperature = true }, fname)
  local max_tokens = gen._count(opts.max_tokens, 100, 1, "max_tokens", fname)
  local n_draft = gen._count(opts.draft_tokens, 4, 1, "draft_tokens", fname)
  if opts.temperature ~= nil and opts.temperature ~= 0 then
    error(("%s: only greedy decoding is supported (temperature 0), got temperature %s"):format(fname,
      tostring(opts.temperature)), 0)
  end
  local seq, P = p:reshape(p.shape[2]):tolist(), p.shape[2]
  local total = P + max_tokens
  -- both caches hold a prefix of seq without its last token, which each round feeds first
  local t_cache, d_cache = target:make_cache(1, total - 1), draft:make_cache(1, total - 1)
  if P > 1 then
    target(p:slice(2, 1, P - 1), { cache = t_cache })
    draft(p:slice(2, 1, P - 1), { cache = d_cache })
  end
  local drafted, accepted = 0, 0
  while #seq < total do
    local L = #seq
    local n = math.min(n_draft, total - L - 1)
    -- draft: catch up with seq, then propose n tokens one by one
    local props = {}
    if n > 0 then
      local logits = feed(draft, d_cache, seq, d_cache.offset + 1, L, p.dtype)
      for i = 1, n do
        props[i] = core.sample_logits(gen._last(logits), GREEDY):tolist()[1]
        if i < n then logits = draft(lattice.array({ { props[i] } }, p.dtype), { cache = d_cache }) end
      end
    end
    drafted = drafted + n
    -- verify: the target reads seq's last token and the proposals at once
    local verify = { seq[L] }
    for i = 1, n do verify[i + 1] = props[i] end
    local t_next = argmaxes(target(lattice.array({ verify }, p.dtype), { cache = t_cache }))
    local a = 0
    while a < n and props[a + 1] == t_next[a + 1] do a = a + 1 end
    accepted = accepted + a
    for i = 1, a do seq[L + i] = props[i] end
    seq[L + a + 1] = t_next[a + 1]
    -- keep what both caches hold of the accepted sequence: positions up to L + a
    rewind(t_cache, L + a)
    rewind(d_cache, L + a)
  end
  local out = lattice.array({ seq }, p.dtype)
  return flat and out:reshape(total) or out, {
    acceptance_rate = accepted / math.max(drafted, 1), total_drafted = drafted, total_accepted = accepted,
  }
end)

return M
