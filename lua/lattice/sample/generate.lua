-- lattice.sample's core: next_token and generation from a language model, as lmxlab's
-- models/generate.py and inference/ (sampling.py, beam_search.py,
-- speculative.py) do it, with the KV cache preallocated once per call.
--
--   next_token(logits, opts)              one token per row of logits
--   generate(model, prompt, opts)         the prompt and what follows it
--   stream_generate(model, prompt, opts, fn)   fn(token, step) for each token
--   best_of_n, majority_vote              (lattice.sample.search)
--   beam_search, speculative_decode       (lattice.sample.search, .speculative)
--
-- A model is anything that follows nn.LanguageModel's calling protocol:
-- model(tokens (B, T), {cache = c}) returns logits (B, T, V) and the cache,
-- model:make_cache(batch, max_len) an empty cache whose offset counts the
-- positions it holds and whose truncate(n) rewinds it.
local lattice = require "lattice"
local core = require "lattice.core"
local sparse = require "lattice.sparse"

local M = {}

local api, type_name = sparse.api, sparse.type_name

-- ---- argument checks (raised with no position; api raises them again at the caller's line) ----

local function check_options(opts, allowed, fname) return sparse.check_options(opts, allowed, fname) end
M._check_options = check_options

local function is_int(v) return math.type(v) == "integer" end

local function check_number(v, default, ok, what, want, fname)
  if v == nil then return default end
  if type(v) ~= "number" or v ~= v or not ok(v) then
    local got = type(v) ~= "number" and type(v) or v ~= v and "nan" or tostring(v)
    error(("%s: %s must be %s, got %s"):format(fname, what, want, got), 0)
  end
  return v
end

local function finite(v) return v > -math.huge and v < math.huge end

--- The sampling options shared by every entry: temperature (1), top_k (0),
-- top_p (1), repetition_penalty (1); checked, defaults filled in.
function M._sampling(opts, fname, defaults)
  defaults = defaults or {}
  return {
    temperature = check_number(opts.temperature, defaults.temperature or 1.0, finite, "temperature",
      "a finite number", fname),
    top_k = check_number(opts.top_k, 0, function(v) return is_int(v) and v >= 0 end, "top_k",
      "an integer >= 0", fname),
    top_p = check_number(opts.top_p, 1.0, function(v) return v >= 0 and v <= 1 end, "top_p",
      "a number in [0, 1]", fname),
    repetition_penalty = check_number(opts.repetition_penalty, 1.0, function(v) return v > 0 and finite(v) end,
      "repetition_penalty", "a positive finite number", fname),
  }
end

function M._count(v, default, min, what, fname)
  if v == nil then return default end
  if not is_int(v) or v < min then
    local bound = min == 1 and "a positive integer" or ("an integer >= %d"):format(min)
    error(("%s: %s must be %s, got %s"):format(fname, what, bound, tostring(v)), 0)
  end
  return v
end

-- ---- next_token ----

--- next_token(logits[, {temperature = 1, top_k = 0, top_p = 1,
-- repetition_penalty = 1, history}]): int64 token ids, one per row of
-- logits (B, V) (a 0-d tensor for logits (V)): the seed's _sample_next
-- after its repetition penalty on the token ids in history (B, n).
M.next_token = api(function(logits, opts)
  local fname = "sample.next_token"
  if not lattice.is_tensor(logits) then
    error(("%s: logits must be a lattice.Tensor, got %s"):format(fname, type_name(logits)), 0)
  end
  opts = check_options(opts, { temperature = true, top_k = true, top_p = true, repetition_penalty = true,
    history = true }, fname)
  local o = M._sampling(opts, fname)
  if opts.history ~= nil and not lattice.is_tensor(opts.history) then
    error(("%s: history must be a lattice.Tensor, got %s"):format(fname, type_name(opts.history)), 0)
  end
  o.history = opts.history
  return sparse.call(core.sample_logits, logits, o)
end)

-- ---- generate ----

-- The prompt as (B, P) integer ids, and whether it came 1-D.
function M._prompt(prompt, fname)
  if not lattice.is_tensor(prompt) or (prompt.ndim ~= 1 and prompt.ndim ~= 2)
      or not (prompt.dtype == "int32" or prompt.dtype == "int64") then
    local got = lattice.is_tensor(prompt) and ("%s %s"):format(prompt.dtype, "{" .. table.concat(prompt.shape, ",") .. "}")
      or type_name(prompt)
    error(("%s: prompt must be an int32 or int64 tensor (P) or (B, P) of token ids, got %s"):format(fname, got), 0)
  end
  local flat = prompt.ndim == 1
  if flat then prompt = prompt:reshape(1, prompt.shape[1]) end
  if prompt.shape[2] == 0 then error(fname .. ": prompt must hold at least one token", 0) end
  return prompt, flat
end

local function check_model(model, fname)
  local ok = type(model) == "table" or type(model) == "userdata"
  if not ok or type(model.make_cache) ~= "function" then
    error(("%s: model must be a language model (callable, with make_cache), got %s"):format(fname, type_name(model)), 0)
  end
end
M._check_model = check_model

local function check_stop(stop, fname)
  if stop == nil then return {} end
  if type(stop) ~= "table" then error(("%s: stop must be a list of token ids, got %s"):format(fname, type_name(stop)), 0) end
  local set = {}
  for i, t in ipairs(stop) do
    if not is_int(t) or t < 0 then
      error(("%s: stop[%d] must be a token id (an integer >= 0), got %s"):format(fname, i, tostring(t)), 0)
    end
    set[t] = true
  end
  return set
end

--- with_seed(seed, fn, ...): fn(...) drawing from lattice.random's generator
-- seeded with seed, the generator's state put back afterwards (also when fn
-- fails), so a seeded call repeats and leaves the caller's draws alone.
-- Without a seed, fn draws from the generator as it is.
function M._with_seed(seed, fn, ...)
  if seed == nil then return fn(...) end
  local saved = lattice.random.get_state()
  lattice.random.seed(seed)
  local res = table.pack(pcall(fn, ...))
  lattice.random.set_state(saved)
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

-- The last position's logits (B, V) of logits (B, T, V).
local function last(logits)
  local T = logits.shape[2]
  return logits:slice(2, T, T):reshape(logits.shape[1], logits.shape[3])
end
M._last = last

-- The decode loop: prefill, then draw, check the stop set, feed the token.
-- on_token(ids, step) sees each step's ids (a Lua list, one per row); it
-- returns false to stop. Returns the generated ids as rows of Lua lists.
local function decode(model, prompt, o, on_token)
  local B, P = prompt.shape[1], prompt.shape[2]
  local rows = {}
  for b = 1, B do rows[b] = {} end
  if o.max_tokens == 0 then return rows end
  -- the last token drawn is never fed back, so P + max_tokens - 1 positions suffice
  local cache = model:make_cache(B, P + o.max_tokens - 1)
  local logits = model(prompt, { cache = cache })
  local history = o.repetition_penalty ~= 1 and lattice.zeros({ B, 0 }, "int64") or nil
  local draw = { temperature = o.temperature, top_k = o.top_k, top_p = o.top_p,
    repetition_penalty = o.repetition_penalty }
  for step = 1, o.max_tokens do
    draw.history = history
    local tok = core.sample_logits(last(logits), draw)
    local ids = tok:tolist()
    for _, t in ipairs(ids) do if o.stop[t] then return rows end end
    for b = 1, B do rows[b][step] = ids[b] end
    if on_token and on_token(ids, step) == false then return rows end
    if step == o.max_tokens then break end
    local col = tok:reshape(B, 1)
    if history then history = lattice.concatenate({ history, col }, 2) end
    logits = model(col:astype(prompt.dtype), { cache = cache })
  end
  return rows
end

local GEN_OPTIONS = { max_tokens = true, temperature = true, top_k = true, top_p = true, repetition_penalty = true,
  stop = true, seed = true }

local function gen_options(opts, fname)
  opts = check_options(opts, GEN_OPTIONS, fname)
  local o = M._sampling(opts, fname)
  o.max_tokens = M._count(opts.max_tokens, 100, 0, "max_tokens", fname)
  o.stop = check_stop(opts.stop, fname)
  if opts.seed ~= nil and not is_int(opts.seed) then
    error(("%s: seed must be an integer, got %s"):format(fname, type_name(opts.seed)), 0)
  end
  return o, opts.seed
end

-- prompt (B, P) followed by the generated rows, in the prompt's dtype.
local function joined(prompt, rows, flat)
  local out = prompt
  if #rows[1] > 0 then out = lattice.concatenate({ prompt, lattice.array(rows, prompt.dtype) }, 2) end
  return flat and out:reshape(out.shape[2]) or out
end

--- generate(model, prompt[, {max_tokens = 100, temperature = 1, top_k = 0,
-- top_p = 1, repetition_penalty = 1, stop, seed}]): prompt (B, P) (or (P))
-- int32/int64 ids followed by the tokens drawn, (B, P + n). Drawing stops
-- after max_tokens, or when any row draws a token of `stop` (a list of ids;
-- the stop token is not kept). The repetition penalty applies to the tokens
-- generated so far, as the seed's. With `seed`, the draws come from
-- lattice.random seeded with it and the generator's state is put back after.
M.generate = api(function(model, prompt, opts)
  local fname = "generate"
  check_model(model, fname)
  local flat
  prompt, flat = M._prompt(prompt, fname)
  local o, seed = gen_options(opts, fname)
  return joined(prompt, M._with_seed(seed, decode, model, prompt, o), flat)
end)

--- stream_generate(model, prompt, opts, fn): the same draws for one
-- sequence, calling fn(token, step) with each token id (a Lua integer) as
-- soon as it is drawn; fn returning false stops. Returns the whole sequence
-- as generate does.
M.stream_generate = api(function(model, prompt, opts, fn)
  local fname = "stream_generate"
  check_model(model, fname)
  local flat
  prompt, flat = M._prompt(prompt, fname)
  if prompt.shape[1] ~= 1 then
    error(("%s: prompt must be one sequence, got a batch of %d"):format(fname, prompt.shape[1]), 0)
  end
  if type(fn) ~= "function" then error(("%s: fn must be a function, got %s"):format(fname, type_name(fn)), 0) end
  local o, seed = gen_options(opts, fname)
  local rows = M._with_seed(seed, decode, model, prompt, o, function(ids, step) return fn(ids[1], step) end)
  return joined(prompt, rows, flat)
end)

return M
