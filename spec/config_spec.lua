-- lattice.BlockConfig and lattice.ModelConfig against lmxlab's dataclasses
-- (src/lmxlab/core/config.py): every field and default, the derived values,
-- replace, tostring, equality, JSON, and every error with its message.
local lattice = require "lattice"

local BlockConfig, ModelConfig = lattice.BlockConfig, lattice.ModelConfig

-- The seed's __init__ signature, in its order, with its defaults (nil: None).
local SEED_BLOCK = {
  {"attention", "mha"}, {"ffn", "standard"}, {"norm", "layer_norm"}, {"position", "sinusoidal"},
  {"d_model", 512}, {"n_heads", 8}, {"n_kv_heads", nil}, {"d_ff", 2048}, {"bias", true}, {"dropout", 0.0},
  {"norm_eps", 1e-05}, {"rope_theta", 10000.0}, {"max_seq_len", 2048}, {"pre_norm", true}, {"window_size", nil},
  {"kv_lora_rank", nil}, {"q_lora_rank", nil}, {"rope_dim", nil}, {"n_experts", nil}, {"top_k_experts", 2},
  {"n_shared_experts", nil}, {"conv_kernel_size", 4}, {"use_short_conv", false}, {"mamba_n_heads", nil},
  {"mamba_head_dim", nil}, {"ssm_state_size", 128}, {"mamba_expand", 2}, {"mamba_n_groups", 1},
  {"mamba_chunk_size", 128}, {"mamba_bc_norm", false}, {"mamba_trapezoidal", false}, {"mamba_complex_a", false},
  {"moe_latent_size", nil}, {"moe_d_ff", nil}, {"shared_expert_d_ff", nil}, {"moe_routed_scaling_factor", 1.0},
  {"moe_n_groups", 1}, {"moe_topk_groups", 1}, {"qk_norm", false}, {"attention_chunk_size", nil}, {"mup", false},
  {"sparse_compress_ratio", nil}, {"sparse_select_k", nil},
}
local SEED_MODEL = {
  {"block", "BlockConfig()"}, {"vocab_size", 32000}, {"n_layers", 6}, {"tie_embeddings", true},
  {"block_configs", nil}, {"mup_base_width", nil}, {"mtp_n_predict", 0}, {"mtp_lambda", 0.1},
}

local function names(seed)
  local out = {}
  for i, f in ipairs(seed) do out[i] = f[1] end
  return out
end

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- A fresh path in the temporary directory (os.tmpname creates its file: removed).
local function tmp_path(name)
  local base = os.tmpname()
  os.remove(base)
  return base .. "-" .. name .. ".json"
end

local function write_file(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

describe("BlockConfig", function()
  it("has the seed's fields in the seed's order", function()
    assert.are.same(names(SEED_BLOCK), BlockConfig.fields)
  end)

  it("has every default of the seed", function()
    local c = BlockConfig()
    for _, f in ipairs(SEED_BLOCK) do
      assert.are.equal(f[2], c[f[1]], f[1])
      assert.are.equal(math.type(f[2]), math.type(c[f[1]]), f[1]) -- 0.0 stays a float, 512 an integer
    end
    assert.are.equal(c, BlockConfig{})
  end)

  it("takes fields by name", function()
    local c = BlockConfig{attention = "gqa", ffn = "gated", norm = "rms_norm", position = "rope", d_model = 256,
      n_heads = 4, n_kv_heads = 2, bias = false, dropout = 0.1, rope_theta = 5e5, window_size = 128, qk_norm = true}
    assert.are.same({"gqa", "gated", "rms_norm", "rope", 256, 4, 2, false, 0.1, 5e5, 128, true},
      {c.attention, c.ffn, c.norm, c.position, c.d_model, c.n_heads, c.n_kv_heads, c.bias, c.dropout,
        c.rope_theta, c.window_size, c.qk_norm})
    assert.are.equal(2048, c.d_ff) -- the rest keep their defaults
  end)

  it("reads a float with an integer value as an integer, and an integer as a float", function()
    local c = BlockConfig{d_model = 64.0, rope_theta = 500000}
    assert.are.equal("integer", math.type(c.d_model))
    assert.are.equal("float", math.type(c.rope_theta))
  end)

  describe("derived values", function()
    it("head_dim is d_model / n_heads", function()
      assert.are.equal(64, BlockConfig().head_dim)
      assert.are.equal(32, BlockConfig{d_model = 128, n_heads = 4}.head_dim)
    end)

    it("effective_n_kv_heads is n_kv_heads, or n_heads when None", function()
      assert.are.equal(8, BlockConfig().effective_n_kv_heads)
      assert.are.equal(2, BlockConfig{n_kv_heads = 2}.effective_n_kv_heads)
      assert.are.equal(1, BlockConfig{n_kv_heads = 1}.effective_n_kv_heads) -- MQA
    end)

    it("attention_scale is 1/sqrt(head_dim), 1/head_dim with mup (lattice's, for the kernels)", function()
      assert.are.equal(1 / 8, BlockConfig().attention_scale)
      assert.are.equal(1 / 64, BlockConfig{mup = true}.attention_scale)
      assert.are.equal(1 / math.sqrt(32), BlockConfig{d_model = 128, n_heads = 4}.attention_scale)
    end)
  end)

  describe("replace", function()
    it("returns a modified copy and leaves the original alone", function()
      local c = BlockConfig{d_model = 256, n_heads = 4}
      local d = c:replace{n_kv_heads = 2, attention = "gqa"}
      assert.are.same({256, 4, 2, "gqa"}, {d.d_model, d.n_heads, d.n_kv_heads, d.attention})
      assert.is_nil(c.n_kv_heads)
      assert.are.equal("mha", c.attention)
      assert.are.equal(c, c:replace{})
    end)

    it("unsets an optional field given false (a nil is no entry in a Lua table)", function()
      local c = BlockConfig{window_size = 64}
      assert.is_nil(c:replace{window_size = false}.window_size)
      assert.is_nil(BlockConfig{window_size = false}.window_size)
    end)

    it("checks the copy and names itself", function()
      local c = BlockConfig{d_model = 256, n_heads = 4}
      assert.has_error(function() c:replace{n_heads = 3} end,
        "BlockConfig:replace: d_model (256) must be divisible by n_heads (3)")
      assert.has_error(function() c:replace{head_dim = 3} end, "BlockConfig:replace: unknown field 'head_dim'")
      assert.has_error(function() c.replace(5) end,
        "bad argument #1 to 'replace' (lattice.BlockConfig expected, got number)")
    end)
  end)

  describe("refuses at construction", function()
    local cases = {
      {{d_modle = 64}, "BlockConfig: unknown field 'd_modle'"},
      {{zz = 1, d_modle = 64}, "BlockConfig: unknown fields 'd_modle', 'zz'"},
      {{64}, "BlockConfig: unknown field '1'"},
      {{attention = 3}, "BlockConfig: attention must be a string, got 3"},
      {{ffn = ""}, "BlockConfig: ffn must be a non-empty string of at most 63 bytes, got 0 bytes"},
      {{norm = ("x"):rep(64)}, "BlockConfig: norm must be a non-empty string of at most 63 bytes, got 64 bytes"},
      {{d_model = "512"}, "BlockConfig: d_model must be an integer, got string"},
      {{d_model = 512.5}, "BlockConfig: d_model must be an integer, got 512.5"},
      {{d_model = 0}, "BlockConfig: d_model must be a positive integer, got 0"},
      {{n_heads = -2}, "BlockConfig: n_heads must be a positive integer, got -2"},
      {{d_ff = true}, "BlockConfig: d_ff must be an integer, got boolean"},
      {{n_kv_heads = 0}, "BlockConfig: n_kv_heads must be a positive integer or nil, got 0"},
      {{n_kv_heads = -1}, "BlockConfig: n_kv_heads must be a positive integer or nil, got -1"},
      {{window_size = "64"}, "BlockConfig: window_size must be an integer or nil, got string"},
      {{bias = 1}, "BlockConfig: bias must be a boolean, got 1"},
      {{pre_norm = "yes"}, "BlockConfig: pre_norm must be a boolean, got string"},
      {{dropout = "0.1"}, "BlockConfig: dropout must be a number, got string"},
      {{dropout = 1}, "BlockConfig: dropout must be a number in [0, 1), got 1"},
      {{dropout = -0.1}, "BlockConfig: dropout must be a number in [0, 1), got -0.1"},
      {{norm_eps = -1e-6}, "BlockConfig: norm_eps must be a non-negative number, got -1e-06"},
      {{rope_theta = 0}, "BlockConfig: rope_theta must be a positive number, got 0"},
      {{moe_routed_scaling_factor = math.huge}, "BlockConfig: moe_routed_scaling_factor must be a finite number, got inf"},
      {{d_model = 100, n_heads = 3}, "BlockConfig: d_model (100) must be divisible by n_heads (3)"},
      {{n_heads = 8, n_kv_heads = 3}, "BlockConfig: n_heads (8) must be divisible by n_kv_heads (3)"},
      {{n_heads = 8, n_kv_heads = 16}, "BlockConfig: n_heads (8) must be divisible by n_kv_heads (16)"},
    }
    for _, case in ipairs(cases) do
      it(case[2], function()
        assert.has_error(function() BlockConfig(case[1]) end, case[2])
      end)
    end

    it("a value that is not a table of fields", function()
      assert.has_error(function() BlockConfig("mha") end, "BlockConfig: expected a table of fields, got string")
    end)
  end)

  it("is frozen, and names a field it does not have", function()
    local c = BlockConfig()
    assert.has_error(function() c.d_model = 256 end,
      "BlockConfig: configs are frozen; make a changed copy with cfg:replace{d_model = ...}")
    assert.has_error(function() return c.d_modle end, "BlockConfig: no field 'd_modle'")
  end)

  it("compares by value", function()
    assert.are.equal(BlockConfig{d_model = 64, n_heads = 4}, BlockConfig{n_heads = 4, d_model = 64})
    assert.are_not.equal(BlockConfig(), BlockConfig{bias = false})
    assert.is_false(BlockConfig() == ModelConfig())
  end)

  it("prints as the constructor call that makes it again", function()
    local c = BlockConfig{attention = "gqa", n_kv_heads = 2, dropout = 0.1, rope_theta = 1e6, ffn = 'a"b\\c'}
    local s = tostring(c)
    assert.are.equal('BlockConfig{attention = "gqa", ffn = "a\\"b\\\\c", norm = "layer_norm", ', s:sub(1, 69))
    assert.truthy(s:find("n_kv_heads = 2, d_ff = 2048, bias = true, dropout = 0.1, norm_eps = 1e-05, " ..
      "rope_theta = 1000000.0, max_seq_len = 2048", 1, true))
    assert.truthy(s:find("window_size = nil", 1, true))
    local again = assert(load("local BlockConfig = ...; return " .. s))(BlockConfig)
    assert.are.equal(c, again)
  end)

  it("gives its fields as a table the constructor takes", function()
    local c = BlockConfig{d_model = 64, n_heads = 2, window_size = 16}
    local t = c:to_table()
    assert.are.equal(64, t.d_model)
    assert.are.equal(16, t.window_size)
    assert.is_nil(t.n_kv_heads)
    assert.are.equal(c, BlockConfig(t))
  end)

  it("is recognised by lattice.is_block_config", function()
    assert.is_true(lattice.is_block_config(BlockConfig()))
    assert.is_false(lattice.is_block_config({}))
    assert.is_false(lattice.is_block_config(ModelConfig()))
  end)
end)

describe("ModelConfig", function()
  it("has the seed's fields in the seed's order", function()
    assert.are.same(names(SEED_MODEL), ModelConfig.fields)
  end)

  it("has every default of the seed", function()
    local m = ModelConfig()
    for _, f in ipairs(SEED_MODEL) do
      if f[1] == "block" then
        assert.are.equal(BlockConfig(), m.block)
      else
        assert.are.equal(f[2], m[f[1]], f[1])
      end
    end
  end)

  it("holds a block and per-layer block_configs", function()
    local a, b = BlockConfig{d_model = 64, n_heads = 4}, BlockConfig{d_model = 64, n_heads = 4, attention = "gqa", n_kv_heads = 2}
    local m = ModelConfig{block = a, n_layers = 2, block_configs = {a, b}, vocab_size = 100}
    assert.are.equal(a, m.block)
    assert.are.equal(2, #m.block_configs)
    assert.are.equal(b, m.block_configs[2])
    assert.are.equal(100, m.vocab_size)
  end)

  describe("get_block_config", function()
    local a, b = BlockConfig{d_model = 64, n_heads = 4}, BlockConfig{d_model = 64, n_heads = 2}

    it("counts layers from 1 and gives block_configs[i] when there are per-layer configs", function()
      local m = ModelConfig{block = a, n_layers = 2, block_configs = {b, a}}
      assert.are.equal(b, m:get_block_config(1))
      assert.are.equal(a, m:get_block_config(2))
    end)

    it("gives the block for every layer without them", function()
      local m = ModelConfig{block = b, n_layers = 3}
      for i = 1, 3 do assert.are.equal(b, m:get_block_config(i)) end
    end)

    it("refuses a layer out of range", function()
      local m = ModelConfig{n_layers = 3}
      assert.has_error(function() m:get_block_config(0) end, "get_block_config: layer 0 is out of range for 3 layers")
      assert.has_error(function() m:get_block_config(4) end, "get_block_config: layer 4 is out of range for 3 layers")
    end)
  end)

  it("width_mult is d_model / mup_base_width, 1.0 without muP", function()
    assert.are.equal(1.0, ModelConfig().width_mult)
    local m = ModelConfig{block = BlockConfig{d_model = 512}, mup_base_width = 128}
    assert.are.equal(4.0, m.width_mult)
    assert.are.equal(0.5, ModelConfig{block = BlockConfig{d_model = 64, n_heads = 4}, mup_base_width = 128}.width_mult)
  end)

  describe("refuses at construction", function()
    local a = BlockConfig{d_model = 64, n_heads = 4}
    local cases = {
      {{n_layer = 2}, "ModelConfig: unknown field 'n_layer'"},
      {{block = {d_model = 64}}, "ModelConfig: block must be a lattice.BlockConfig, got table"},
      {{vocab_size = 0}, "ModelConfig: vocab_size must be a positive integer, got 0"},
      {{n_layers = 2.5}, "ModelConfig: n_layers must be an integer, got 2.5"},
      {{tie_embeddings = "no"}, "ModelConfig: tie_embeddings must be a boolean, got string"},
      {{mup_base_width = 0}, "ModelConfig: mup_base_width must be a positive integer or nil, got 0"},
      {{mtp_n_predict = -1}, "ModelConfig: mtp_n_predict must be a non-negative integer, got -1"},
      {{mtp_lambda = 0 / 0}, "ModelConfig: mtp_lambda must be a finite number, got " .. tostring(0 / 0)},
      {{block_configs = a}, "ModelConfig: block_configs must be a list of lattice.BlockConfig or nil, got userdata"},
      {{n_layers = 2, block_configs = {a, {}}}, "ModelConfig: block_configs[2] must be a lattice.BlockConfig, got table"},
      {{n_layers = 3, block_configs = {a, a}}, "ModelConfig: block_configs has 2 entries, n_layers is 3"},
      {{n_layers = 2, block_configs = {a}}, "ModelConfig: block_configs has 1 entry, n_layers is 2"},
      {{n_layers = 1, block_configs = {[2] = a}}, "ModelConfig: block_configs has a hole at index 1"},
    }
    for _, case in ipairs(cases) do
      it(case[2], function()
        assert.has_error(function() ModelConfig(case[1]) end, case[2])
      end)
    end
  end)

  describe("replace", function()
    local a, b = BlockConfig{d_model = 64, n_heads = 4}, BlockConfig{d_model = 64, n_heads = 2}

    it("returns a modified copy, block_configs kept unless given", function()
      local m = ModelConfig{block = a, n_layers = 2, block_configs = {a, b}}
      local m2 = m:replace{vocab_size = 500}
      assert.are.equal(500, m2.vocab_size)
      assert.are.equal(b, m2:get_block_config(2))
      assert.are.equal(32000, m.vocab_size)
      assert.is_nil(m:replace{block_configs = false}.block_configs)
    end)

    it("checks block_configs against a changed n_layers", function()
      local m = ModelConfig{block = a, n_layers = 2, block_configs = {a, b}}
      assert.has_error(function() m:replace{n_layers = 3} end,
        "ModelConfig:replace: block_configs has 2 entries, n_layers is 3")
      assert.are.equal(3, m:replace{n_layers = 3, block_configs = {a, b, a}}.n_layers)
    end)
  end)

  it("compares by value, block_configs included", function()
    local a, b = BlockConfig{d_model = 64, n_heads = 4}, BlockConfig{d_model = 64, n_heads = 2}
    local m = ModelConfig{block = a, n_layers = 2, block_configs = {a, b}}
    assert.are.equal(m, ModelConfig{block = a, n_layers = 2, block_configs = {a, b}})
    assert.are_not.equal(m, ModelConfig{block = a, n_layers = 2, block_configs = {b, a}})
    assert.are_not.equal(m, ModelConfig{block = a, n_layers = 2})
  end)

  it("prints as the constructor call that makes it again", function()
    local a = BlockConfig{d_model = 64, n_heads = 4}
    local m = ModelConfig{block = a, n_layers = 2, block_configs = {a, a:replace{ffn = "gated"}}, mup_base_width = 32}
    local s = tostring(m)
    assert.are.equal("ModelConfig{block = BlockConfig{", s:sub(1, 32))
    local again = assert(load("local BlockConfig, ModelConfig = ...; return " .. s))(BlockConfig, ModelConfig)
    assert.are.equal(m, again)
  end)
end)

describe("configs as JSON", function()
  local a = BlockConfig{d_model = 64, n_heads = 4, n_kv_heads = 2, attention = "gqa", dropout = 0.1, norm_eps = 1e-6}
  local m = ModelConfig{block = a, n_layers = 2, block_configs = {a, a:replace{window_size = 16}}, vocab_size = 97}

  it("writes every field by name, None as null, floats as floats", function()
    local text = a:to_json()
    assert.truthy(text:find('"attention":%s*"gqa"'))
    assert.truthy(text:find('"window_size":%s*null'))
    assert.truthy(text:find('"rope_theta":%s*10000%.0'))
    assert.truthy(text:find('"norm_eps":%s*1e%-06'))
    assert.truthy(text:find('"d_model":%s*64[,\n]'))
    assert.truthy(m:to_json():find('"block_configs":%s*%[{'))
  end)

  it("reads back what it writes", function()
    assert.are.equal(a, BlockConfig.from_json(a:to_json()))
    assert.are.equal(m, ModelConfig.from_json(m:to_json()))
    local plain = ModelConfig()
    assert.are.equal(plain, ModelConfig.from_json(plain:to_json()))
  end)

  it("saves beside a checkpoint and loads from there, leaving no temporary file", function()
    -- a directory of its own: other specs running at the same time save beside theirs in the temporary one
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. dir))
    local path = dir .. "/model.json"
    m:save_json(path)
    assert.are.equal(m, ModelConfig.load_json(path))
    m:replace{vocab_size = 5}:save_json(path) -- replaces the file
    assert.are.equal(5, ModelConfig.load_json(path).vocab_size)
    local bpath = dir .. "/block.json"
    a:save_json(bpath)
    assert.are.equal(a, BlockConfig.load_json(bpath))
    assert.are.equal(a:to_json() .. "\n", read_file(bpath))
    local left = {}
    for entry in io.popen("ls -A " .. dir):lines() do left[#left + 1] = entry end
    table.sort(left)
    assert.are.same({"block.json", "model.json"}, left) -- no temporary file beside them
    os.remove(path)
    os.remove(bpath)
    os.remove(dir)
  end)

  it("takes defaults for the fields a file leaves out", function()
    assert.are.equal(BlockConfig{d_model = 64, n_heads = 2}, BlockConfig.from_json('{"d_model": 64, "n_heads": 2}'))
    assert.are.equal(ModelConfig{n_layers = 2}, ModelConfig.from_json('{"n_layers": 2}'))
  end)

  describe("refuses", function()
    local cases = {
      {BlockConfig, '{"d_model": 64,}', "BlockConfig.from_json: not valid JSON (byte 15: expected a string key, found '}')"},
      {BlockConfig, '[1]', "BlockConfig.from_json: expected a JSON object, got array"},
      {BlockConfig, '{} x', "BlockConfig.from_json: unexpected bytes after the JSON value (byte 3)"},
      {BlockConfig, '{"head_dim": 8}', "BlockConfig.from_json: unknown field 'head_dim'"},
      {BlockConfig, '{"d_ff": 8, "d_ff": 8}', "BlockConfig.from_json: field 'd_ff' appears twice"},
      {BlockConfig, '{"d_model": 64.5}', "BlockConfig.from_json: d_model must be an integer, got 64.5"},
      {BlockConfig, '{"d_model": null}', "BlockConfig.from_json: d_model must be an integer, got null"},
      {BlockConfig, '{"n_kv_heads": "2"}', "BlockConfig.from_json: n_kv_heads must be an integer or null, got string"},
      {BlockConfig, '{"n_kv_heads": 0}', "BlockConfig.from_json: n_kv_heads must be a positive integer or nil, got 0"},
      {BlockConfig, '{"bias": 1}', "BlockConfig.from_json: bias must be a boolean, got 1"},
      {BlockConfig, '{"dropout": "x"}', "BlockConfig.from_json: dropout must be a number, got string"},
      {BlockConfig, '{"ffn": ["gated"]}', "BlockConfig.from_json: ffn must be a string, got array"},
      {BlockConfig, '{"d_model": 100, "n_heads": 3}', "BlockConfig.from_json: d_model (100) must be divisible by n_heads (3)"},
      {ModelConfig, '{"block": 3}', "ModelConfig.from_json: block: expected a JSON object, got 3"},
      {ModelConfig, '{"block": {"d_model": 0}}', "ModelConfig.from_json: block: d_model must be a positive integer, got 0"},
      {ModelConfig, '{"block_configs": {}}',
        "ModelConfig.from_json: block_configs must be an array of objects or null, got object"},
      {ModelConfig, '{"n_layers": 1, "block_configs": [{"bias": 0}]}',
        "ModelConfig.from_json: block_configs[1]: bias must be a boolean, got 0"},
      {ModelConfig, '{"block_configs": [{}]}', "ModelConfig.from_json: block_configs has 1 entry, n_layers is 6"},
    }
    for _, case in ipairs(cases) do
      it(case[3], function()
        assert.has_error(function() case[1].from_json(case[2]) end, case[3])
      end)
    end

    it("a missing or malformed file, naming it", function()
      local path = tmp_path("missing")
      assert.has_error(function() ModelConfig.load_json(path) end,
        "ModelConfig.load_json: " .. path .. ": cannot open: No such file or directory")
      write_file(path, '{"d_model": 64, "n_heads": 3}')
      assert.has_error(function() BlockConfig.load_json(path) end,
        "BlockConfig.load_json: " .. path .. ": d_model (64) must be divisible by n_heads (3)")
      write_file(path, "\xff{}")
      assert.has_error(function() BlockConfig.load_json(path) end,
        "BlockConfig.load_json: " .. path .. ": not valid UTF-8 (byte 0)")
      os.remove(path)
    end)

    it("a path it cannot write, leaving the old file", function()
      assert.has_error(function() a:save_json("/nonexistent-dir/x.json") end)
      local ok, err = pcall(a.save_json, a, "/nonexistent-dir/x.json")
      assert.is_false(ok)
      assert.truthy(err:find("^BlockConfig:save_json: /nonexistent%-dir/x%.json: "))
    end)
  end)
end)
