-- lattice.models: the seed's presets (their configs field by field), the
-- parameter counts of its tests/test_param_counts.py and docstrings, counts
-- computed by hand, and the errors of bad overrides.
local lattice = require "lattice"
local models = require "lattice.models"

describe("lattice.models presets", function()
  it("build the seed's configs", function()
    local g = models.gpt_tiny()
    local b = g.block
    assert.same({ "mha", "standard", "layer_norm", "sinusoidal", 64, 2, 128, true, 128, true },
      { b.attention, b.ffn, b.norm, b.position, b.d_model, b.n_heads, b.d_ff, b.bias, b.max_seq_len, b.pre_norm })
    assert.same({ 256, 2, true }, { g.vocab_size, g.n_layers, g.tie_embeddings })

    local l = models.llama_7b()
    b = l.block
    assert.same({ "gqa", "gated", "rms_norm", "rope", 4096, 32, 8, 11008, false, 10000.0, 4096 },
      { b.attention, b.ffn, b.norm, b.position, b.d_model, b.n_heads, b.n_kv_heads, b.d_ff, b.bias, b.rope_theta,
        b.max_seq_len })
    assert.same({ 32000, 32, false }, { l.vocab_size, l.n_layers, l.tie_embeddings })
    assert.same({ 5120, 40, 10, 13824, 40 }, { models.llama_13b().block.d_model, models.llama_13b().block.n_heads,
      models.llama_13b().block.n_kv_heads, models.llama_13b().block.d_ff, models.llama_13b().n_layers })

    assert.equal(1, models.gemma().block.n_kv_heads)
    assert.is_true(models.gemma().tie_embeddings)
    assert.is_true(models.qwen().block.bias)
    assert.equal(1000000.0, models.qwen().block.rope_theta)
    assert.is_true(models.olmo2().block.qk_norm)
    assert.is_true(models.qwen3_tiny().block.qk_norm)
    assert.is_false(models.qwen3_tiny().block.bias)
    local m = models.mistral_tiny().block
    assert.same({ "sliding_window_gqa", 32 }, { m.attention, m.window_size })
  end)

  it("interleave Gemma 3's global layers and SmolLM3's NoPE layers as the seed counts them", function()
    local g3 = models.gemma3_tiny()
    local kinds = {}
    for i = 1, 4 do kinds[i] = g3:get_block_config(i).attention end
    assert.same({ "sliding_window_gqa", "sliding_window_gqa", "sliding_window_gqa", "gqa" }, kinds)
    assert.equal(16, g3:get_block_config(1).window_size)
    assert.is_nil(g3:get_block_config(4).window_size)
    local full = models.gemma3()
    local globals = {}
    for i = 1, full.n_layers do
      if full:get_block_config(i).attention == "gqa" then globals[#globals + 1] = i - 1 end
    end
    assert.same({ 5, 11, 17, 23 }, globals) -- 0-based, as the seed's docstring
    local s = models.smollm3{ n_layers = 8 }
    local pos = {}
    for i = 1, 8 do pos[i] = s:get_block_config(i).position end
    assert.same({ "rope", "rope", "rope", "none", "rope", "rope", "rope", "none" }, pos)
  end)

  it("take overrides as an options table, over a named size's own defaults", function()
    local c = models.llama_tiny{ n_layers = 5, d_ff = 96 }
    assert.same({ 5, 96, 64 }, { c.n_layers, c.block.d_ff, c.block.d_model })
    local mup = models.gpt_tiny{ mup_base_width = 32 }
    assert.is_true(mup.block.mup)
    assert.equal(2.0, mup.width_mult)
    assert.is_false(models.gpt_tiny().block.mup)
    assert.equal(1024, models.gpt_10m{ max_seq_len = 1024 }.block.max_seq_len)
    local g = models.gemma3{ n_layers = 8, global_every = 2 }
    assert.same({ "sliding_window_gqa", "gqa" }, { g:get_block_config(7).attention, g:get_block_config(8).attention })
  end)

  it("refuse unknown options and bad values, naming the preset", function()
    assert.has_error(function() models.gpt_tiny{ d_modle = 3 } end,
      "models.gpt_tiny: unknown option 'd_modle'; known options: d_ff, d_model, dropout, max_seq_len, mup_base_width, " ..
      "n_heads, n_layers, tie_embeddings, vocab_size")
    assert.has_error(function() models.gemma{ mup_base_width = 64 } end,
      "models.gemma: unknown option 'mup_base_width'; known options: d_ff, d_model, max_seq_len, n_heads, n_kv_heads, " ..
      "n_layers, rope_theta, tie_embeddings, vocab_size")
    assert.has_error(function() models.llama{ d_model = 100, n_heads = 3 } end,
      "models.llama: BlockConfig: d_model (100) must be divisible by n_heads (3)")
    assert.has_error(function() models.llama_tiny{ d_model = "64" } end,
      "models.llama_tiny: BlockConfig: d_model must be an integer, got string")
    assert.has_error(function() models.gemma3_tiny{ global_every = 0 } end,
      "models.gemma3_tiny: global_every must be a positive integer, got 0")
    assert.has_error(function() models.smollm3{ nope_every = 1.5 } end,
      "models.smollm3: nope_every must be a positive integer, got 1.5")
    assert.has_error(function() models.qwen(3) end, "models.qwen: options must be a table, got number")
  end)
end)

describe("lattice.models.count_parameters", function()
  it("hits the seed's targets within 10% (tests/test_param_counts.py) and its docstrings' figures", function()
    local targets = { gpt_10m = 10e6, gpt_30m = 30e6, llama_10m = 10e6, llama_30m = 30e6 }
    local doc = { gpt_10m = 9.6e6, gpt_30m = 30.2e6, llama_10m = 9.9e6, llama_30m = 30.6e6, gpt_small = 125e6,
      gpt_medium = 350e6 }
    for name, want in pairs(targets) do
      local n = models.count_parameters(models[name]())
      assert.is_true(math.abs(n - want) <= 0.1 * want, name .. ": " .. n)
    end
    for name, want in pairs(doc) do
      local n = models.count_parameters(models[name]())
      assert.is_true(math.abs(n - want) <= 0.02 * want, name .. ": " .. n)
    end
  end)

  it("counts each component as written out by hand", function()
    -- gpt_tiny: V 256, d 64, d_ff 128, 2 layers, biases, LayerNorm, tied
    local attn = 4 * (64 * 64 + 64)
    local ffn = 64 * 128 + 128 + 128 * 64 + 64
    local total, parts = models.count_parameters(models.gpt_tiny(), { detail = true })
    assert.same({ embed = 256 * 64, blocks = 2 * (attn + ffn + 4 * 64), final_norm = 2 * 64 }, parts)
    assert.equal(256 * 64 + 2 * (attn + ffn + 4 * 64) + 2 * 64, total)
    -- llama_tiny: GQA 4 heads / 2 kv of 16, no bias, SwiGLU, RMSNorm, untied head
    attn = 64 * 64 * 2 + 2 * 64 * 32
    ffn = 3 * 64 * 128
    local _, lparts = models.count_parameters(models.llama_tiny(), { detail = true })
    assert.same({ embed = 256 * 64, blocks = 2 * (attn + ffn + 2 * 64), final_norm = 64, head = 64 * 256 }, lparts)
    -- qk_norm adds two RMSNorms over head_dim per layer
    assert.equal(models.count_parameters(models.llama_tiny()) + 2 * 2 * 16,
      models.count_parameters(models.qwen3_tiny{ tie_embeddings = false, vocab_size = 256 }) )
    -- per-layer configs: SmolLM3's NoPE layers have the same parameters
    assert.equal(4 * models.block_parameters(models.smollm3_tiny().block),
      models.count_parameters(models.smollm3_tiny()) - 256 * 64 - 64)
  end)

  it("refuses a component it has no formula for", function()
    local cfg = lattice.ModelConfig{ block = lattice.BlockConfig{ ffn = "my_ffn", d_model = 8, n_heads = 2 } }
    assert.has_error(function() models.count_parameters(cfg) end,
      "count_parameters: no formula for ffn 'my_ffn' (a component of your own: build the model and call " ..
      "model:num_parameters())")
  end)

  it("lists the architectures the command knows", function()
    local names = models.names()
    assert.same({ "gpt", "llama", "gemma", "gemma3", "qwen", "qwen3", "mistral", "olmo2", "smollm3" },
      table.move(names, 1, 9, 1, {}))
    assert.equal(models.gpt_tiny, models.architecture("gpt").tiny)
    assert.is_nil(models.architecture("gpt5"))
  end)
end)
