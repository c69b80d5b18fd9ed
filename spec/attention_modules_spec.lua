-- The attention modules of lattice.registry.attention (mha, gqa,
-- sliding_window_gqa, chunked_gqa, none) and their preallocated KV cache,
-- against a textbook attention written plainly in Lua
-- (spec/support/attention_reference.lua) from each module's own weights.
local lattice = require "lattice"
local core = require "lattice.core" -- kv_cache_write: the cache's write, tested directly for its errors
local ref = require "support.reference"
local textbook = require "support.attention_reference"

local T = lattice.transformer
local assert_close, generator, rand = ref.assert_close, ref.generator, ref.rand

-- float32 products of O(1) values over 16 features and 7 keys against the
-- same in doubles: a few ulps of each step, well inside 2e-5 relative.
local TOL = 2e-5

local function config(t)
  local c = { d_model = 16, n_heads = 4, d_ff = 32, position = "rope", rope_theta = 50.0 }
  for k, v in pairs(t) do c[k] = v end
  return lattice.BlockConfig(c)
end

local function build(t)
  local cfg = config(t)
  return lattice.registry.attention:get(cfg.attention)(cfg), cfg
end

local X = rand({ 2, 7, 16 }, generator(11))
local x = lattice.array(X)

-- The module's output on x with the given call arguments, and the textbook's.
local function compare(attn, cfg, call, o)
  o.scale = o.scale or 1 / math.sqrt(cfg.head_dim)
  o.qk_norm = cfg.qk_norm
  if o.rope then o.rope = { base = cfg.rope_theta } end
  local rope = o.rope and T.RoPE(cfg) or nil
  local got = attn(x, call.mask, nil, rope, call.alibi)
  assert_close(got:tolist(), textbook.forward(attn, X, o), TOL)
end

describe("attention modules", function()
  it("are registered under the seed's names", function()
    for name, cls in pairs({ mha = T.MHA, gqa = T.GQA, sliding_window_gqa = T.SlidingWindowGQA,
      chunked_gqa = T.ChunkedGQA, none = T.NoneAttention }) do
      assert.are.equal(cls, lattice.registry.attention:get(name))
    end
  end)

  it("name their parameters q_proj, k_proj, v_proj, o_proj (and q_norm, k_norm), shaped for GQA", function()
    local attn = build { attention = "gqa", n_kv_heads = 2, qk_norm = true }
    local shapes = {}
    for name, p in pairs(attn:named_parameters()) do shapes[name] = table.concat(p.shape, "x") end
    assert.are.same({
      ["q_proj.weight"] = "16x16", ["q_proj.bias"] = "16", ["k_proj.weight"] = "8x16", ["k_proj.bias"] = "8",
      ["v_proj.weight"] = "8x16", ["v_proj.bias"] = "8", ["o_proj.weight"] = "16x16", ["o_proj.bias"] = "16",
      ["q_norm.weight"] = "4", ["k_norm.weight"] = "4",
    }, shapes)
    local mha = build { attention = "mha", n_kv_heads = 2, bias = false }
    assert.are.equal(4, mha.n_kv_heads) -- mha ignores n_kv_heads, as the seed's
    assert.are.same({ 16, 16 }, mha.k_proj.weight.shape)
  end)

  it("mha without a mask attends to every key, as the seed's unmasked call", function()
    local attn, cfg = build { attention = "mha" }
    compare(attn, cfg, {}, {})
  end)

  it("mha with a causal mask and RoPE", function()
    local attn, cfg = build { attention = "mha" }
    compare(attn, cfg, { mask = "causal" }, { causal = true, rope = true })
  end)

  it("gqa groups query heads over fewer kv heads, with qk_norm and RoPE", function()
    local attn, cfg = build { attention = "gqa", n_kv_heads = 2, qk_norm = true }
    attn.q_norm.weight = lattice.array({ 0.5, 1.5, -1, 2 })
    attn.k_norm.weight = lattice.array({ 1.25, -0.75, 1, 0.5 })
    compare(attn, cfg, { mask = "causal" }, { causal = true, rope = true })
  end)

  it("gqa with one kv head is multi-query attention", function()
    local attn, cfg = build { attention = "gqa", n_kv_heads = 1, bias = false }
    compare(attn, cfg, { mask = "causal" }, { causal = true, rope = true })
  end)

  it("sliding_window_gqa sees the last window_size positions up to itself, never a later one", function()
    local attn, cfg = build { attention = "sliding_window_gqa", n_kv_heads = 2, window_size = 3 }
    compare(attn, cfg, {}, { window = 3, rope = true }) -- without a mask: still causal
    compare(attn, cfg, { mask = "causal" }, { window = 3, rope = true })
  end)

  it("chunked_gqa is block-diagonal causal within chunks, RoPE positions restarting per chunk", function()
    local attn, cfg = build { attention = "chunked_gqa", n_kv_heads = 2, attention_chunk_size = 3 }
    compare(attn, cfg, {}, { chunk = 3, rope = true })
    compare(attn, cfg, { mask = "causal" }, { chunk = 3, rope = true })
  end)

  it("adds ALiBi's slopes to the scores", function()
    local attn, cfg = build { attention = "gqa", n_kv_heads = 2, position = "alibi" }
    local slopes = T.alibi_slopes(4)
    compare(attn, cfg, { mask = "causal", alibi = lattice.array(slopes) }, { causal = true, alibi = slopes })
  end)

  it("adds an additive mask as the seed builds them (-1e9 where masked)", function()
    local attn, cfg = build { attention = "gqa", n_kv_heads = 2 }
    local m = {}
    for t = 1, 7 do
      m[t] = {}
      for j = 1, 7 do m[t][j] = (j <= t and (t + j) % 3 ~= 0 or j == t) and 0 or -1e9 end
    end
    compare(attn, cfg, { mask = lattice.array(m) }, { mask = function(_, _, t, j) return m[t][j] end })
  end)

  it("scales the scores by 1/head_dim with mup, else 1/sqrt(head_dim)", function()
    local attn, cfg = build { attention = "mha", mup = true }
    assert.are.equal(0.25, attn.scale)
    assert.are.equal(0.5, build { attention = "mha" }.scale)
    compare(attn, cfg, { mask = "causal" }, { causal = true, rope = true, scale = 0.25 })
  end)

  it("none contributes nothing: zeros, no cache", function()
    local attn = build { attention = "none" }
    local y, c = attn(x)
    assert.are.same({ 2, 7, 16 }, y.shape)
    assert.are.equal(0, lattice.max(lattice.abs(y)):item())
    assert.is_nil(c)
    assert.is_false(attn:make_cache(2, 8))
  end)
end)

describe("the KV cache", function()
  -- Every variant: the first 3 positions in one call, then one at a time,
  -- each call's rows equal to the textbook's rows of the whole sequence.
  local variants = {
    { { attention = "mha" }, { causal = true } },
    { { attention = "gqa", n_kv_heads = 2, qk_norm = true }, { causal = true } },
    { { attention = "gqa", n_kv_heads = 1 }, { causal = true } },
    { { attention = "sliding_window_gqa", n_kv_heads = 2, window_size = 2 }, { window = 2 } },
    { { attention = "chunked_gqa", n_kv_heads = 2, attention_chunk_size = 3 }, { chunk = 3 } },
    { { attention = "gqa", n_kv_heads = 2, position = "alibi", mup = true }, { causal = true, alibi = true } },
  }
  for _, case in ipairs(variants) do
    local t, o = case[1], case[2]
    it(("decodes %s%s position by position as one full forward does"):format(t.attention,
      t.position == "alibi" and " with ALiBi" or ""), function()
      local attn, cfg = build(t)
      local rope = cfg.position == "rope" and T.RoPE(cfg) or nil
      local slopes = o.alibi and T.alibi_slopes(4)
      local alibi = slopes and lattice.array(slopes)
      o.alibi, o.rope, o.qk_norm = slopes, rope and { base = cfg.rope_theta }, cfg.qk_norm
      o.scale = cfg.attention_scale
      local want = textbook.forward(attn, X, o)
      local cache = attn:make_cache(2, 10)
      local steps = { { 1, 3 }, { 4, 4 }, { 5, 5 }, { 6, 6 }, { 7, 7 } }
      for _, s in ipairs(steps) do
        local y, c = attn(x:slice(2, s[1], s[2]), "causal", cache, rope, alibi)
        assert.are.equal(cache, c)
        assert.are.equal(s[2], cache.offset)
        local rows = {}
        for b = 1, 2 do
          rows[b] = {}
          for p = s[1], s[2] do rows[b][#rows[b] + 1] = want[b][p] end
        end
        assert_close(y:tolist(), rows, TOL)
      end
    end)
  end

  it("holds chunked_gqa's keys rotated by their position within the chunk, counted from the absolute position", function()
    -- (RoPE scores depend on q and k positions' difference only, which
    -- within a chunk restarting positions leave unchanged: the keys show it)
    local attn, cfg = build { attention = "chunked_gqa", n_kv_heads = 2, attention_chunk_size = 3 }
    local rope = T.RoPE(cfg)
    local cache = attn:make_cache(2, 7)
    attn(x:slice(2, 1, 2), "causal", cache, rope)
    for p = 3, 7 do attn(x:slice(2, p, p), "causal", cache, rope) end
    local keys = cache:keys():tolist()
    for b = 1, 2 do
      local _, k = textbook.project(attn, X[b], { chunk = 3, rope = { base = cfg.rope_theta } })
      for h = 1, 2 do
        local want = {}
        for p = 1, 7 do want[p] = k[p][h] end
        assert_close(keys[b][h], want, TOL)
      end
    end
  end)

  it("holds the keys written in place, in the cache's dtype", function()
    local kv = T.KVCache(1, 2, 4, 3, { dtype = "float16" })
    assert.are.same({ 1, 2, 4, 3 }, kv.k.shape)
    local k = lattice.array({ { { { 1, 2, 3 } }, { { 4, 5, 6 } } } }) -- (1, 2, 1, 3)
    local storage = kv.k
    local keys = kv:append(k, k * 2)
    assert.are.equal(storage, kv.k) -- the same buffer, written in place
    assert.are.equal("float16", keys.dtype)
    assert.are.same({ { { { 1, 2, 3 } }, { { 4, 5, 6 } } } }, keys:astype("float32"):tolist())
    kv:append(k + 1, k)
    assert.are.same({ { { { 1, 2, 3 }, { 2, 3, 4 } }, { { 4, 5, 6 }, { 5, 6, 7 } } } }, kv:keys():astype("float32"):tolist())
    assert.are.same({ 2, 4, 6 }, kv:values():astype("float32"):tolist()[1][1][1])
    kv:truncate(1)
    assert.are.same({ 1, 2, 1, 3 }, kv:keys().shape)
    kv:reset()
    assert.are.equal(0, kv.offset)
  end)

  it("decodes the same with a float16 cache, within float16 rounding of the keys", function()
    local attn, cfg = build { attention = "gqa", n_kv_heads = 2 }
    local rope = T.RoPE(cfg)
    local full = attn(x, "causal", nil, rope)
    local cache = attn:make_cache(2, 7, { dtype = "float16" })
    attn(x:slice(2, 1, 6), "causal", cache, rope)
    local last = attn(x:slice(2, 7, 7), "causal", cache, rope)
    -- keys and values rounded to 11 bits: relative 2^-11 on O(1) outputs
    assert_close(last:tolist(), full:slice(2, 7, 7):tolist(), 2e-3)
  end)

  it("refuses what does not fit, and changes nothing", function()
    local attn, cfg = build { attention = "gqa", n_kv_heads = 2 }
    local rope = T.RoPE(cfg)
    local cache = attn:make_cache(2, 5)
    attn(x:slice(2, 1, 4), "causal", cache, rope)
    assert.has_error(function() attn(x:slice(2, 5, 6), "causal", cache, rope) end,
      "GQA: 2 new positions after 4 do not fit in the cache's max_len 5")
    assert.are.equal(4, cache.offset)
    assert.has_error(function() cache:append(lattice.zeros({ 2, 2, 2, 4 }), lattice.zeros({ 2, 2, 2, 4 })) end,
      "KVCache: 2 new positions after 4 do not fit in max_len 5")
    assert.are.equal(4, cache.offset)
  end)

  it("checks its arguments", function()
    assert.has_error(function() T.KVCache(0, 2, 4, 3) end, "KVCache: batch must be an integer of at least 1, got 0")
    assert.has_error(function() T.KVCache(1, 2, 4.5, 3) end, "KVCache: max_len must be an integer of at least 1, got 4.5")
    assert.has_error(function() T.KVCache(1, 2, 4, 3, { dtype = "int32" }) end,
      "KVCache: dtype must be float32, float16 or bfloat16, got int32")
    assert.has_error(function() T.KVCache(1, 2, 4, 3, { dtipe = "float32" }) end, "KVCache: unknown option 'dtipe'")
    local kv = T.KVCache(1, 2, 4, 3)
    assert.has_error(function() kv:append(lattice.zeros({ 1, 2, 1, 3 }), lattice.zeros({ 1, 2, 2, 3 })) end,
      "KVCache: k has 1 positions, v 2")
    assert.has_error(function() kv:truncate(1) end, "KVCache: truncate: n must be an integer in [0, 0], got 1")
    assert.are.equal(0, kv.offset)
  end)

  it("writes only what fits, in its own shape, never a tensor being differentiated", function()
    local buf = lattice.zeros({ 1, 2, 4, 3 })
    assert.has_error(function() core.kv_cache_write(buf, 3, lattice.zeros({ 1, 2, 2, 3 })) end,
      "kv_cache_write: positions 3 .. 4 are past the cache's 4")
    assert.has_error(function() core.kv_cache_write(buf, 0, lattice.zeros({ 1, 3, 1, 3 })) end,
      "kv_cache_write: src has size 3 on axis 2, the cache 2 (only the positions may differ)")
    assert.has_error(function() core.kv_cache_write(buf, 0, lattice.zeros({ 2, 1, 3 })) end,
      "kv_cache_write: cache and src must be 4-D (B, H, S, D), got 4-D and 3-D")
    assert.has_error(function() core.kv_cache_write(buf, 0, lattice.zeros({ 1, 2, 1, 3 }, "int32")) end,
      "kv_cache_write: cache and src must be float tensors, got float32 and int32")
    assert.has_error(function() core.kv_cache_write(buf:transpose({ 1, 3, 2, 4 }), 0, lattice.zeros({ 1, 4, 1, 3 })) end,
      "kv_cache_write: the cache must be a contiguous tensor of its own")
    assert.has_error(function()
      lattice.grad(function(k)
        core.kv_cache_write(buf, 0, k)
        return lattice.sum(k)
      end)(lattice.ones({ 1, 2, 1, 3 }))
    end, "kv_cache_write: src is being differentiated; a KV cache is for inference (decode without a gradient)")
    assert.are.equal(0, lattice.max(lattice.abs(buf)):item())
  end)
end)

describe("attention modules' errors", function()
  it("name the module and the problem", function()
    local attn = build { attention = "gqa", n_kv_heads = 2 }
    assert.has_error(function() attn(lattice.zeros({ 2, 3, 8 })) end, "GQA: x must be a tensor (B, T, 16), got shape {2,3,8}")
    assert.has_error(function() attn("x") end, "GQA: x must be a tensor (B, T, 16), got string")
    assert.has_error(function() attn(x, nil, {}) end, "GQA: cache must be a KVCache, got table")
    assert.has_error(function() attn(x, nil, T.KVCache(2, 4, 8, 4)) end,
      "GQA: the cache holds (batch 2, 4 kv heads, head_dim 4), this call needs (batch 2, 2, 4)")
    assert.has_error(function() T.GQA({}) end, "GQA: config must be a lattice.BlockConfig, got table")
    assert.has_error(function() build { attention = "sliding_window_gqa" } end,
      "SlidingWindowGQA: the config needs a window_size")
    assert.has_error(function() build { attention = "chunked_gqa" } end,
      "ChunkedGQA: the config needs an attention_chunk_size")
  end)
end)
