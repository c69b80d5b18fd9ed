-- lattice.Registry, as lmxlab's core/registry.py, and the built-in registries.
local lattice = require "lattice"

local nn = lattice.nn

describe("Registry", function()
  it("registers a value under a key and returns it", function()
    local reg = lattice.Registry("things")
    local v = {}
    assert.are.equal(v, reg:register("a", v))
    assert.are.equal(v, reg:get("a"))
    assert.are.equal("things", reg.name)
  end)

  it("registers with the decorator form reg:register(key)(value)", function()
    local reg = lattice.Registry("things")
    local function f() end
    assert.are.equal(f, reg:register("f")(f))
    assert.are.equal(f, reg:get("f"))
  end)

  it("lists its keys in registration order and knows its members", function()
    local reg = lattice.Registry("things")
    reg:register("b", 1)
    reg:register("a", 2)
    reg:register("c", false) -- any value but nil
    assert.are.same({ "b", "a", "c" }, reg:keys())
    assert.is_true(reg:has("a"))
    assert.is_true(reg:has("c"))
    assert.is_false(reg:has("d"))
    assert.are.equal(3, #reg)
    local keys = reg:keys()
    keys[1] = "x" -- a copy: the registry is not changed
    assert.are.same({ "b", "a", "c" }, reg:keys())
  end)

  it("prints its name and keys", function()
    local reg = lattice.Registry("ffn")
    assert.are.equal("Registry('ffn', keys=[])", tostring(reg))
    reg:register("standard", 1)
    reg:register("gated", 2)
    assert.are.equal("Registry('ffn', keys=['standard', 'gated'])", tostring(reg))
  end)

  describe("refuses", function()
    local reg = lattice.Registry("ffn")
    reg:register("standard", 1)
    reg:register("gated", 2)

    it("a key registered twice, in either form", function()
      assert.has_error(function() reg:register("gated", 3) end, "Registry 'ffn': key 'gated' is already registered")
      assert.has_error(function() reg:register("standard")(3) end,
        "Registry 'ffn': key 'standard' is already registered")
      assert.are.equal(2, reg:get("gated"))
    end)

    it("an unknown key, listing the known ones", function()
      assert.has_error(function() reg:get("swiglu") end,
        "Registry 'ffn': unknown key 'swiglu'; known keys: standard, gated")
      assert.has_error(function() lattice.Registry("empty"):get("x") end,
        "Registry 'empty': unknown key 'x'; known keys: (none)")
    end)

    it("a key that is not a non-empty string, and a nil value", function()
      assert.has_error(function() reg:register(1, 2) end,
        "Registry 'ffn': register: key must be a non-empty string, got number")
      assert.has_error(function() reg:register("", 2) end,
        "Registry 'ffn': register: key must be a non-empty string, got string")
      assert.has_error(function() reg:get(nil) end, "Registry 'ffn': get: key must be a non-empty string, got nil")
      assert.has_error(function() reg:register("x", nil) end, "Registry 'ffn': register: no value given for key 'x'")
      assert.has_error(function() reg:register("y")(nil) end, "Registry 'ffn': register: no value given for key 'y'")
      assert.is_false(reg:has("x"))
    end)

    it("a name that is not a non-empty string, and fields set on it", function()
      assert.has_error(function() lattice.Registry() end, "Registry: name must be a non-empty string, got nil")
      assert.has_error(function() reg.mine = 1 end, "Registry 'ffn': cannot set field 'mine'")
    end)
  end)
end)

describe("the built-in registries", function()
  it("are attention, ffn, norm and position", function()
    for _, name in ipairs({ "attention", "ffn", "norm", "position" }) do
      assert.are.equal(name, lattice.registry[name].name)
    end
    assert.are.same({ "standard", "gated", "relu2", "gated_relu2", "none", "gelu_tanh" }, lattice.registry.ffn:keys())
    assert.are.same({ "rms_norm", "layer_norm" }, lattice.registry.norm:keys())
    assert.are.same({ "rope", "sinusoidal", "alibi", "none", "learned" }, lattice.registry.position:keys())
  end)

  it("build a user's Lua module registered under a new name from a config naming it", function()
    local ScaledFFN = nn.Module:extend("ScaledFFN")
    function ScaledFFN:init(config)
      self.proj = nn.Linear(config.d_model, config.d_model, { bias = config.bias })
      self.scale = 0.5
    end
    function ScaledFFN:forward(x) return self.proj(x) * self.scale end
    lattice.registry.ffn:register("scaled_spec", ScaledFFN)

    local cfg = lattice.BlockConfig{ d_model = 16, n_heads = 2, ffn = "scaled_spec", bias = false }
    local ffn = lattice.registry.ffn:get(cfg.ffn)(cfg)
    assert.are.equal("ScaledFFN", getmetatable(ffn).__name)
    assert.are.same({ "proj.weight" }, (function()
      local names = {}
      for k in pairs(ffn:named_parameters()) do names[#names + 1] = k end
      return names
    end)())
    local x = lattice.random.normal({ 2, 3, 16 })
    assert.are.same((lattice.linear(x, ffn.proj.weight) * 0.5):tolist(), ffn(x):tolist())
    assert.is_true(lattice.registry.ffn:has("scaled_spec"))
  end)

  it("build the norms from a config: d_model and norm_eps", function()
    local cfg = lattice.BlockConfig{ d_model = 12, n_heads = 3, norm_eps = 1e-6 }
    local ln = lattice.registry.norm:get("layer_norm")(cfg)
    local rms = lattice.registry.norm:get("rms_norm")(cfg)
    assert.are.equal("LayerNorm(12, eps=1e-06, affine=true)", tostring(ln))
    assert.are.equal("RMSNorm(12, eps=1e-06)", tostring(rms))
    assert.has_error(function() lattice.registry.norm:get("rms_norm")(12) end,
      "rms_norm: config must be a lattice.BlockConfig, got number")
  end)
end)
