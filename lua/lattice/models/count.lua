-- Parameter counts computed from a ModelConfig alone, without building the
-- model (a 13B config would need 52 GB of float32 to count by instantiating,
-- as the seed's CLI does). The counts are those of nn.LanguageModel's
-- parameters, component by component:
--
--   embed        vocab_size * d_model
--   pos_embed    max_seq_len * d_model, for learned positions
--   blocks.i     attention + ffn + attn_norm + ffn_norm of layer i's config
--   final_norm   the norm of the model's block config
--   head         d_model * vocab_size, when the embeddings are not tied
--
-- A component registered by a user has no formula here: counting a config
-- that names one is an error that says so (build the model and call
-- model:num_parameters()).
local M = {}

-- nn.Linear(i, o, {bias}): its weight and bias.
local function linear(i, o, bias) return i * o + (bias and o or 0) end

local norms = {
  layer_norm = function(d) return 2 * d end, -- weight and bias, as MLX's LayerNorm
  rms_norm = function(d) return d end,
}

-- q_proj, k_proj, v_proj, o_proj; with qk_norm, q_norm and k_norm over head_dim.
local function gqa(c)
  local kv = c.effective_n_kv_heads * c.head_dim
  local n = 2 * linear(c.d_model, c.d_model, c.bias) + 2 * linear(c.d_model, kv, c.bias)
  return n + (c.qk_norm and 2 * c.head_dim or 0)
end

local attentions = { mha = gqa, gqa = gqa, sliding_window_gqa = gqa, chunked_gqa = gqa, none = function() return 0 end }

local function two(c) return linear(c.d_model, c.d_ff, c.bias) + linear(c.d_ff, c.d_model, c.bias) end
local function three(c) return 2 * linear(c.d_model, c.d_ff, c.bias) + linear(c.d_ff, c.d_model, c.bias) end

local ffns = { standard = two, gelu_tanh = two, relu2 = two, gated = three, gated_relu2 = three, none = function() return 0 end }

local function lookup(tbl, kind, name)
  local f = tbl[name]
  if not f then
    error(("count_parameters: no formula for %s '%s' (a component of your own: build the model and call " ..
      "model:num_parameters())"):format(kind, name), 0)
  end
  return f
end

local function norm(c) return lookup(norms, "norm", c.norm)(c.d_model) end

--- block_parameters(cfg): the parameters of one ConfigurableBlock built from
-- the BlockConfig cfg.
function M.block_parameters(c)
  return lookup(attentions, "attention", c.attention)(c) + lookup(ffns, "ffn", c.ffn)(c) + 2 * norm(c)
end

--- count_parameters(model_cfg[, {detail = false}]): the number of parameter
-- elements of nn.LanguageModel(model_cfg); with detail, also a table of the
-- counts by top-level component (embed, blocks, final_norm, head).
function M.count_parameters(m, opts)
  local block = m.block
  local parts = { embed = m.vocab_size * block.d_model, blocks = 0, final_norm = norm(block) }
  if block.position == "learned" then parts.pos_embed = block.max_seq_len * block.d_model end
  for i = 1, m.n_layers do parts.blocks = parts.blocks + M.block_parameters(m:get_block_config(i)) end
  if not m.tie_embeddings then parts.head = block.d_model * m.vocab_size end
  local total = parts.embed + parts.blocks + parts.final_norm + (parts.head or 0) + (parts.pos_embed or 0)
  if opts and opts.detail then return total, parts end
  return total
end

return M
