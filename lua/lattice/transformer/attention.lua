-- Attention modules, as lmxlab's core/attention.py builds them from a
-- BlockConfig, registered in lattice.registry.attention under the seed's
-- names; each runs the fused kernel lattice.scaled_dot_product_attention.
--   mha                 MHA: n_kv_heads = n_heads
--   gqa                 GQA: effective_n_kv_heads kv heads, never repeated
--                       in memory (n_kv_heads = 1 is multi-query attention)
--   sliding_window_gqa  SlidingWindowGQA: query p sees keys p - window_size + 1 .. p
--   chunked_gqa         ChunkedGQA: query p sees keys floor(p / C) C .. p
--                       (C = attention_chunk_size); RoPE positions p mod C
--   none                NoneAttention: contributes nothing (zeros)
-- Parameters q_proj, k_proj, v_proj, o_proj (nn.Linear, bias = cfg.bias) and,
-- with qk_norm, q_norm and k_norm (nn.RMSNorm(head_dim), over each head's
-- features after the reshape, before RoPE), as the seed names them.
--
-- attn(x, mask, cache, rope, alibi) -> out, cache:
--   x      (B, T, d_model)
--   mask   nil (every key: bidirectional, as the seed without a mask),
--          "causal", or a tensor the kernel takes (additive, -1e9 or -inf
--          where masked, or boolean), broadcast to (B, n_heads, T, S)
--   cache  nil, or a KVCache (lattice.transformer.cache) this layer's keys
--          and values are written into in place; queries then sit at
--          positions cache.offset .. cache.offset + T - 1
--   rope   nil, or the block's RoPE module (q and k rotated)
--   alibi  nil, or a tensor of n_heads ALiBi slopes (the kernel adds
--          -slope_h |p - j| to the scores)
-- The window and the chunk are causal whatever the mask says.
local lattice = require "lattice"
local nn = require "lattice.nn"
local registry = require("lattice.registry").registries
local check_config = require("lattice.transformer.common").check_config
local cache_mod = require "lattice.transformer.cache"
local type_name = require("lattice.nn.module").type_name

local kernel = lattice.scaled_dot_product_attention

-- The kernel, its message (a mask that does not broadcast, ...) raised
-- without this file's position: the block prefixes the module's name.
local function sdpa(q, k, v, opts)
  local ok, out = pcall(kernel, q, k, v, opts)
  if not ok then error(out, 0) end
  return out
end
local HEADS_FIRST = { 1, 3, 2, 4 } -- (B, T, H, D) <-> (B, H, T, D)

local M = {}

-- A class of GQA-shaped attention named `name`; `kv_heads(cfg)` gives its
-- number of kv heads, `extra(self, cfg)` reads what else it needs.
local function attention_class(name, kv_heads, extra)
  local cls = nn.Module:extend(name)
  function cls:init(config)
    check_config(config, name)
    self.config = config
    self.d_model, self.n_heads, self.head_dim = config.d_model, config.n_heads, config.head_dim
    self.n_kv_heads = kv_heads(config)
    local kv_dim = self.n_kv_heads * self.head_dim
    self.q_proj = nn.Linear(self.d_model, self.d_model, { bias = config.bias })
    self.k_proj = nn.Linear(self.d_model, kv_dim, { bias = config.bias })
    self.v_proj = nn.Linear(self.d_model, kv_dim, { bias = config.bias })
    self.o_proj = nn.Linear(self.d_model, self.d_model, { bias = config.bias })
    if config.qk_norm then
      -- the seed's nn.RMSNorm(head_dim): MLX's default eps, not norm_eps
      self.q_norm = nn.RMSNorm(self.head_dim)
      self.k_norm = nn.RMSNorm(self.head_dim)
    end
    -- muP: 1/head_dim; else 1/sqrt(head_dim)
    self.scale = config.attention_scale
    if extra then extra(self, config) end
  end
  return cls
end

local function check_input(self, x, cache)
  local fname = type_name(self)
  if not lattice.is_tensor(x) or x.ndim ~= 3 or x.shape[3] ~= self.d_model then
    error(("%s: x must be a tensor (B, T, %d), got %s"):format(fname, self.d_model,
      lattice.is_tensor(x) and "shape {" .. table.concat(x.shape, ",") .. "}" or type(x)), 3)
  end
  if cache == nil then return end
  if not cache_mod.is_kv_cache(cache) then
    error(("%s: cache must be a KVCache, got %s"):format(fname, type(cache)), 3)
  end
  if cache.batch ~= x.shape[1] or cache.n_kv_heads ~= self.n_kv_heads or cache.head_dim ~= self.head_dim then
    error(("%s: the cache holds (batch %d, %d kv heads, head_dim %d), this call needs (batch %d, %d, %d)"):format(
      fname, cache.batch, cache.n_kv_heads, cache.head_dim, x.shape[1], self.n_kv_heads, self.head_dim), 3)
  end
  if cache.offset + x.shape[2] > cache.max_len then
    error(("%s: %d new positions after %d do not fit in the cache's max_len %d"):format(fname, x.shape[2],
      cache.offset, cache.max_len), 3)
  end
end

-- The RoPE positions of the T queries from `offset`: nil (offset + t, the
-- rope op's own), or chunk-local ones for chunked attention.
local function rope_positions(self, offset, t)
  if not self.chunk_size then return nil end
  return lattice.remainder(lattice.arange(offset, offset + t, 1, "int32"), self.chunk_size)
end

local function forward(self, x, mask, cache, rope, alibi)
  check_input(self, x, cache)
  local B, T = x.shape[1], x.shape[2]
  local H, Hkv, D = self.n_heads, self.n_kv_heads, self.head_dim
  local q = self.q_proj(x):reshape({ B, T, H, D })
  local k = self.k_proj(x):reshape({ B, T, Hkv, D })
  local v = self.v_proj(x):reshape({ B, T, Hkv, D })
  if self.q_norm then q, k = self.q_norm(q), self.k_norm(k) end
  local offset = cache and cache.offset or 0
  if rope then
    -- rotated in the (B, T, H, D) layout the projections give (seq_axis -3)
    local o = { offset = offset, seq_axis = -3, positions = rope_positions(self, offset, T) }
    q, k = rope:apply(q, o), rope:apply(k, o)
  end
  q, k, v = q:transpose(HEADS_FIRST), k:transpose(HEADS_FIRST), v:transpose(HEADS_FIRST)
  if cache then k, v = cache:append(k, v) end
  local out = sdpa(q, k, v, { scale = self.scale, mask = mask, window = self.window_size, chunk = self.chunk_size,
    alibi = alibi, q_offset = offset })
  out = out:transpose(HEADS_FIRST):reshape({ B, T, self.d_model })
  return self.o_proj(out), cache
end

local function make_cache(self, batch, max_len, opts)
  return cache_mod.KVCache(batch, self.n_kv_heads, max_len, self.head_dim, opts)
end

local function kv_heads_all(config) return config.n_heads end
local function kv_heads_gqa(config) return config.effective_n_kv_heads end

M.MHA = attention_class("MHA", kv_heads_all)
M.GQA = attention_class("GQA", kv_heads_gqa)
M.SlidingWindowGQA = attention_class("SlidingWindowGQA", kv_heads_gqa, function(self, config)
  if config.window_size == nil then error("SlidingWindowGQA: the config needs a window_size", 0) end
  self.window_size = config.window_size
end)
M.ChunkedGQA = attention_class("ChunkedGQA", kv_heads_gqa, function(self, config)
  if config.attention_chunk_size == nil then error("ChunkedGQA: the config needs an attention_chunk_size", 0) end
  self.chunk_size = config.attention_chunk_size
end)

for _, cls in ipairs({ M.MHA, M.GQA, M.SlidingWindowGQA, M.ChunkedGQA }) do
  cls.forward = forward
  cls.make_cache = make_cache
end

--- NoneAttention(cfg): the sublayer contributes nothing: zeros of x's shape
-- and no cache (the seed's returns x itself, which adds the normalised input
-- to the residual; its documentation says the layer is skipped).
local NoneAttention = nn.Module:extend("NoneAttention")
M.NoneAttention = NoneAttention

function NoneAttention:init(config)
  check_config(config, "NoneAttention")
  self.config = config
end

function NoneAttention.forward(_, x) return lattice.zeros_like(x), nil end

function NoneAttention.make_cache() return false end

registry.attention:register("mha", M.MHA)
registry.attention:register("gqa", M.GQA)
registry.attention:register("sliding_window_gqa", M.SlidingWindowGQA)
registry.attention:register("chunked_gqa", M.ChunkedGQA)
registry.attention:register("none", NoneAttention)

return M
