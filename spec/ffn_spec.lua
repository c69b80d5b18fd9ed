-- The FFNs and norms of the registries, built from a BlockConfig as lmxlab's
-- core/ffn.py and core/norm.py build them: names, shapes, the bias rule,
-- values against plain Lua references, and gradient checks.
local lattice = require "lattice"
local gradcheck = require "support.gradcheck"
local ref = require "support.reference"

local assert_close, weighted, generator, rand = ref.assert_close, ref.weighted, ref.generator, ref.rand

local gelu = ref.gelu
local function silu(v) return v / (1 + math.exp(-v)) end
local function relu(v) return v > 0 and v or 0 end

-- rows (n, in) @ w^T (w: out x in) + b, on nested lists.
local function linear(rows, w, b)
  local out = {}
  for r, x in ipairs(rows) do
    out[r] = {}
    for o, wr in ipairs(w) do
      local s = b and b[o] or 0
      for i, v in ipairs(x) do s = s + v * wr[i] end
      out[r][o] = s
    end
  end
  return out
end

local function map2(a, b, f)
  local out = {}
  for r, row in ipairs(a) do
    out[r] = {}
    for j, v in ipairs(row) do out[r][j] = f(v, b and b[r][j]) end
  end
  return out
end

local function list(t) return t and t:tolist() end

-- The FFN's formula on rows, with its own weights.
local REFERENCE = {
  standard = function(m, x)
    local h = map2(linear(x, list(m.up.weight), list(m.up.bias)), nil, gelu)
    return linear(h, list(m.down.weight), list(m.down.bias))
  end,
  gated = function(m, x)
    local g = linear(x, list(m.gate.weight), list(m.gate.bias))
    local u = linear(x, list(m.up.weight), list(m.up.bias))
    return linear(map2(g, u, function(a, b) return silu(a) * b end), list(m.down.weight), list(m.down.bias))
  end,
  relu2 = function(m, x)
    local h = map2(linear(x, list(m.up.weight), list(m.up.bias)), nil, function(v) return relu(v) ^ 2 end)
    return linear(h, list(m.down.weight), list(m.down.bias))
  end,
  gated_relu2 = function(m, x)
    local g = linear(x, list(m.gate.weight), list(m.gate.bias))
    local u = linear(x, list(m.up.weight), list(m.up.bias))
    return linear(map2(g, u, function(a, b) return relu(a) ^ 2 * b end), list(m.down.weight), list(m.down.bias))
  end,
}

local PARAMS = {
  standard = { "up", "down" }, gated = { "gate", "up", "down" }, relu2 = { "up", "down" },
  gated_relu2 = { "gate", "up", "down" },
}
local CLASSES = {
  standard = "StandardFFN", gated = "GatedFFN", relu2 = "ReluSquaredFFN", gated_relu2 = "GatedReluSquaredFFN",
  none = "NoneFFN",
}

local function sorted_names(m)
  local names = {}
  for k in pairs(m:named_parameters()) do names[#names + 1] = k end
  table.sort(names)
  return names
end

local function build(name, opts)
  local o = { d_model = 4, n_heads = 2, d_ff = 6, ffn = name }
  for k, v in pairs(opts or {}) do o[k] = v end
  local cfg = lattice.BlockConfig(o)
  return lattice.registry.ffn:get(cfg.ffn)(cfg), cfg
end

describe("FFNs", function()
  for name, layers in pairs(PARAMS) do
    describe(name, function()
      it("has the seed's class, projections and shapes, with bias = cfg.bias", function()
        local m, cfg = build(name)
        assert.are.equal(CLASSES[name], getmetatable(m).__name)
        assert.are.equal(cfg, m.config)
        local want = {}
        for _, l in ipairs(layers) do
          want[#want + 1] = l .. ".weight"
          want[#want + 1] = l .. ".bias"
          local w = m[l].weight
          assert.are.same(l == "down" and { 4, 6 } or { 6, 4 }, w.shape)
        end
        table.sort(want)
        assert.are.same(want, sorted_names(m))
        local nb = build(name, { bias = false })
        for _, l in ipairs(layers) do assert.is_nil(nb[l].bias) end
        assert.are.equal(#layers, #sorted_names(nb))
      end)

      it("computes its formula", function()
        local m = build(name)
        local X = rand({ 5, 4 }, generator(21))
        assert_close(m(lattice.array(X)):tolist(), REFERENCE[name](m, X), 1e-5)
        local x3 = lattice.array(rand({ 2, 3, 4 }, generator(22)))
        assert.are.same({ 2, 3, 4 }, m(x3).shape) -- (batch, seq_len, d_model)
      end)

      it("passes gradcheck in its input and every parameter", function()
        local m = build(name, { d_model = 3, d_ff = 4, n_heads = 1 })
        local inputs = { lattice.array(rand({ 2, 3 }, generator(23))) }
        for _, l in ipairs(layers) do
          inputs[#inputs + 1] = m[l].weight
          inputs[#inputs + 1] = m[l].bias
        end
        gradcheck.each_dtype(function(x, ...)
          local ps = { ... }
          for i, l in ipairs(layers) do
            m[l].weight, m[l].bias = ps[2 * i - 1], ps[2 * i]
          end
          return weighted(m(x))
        end, inputs)
      end)
    end)
  end

  it("none returns its input and has no parameters", function()
    local m = build("none")
    local x = lattice.ones({ 2, 4 })
    assert.are.equal(x, m(x))
    assert.are.same({}, sorted_names(m))
    assert.are.equal("NoneFFN", getmetatable(m).__name)
  end)

  it("are lattice.transformer's classes", function()
    for name, cls in pairs(CLASSES) do
      assert.are.equal(lattice.transformer[cls], lattice.registry.ffn:get(name))
    end
  end)

  it("need a BlockConfig", function()
    assert.has_error(function() lattice.transformer.GatedFFN({ d_model = 4 }) end,
      "GatedFFN: config must be a lattice.BlockConfig, got table")
  end)

  it("name the projection a wrong input reached", function()
    local m = build("gated")
    assert.has_error(function() m(lattice.ones({ 2, 5 })) end, "gate: linear: weight has 4 input features, x has 5")
  end)
end)

describe("norms from a config", function()
  local cfg = lattice.BlockConfig{ d_model = 5, n_heads = 1, norm_eps = 1e-3 }

  it("layer_norm is LayerNorm(d_model, eps = norm_eps) with weight and bias", function()
    local n = lattice.registry.norm:get("layer_norm")(cfg)
    assert.are.same({ "bias", "weight" }, sorted_names(n))
    assert.are.same({ 5, 1e-3 }, { n.dims, n.eps })
    local x = lattice.array(rand({ 3, 5 }, generator(31)))
    assert.are.same(lattice.layer_norm(x, n.weight, n.bias, 1e-3):tolist(), n(x):tolist())
  end)

  it("rms_norm is RMSNorm(d_model, eps = norm_eps) with a weight", function()
    local n = lattice.registry.norm:get("rms_norm")(cfg)
    assert.are.same({ "weight" }, sorted_names(n))
    assert.are.same({ 5, 1e-3 }, { n.dims, n.eps })
  end)

  it("pass gradcheck", function()
    local x = lattice.array(rand({ 2, 5 }, generator(32)))
    local ln = lattice.registry.norm:get("layer_norm")(cfg)
    local w, b = lattice.array(rand({ 5 }, generator(33))), lattice.array(rand({ 5 }, generator(34)))
    gradcheck.each_dtype(function(v, wv, bv)
      ln.weight, ln.bias = wv, bv
      return weighted(ln(v))
    end, { x, w, b })
    local rms = lattice.registry.norm:get("rms_norm")(cfg)
    gradcheck.each_dtype(function(v, wv)
      rms.weight = wv
      return weighted(rms(v))
    end, { x, w })
  end)
end)
