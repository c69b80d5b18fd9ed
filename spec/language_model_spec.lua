-- nn.LanguageModel: the seed's parameter names, tied and untied heads, muP,
-- decoding with the preallocated cache equal to one full forward for every
-- attention variant, checkpoints that reload to the same logits, and its
-- errors.
local lattice = require "lattice"
local gradcheck = require "support.gradcheck"
local ref = require "support.reference"

local nn = lattice.nn
local assert_close = ref.assert_close

local function block(t)
  local c = { d_model = 16, n_heads = 4, d_ff = 24, norm = "rms_norm", ffn = "gated", position = "rope", bias = false }
  for k, v in pairs(t or {}) do c[k] = v end
  return lattice.BlockConfig(c)
end

local function model(t, b)
  local c = { block = block(b), vocab_size = 37, n_layers = 2 }
  for k, v in pairs(t or {}) do c[k] = v end
  return nn.LanguageModel(lattice.ModelConfig(c))
end

lattice.random.seed(5)
local tokens = lattice.random.randint(0, 37, { 2, 9 })

-- Every position's logits, fed to the model through its cache: the first
-- `first` tokens in one call, then one at a time.
local function decoded(m, first, cache)
  cache = cache or m:make_cache(2, 12)
  local parts = { (m(tokens:slice(2, 1, first), { cache = cache })) }
  for p = first + 1, 9 do parts[#parts + 1] = (m(tokens:slice(2, p, p), { cache = cache })) end
  assert.are.equal(9, cache.offset)
  return lattice.concatenate(parts, 2)
end

describe("nn.LanguageModel", function()
  it("names its parameters as the seed's checkpoints do", function()
    local names = {}
    for name in pairs(model({ tie_embeddings = false }, { qk_norm = true }):named_parameters()) do
      names[#names + 1] = name
    end
    table.sort(names)
    local want = { "embed.weight", "final_norm.weight", "head.weight" }
    for i = 0, 1 do
      for _, p in ipairs({ "attention.k_norm", "attention.k_proj", "attention.o_proj", "attention.q_norm",
        "attention.q_proj", "attention.v_proj", "attn_norm", "ffn.down", "ffn.gate", "ffn.up", "ffn_norm" }) do
        want[#want + 1] = ("blocks.%d.%s.weight"):format(i, p)
      end
    end
    table.sort(want)
    assert.are.same(want, names)
    assert.is_nil(model().head) -- tied by default
  end)

  it("computes logits as final_norm(blocks(embed(tokens))) times embed.weight^T when tied", function()
    local m = model()
    local h = m.embed(tokens)
    for _, b in ipairs(m.blocks) do h = b(h, "causal") end
    local want = lattice.matmul(m.final_norm(h), m.embed.weight.T)
    local logits, cache = m(tokens)
    assert.is_nil(cache)
    assert.are.same({ 2, 9, 37 }, logits.shape)
    assert_close(logits:tolist(), want:tolist(), 1e-6)
  end)

  it("returns final_norm's output beside the logits with return_hidden", function()
    local m = model({ tie_embeddings = false })
    local logits, cache, h = m(tokens, { return_hidden = true })
    assert.is_nil(cache)
    assert.are.same({ 2, 9, 16 }, h.shape)
    assert.are.same(m.head(h):tolist(), logits:tolist())
    local c = m:make_cache(2, 9)
    local _, back, h1 = m(tokens, { cache = c, return_hidden = true })
    assert.are.equal(c, back)
    assert_close(h1:tolist(), h:tolist(), 1e-5)
    assert.has_error(function() m(tokens, { return_hidden = 1 }) end,
      "LanguageModel: return_hidden must be a boolean, got number")
  end)

  it("adds sinusoidal positions once, at the model", function()
    local m = model(nil, { position = "sinusoidal", norm = "layer_norm", ffn = "standard" })
    local h = lattice.transformer.Sinusoidal(m.config.block)(m.embed(tokens))
    for _, b in ipairs(m.blocks) do h = b(h, "causal") end
    assert_close(m(tokens):tolist(), lattice.matmul(m.final_norm(h), m.embed.weight.T):tolist(), 1e-6)
  end)

  it("with muP divides the logits by width_mult and scales the hidden weights' start by 1/sqrt(width_mult)", function()
    lattice.random.seed(9)
    local plain = model({ tie_embeddings = false })
    lattice.random.seed(9)
    local mup = model({ tie_embeddings = false, mup_base_width = 4 })
    assert.are.equal(4, mup.config.width_mult)
    assert_close(mup.blocks[1].attention.q_proj.weight:tolist(), (plain.blocks[1].attention.q_proj.weight * 0.5):tolist(), 1e-7)
    assert_close(mup.head.weight:tolist(), (plain.head.weight * 0.5):tolist(), 1e-7)
    assert.are.same(plain.embed.weight:tolist(), mup.embed.weight:tolist())
    assert.are.same(plain.blocks[1].attn_norm.weight:tolist(), mup.blocks[1].attn_norm.weight:tolist())
    local h = mup.embed(tokens)
    for _, b in ipairs(mup.blocks) do h = b(h, "causal") end
    assert_close(mup(tokens):tolist(), (mup.head(mup.final_norm(h)) / 4):tolist(), 1e-6)
  end)

  local variants = {
    { "mha with RoPE", {} },
    { "gqa with qk_norm", { attention = "gqa", n_kv_heads = 2, qk_norm = true } },
    { "multi-query attention", { attention = "gqa", n_kv_heads = 1 } },
    { "sliding_window_gqa", { attention = "sliding_window_gqa", n_kv_heads = 2, window_size = 3 } },
    { "chunked_gqa", { attention = "chunked_gqa", n_kv_heads = 2, attention_chunk_size = 4 } },
    { "ALiBi, post-norm", { position = "alibi", pre_norm = false, norm = "layer_norm" } },
    { "sinusoidal positions", { position = "sinusoidal", ffn = "standard" } },
    { "muP", { mup = true }, { mup_base_width = 8, tie_embeddings = false } },
  }
  for _, v in ipairs(variants) do
    it("decodes token by token with the cache as one full forward does: " .. v[1], function()
      local m = model(v[3], v[2])
      local full = m(tokens)
      -- float32 sums in a different order (a one-row product against a tile)
      assert_close(decoded(m, 4):tolist(), full:tolist(), 1e-5)
      assert_close(decoded(m, 1):tolist(), full:tolist(), 1e-5)
    end)
  end

  it("decodes a model of mixed layers (block_configs), with an attention-free one", function()
    local b = block()
    local m = nn.LanguageModel(lattice.ModelConfig { block = b, vocab_size = 37, n_layers = 3, block_configs = {
      b:replace { attention = "chunked_gqa", attention_chunk_size = 3, n_kv_heads = 2 },
      b:replace { attention = "none" },
      b:replace { attention = "gqa", n_kv_heads = 2, position = "none" },
    } })
    local cache = m:make_cache(2, 12)
    assert.is_false(cache.layers[2])
    assert.are.equal(2, cache.layers[1].n_kv_heads)
    assert_close(decoded(m, 5, cache):tolist(), m(tokens):tolist(), 1e-5)
  end)

  it("rewinds its cache with truncate and decodes the same again", function()
    local m = model({}, { attention = "gqa", n_kv_heads = 2 })
    local cache = m:make_cache(2, 12)
    m(tokens:slice(2, 1, 6), { cache = cache })
    cache:truncate(3)
    assert.are.equal(3, cache.layers[1].offset)
    local again = m(tokens:slice(2, 4, 9), { cache = cache })
    assert_close(again:tolist(), m(tokens):slice(2, 4, 9):tolist(), 1e-5)
    cache:reset()
    assert.are.equal(0, cache.offset)
  end)

  it("reorders its rows for a beam search, decoding as if each row had been fed so", function()
    local m = model({}, { attention = "gqa", n_kv_heads = 2 })
    local cache = m:make_cache(2, 12)
    m(tokens:slice(2, 1, 5), { cache = cache })
    cache:reorder(lattice.array({ 1, 1 }, "int32")) -- both rows continue row 1 (0-based)
    local got = m(tokens:slice(2, 6, 6), { cache = cache })
    local second = tokens[2]:reshape({ 1, 9 })
    local both = lattice.concatenate({ second, second }, 1)
    local want = m(lattice.concatenate({ both:slice(2, 1, 5), tokens:slice(2, 6, 6) }, 2))
    assert_close(got:tolist(), want:slice(2, 6, 6):tolist(), 1e-5)
    assert.has_error(function() cache:reorder(lattice.array({ 0, 2 }, "int32")) end,
      "Cache: reorder: row indices must be in [0, 2), got 0 .. 2")
    assert.has_error(function() cache:reorder(lattice.array({ 0 }, "int32")) end,
      "Cache: reorder: rows must be an int32 or int64 tensor of 2 row indices")
    assert.has_error(function() cache.layers[1]:reorder({ 0, 1 }) end,
      "KVCache: reorder: rows must be an int32 or int64 tensor of 2 row indices")
  end)

  it("reloads from a checkpoint and its config to identical logits", function()
    local base = os.tmpname()
    local weights, json = base .. ".safetensors", base .. ".json"
    local m = model({ tie_embeddings = false }, { attention = "gqa", n_kv_heads = 2, qk_norm = true, bias = true })
    m:save_weights(weights)
    m.config:save_json(json)
    local again = nn.LanguageModel(lattice.ModelConfig.load_json(json))
    assert.are_not.same(m(tokens):tolist(), again(tokens):tolist())
    again:load_weights(weights)
    assert.are.same(m(tokens):tolist(), again(tokens):tolist())
    for _, f in ipairs({ base, weights, json }) do os.remove(f) end
  end)

  it("leaves its cache as it was when a step fails in a layer", function()
    local Failing = nn.Module:extend("FailingFFN")
    function Failing:init() self.fail = false end
    function Failing:forward(h)
      if self.fail then error("FailingFFN: asked to fail", 0) end
      return h * 0
    end
    lattice.registry.ffn:register("spec_failing", Failing)
    local b = block()
    local m = nn.LanguageModel(lattice.ModelConfig { block = b, vocab_size = 37, n_layers = 2,
      block_configs = { b, b:replace { ffn = "spec_failing" } } })
    local cache = m:make_cache(2, 12)
    m(tokens:slice(2, 1, 4), { cache = cache })
    m.blocks[2].ffn.fail = true
    assert.has_error(function() m(tokens:slice(2, 5, 5), { cache = cache }) end, "blocks.1.ffn: FailingFFN: asked to fail")
    assert.are.equal(4, cache.offset)
    assert.are.equal(4, cache.layers[1].offset)
    assert.are.equal(4, cache.layers[2].offset)
    m.blocks[2].ffn.fail = false
    local rest = {}
    for p = 5, 9 do rest[#rest + 1] = (m(tokens:slice(2, p, p), { cache = cache })) end
    assert_close(lattice.concatenate(rest, 2):tolist(), m(tokens):slice(2, 5, 9):tolist(), 1e-5)
  end)

  it("refuses a cache while a gradient is taken", function()
    local m = model()
    local cache = m:make_cache(2, 12)
    local step = nn.value_and_grad(m, function(mm) return lattice.sum(mm(tokens, { cache = cache })) end)
    assert.has_error(function() step(m) end,
      "blocks.0.attention: kv_cache_write: src is being differentiated; a KV cache is for inference (decode without a gradient)")
    assert.are.equal(0, cache.offset)
  end)

  it("makes caches of the config's max_seq_len by default, in the dtype asked", function()
    local m = model(nil, { max_seq_len = 20, attention = "gqa", n_kv_heads = 2 })
    local cache = m:make_cache(3)
    assert.are.same({ 3, 2, 20, 4 }, cache.layers[1].k.shape)
    assert.are.equal("bfloat16", m:make_cache(1, 5, { dtype = "bfloat16" }).layers[2].k.dtype)
    assert.are.equal("bfloat16", m:make_cache(1, { dtype = "bfloat16" }).layers[2].k.dtype)
    assert.are.equal("Cache(2 layers, batch=3, max_len=20, offset=0)", tostring(cache))
  end)

  it("has the gradient of central differences through tied embeddings and every layer (float64)", function()
    local m = nn.LanguageModel(lattice.ModelConfig { vocab_size = 5, n_layers = 1, block = lattice.BlockConfig {
      attention = "gqa", n_kv_heads = 1, ffn = "gated", norm = "rms_norm", position = "rope", d_model = 8,
      n_heads = 2, d_ff = 6, bias = false } })
    m:apply(function(p) return lattice.random.normal(p.shape, { scale = 0.5 }):astype("float64") end)
    local x, y = lattice.array({ { 1, 4, 0 } }, "int32"), lattice.array({ { 4, 0, 2 } }, "int32")
    local names, inputs = {}, {}
    for name, p in pairs(m:named_parameters()) do names[#names + 1], inputs[#inputs + 1] = name, p end
    gradcheck(function(...)
      local params = { ... }
      for i, name in ipairs(names) do
        local holder = m
        for part in name:gmatch("([^.]+)%.") do holder = holder[tonumber(part) and tonumber(part) + 1 or part] end
        holder[name:match("([^.]+)$")] = params[i]
      end
      return nn.losses.cross_entropy(m(x), y, { reduction = "mean" })
    end, inputs)
  end)

  it("learns a repeated sequence with AdamW", function()
    lattice.random.seed(1)
    local m = model({ vocab_size = 20 }, { attention = "gqa", n_kv_heads = 2 })
    local seq = {}
    for i = 1, 17 do seq[i] = (i * 7) % 20 end
    local x = lattice.array({ table.move(seq, 1, 16, 1, {}) }, "int32")
    local y = lattice.array({ table.move(seq, 2, 17, 1, {}) }, "int32")
    local step = nn.value_and_grad(m, function(mm) return nn.losses.cross_entropy(mm(x), y, { reduction = "mean" }) end)
    local opt = lattice.optim.AdamW { learning_rate = 1e-2 }
    local first
    for i = 1, 60 do
      local loss, grads = step(m)
      first = first or loss:item()
      opt:update(m, grads)
      if i == 60 then
        assert.is_true(first > 2.5) -- about log(20) at the start
        assert.is_true(loss:item() < 0.05, "loss " .. loss:item())
      end
    end
  end)

  it("counts its parameters", function()
    local m = model({ tie_embeddings = false })
    -- embed + head 2 * 37 * 16; per layer q, o 16x16, k, v 16x16, gate, up 16x24, down 24x16, two norms 16
    local per_layer = 4 * 256 + 3 * 384 + 32
    assert.are.equal(2 * 37 * 16 + 2 * per_layer + 16, m:count_parameters())
  end)

  it("names the problem of a bad call", function()
    local m = model()
    local cache = m:make_cache(2, 6)
    assert.has_error(function() nn.LanguageModel(block()) end, "LanguageModel: config must be a lattice.ModelConfig, got userdata")
    assert.has_error(function() m(tokens:astype("float32")) end,
      "LanguageModel: tokens must be an int32 or int64 tensor (B, T), got float32 {2,9}")
    assert.has_error(function() m(tokens:reshape(-1)) end,
      "LanguageModel: tokens must be an int32 or int64 tensor (B, T), got int32 {18}")
    assert.has_error(function() m(tokens, { cash = cache }) end, "LanguageModel: unknown option 'cash'")
    assert.has_error(function() m(tokens, { cache = {} }) end, "LanguageModel: cache must be a cache from model:make_cache, got table")
    assert.has_error(function() m(tokens, { cache = cache }) end,
      "LanguageModel: 9 new positions after 0 do not fit in the cache's max_len 6")
    assert.has_error(function() m(tokens:slice(1, 1, 1), { cache = cache }) end,
      "LanguageModel: the cache is for batch 2, tokens have 1 rows")
    assert.has_error(function() m(tokens, { cache = model({ n_layers = 3 }):make_cache(2, 12) }) end,
      "LanguageModel: the cache has 3 layers, the model 2")
    assert.has_error(function() m:make_cache(0, 4) end, "LanguageModel: make_cache: batch must be a positive integer, got 0")
    assert.has_error(function() m:make_cache(1, 2.5) end, "LanguageModel: make_cache: max_len must be a positive integer, got 2.5")
    assert.has_error(function() m:make_cache(1, 4, { dtype = "int8" }) end,
      "KVCache: dtype must be float32, float16 or bfloat16, got int8")
    assert.are.equal(0, cache.offset)
  end)
end)
