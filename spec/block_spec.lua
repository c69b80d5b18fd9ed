-- nn.ConfigurableBlock: components from the registries by name, pre-norm and
-- post-norm in the seed's order, against a block written plainly in Lua
-- (the textbook attention of spec/support/attention_reference.lua, the norms
-- and FFNs from their formulas); a finite-difference check of a whole block.
local lattice = require "lattice"
local gradcheck = require "support.gradcheck"
local ref = require "support.reference"
local textbook = require "support.attention_reference"

local nn, T = lattice.nn, lattice.transformer
local assert_close, generator, rand = ref.assert_close, ref.generator, ref.rand

-- as the attention modules' spec: float32 against doubles, a few ulps a step
local TOL = 3e-5

local function config(t)
  local c = { d_model = 16, n_heads = 4, d_ff = 24, rope_theta = 50.0 }
  for k, v in pairs(t) do c[k] = v end
  return lattice.BlockConfig(c)
end

local X = rand({ 2, 6, 16 }, generator(23))
local x = lattice.array(X)

-- ---- the plain block ----

local function map_rows(x3, fn)
  local out = {}
  for b, rows in ipairs(x3) do
    out[b] = {}
    for t, row in ipairs(rows) do out[b][t] = fn(row, b, t) end
  end
  return out
end

local function layer_norm(row, w, bias, eps)
  local mean, var = 0, 0
  for _, v in ipairs(row) do mean = mean + v / #row end
  for _, v in ipairs(row) do var = var + (v - mean) ^ 2 / #row end
  local out = {}
  for i, v in ipairs(row) do out[i] = (v - mean) / math.sqrt(var + eps) * w[i] + bias[i] end
  return out
end

local function norm_fn(norm)
  local w = norm.weight:astype("float64"):tolist()
  if norm.bias then
    local bias = norm.bias:astype("float64"):tolist()
    return function(row) return layer_norm(row, w, bias, 1e-5) end
  end
  return function(row) return textbook.rms_norm(row, w, 1e-5) end
end

local function silu(v) return v / (1 + math.exp(-v)) end

local function ffn_fn(ffn, kind)
  return function(row)
    local up = textbook.linear(ffn.up, row)
    local h = {}
    if kind == "gated" then
      local g = textbook.linear(ffn.gate, row)
      for i = 1, #up do h[i] = silu(g[i]) * up[i] end
    else
      for i = 1, #up do h[i] = ref.gelu(up[i]) end
    end
    return textbook.linear(ffn.down, h)
  end
end

local function add(a, b)
  return map_rows(a, function(row, bi, t)
    local out = {}
    for i = 1, #row do out[i] = row[i] + b[bi][t][i] end
    return out
  end)
end

local function plain_block(block, x3, o, kind)
  local attn_norm, ffn_norm, ffn = norm_fn(block.attn_norm), norm_fn(block.ffn_norm), ffn_fn(block.ffn, kind)
  if block.config.pre_norm then
    local h = add(x3, textbook.forward(block.attention, map_rows(x3, attn_norm), o))
    return add(h, map_rows(map_rows(h, ffn_norm), ffn))
  end
  local h = map_rows(add(x3, textbook.forward(block.attention, x3, o)), attn_norm)
  return map_rows(add(h, map_rows(h, ffn)), ffn_norm)
end

describe("nn.ConfigurableBlock", function()
  it("builds its components from the registries by the config's names", function()
    local block = nn.ConfigurableBlock(config { attention = "gqa", n_kv_heads = 2, ffn = "gated", norm = "rms_norm",
      position = "rope", dropout = 0.25 })
    assert.are.equal(T.GQA, getmetatable(block.attention))
    assert.are.equal(T.GatedFFN, getmetatable(block.ffn))
    assert.are.equal(T.RoPE, getmetatable(block.position))
    assert.are.equal("RMSNorm(16, eps=1e-05)", tostring(block.attn_norm))
    assert.are.equal("RMSNorm(16, eps=1e-05)", tostring(block.ffn_norm))
    assert.are.equal("Dropout(p=0.25)", tostring(block.resid_dropout))
    assert.is_true(lattice.is_block_config(block.config))
  end)

  it("builds a component a user registered under a new name", function()
    local Doubling = nn.Module:extend("DoublingAttention")
    function Doubling:init(cfg) self.proj = nn.Linear(cfg.d_model, cfg.d_model) end
    function Doubling:forward(h, _, cache) return self.proj(h) * 2, cache end
    lattice.registry.attention:register("spec_doubling", Doubling)
    local block = nn.ConfigurableBlock(config { attention = "spec_doubling", ffn = "none", position = "none" })
    assert.are.equal(Doubling, getmetatable(block.attention))
    local y = block(x)
    local h = x + block.attention.proj(block.attn_norm(x)) * 2
    assert_close(y:tolist(), (h + block.ffn_norm(h)):tolist(), 1e-6) -- ffn "none" returns its input
  end)

  it("runs pre-norm as the seed orders it: x + attn(attn_norm(x)), then x + ffn(ffn_norm(x))", function()
    local block = nn.ConfigurableBlock(config { attention = "gqa", n_kv_heads = 2, ffn = "gated", norm = "rms_norm",
      position = "rope", qk_norm = true })
    local want = plain_block(block, X, { causal = true, rope = { base = 50.0 }, qk_norm = true, scale = 0.5 }, "gated")
    local y, cache = block(x, "causal")
    assert.is_nil(cache)
    assert_close(y:tolist(), want, TOL)
  end)

  it("runs post-norm as the seed orders it: attn_norm(x + attn(x)), then ffn_norm(x + ffn(x)), with ALiBi", function()
    local block = nn.ConfigurableBlock(config { attention = "mha", ffn = "standard", norm = "layer_norm",
      position = "alibi", pre_norm = false })
    local want = plain_block(block, X, { causal = true, alibi = T.alibi_slopes(4), scale = 0.5 }, "standard")
    assert_close(block(x, "causal"):tolist(), want, TOL)
  end)

  it("skips the attention sublayer of attention 'none'", function()
    local pre = nn.ConfigurableBlock(config { attention = "none", ffn = "gated", norm = "rms_norm", position = "none" })
    local h = x
    assert_close(pre(x):tolist(), (h + pre.ffn(pre.ffn_norm(h))):tolist(), 1e-6)
    local post = nn.ConfigurableBlock(config { attention = "none", ffn = "gated", norm = "rms_norm",
      position = "none", pre_norm = false })
    h = post.attn_norm(x)
    assert_close(post(x):tolist(), post.ffn_norm(h + post.ffn(h)):tolist(), 1e-6)
    assert.is_false(post:make_cache(2, 8))
  end)

  it("returns its cache updated, decoding as one full forward does", function()
    local block = nn.ConfigurableBlock(config { attention = "sliding_window_gqa", window_size = 3, n_kv_heads = 1,
      ffn = "gated", norm = "rms_norm", position = "rope" })
    local full = block(x, "causal")
    local cache = block:make_cache(2, 6)
    local rows = {}
    for p = 1, 6 do
      local y, c = block(x:slice(2, p, p), "causal", cache)
      assert.are.equal(cache, c)
      rows[p] = y
    end
    assert_close(lattice.concatenate(rows, 2):tolist(), full:tolist(), 1e-5)
  end)

  -- Every parameter and x perturbed in float64, the block's loss against
  -- central differences.
  local function block_gradcheck(cfg)
    local block = nn.ConfigurableBlock(cfg)
    block:apply(function(p) return lattice.random.normal(p.shape, { scale = 0.5 }):astype("float64") end)
    local names, inputs = {}, { lattice.random.normal({ 1, 4, 8 }):astype("float64") }
    for name, p in pairs(block:named_parameters()) do names[#names + 1], inputs[#inputs + 1] = name, p end
    local function loss(xi, ...)
      local params = { ... }
      for i, name in ipairs(names) do
        local holder = block
        for part in name:gmatch("([^.]+)%.") do holder = holder[part] end
        holder[name:match("([^.]+)$")] = params[i]
      end
      return ref.weighted(block(xi, "causal"))
    end
    gradcheck(loss, inputs)
  end

  it("has the gradient of central differences (float64): pre-norm GQA, RoPE, qk_norm, gated FFN", function()
    block_gradcheck(lattice.BlockConfig { attention = "gqa", n_kv_heads = 1, ffn = "gated", norm = "rms_norm",
      position = "rope", d_model = 8, n_heads = 2, d_ff = 6, qk_norm = true, bias = true })
  end)

  it("has the gradient of central differences (float64): post-norm sliding window, ALiBi, layer_norm, GELU", function()
    block_gradcheck(lattice.BlockConfig { attention = "sliding_window_gqa", window_size = 2, ffn = "standard",
      norm = "layer_norm", position = "alibi", pre_norm = false, d_model = 8, n_heads = 2, d_ff = 6, bias = true })
  end)

  it("names the problem of a bad call after the sublayer that met it", function()
    local block = nn.ConfigurableBlock(config { attention = "gqa", n_kv_heads = 2, position = "rope" })
    assert.has_error(function() block(x, "casual") end,
      "attention: scaled_dot_product_attention: mask must be a lattice.Tensor or 'causal', got 'casual'")
    assert.has_error(function() block(x, lattice.zeros({ 3, 3 })) end,
      "attention: scaled_dot_product_attention: mask of shape {3,3} does not broadcast to {2,4,6,6}")
    assert.has_error(function() block(x, nil, {}) end, "attention: GQA: cache must be a KVCache, got table")
    assert.has_error(function() block(lattice.zeros({ 1, 2, 8 })) end,
      "attn_norm: layer_norm: weight has shape {16}, expected {8}")
  end)

  it("checks its config", function()
    assert.has_error(function() nn.ConfigurableBlock({}) end,
      "ConfigurableBlock: config must be a lattice.BlockConfig, got table")
    assert.has_error(function() nn.ConfigurableBlock(config { attention = "mqa" }) end,
      "Registry 'attention': unknown key 'mqa'; known keys: mha, gqa, sliding_window_gqa, chunked_gqa, none, spec_doubling")
  end)
end)
