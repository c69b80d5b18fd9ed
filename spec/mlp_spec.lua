-- nn.MLP against the reference MLP (seed 004): fields, options, defaults,
-- parameter counts, flop_count, the formulas of every activation against
-- plain Lua, the "fused" backend (lattice.linear_act) against "blas", and
-- gradient checks of every variant.
local lattice = require "lattice"
local gradcheck = require "support.gradcheck"
local ref = require "support.reference"

local nn = lattice.nn
local type_name = require("lattice.nn.module").type_name
local assert_close, weighted, generator, rand = ref.assert_close, ref.weighted, ref.generator, ref.rand

local function sigmoid(v) return 1 / (1 + math.exp(-v)) end
local ACT = {
  relu = function(v) return v > 0 and v or 0 end,
  gelu = ref.gelu,
  silu = function(v) return v * sigmoid(v) end,
}

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

-- The reference's forward on rows: torch's F.glu(h) = a * sigmoid(b), its
-- SwiGLU b * silu(a), [a, b] = h split at the midpoint.
local function mlp_ref(m, rows)
  local l1, l2 = m.layer1, m.layer2
  local h = linear(rows, l1.weight:tolist(), l1.bias and l1.bias:tolist())
  local g = {}
  for r, row in ipairs(h) do
    g[r] = {}
    local half = #row // 2
    for j = 1, m.is_glu_variant and half or #row do
      if m.activation == "glu" then
        g[r][j] = row[j] * sigmoid(row[half + j])
      elseif m.activation == "swiglu" then
        g[r][j] = ACT.silu(row[j]) * row[half + j]
      else
        g[r][j] = ACT[m.activation](row[j])
      end
    end
  end
  return linear(g, l2.weight:tolist(), l2.bias and l2.bias:tolist())
end

local ACTIVATIONS = { "relu", "gelu", "silu", "glu", "swiglu" }

local function flat_rows(x)
  local c = x.shape[x.ndim]
  return x:reshape({ x.size // c, c }):tolist()
end

describe("nn.MLP", function()
  it("has the reference's fields and defaults", function()
    local m = nn.MLP(8, "gelu")
    assert.are.same({ 16, "gelu", "blas", false }, { m.hidden_dim, m.activation, m.backend, m.is_glu_variant })
    assert.are.same({ 16, 8 }, m.layer1.weight.shape)
    assert.are.same({ 8, 16 }, m.layer2.weight.shape)
    assert.is_nil(m.layer1.bias) -- bias = false by default
    assert.is_nil(m.layer2.bias)
    assert.are.equal("Identity", type_name(m.dropout))
    assert.are.equal(
      "MLP(dim=8, hidden_dim=16, activation=\"gelu\", backend=\"blas\"\n" ..
      "  (layer1): Linear(input_dims=8, output_dims=16, bias=false)\n" ..
      "  (dropout): Identity()\n" ..
      "  (layer2): Linear(input_dims=16, output_dims=8, bias=false)\n)", tostring(m))
  end)

  it("makes layer1 2H wide for the gated activations", function()
    for _, act in ipairs({ "glu", "swiglu" }) do
      local m = nn.MLP(8, act)
      assert.is_true(m.is_glu_variant)
      assert.are.same({ 32, 8 }, m.layer1.weight.shape)
      assert.are.same({ 8, 16 }, m.layer2.weight.shape)
    end
  end)

  it("takes hidden_dim = floor(expansion_factor * dim)", function()
    assert.are.equal(4, nn.MLP(3, "relu", { expansion_factor = 4 / 3 }).hidden_dim)
    assert.are.equal(25, nn.MLP(10, "relu", { expansion_factor = 2.5 }).hidden_dim)
    assert.are.equal(7, nn.MLP(7, "relu", { expansion_factor = 1.1 }).hidden_dim)
    assert.are.equal(682, nn.MLP(512, "swiglu", { expansion_factor = 4 / 3 }).hidden_dim)
  end)

  describe("parameter counts", function()
    it("are 2CH plain and 3CH gated, plus H + C (or 2H + C) biases", function()
      local C, H = 8, 16
      assert.are.equal(2 * C * H, nn.MLP(C, "gelu"):num_parameters())
      assert.are.equal(3 * C * H, nn.MLP(C, "swiglu"):num_parameters())
      assert.are.equal(2 * C * H + H + C, nn.MLP(C, "relu", { bias = true }):num_parameters())
      assert.are.equal(3 * C * H + 2 * H + C, nn.MLP(C, "glu", { bias = true }):num_parameters())
    end)

    it("are about 4C^2 for GELU and 6C^2 for SwiGLU at expansion 2, as the reference says", function()
      assert.are.equal(4 * 64 * 64, nn.MLP(64, "gelu"):num_parameters())
      assert.are.equal(6 * 64 * 64, nn.MLP(64, "swiglu"):num_parameters())
    end)
  end)

  describe("flop_count", function()
    it("is 2 T C H + T H + 2 T H C plain", function()
      local T, C, H = 10, 8, 16
      assert.are.equal(2 * T * C * H + T * H + 2 * T * H * C, nn.MLP(C, "gelu"):flop_count(T))
      assert.are.equal(5280, nn.MLP(8, "relu"):flop_count(10))
    end)

    it("is 2 T C 2H + 2 T H + 2 T H C gated", function()
      local T, C, H = 10, 8, 16
      assert.are.equal(2 * T * C * 2 * H + 2 * T * H + 2 * T * H * C, nn.MLP(C, "swiglu"):flop_count(T))
      assert.are.equal(8000, nn.MLP(8, "glu"):flop_count(10))
      assert.are.equal(0, nn.MLP(8, "glu"):flop_count(0))
    end)

    it("refuses a count that is not a non-negative integer", function()
      assert.has_error(function() nn.MLP(8, "glu"):flop_count(1.5) end,
        "MLP:flop_count: num_tokens must be a non-negative integer, got 1.5")
    end)
  end)

  for _, act in ipairs(ACTIVATIONS) do
    describe(act, function()
      it("computes the reference's formula on channels-last input of any rank", function()
        for _, bias in ipairs({ false, true }) do
          local m = nn.MLP(4, act, { bias = bias, expansion_factor = 1.5 })
          for _, shape in ipairs({ { 4 }, { 5, 4 }, { 2, 3, 4 }, { 2, 2, 3, 4 } }) do
            local x = lattice.random.normal(shape)
            local y = m(x)
            assert.are.same(shape, y.shape)
            local want = mlp_ref(m, flat_rows(x))
            assert_close(flat_rows(y), want, 1e-5)
          end
        end
      end)

      it("gives the same values with backend = 'fused'", function()
        for _, bias in ipairs({ false, true }) do
          local m = nn.MLP(6, act, { bias = bias })
          local f = nn.MLP(6, act, { bias = bias, backend = "fused" })
          f:update(m:parameters())
          local x = lattice.random.normal({ 3, 7, 6 })
          assert_close(f(x):tolist(), m(x):tolist(), 1e-6)
          local xb = x:astype("bfloat16")
          assert.are.equal(m(xb).dtype, f(xb).dtype)
        end
      end)

      it("passes gradcheck in its input and every parameter, both backends", function()
        for _, backend in ipairs({ "blas", "fused" }) do
          for _, bias in ipairs({ false, true }) do
            local m = nn.MLP(3, act, { bias = bias, backend = backend })
            local x = lattice.array(rand({ 2, 3 }, generator(41)))
            local inputs = { x, m.layer1.weight, m.layer2.weight }
            if bias then inputs[4], inputs[5] = m.layer1.bias, m.layer2.bias end
            gradcheck.each_dtype(function(v, w1, w2, b1, b2)
              m.layer1.weight, m.layer2.weight = w1, w2
              if bias then m.layer1.bias, m.layer2.bias = b1, b2 end
              return weighted(m(v))
            end, inputs)
          end
        end
      end)
    end)
  end

  it("gates glu with the second half and swiglu with the first, as the reference's code does", function()
    -- layer1 = identity on 2 channels: h = [a, b] = x
    for act, want in pairs({ glu = 0.5 * sigmoid(2), swiglu = ACT.silu(0.5) * 2 }) do
      for _, backend in ipairs({ "blas", "fused" }) do
        local m = nn.MLP(2, act, { expansion_factor = 0.5, backend = backend })
        m.layer1.weight = lattice.eye(2)
        m.layer2.weight = lattice.array({ { 1 }, { 0 } })
        assert_close(m(lattice.array({ { 0.5, 2 } })):tolist(), { { want, 0 } }, 1e-6)
      end
    end
  end)

  describe("the fused backend", function()
    it("matches over many row blocks and keeps 16-bit dtypes", function()
      -- layer1 8192 outputs wide: blocks of 128 rows, so 300 rows take three
      for _, act in ipairs({ "gelu", "swiglu" }) do
        local m = nn.MLP(8, act, { expansion_factor = act == "gelu" and 1024 or 512, bias = true })
        local f = nn.MLP(8, act, { expansion_factor = act == "gelu" and 1024 or 512, bias = true, backend = "fused" })
        f:update(m:parameters())
        local x = lattice.random.normal({ 300, 8 })
        assert_close(f(x):tolist(), m(x):tolist(), 1e-5)
        local xb = x:astype("bfloat16")
        local fb = nn.MLP(8, act, { expansion_factor = 2, backend = "fused" })
        assert.are.equal("float32", fb(xb).dtype) -- bfloat16 x, float32 weights: float32, as lattice.linear
      end
    end)

    it("is lattice.linear_act, which checks its arguments", function()
      local x, w = lattice.ones({ 2, 4 }), lattice.ones({ 6, 4 })
      assert.are.same({ 2, 3 }, lattice.linear_act(x, w, nil, "swiglu").shape)
      assert.are.same({ 2, 6 }, x:linear_act(w, lattice.zeros({ 6 }), "relu").shape)
      assert.has_error(function() lattice.linear_act(x, w, nil, "tanh") end,
        "linear_act: activation must be one of 'relu', 'gelu', 'silu', 'glu', 'swiglu', got 'tanh'")
      assert.has_error(function() lattice.linear_act(x, lattice.ones({ 5, 4 }), nil, "glu") end,
        "linear_act: glu splits the output in halves, but weight has 5 outputs")
      assert.has_error(function() lattice.linear_act(lattice.ones({ 2, 3 }), w, nil, "gelu") end,
        "linear_act: weight has 4 input features, x has 3")
      assert.has_error(function() lattice.linear_act(x, w, lattice.ones({ 4 }), "gelu") end,
        "linear_act: bias has shape {4}, expected {6}")
      assert.has_error(function() lattice.linear_act(x:astype("int32"), w, nil, "gelu") end,
        "linear_act: x must be a float tensor, got int32")
    end)
  end)

  describe("initialisers", function()
    it("are curried: init(out_features)(weight), and zero the biases", function()
      local seen = {}
      local function init(tag)
        return function(out_features)
          seen[#seen + 1] = { tag, out_features }
          return function(w) return lattice.full(w.shape, out_features) end
        end
      end
      local m = nn.MLP(4, "swiglu", { bias = true, init_method_in = init("in"), init_method_out = init("out") })
      assert.are.same({ { "in", 16 }, { "out", 4 } }, seen)
      assert.are.same(lattice.full({ 16, 4 }, 16):tolist(), m.layer1.weight:tolist())
      assert.are.same(lattice.full({ 4, 8 }, 4):tolist(), m.layer2.weight:tolist())
      assert.are.same(lattice.zeros({ 16 }):tolist(), m.layer1.bias:tolist())
      assert.are.same(lattice.zeros({ 4 }):tolist(), m.layer2.bias:tolist())
    end)

    it("work with nn.init", function()
      local m = nn.MLP(4, "gelu", { init_method_in = function() return nn.init.constant(0.5) end })
      assert.are.same(lattice.full({ 8, 4 }, 0.5):tolist(), m.layer1.weight:tolist())
    end)

    it("leave the default uniform +-1/sqrt(fan_in) init without them", function()
      local m = nn.MLP(16, "relu", { bias = true })
      assert.is_true(lattice.max(lattice.abs(m.layer1.weight)):item() <= 0.25)
      assert.is_true(lattice.max(lattice.abs(m.layer2.weight)):item() <= 1 / math.sqrt(32))
      assert.is_true(lattice.max(lattice.abs(m.layer1.bias)):item() > 0) -- not zeroed
    end)
  end)

  describe("dropout", function()
    it("is a module applied after the activation, or a probability for nn.Dropout", function()
      local m = nn.MLP(4, "relu", { dropout = 0.5 })
      assert.are.equal("Dropout", type_name(m.dropout))
      assert.are.equal(0.5, m.dropout.p)
      local d = nn.Dropout({ p = 0.25 })
      assert.are.equal(d, nn.MLP(4, "relu", { dropout = d }).dropout)
    end)

    it("zeroes hidden units in training and is the identity in evaluation", function()
      local m = nn.MLP(4, "relu", { dropout = 0.999999, expansion_factor = 4 })
      local x = lattice.random.normal({ 3, 4 })
      assert.are.same(lattice.zeros({ 3, 4 }):tolist(), m(x):tolist()) -- every hidden unit dropped
      m:eval()
      assert_close(m(x):tolist(), mlp_ref(m, x:tolist()), 1e-5)
    end)
  end)

  describe("refuses", function()
    local cases = {
      { function() nn.MLP(0, "relu") end, "MLP: dim must be a positive integer, got 0" },
      { function() nn.MLP(8, "tanh") end,
        "MLP: activation must be one of 'relu', 'gelu', 'silu', 'glu', 'swiglu', got 'tanh'" },
      { function() nn.MLP(8) end, "MLP: activation must be one of 'relu', 'gelu', 'silu', 'glu', 'swiglu', got nil" },
      { function() nn.MLP(8, "relu", { expansion = 2 }) end, "MLP: unknown option 'expansion'" },
      { function() nn.MLP(8, "relu", { expansion_factor = 0 }) end, "MLP: expansion_factor must be a positive number, got 0" },
      { function() nn.MLP(8, "relu", { expansion_factor = 0.1 }) end,
        "MLP: hidden_dim = floor(expansion_factor * dim) is 0; it must be at least 1" },
      { function() nn.MLP(8, "relu", { bias = 1 }) end, "MLP: bias must be a boolean, got number" },
      { function() nn.MLP(8, "relu", { dropout = "0.1" }) end, "MLP: dropout must be a module or a probability, got string" },
      { function() nn.MLP(8, "relu", { init_method_in = 3 }) end,
        "MLP: init_method_in must be a function (init(out_features) returning an initialiser), got number" },
      { function() nn.MLP(8, "relu", { init_method_out = function() return 1 end }) end,
        "MLP: init_method_out(8) must return an initialiser function, got number" },
      { function() nn.MLP(8, "relu", { init_method_in = function() return function() return {} end end }) end,
        "MLP: init_method_in(16)(weight) must return a tensor or nil, got table" },
      { function() nn.MLP(8, "relu", { backend = "cuda" }) end, "MLP: backend must be 'blas' or 'fused', got 'cuda'" },
      { function() nn.MLP(8, "relu", { backend = "quack" }) end,
        "MLP: backend 'quack' (the reference's QuACK fused GEMM kernels for Hopper/Blackwell GPUs) is not " ..
        "available on the CPU; backend = 'fused' is lattice's fused GEMM + activation" },
      { function() nn.MLP(8, "relu")(lattice.ones({ 2, 5, 7 })) end,
        "MLP: x must have 8 channels on its last axis (channels last: (B, *spatial, C)), got 7" },
      { function() nn.MLP(8, "relu")(lattice.ones({})) end,
        "MLP: x must have 8 channels on its last axis (channels last: (B, *spatial, C)), got a 0-d tensor" },
      { function() nn.MLP(8, "relu")({ 1, 2 }) end, "MLP: x must be a tensor (B, *spatial, C), got table" },
    }
    for _, case in ipairs(cases) do
      it(case[2], function() assert.has_error(case[1], case[2]) end)
    end

    it("reads the reference's backend name 'torch' as 'blas'", function()
      assert.are.equal("blas", nn.MLP(8, "relu", { backend = "torch" }).backend)
    end)
  end)

  it("names a wrong input inside a container", function()
    local model = nn.Sequential(nn.MLP(8, "relu"), nn.MLP(8, "gelu"))
    assert.has_no.errors(function() model(lattice.ones({ 2, 8 })) end)
    local bad = nn.Sequential(nn.Linear(8, 6), nn.MLP(8, "gelu"))
    assert.has_error(function() bad(lattice.ones({ 2, 8 })) end,
      "layers.1: MLP: x must have 8 channels on its last axis (channels last: (B, *spatial, C)), got 6")
  end)
end)
