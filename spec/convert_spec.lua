-- lattice.models' Hugging Face reader: a LLaMA-format checkpoint directory
-- written here from a model's tensors under the Hugging Face names (the map
-- written out independently below), read back into a new model that gives
-- the same logits; the config fields; and every refusal.
local lattice = require "lattice"
local core = require "lattice.core"
local models = lattice.models

local base = os.tmpname()
os.remove(base)
local n_dirs = 0
local function new_dir()
  n_dirs = n_dirs + 1
  local d = ("%s-hf%d"):format(base, n_dirs)
  core.fs_mkdirs(d, "spec")
  return d
end

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

-- lattice name -> Hugging Face LLaMA name.
local function hf_name(name)
  if name == "embed.weight" then return "model.embed_tokens.weight" end
  if name == "final_norm.weight" then return "model.norm.weight" end
  if name == "head.weight" then return "lm_head.weight" end
  local i, rest = name:match("^blocks%.(%d+)%.(.+)$")
  local map = {
    ["attention.q_proj.weight"] = "self_attn.q_proj.weight", ["attention.k_proj.weight"] = "self_attn.k_proj.weight",
    ["attention.v_proj.weight"] = "self_attn.v_proj.weight", ["attention.o_proj.weight"] = "self_attn.o_proj.weight",
    ["ffn.gate.weight"] = "mlp.gate_proj.weight", ["ffn.up.weight"] = "mlp.up_proj.weight",
    ["ffn.down.weight"] = "mlp.down_proj.weight", ["attn_norm.weight"] = "input_layernorm.weight",
    ["ffn_norm.weight"] = "post_attention_layernorm.weight",
  }
  return ("model.layers.%s.%s"):format(i, assert(map[rest], rest))
end

local HF = {
  model_type = "llama", hidden_size = 32, intermediate_size = 48, num_attention_heads = 4, num_key_value_heads = 2,
  num_hidden_layers = 2, vocab_size = 50, rms_norm_eps = 1e-6, rope_theta = 500000.0, max_position_embeddings = 64,
  tie_word_embeddings = false, hidden_act = "silu", torch_dtype = "bfloat16", architectures = { "LlamaForCausalLM" },
}

local function with(t, extra)
  local o = {}
  for k, v in pairs(t) do o[k] = v end
  for k, v in pairs(extra) do o[k] = v end
  return o
end

-- A checkpoint directory of `model`'s tensors in two shards, in dtype, with
-- config.json `hf`; extra tensors by Hugging Face name are added to shard 2.
local function checkpoint(model, hf, dtype, extra)
  local d = new_dir()
  write(d .. "/config.json", lattice.json.encode(hf, { indent = 2 }))
  local shard = { {}, {} }
  for name, t in pairs(model:named_parameters()) do
    shard[name:match("^blocks%.1%.") and 2 or 1][hf_name(name)] = dtype and t:astype(dtype) or t
  end
  for k, v in pairs(extra or {}) do shard[2][k] = v end
  lattice.save_safetensors(d .. "/model-00001-of-00002.safetensors", shard[1])
  lattice.save_safetensors(d .. "/model-00002-of-00002.safetensors", shard[2])
  write(d .. "/tokenizer.json", "{}")
  return d
end

local function source_model(seed)
  lattice.random.seed(seed or 1)
  local m = lattice.nn.LanguageModel(models.config_from_hf(HF))
  m:eval()
  return m
end

local tokens = lattice.array({ { 1, 7, 49, 3, 3, 20 } }, "int32")

describe("lattice.models.from_hf", function()
  it("reads a LLaMA checkpoint directory into a model with the same logits", function()
    local src = source_model(1)
    local d = checkpoint(src, HF, nil, { ["model.layers.0.self_attn.rotary_emb.inv_freq"] = lattice.ones({ 4 }) })
    local m, cfg = models.from_hf(d)
    assert.equal(cfg, src.config)
    assert.same(src(tokens):tolist(), m(tokens):tolist())
    -- and decodes with it
    assert.same(src:generate(tokens, { max_tokens = 5, temperature = 0 }):tolist(),
      m:generate(tokens, { max_tokens = 5, temperature = 0 }):tolist())
  end)

  it("converts bfloat16 files to the dtype asked for", function()
    local src = source_model(2)
    local d = checkpoint(src, HF, "bfloat16")
    local w = models.load_hf(d)
    assert.equal("float32", w["embed.weight"].dtype)
    assert.same(src.embed.weight:astype("bfloat16"):astype("float32"):tolist(), w["embed.weight"]:tolist())
    assert.equal("bfloat16", models.load_hf(d, { dtype = "bfloat16" })["blocks.1.ffn.up.weight"].dtype)
    local m = models.from_hf(d)
    assert.equal("float32", m.blocks[2].ffn.up.weight.dtype)
  end)

  it("ties the head when the config says so, and reads a mistral window", function()
    local hf = with(HF, { tie_word_embeddings = true })
    lattice.random.seed(3)
    local src = lattice.nn.LanguageModel(models.config_from_hf(hf))
    src:eval()
    local m = models.from_hf(checkpoint(src, hf))
    assert.is_nil(m.head)
    assert.same(src(tokens):tolist(), m(tokens):tolist())
    local mc = models.config_from_hf(with(HF, { model_type = "mistral", sliding_window = 4 }))
    assert.same({ "sliding_window_gqa", 4 }, { mc.block.attention, mc.block.window_size })
  end)
end)

describe("lattice.models.config_from_hf", function()
  it("maps config.json's fields as the seed does, with norm_eps", function()
    local c = models.config_from_hf(HF)
    local b = c.block
    assert.same({ "gqa", "gated", "rms_norm", "rope", 32, 4, 2, 48, false, 1e-6, 500000.0, 64, true },
      { b.attention, b.ffn, b.norm, b.position, b.d_model, b.n_heads, b.n_kv_heads, b.d_ff, b.bias, b.norm_eps,
        b.rope_theta, b.max_seq_len, b.pre_norm })
    assert.same({ 50, 2, false }, { c.vocab_size, c.n_layers, c.tie_embeddings })
    local d = models.config_from_hf({ model_type = "llama", hidden_size = 32, intermediate_size = 8,
      num_attention_heads = 4, vocab_size = 10, num_hidden_layers = 1 })
    assert.same({ 4, 1e-5, 10000.0, 4096, false }, { d.block.n_kv_heads, d.block.norm_eps, d.block.rope_theta,
      d.block.max_seq_len, d.tie_embeddings })
  end)

  it("refuses what lattice cannot express", function()
    local function err(msg, extra) assert.has_error(function() models.config_from_hf(with(HF, extra)) end, msg) end
    err("config_from_hf: unsupported model_type 'gemma'; supported: gpt2, llama, mistral", { model_type = "gemma" })
    err("config_from_hf: rope_scaling is not supported (lattice's RoPE has no scaling of positions)",
      { rope_scaling = { type = "llama3", factor = 8 } })
    err("config_from_hf: hidden_act 'gelu' is not supported (the gated FFN uses silu)", { hidden_act = "gelu" })
    err("config_from_hf: attention_bias and mlp_bias are not supported (lattice's bias applies to every projection " ..
      "and norm)", { attention_bias = true })
    err("config_from_hf: head_dim 16 differs from hidden_size / num_attention_heads", { head_dim = 16 })
    err("config_from_hf: BlockConfig: n_heads (4) must be divisible by n_kv_heads (3)", { num_key_value_heads = 3 })
    local short = with(HF, {})
    short.hidden_size, short.vocab_size = nil, nil
    assert.has_error(function() models.config_from_hf(short) end, "config_from_hf: config.json lacks hidden_size, vocab_size")
    assert.has_error(function() models.config_from_hf("x") end,
      "config_from_hf: config must be a table (a parsed config.json), got string")
  end)
end)

describe("lattice.models.convert_weights", function()
  it("names every LLaMA tensor as the seed does and skips the rotary buffers", function()
    local t = lattice.zeros({ 1 })
    local got = models.convert_weights({
      ["model.embed_tokens.weight"] = t, ["model.norm.weight"] = t, ["lm_head.weight"] = t,
      ["model.layers.12.self_attn.k_proj.weight"] = t, ["model.layers.0.mlp.gate_proj.weight"] = t,
      ["model.layers.3.post_attention_layernorm.weight"] = t, ["model.layers.3.input_layernorm.weight"] = t,
      ["model.layers.1.self_attn.rotary_emb.inv_freq"] = t,
    }, "llama")
    local names = {}
    for k in pairs(got) do names[#names + 1] = k end
    table.sort(names)
    assert.same({ "blocks.0.ffn.gate.weight", "blocks.12.attention.k_proj.weight", "blocks.3.attn_norm.weight",
      "blocks.3.ffn_norm.weight", "embed.weight", "final_norm.weight", "head.weight" }, names)
  end)

  it("refuses a tensor it has no name for and an unknown architecture", function()
    assert.has_error(function() models.convert_weights({ ["model.layers.0.self_attn.q_norm.weight"] = lattice.zeros({ 1 }) },
      "llama") end, "convert_weights: llama: no lattice name for tensor 'model.layers.0.self_attn.q_norm.weight'")
    assert.has_error(function() models.convert_weights({}, "gemma") end,
      "convert_weights: unknown architecture 'gemma'; known: gpt2, llama, mistral")
  end)
end)

describe("reading a checkpoint directory refuses", function()
  local src = source_model(4)

  it("a directory that is not one, or lacks its files", function()
    assert.has_error(function() models.from_hf(base .. "-none") end, "load_hf: " .. base .. "-none: not a directory")
    local d = new_dir()
    assert.has_error(function() models.load_hf(d) end, "load_hf: " .. d .. ": no config.json in it")
    write(d .. "/config.json", lattice.json.encode(HF))
    assert.has_error(function() models.load_hf(d) end, "load_hf: " .. d .. ": no .safetensors files in it")
    write(d .. "/config.json", "{\"model_type\": ")
    assert.has_error(function() models.load_hf(d) end)
    assert.has_error(function() models.load_hf(d, { dtyp = 1 }) end, "load_hf: unknown option 'dtyp'")
  end)

  it("a tensor in two shards, a parameter missing, a tensor with no parameter, a wrong shape", function()
    local d = checkpoint(src, HF, nil, { ["model.embed_tokens.weight"] = lattice.zeros({ 50, 32 }) })
    assert.has_error(function() models.load_hf(d) end,
      ("load_hf: tensor 'model.embed_tokens.weight' is in two files (the second: %s/model-00002-of-00002.safetensors)")
      :format(d))
    local extra = checkpoint(src, HF, nil, { ["model.layers.5.input_layernorm.weight"] = lattice.ones({ 32 }) })
    assert.has_error(function() models.from_hf(extra) end,
      ("from_hf: %s: tensor blocks.5.attn_norm.weight has no parameter in the model"):format(extra))
    local untied = checkpoint(lattice.nn.LanguageModel(models.config_from_hf(with(HF, { tie_word_embeddings = true }))), HF)
    assert.has_error(function() models.from_hf(untied) end, ("from_hf: %s: the files lack head.weight"):format(untied))
    local wide = checkpoint(src, with(HF, { intermediate_size = 40 }))
    assert.has_error(function() models.from_hf(wide) end)
  end)
end)

-- ---- GPT-2 ----

local GPT2 = { model_type = "gpt2", n_embd = 24, n_head = 3, n_layer = 2, n_positions = 16, vocab_size = 40,
  layer_norm_epsilon = 1e-5, activation_function = "gelu_new", architectures = { "GPT2LMHeadModel" } }

-- A GPT-2 state dict with random tensors, under Hugging Face's names
-- (Conv1D weights (in, out)), with the "transformer." prefix.
local function gpt2_state(seed)
  lattice.random.seed(seed)
  local d, f = GPT2.n_embd, 4 * GPT2.n_embd
  local function r(shape) return lattice.random.normal(shape, { scale = 0.3 }) end
  local s = { ["transformer.wte.weight"] = r({ 40, d }), ["transformer.wpe.weight"] = r({ 16, d }),
    ["transformer.ln_f.weight"] = 1 + r({ d }), ["transformer.ln_f.bias"] = r({ d }) }
  for i = 0, 1 do
    local h = "transformer.h." .. i .. "."
    s[h .. "ln_1.weight"], s[h .. "ln_1.bias"] = 1 + r({ d }), r({ d })
    s[h .. "ln_2.weight"], s[h .. "ln_2.bias"] = 1 + r({ d }), r({ d })
    s[h .. "attn.c_attn.weight"], s[h .. "attn.c_attn.bias"] = r({ d, 3 * d }), r({ 3 * d })
    s[h .. "attn.c_proj.weight"], s[h .. "attn.c_proj.bias"] = r({ d, d }), r({ d })
    s[h .. "mlp.c_fc.weight"], s[h .. "mlp.c_fc.bias"] = r({ d, f }), r({ f })
    s[h .. "mlp.c_proj.weight"], s[h .. "mlp.c_proj.bias"] = r({ f, d }), r({ d })
    s[h .. "attn.bias"] = lattice.ones({ 1, 1, 16, 16 })
  end
  return s
end

-- GPT-2's forward as Hugging Face's modeling_gpt2 writes it, on the state
-- dict itself: x @ W + b (Conv1D), c_attn split into q, k, v, causal
-- softmax attention per head, gelu_new, tied head.
local function gpt2_reference(s, ids)
  local T, d, H = #ids, GPT2.n_embd, GPT2.n_head
  local hd = d // H
  local function w(k) return s["transformer." .. k] end
  local function conv(x, k) return lattice.matmul(x, w(k .. ".weight")) + w(k .. ".bias") end
  local function ln(x, k) return lattice.layer_norm(x, w(k .. ".weight"), w(k .. ".bias"), 1e-5) end
  local h = lattice.take(w("wte.weight"), lattice.array(ids, "int32"), 1) + w("wpe.weight"):slice(1, 1, T)
  local mask = {}
  for i = 1, T do
    mask[i] = {}
    for j = 1, T do mask[i][j] = j <= i and 0 or -1e9 end
  end
  mask = lattice.array(mask)
  for i = 0, 1 do
    local p = "h." .. i .. "."
    local qkv = conv(ln(h, p .. "ln_1"), p .. "attn.c_attn")
    local heads = {}
    for k = 1, H do
      local function part(n) return qkv:slice(2, n * d + (k - 1) * hd + 1, n * d + k * hd) end
      local a = lattice.softmax(lattice.matmul(part(0), part(1):transpose()) / math.sqrt(hd) + mask, -1)
      heads[k] = lattice.matmul(a, part(2))
    end
    h = h + conv(lattice.concatenate(heads, 2), p .. "attn.c_proj")
    h = h + conv(lattice.gelu_approx(conv(ln(h, p .. "ln_2"), p .. "mlp.c_fc")), p .. "mlp.c_proj")
  end
  return lattice.matmul(ln(h, "ln_f"), w("wte.weight"):transpose())
end

describe("reading a GPT-2 checkpoint", function()
  it("gives the logits of GPT-2's own forward", function()
    local s = gpt2_state(7)
    local d = new_dir()
    write(d .. "/config.json", lattice.json.encode(GPT2))
    lattice.save_safetensors(d .. "/model.safetensors", s)
    local m, cfg = models.from_hf(d)
    assert.same({ "mha", "gelu_tanh", "layer_norm", "learned", true, 16 }, { cfg.block.attention, cfg.block.ffn,
      cfg.block.norm, cfg.block.position, cfg.tie_embeddings, cfg.block.max_seq_len })
    assert.equal(models.count_parameters(cfg), m:num_parameters())
    local ids = { 3, 39, 0, 17, 17, 8, 21 }
    local want = gpt2_reference(s, ids):tolist()
    local got = m(lattice.array({ ids }, "int32")):tolist()[1]
    for t = 1, #ids do
      for j = 1, 40 do assert.near(want[t][j], got[t][j], 2e-5 * (1 + math.abs(want[t][j]))) end
    end
    -- decoding with the cache continues the learned positions
    local out = m:generate(lattice.array({ ids }, "int32"), { max_tokens = 9, temperature = 0 }):tolist()[1]
    local full = lattice.argmax(m(lattice.array({ table.move(out, 1, 15, 1, {}) }, "int32")), 3):tolist()[1]
    for t = 8, 16 do assert.equal(full[t - 1], out[t]) end
    -- the last token drawn is never fed back: 7 + 10 tokens need positions 0 .. 15, 7 + 11 position 16
    assert.equal(17, #m:generate(lattice.array({ ids }, "int32"), { max_tokens = 10, temperature = 0 }):tolist()[1])
    local ok, err = pcall(m.generate, m, lattice.array({ ids }, "int32"), { max_tokens = 11, temperature = 0 })
    assert.is_false(ok)
    assert.truthy(tostring(err):find("positions up to 16 are past the 16 learned positions (max_seq_len)", 1, true))
  end)

  it("refuses what it cannot express", function()
    assert.has_error(function() models.config_from_hf(with(GPT2, { activation_function = "relu" })) end,
      "config_from_hf: activation_function 'relu' is not supported")
    assert.has_error(function() models.config_from_hf(with(GPT2, { scale_attn_by_inverse_layer_idx = true })) end,
      "config_from_hf: scale_attn_by_inverse_layer_idx, reorder_and_upcast_attn and scale_attn_weights = false are not " ..
      "supported")
    assert.has_error(function() models.config_from_hf(with(GPT2, { n_head = 5 })) end,
      "config_from_hf: BlockConfig: d_model (24) must be divisible by n_heads (5)")
    assert.has_error(function() models.convert_weights({ ["h.0.attn.c_attn.weight"] = lattice.zeros({ 24, 50 }) },
      "gpt2", 24) end, "convert_weights: gpt2: no lattice name for tensor 'h.0.attn.c_attn.weight'")
  end)
end)

-- the directories go at the end of the run
teardown(function()
  for i = 1, n_dirs do core.fs_remove_tree(("%s-hf%d"):format(base, i), "spec") end
end)
