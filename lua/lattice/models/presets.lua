-- Model presets, as lmxlab's models package has them (src/lmxlab/models/
-- gpt.py, llama.py, gemma.py, gemma3.py, mistral.py, qwen.py, olmo.py,
-- smollm.py): each family has a config function whose keyword arguments
-- (here an options table) fill a BlockConfig and a ModelConfig, and named
-- sizes that are the config function with other defaults. Every preset takes
-- an options table of the same keywords as overrides:
--
--   lattice.models.llama_tiny()                   -- the seed's llama_tiny()
--   lattice.models.llama{n_layers = 4, d_model = 256, n_heads = 4, n_kv_heads = 2}
--   lattice.models.gpt_10m{max_seq_len = 1024}
local lattice = require "lattice"

local M = {}

-- Errors are raised with no position and raised again at the line of the
-- preset's caller (lattice.sparse's api), whatever part of lattice found the
-- problem: an unknown option, a BlockConfig check.
local api = require("lattice.sparse").api

local function fail(name, msg) error(("models.%s: %s"):format(name, msg), 0) end

-- opts over defaults; a key that is neither in `defaults` nor in `extra` (the
-- keywords whose default is None) is an error naming the known ones.
local function merged(name, defaults, extra, opts)
  if type(opts) ~= "table" then fail(name, "options must be a table, got " .. type(opts)) end
  local out = {}
  for k, v in pairs(defaults) do out[k] = v end
  for k, v in pairs(opts) do
    if defaults[k] == nil and not extra[k] then
      local known = {}
      for key in pairs(defaults) do known[#known + 1] = key end
      for key in pairs(extra) do known[#known + 1] = key end
      table.sort(known)
      fail(name, ("unknown option '%s'; known options: %s"):format(tostring(k), table.concat(known, ", ")))
    end
    out[k] = v
  end
  return out
end

-- A family's config function: build(o) makes the ModelConfig from the
-- options merged over the keyword defaults. The result takes (opts, preset,
-- name): a named size passes its own defaults and name.
local function family(name, defaults, build, extra)
  extra = extra or {}
  return function(opts, preset, sized)
    if opts == nil then opts = {} end
    local o = merged(sized or name, defaults, extra, preset or {})
    if type(opts) ~= "table" then fail(sized or name, "options must be a table, got " .. type(opts)) end
    o = merged(sized or name, o, extra, opts)
    local ok, cfg = pcall(build, o)
    if not ok then fail(sized or name, (tostring(cfg):gsub("^[^:]*:%d+: ", ""))) end
    return cfg
  end
end

local MUP = { mup_base_width = true }

-- A named size: the family with other defaults, then the caller's overrides.
local function size(fam, name, preset)
  return api(function(opts) return fam(opts, preset, name) end)
end

local function model(block, o, block_configs)
  return lattice.ModelConfig {
    block = block, vocab_size = o.vocab_size, n_layers = o.n_layers, tie_embeddings = o.tie_embeddings,
    mup_base_width = o.mup_base_width, block_configs = block_configs,
  }
end

-- Per-layer configs: `special` at every every-th layer counted from 1
-- (layers every-1, 2*every-1, ... counted from 0, as the seed writes it).
local function interleave(n_layers, every, special, default)
  local list = {}
  for i = 1, n_layers do list[i] = i % every == 0 and special or default end
  return list
end

local function check_every(o, key)
  if math.type(o[key]) ~= "integer" or o[key] < 1 then
    error(("%s must be a positive integer, got %s"):format(key, tostring(o[key])), 0)
  end
end

-- ---- GPT (gpt.py): LayerNorm, MHA, GELU FFN, sinusoidal positions, bias ----

M.gpt = family("gpt", {
  vocab_size = 50257, d_model = 768, n_heads = 12, n_layers = 12, d_ff = 3072, max_seq_len = 1024,
  tie_embeddings = true, dropout = 0.0,
}, function(o)
  local block = lattice.BlockConfig {
    attention = "mha", ffn = "standard", norm = "layer_norm", position = "sinusoidal", d_model = o.d_model,
    n_heads = o.n_heads, d_ff = o.d_ff, bias = true, dropout = o.dropout, max_seq_len = o.max_seq_len,
    pre_norm = true, mup = o.mup_base_width ~= nil,
  }
  return model(block, o)
end, MUP)

M.gpt_tiny = size(M.gpt, "gpt_tiny", { vocab_size = 256, d_model = 64, n_heads = 2, n_layers = 2, d_ff = 128, max_seq_len = 128 })
M.gpt_small = size(M.gpt, "gpt_small", {})
M.gpt_10m = size(M.gpt, "gpt_10m", { d_model = 128, n_heads = 4, n_layers = 16, d_ff = 512, max_seq_len = 512 })
M.gpt_30m = size(M.gpt, "gpt_30m", { d_model = 256, n_heads = 8, n_layers = 22, d_ff = 1024, max_seq_len = 512 })
M.gpt_medium = size(M.gpt, "gpt_medium", { d_model = 1024, n_heads = 16, n_layers = 24, d_ff = 4096 })

-- ---- LLaMA (llama.py): RMSNorm, GQA, SwiGLU, RoPE, no bias, untied ----

M.llama = family("llama", {
  vocab_size = 32000, d_model = 4096, n_heads = 32, n_kv_heads = 8, n_layers = 32, d_ff = 11008,
  max_seq_len = 4096, rope_theta = 10000.0, tie_embeddings = false, dropout = 0.0,
}, function(o)
  local block = lattice.BlockConfig {
    attention = "gqa", ffn = "gated", norm = "rms_norm", position = "rope", d_model = o.d_model,
    n_heads = o.n_heads, n_kv_heads = o.n_kv_heads, d_ff = o.d_ff, bias = false, dropout = o.dropout,
    rope_theta = o.rope_theta, max_seq_len = o.max_seq_len, pre_norm = true, mup = o.mup_base_width ~= nil,
  }
  return model(block, o)
end, MUP)

M.llama_tiny = size(M.llama, "llama_tiny", {
  vocab_size = 256, d_model = 64, n_heads = 4, n_kv_heads = 2, n_layers = 2, d_ff = 128, max_seq_len = 128,
})
M.llama_10m = size(M.llama, "llama_10m", {
  vocab_size = 50257, d_model = 128, n_heads = 4, n_kv_heads = 2, n_layers = 14, d_ff = 512, max_seq_len = 512,
  tie_embeddings = true,
})
M.llama_30m = size(M.llama, "llama_30m", {
  vocab_size = 50257, d_model = 256, n_heads = 8, n_kv_heads = 4, n_layers = 18, d_ff = 1024, max_seq_len = 512,
  tie_embeddings = true,
})
M.llama_7b = size(M.llama, "llama_7b", {})
M.llama_13b = size(M.llama, "llama_13b", { d_model = 5120, n_heads = 40, n_kv_heads = 10, n_layers = 40, d_ff = 13824 })

-- The LLaMA-like families below share one block: RMSNorm, gated FFN, RoPE,
-- pre-norm, with what each changes.
local function llama_like(o, extra)
  local t = {
    attention = "gqa", ffn = "gated", norm = "rms_norm", position = "rope", d_model = o.d_model,
    n_heads = o.n_heads, n_kv_heads = o.n_kv_heads, d_ff = o.d_ff, bias = false, rope_theta = o.rope_theta,
    max_seq_len = o.max_seq_len, pre_norm = true,
  }
  for k, v in pairs(extra or {}) do t[k] = v end
  return lattice.BlockConfig(t)
end

local tiny = { vocab_size = 256, d_model = 64, n_heads = 4, n_kv_heads = 2, n_layers = 2, d_ff = 128, max_seq_len = 128 }
local function with(base, extra)
  local t = {}
  for k, v in pairs(base) do t[k] = v end
  for k, v in pairs(extra) do t[k] = v end
  return t
end

-- ---- Gemma (gemma.py): multi-query attention, tied embeddings ----

M.gemma = family("gemma", {
  vocab_size = 256000, d_model = 2048, n_heads = 8, n_kv_heads = 1, n_layers = 18, d_ff = 16384,
  max_seq_len = 8192, rope_theta = 10000.0, tie_embeddings = true,
}, function(o) return model(llama_like(o), o) end)
M.gemma_tiny = size(M.gemma, "gemma_tiny", with(tiny, { n_kv_heads = 1 }))

-- ---- Gemma 3 (gemma3.py): sliding-window layers, a global one every global_every ----

M.gemma3 = family("gemma3", {
  vocab_size = 256000, d_model = 2048, n_heads = 8, n_kv_heads = 4, n_layers = 26, d_ff = 16384,
  max_seq_len = 8192, rope_theta = 10000.0, window_size = 4096, global_every = 6, tie_embeddings = true,
}, function(o)
  check_every(o, "global_every")
  local local_block = llama_like(o, { attention = "sliding_window_gqa", window_size = o.window_size })
  local global_block = llama_like(o)
  return model(local_block, o, interleave(o.n_layers, o.global_every, global_block, local_block))
end)
M.gemma3_tiny = size(M.gemma3, "gemma3_tiny", with(tiny, { n_layers = 4, window_size = 16, global_every = 4 }))

-- ---- Mistral Small 3.1 (mistral.py): sliding-window GQA in every layer ----

M.mistral = family("mistral", {
  vocab_size = 131072, d_model = 5120, n_heads = 32, n_kv_heads = 8, n_layers = 48, d_ff = 14336,
  window_size = 4096, max_seq_len = 32768, rope_theta = 1000000.0, tie_embeddings = false,
}, function(o)
  return model(llama_like(o, { attention = "sliding_window_gqa", window_size = o.window_size }), o)
end)
M.mistral_tiny = size(M.mistral, "mistral_tiny", with(tiny, { window_size = 32 }))

-- ---- Qwen (qwen.py): bias in the projections, high rope_theta ----

M.qwen = family("qwen", {
  vocab_size = 151936, d_model = 4096, n_heads = 32, n_kv_heads = 32, n_layers = 32, d_ff = 11008,
  max_seq_len = 32768, rope_theta = 1000000.0, tie_embeddings = false,
}, function(o) return model(llama_like(o, { bias = true }), o) end)
M.qwen_tiny = size(M.qwen, "qwen_tiny", tiny)

-- ---- Qwen 3 (dense): no bias, per-head RMSNorm of q and k (qk_norm) ----
-- Not in the seed, whose qwen.py has Qwen 2 and Qwen 3's mixture of experts;
-- the sizes are Qwen3-8B's.

M.qwen3 = family("qwen3", {
  vocab_size = 151936, d_model = 4096, n_heads = 32, n_kv_heads = 8, n_layers = 36, d_ff = 12288,
  max_seq_len = 32768, rope_theta = 1000000.0, tie_embeddings = false,
}, function(o) return model(llama_like(o, { qk_norm = true }), o) end)
M.qwen3_tiny = size(M.qwen3, "qwen3_tiny", tiny)

-- ---- OLMo 2 (olmo.py): qk_norm ----

M.olmo2 = family("olmo2", {
  vocab_size = 100352, d_model = 4096, n_heads = 32, n_kv_heads = 8, n_layers = 32, d_ff = 11008,
  max_seq_len = 4096, rope_theta = 500000.0, tie_embeddings = false,
}, function(o) return model(llama_like(o, { qk_norm = true }), o) end)
M.olmo2_tiny = size(M.olmo2, "olmo2_tiny", tiny)

-- ---- SmolLM3 (smollm.py): a layer without positions (NoPE) every nope_every ----

M.smollm3 = family("smollm3", {
  vocab_size = 128256, d_model = 2560, n_heads = 20, n_kv_heads = 5, n_layers = 36, d_ff = 6912, nope_every = 4,
  max_seq_len = 8192, rope_theta = 500000.0, tie_embeddings = true,
}, function(o)
  check_every(o, "nope_every")
  local rope_block = llama_like(o)
  -- the seed leaves the NoPE block's rope_theta at its default
  local nope_block = llama_like(o, { position = "none", rope_theta = 10000.0 })
  return model(rope_block, o, interleave(o.n_layers, o.nope_every, nope_block, rope_block))
end)
M.smollm3_tiny = size(M.smollm3, "smollm3_tiny", with(tiny, { n_layers = 4, nope_every = 4 }))

-- The architectures the `lattice models` command lists, in the seed CLI's
-- order: name, full config, tiny config; then the scaled research configs
-- and the other named sizes, which are their own tiny.
-- The families are called by users too: errors at their line.
local families = { "gpt", "llama", "gemma", "gemma3", "mistral", "qwen", "qwen3", "olmo2", "smollm3" }
local raw = {}
for _, name in ipairs(families) do
  raw[name] = M[name]
  M[name] = api(function(opts) return raw[name](opts) end)
end

M.architectures = {
  { "gpt", M.gpt, M.gpt_tiny }, { "llama", M.llama, M.llama_tiny }, { "gemma", M.gemma, M.gemma_tiny },
  { "gemma3", M.gemma3, M.gemma3_tiny }, { "qwen", M.qwen, M.qwen_tiny }, { "qwen3", M.qwen3, M.qwen3_tiny },
  { "mistral", M.mistral, M.mistral_tiny }, { "olmo2", M.olmo2, M.olmo2_tiny },
  { "smollm3", M.smollm3, M.smollm3_tiny },
  { "gpt_10m", M.gpt_10m, M.gpt_10m }, { "gpt_30m", M.gpt_30m, M.gpt_30m }, { "llama_10m", M.llama_10m, M.llama_10m },
  { "llama_30m", M.llama_30m, M.llama_30m }, { "gpt_medium", M.gpt_medium, M.gpt_medium },
  { "llama_13b", M.llama_13b, M.llama_13b },
}

return M
