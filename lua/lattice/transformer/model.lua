-- LanguageModel, as lmxlab's models/base.py builds it from a ModelConfig:
-- embed -> embed_dropout -> (sinusoidal positions, once) -> blocks (one
-- ConfigurableBlock per layer, layer i from get_block_config(i)) ->
-- final_norm -> logits: h embed.weight^T when the embeddings are tied, else
-- head(h); with muP (mup_base_width) the logits are divided by width_mult and
-- the blocks' and head's weight matrices start scaled by 1/sqrt(width_mult).
-- Parameter names are the seed's: embed.weight, blocks.0.attention.q_proj.weight,
-- blocks.0.ffn.gate.weight, final_norm.weight, head.weight.
local lattice = require "lattice"
local nn = require "lattice.nn"
local registry = require("lattice.registry").registries
local module = require "lattice.nn.module"
local cache_mod = require "lattice.transformer.cache"
local Sinusoidal = require("lattice.transformer.position").Sinusoidal
local ConfigurableBlock = require("lattice.transformer.block").ConfigurableBlock

local M = {}

local LanguageModel = nn.Module:extend("LanguageModel")
M.LanguageModel = LanguageModel

local FNAME = "LanguageModel"

function LanguageModel:init(config)
  if not lattice.is_model_config(config) then
    error(("%s: config must be a lattice.ModelConfig, got %s"):format(FNAME, type(config)), 3)
  end
  self.config = config
  local block_cfg = config.block
  self.embed = nn.Embedding(config.vocab_size, block_cfg.d_model)
  self.embed_dropout = nn.Dropout { p = block_cfg.dropout }
  self.blocks = {}
  for i = 1, config.n_layers do self.blocks[i] = ConfigurableBlock(config:get_block_config(i)) end
  -- sinusoidal positions are added once, at the model (no parameters)
  if block_cfg.position == "sinusoidal" then self._sinusoidal = Sinusoidal(block_cfg) end
  -- learned absolute positions (GPT-2's wpe; not in the seed), added to the
  -- token embeddings before their dropout, as GPT-2 does
  if block_cfg.position == "learned" then self.pos_embed = nn.Embedding(block_cfg.max_seq_len, block_cfg.d_model) end
  self.final_norm = registry.norm:get(block_cfg.norm)(block_cfg)
  if not config.tie_embeddings then self.head = nn.Linear(block_cfg.d_model, config.vocab_size, { bias = false }) end
  if config.mup_base_width ~= nil then self:_apply_mup_init(config.width_mult) end
end

-- muP: the hidden weight matrices (ndim >= 2) of every block and the untied
-- head start scaled by 1/sqrt(width_mult); the embedding is left alone.
function LanguageModel:_apply_mup_init(width_mult)
  if width_mult == 1.0 then return end
  local scale = 1 / math.sqrt(width_mult)
  local function rescale(p) return p.ndim >= 2 and p * scale or p end
  for _, block in ipairs(self.blocks) do block:apply(rescale) end
  if self.head then self.head:apply(rescale) end
end

local function check_tokens(tokens)
  if not lattice.is_tensor(tokens) or tokens.ndim ~= 2 or not (tokens.dtype == "int32" or tokens.dtype == "int64") then
    error(("%s: tokens must be an int32 or int64 tensor (B, T), got %s"):format(FNAME,
      lattice.is_tensor(tokens) and tokens.dtype .. " {" .. table.concat(tokens.shape, ",") .. "}" or type(tokens)), 3)
  end
end

local function check_cache(self, cache, tokens)
  if not cache_mod.is_cache(cache) then
    error(("%s: cache must be a cache from model:make_cache, got %s"):format(FNAME, type(cache)), 3)
  end
  if #cache.layers ~= #self.blocks then
    error(("%s: the cache has %d layers, the model %d"):format(FNAME, #cache.layers, #self.blocks), 3)
  end
  local B, T = tokens.shape[1], tokens.shape[2]
  if cache.batch ~= B then error(("%s: the cache is for batch %d, tokens have %d rows"):format(FNAME, cache.batch, B), 3) end
  if cache.offset + T > cache.max_len then
    error(("%s: %d new positions after %d do not fit in the cache's max_len %d"):format(FNAME, T, cache.offset,
      cache.max_len), 3)
  end
end

local function run(self, tokens, cache)
  local offset = cache and cache.offset or 0
  local h = self.embed(tokens)
  if self.pos_embed then
    local T, max = tokens.shape[2], self.config.block.max_seq_len
    if offset + T > max then
      error(("%s: positions up to %d are past the %d learned positions (max_seq_len)"):format(FNAME, offset + T - 1,
        max), 0)
    end
    h = h + self.pos_embed(lattice.arange(offset, offset + T, "int32"))
  end
  h = self.embed_dropout(h)
  if self._sinusoidal then h = self._sinusoidal(h, offset) end
  for i, block in ipairs(self.blocks) do
    h = block(h, "causal", cache and cache.layers[i] or nil)
  end
  h = self.final_norm(h)
  local logits = self.head and self.head(h) or self.embed:as_linear(h)
  if self.config.mup_base_width ~= nil then logits = logits / self.config.width_mult end
  return logits, h
end

--- model(tokens[, {cache = nil, return_hidden = false}]) -> logits, cache[,
-- hidden]: tokens (B, T) int32 or int64 ids; logits (B, T, vocab_size);
-- with return_hidden also final_norm's output (B, T, d_model), as the seed's
-- (multi-token prediction heads read it). With a cache (model:make_cache) the
-- tokens continue the sequence it holds: they sit at positions cache.offset
-- onwards, their keys and values are written into it, and it is returned
-- with its offset advanced by T. A failed call leaves the cache as it was.
-- Without one, causal attention over the T tokens and no cache returned.
function LanguageModel:forward(tokens, opts)
  opts = module.check_options(opts, { cache = true, return_hidden = true }, FNAME)
  check_tokens(tokens)
  local cache, hidden = opts.cache, opts.return_hidden
  if hidden ~= nil and type(hidden) ~= "boolean" then
    error(("%s: return_hidden must be a boolean, got %s"):format(FNAME, type(hidden)), 2)
  end
  local logits, h
  if cache == nil then
    logits, h = run(self, tokens, nil)
  else
    check_cache(self, cache, tokens)
    local saved = cache:_offsets()
    local ok
    ok, logits, h = pcall(run, self, tokens, cache)
    if not ok then
      cache:_restore(saved)
      error(logits, 0)
    end
    cache.offset = saved[1] + tokens.shape[2]
  end
  if hidden then return logits, cache, h end
  return logits, cache
end

--- model:make_cache(batch[, max_len = block.max_seq_len][, {dtype = "float32"}]):
-- an empty cache for `batch` sequences of up to max_len positions, each
-- layer's keys and values preallocated (2 * batch * n_kv_heads * max_len *
-- head_dim values per attention layer).
function LanguageModel:make_cache(batch, max_len, opts)
  if type(max_len) == "table" and opts == nil then max_len, opts = nil, max_len end
  max_len = max_len or self.config.block.max_seq_len
  if math.type(batch) ~= "integer" or batch < 1 then
    error(("%s: make_cache: batch must be a positive integer, got %s"):format(FNAME, tostring(batch)), 2)
  end
  if math.type(max_len) ~= "integer" or max_len < 1 then
    error(("%s: make_cache: max_len must be a positive integer, got %s"):format(FNAME, tostring(max_len)), 2)
  end
  module.check_options(opts, { dtype = true }, FNAME .. ": make_cache")
  local layers = {}
  for i, block in ipairs(self.blocks) do layers[i] = block:make_cache(batch, max_len, opts) end
  return cache_mod.Cache(layers, batch, max_len)
end

--- model:generate(prompt[, opts]) and model:stream_generate(prompt, opts,
-- fn): lattice.sample.generate and stream_generate on this model (decoding
-- with one cache from make_cache, sized for the whole call).
function LanguageModel:generate(prompt, opts) return require("lattice.sample").generate(self, prompt, opts) end

function LanguageModel:stream_generate(prompt, opts, fn)
  return require("lattice.sample").stream_generate(self, prompt, opts, fn)
end

--- model:count_parameters(): the number of parameter elements (the seed's).
function LanguageModel:count_parameters() return self:num_parameters() end

function LanguageModel:_extra_repr()
  return ("vocab_size=%d, n_layers=%d, tie_embeddings=%s"):format(self.config.vocab_size, self.config.n_layers,
    tostring(self.config.tie_embeddings))
end

return M
