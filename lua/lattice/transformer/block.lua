-- ConfigurableBlock, as lmxlab's core/block.py assembles it: a transformer
-- block whose components come from the registries by the names its
-- BlockConfig gives (attention, ffn, norm, position).
--   pre-norm:   x = x + drop(attn(attn_norm(x)));  x = x + drop(ffn(ffn_norm(x)))
--   post-norm:  x = attn_norm(x + drop(attn(x)));  x = ffn_norm(x + drop(ffn(x)))
-- RoPE is handed to the attention to rotate q and k; ALiBi's slopes to the
-- attention kernel, which adds -slope_h |p - j| to the scores (the seed adds
-- the same biases to the mask it materialises). Attention "none"
-- contributes nothing: its sublayer is skipped.
local lattice = require "lattice"
local nn = require "lattice.nn"
local registry = require("lattice.registry").registries
local check_config = require("lattice.transformer.common").check_config

local M = {}

local Block = nn.Module:extend("ConfigurableBlock")
M.ConfigurableBlock = Block

function Block:init(config)
  check_config(config, "ConfigurableBlock")
  self.config = config
  local attn_cls = registry.attention:get(config.attention)
  local ffn_cls = registry.ffn:get(config.ffn)
  local norm_cls = registry.norm:get(config.norm)
  self.attention = attn_cls(config)
  self.ffn = ffn_cls(config)
  self.attn_norm = norm_cls(config)
  self.ffn_norm = norm_cls(config)
  self.resid_dropout = nn.Dropout { p = config.dropout }
  self.position = registry.position:get(config.position)(config)
  self._rope = config.position == "rope" and self.position or nil
  if config.position == "alibi" then self._alibi = lattice.array(self.position.slopes) end
  self._skip_attention = config.attention == "none"
end

--- block(x, mask, cache) -> x, cache: x (B, T, d_model); mask nil, "causal"
-- or a tensor (see lattice.transformer.attention); cache nil or this
-- block's cache (block:make_cache), updated in place and returned.
function Block:forward(x, mask, cache)
  if cache == false then cache = nil end
  if self.config.pre_norm then
    if not self._skip_attention then
      local h
      h, cache = self.attention(self.attn_norm(x), mask, cache, self._rope, self._alibi)
      x = x + self.resid_dropout(h)
    end
    return x + self.resid_dropout(self.ffn(self.ffn_norm(x))), cache
  end
  if self._skip_attention then
    x = self.attn_norm(x)
  else
    local h
    h, cache = self.attention(x, mask, cache, self._rope, self._alibi)
    x = self.attn_norm(x + self.resid_dropout(h))
  end
  return self.ffn_norm(x + self.resid_dropout(self.ffn(x))), cache
end

--- block:make_cache(batch, max_len[, {dtype}]): the state this block keeps
-- while decoding (its attention's KVCache), or false when it keeps none.
function Block:make_cache(batch, max_len, opts)
  local make = self.attention.make_cache
  if make == nil then return false end
  return make(self.attention, batch, max_len, opts)
end

return M
