-- The quantized modules (lua/lattice/nn/quantized.lua, core/lua/nn_quant.c)
-- and quantize_model / dequantize_model (lua/lattice/quantize.lua): every
-- module against its float source on the same input within the bound the
-- weight's quantization error gives, QuantizedLinear's int8 activations in
-- eval mode, frozen parts with gradients to the
-- input, whole models quantized in place (bytes by the expected factor; a
-- LanguageModel's logits within the quantization error, cached decoding),
-- saved and loaded under MLX's names, a checkpoint written as MLX writes one,
-- and every bad input with its message.
local lattice = require "lattice"
local nn = lattice.nn
local ref = require "support.reference"
local qref = require "support.quant_reference"
local core = require "lattice.core" -- quant_linear_int8, quant_pack_int8: the int8 product the modules use in eval mode

local f32, weighted = qref.f32, ref.weighted

local normal_rows = qref.normal_rows

local function linear_from(rows, bias)
  local lin = nn.Linear(#rows[1], #rows, { bias = bias ~= nil })
  lin.weight = lattice.array(rows)
  if bias then lin.bias = lattice.array(bias) end
  return lin
end

-- |W x - Q x| <= sum_k |w_k - q_k| |x_k|, and per group |w - q| <= step (quant_spec's
-- bound), so each output is within sum_k step(k) |x_k| of the float layer's,
-- plus the two float32 products' rounding.
local function assert_within_steps(yq, yf, rows, xs, bits, gs, what)
  for i, xr in ipairs(xs) do
    for j, wr in ipairs(rows) do
      local bound, mag = 0, 0
      for g = 0, #wr // gs - 1 do
        local lo, hi = math.huge, -math.huge
        for k = g * gs + 1, (g + 1) * gs do lo, hi = math.min(lo, wr[k]), math.max(hi, wr[k]) end
        local step = math.max((hi - lo) / (2 ^ bits - 1), 1e-7) + 2 ^ -22 * math.max(-lo, hi)
        for k = g * gs + 1, (g + 1) * gs do
          bound = bound + step * math.abs(xr[k])
          mag = mag + (math.abs(wr[k]) + step) * math.abs(xr[k])
        end
      end
      bound = bound + 2 * (#xr + 8) * 2 ^ -24 * mag
      local e = math.abs(yq[i][j] - yf[i][j])
      assert(e <= bound, ("%s [%d][%d]: %.9g vs %.9g, bound %.3g"):format(what, i, j, yq[i][j], yf[i][j], bound))
    end
  end
end

local function max_abs_diff(a, b)
  local m = 0
  for i = 1, #a do
    for j = 1, #a[i] do m = math.max(m, math.abs(a[i][j] - b[i][j])) end
  end
  return m
end

describe("QuantizedLinear", function()
  local rows = normal_rows(24, 256, 1, 0.1)
  local bias = normal_rows(1, 24, 2)[1]
  local lin = linear_from(rows, bias)
  local x = lattice.array(normal_rows(5, 256, 3))

  it("is its float source within the weight's quantization error, 8 bits closer than 4", function()
    local yf = lin(x):tolist()
    local worst = {}
    for _, c in ipairs({ { bits = 8, group_size = 64 }, { bits = 4, group_size = 64 }, { bits = 2, group_size = 32 },
      { bits = 4, group_size = 128 } }) do
      local ql = nn.QuantizedLinear.from_linear(lin, c)
      local yq = ql(x):tolist()
      assert_within_steps(yq, yf, rows, x:tolist(), c.bits, c.group_size, ("bits %d"):format(c.bits))
      worst[#worst + 1] = max_abs_diff(yq, yf)
      -- and it is lattice.linear with its QuantizedWeight, bit for bit
      assert.are.same(lattice.linear(x, ql:quantized_weight(), ql.bias):tolist(), yq)
    end
    assert(worst[1] < worst[2] / 8 and worst[2] < worst[3], "more bits, smaller error")
  end)

  it("in eval mode computes a batch with int8 activations from a pack it keeps until a part changes", function()
    local ql = nn.QuantizedLinear.from_linear(lin, { bits = 4, group_size = 64 })
    local function int8_of(m, xx) return core.quant_linear_int8(xx, m:quantized_weight(), nil, m.bias):tolist() end
    local float = ql(x):tolist()
    assert.are.same(lattice.linear(x, ql:quantized_weight(), ql.bias):tolist(), float)
    assert.is_nil(ql._int8_pack) -- training mode: the float product, no pack
    ql:eval()
    local before = lattice.memory_stats().in_use
    assert.are.same(int8_of(ql, x), ql(x):tolist())
    local pack = ql._int8_pack.pack
    assert.are.same(core.quant_pack_int8(ql:quantized_weight()):tolist(), pack:tolist())
    assert(lattice.memory_stats().in_use >= before + pack.size, "the pack's bytes are the context's")
    ql(x)
    assert.equal(pack, ql._int8_pack.pack)
    -- one row: the matrix-vector kernel, as in training mode
    local x1 = x:slice(1, 1, 1)
    assert.are.same(lattice.linear(x1, ql:quantized_weight(), ql.bias):tolist(), ql(x1):tolist())
    -- new parts: a new pack
    local other = nn.QuantizedLinear.from_linear(linear_from(normal_rows(24, 256, 7, 0.1)), { bits = 4, group_size = 64 })
    ql.weight, ql.scales, ql.biases = other.weight, other.scales, other.biases
    assert.are.same(int8_of(ql, x), ql(x):tolist())
    assert.are_not.equal(pack, ql._int8_pack.pack)
    ql:train()
    assert.are.same(lattice.linear(x, ql:quantized_weight(), ql.bias):tolist(), ql(x):tolist())
    -- 2 bits have no int8 kernel: the float product in eval mode too
    local q2 = nn.QuantizedLinear.from_linear(lin, { bits = 2, group_size = 32 })
    local y2 = q2(x):tolist()
    q2:eval()
    assert.are.same(y2, q2(x):tolist())
    assert.is_nil(q2._int8_pack)
  end)

  it("comes from linear:to_quantized, keeps the bias and prints its configuration", function()
    local ql = lin:to_quantized({ bits = 8, group_size = 32 })
    assert.equal("QuantizedLinear", getmetatable(ql).__type_name)
    assert.equal(lin.bias, ql.bias)
    assert.equal("QuantizedLinear(input_dims=256, output_dims=24, bias=true, group_size=32, bits=8, mode=affine)",
      tostring(ql))
    local d = lin:to_quantized()
    assert.equal(4, d.bits)
    assert.equal(64, d.group_size)
    local fp = lin:to_quantized({ mode = "mxfp8" })
    assert.is_nil(fp.biases)
    assert.are.same({ 24, 64 }, fp.weight.shape)
    assert.equal("uint8", fp.scales.dtype)
  end)

  it("constructs a layer of its own like MLX's: uniform weight quantized, zero bias", function()
    local ql = nn.QuantizedLinear(64, 16, { bits = 4, group_size = 32 })
    assert.are.same({ 16, 8 }, ql.weight.shape)
    assert.are.same({ 16, 2 }, ql.scales.shape)
    assert.are.same(lattice.zeros({ 16 }):tolist(), ql.bias:tolist())
    local w = ql:quantized_weight():dequantize():tolist()
    for _, r in ipairs(w) do
      for _, v in ipairs(r) do assert(math.abs(v) <= 1 / 8 + 1e-6) end
    end
    assert.is_nil(nn.QuantizedLinear(64, 16, { bias = false }).bias)
  end)

  it("keeps its quantized parts frozen; the input's and, once unfrozen, the bias's gradients flow", function()
    local ql = nn.QuantizedLinear.from_linear(lin, { bits = 4, group_size = 64 })
    assert.is_nil(next(ql:trainable_parameters()))
    ql:unfreeze()
    local tp = ql:trainable_parameters()
    assert.are.same({ "bias" }, (function()
      local keys = {}
      for k in pairs(tp) do keys[#keys + 1] = k end
      return keys
    end)())
    ql:unfreeze({ keys = { "weight", "scales" } })
    assert.is_nil(ql:trainable_parameters().scales)
    -- gradients: the input's is g @ W (the dequantized weight's dense product)
    local w = ql:quantized_weight():dequantize()
    local gx = lattice.grad(function(x_) return weighted(ql(x_)) end)(x)
    local gd = lattice.grad(function(x_) return weighted(lattice.linear(x_, w)) end)(x)
    ref.assert_close(gx:tolist(), gd:tolist(), 1e-5)
    local _, grads = nn.value_and_grad(ql, function(m, x_) return weighted(m(x_)) end)(ql, x)
    assert.are.same({ 24 }, grads.bias.shape)
  end)

  it("takes codes only of their own dtype and shape", function()
    local ql = nn.QuantizedLinear.from_linear(lin)
    assert.has_error(function() ql.weight = lattice.zeros(ql.weight.shape) end,
      "QuantizedLinear: weight must be a uint32 tensor, got float32")
    assert.has_error(function() ql.weight = lattice.zeros({ 24, 4 }, "uint32") end,
      "QuantizedLinear: weight has shape {24,32}, got a tensor of shape {24,4}")
    ql.weight = lattice.zeros({ 24, 32 }, "uint32") -- all codes 0: every value is its group's bias
    assert.are.same(ql.biases:tolist()[3][1], ql:quantized_weight():dequantize():tolist()[3][1])
  end)
end)

describe("QQLinear", function()
  local rows = normal_rows(8, 64, 4, 0.2)
  local lin = linear_from(rows, normal_rows(1, 8, 5)[1])
  local x = lattice.array(normal_rows(3, 64, 6))

  it("quantizes the input with the weight's mode: linear(quantize_dequantize(x), W) + b", function()
    for _, mode in ipairs({ "mxfp8", "nvfp4" }) do
      local qq = lin:to_quantized({ mode = mode, quantize_input = true })
      assert.equal("QQLinear", getmetatable(qq).__type_name)
      local xq = lattice.quantize_dequantize(x, { mode = mode })
      assert.are.same(lattice.linear(xq, qq:quantized_weight(), qq.bias):tolist(), qq(x):tolist())
      assert.are.same(qref.qdq(ref.flat(x), mode), ref.flat(xq))
    end
  end)

  it("is its float source within the formats' relative errors", function()
    local yf = lin(x):tolist()
    for _, c in ipairs({ { mode = "mxfp8", rel = 0.15 }, { mode = "nvfp4", rel = 0.6 } }) do
      local yq = nn.QQLinear.from_linear(lin, { mode = c.mode })(x):tolist()
      local scale = 0
      for i = 1, #yf do
        for j = 1, #yf[i] do scale = math.max(scale, math.abs(yf[i][j])) end
      end
      assert(max_abs_diff(yq, yf) <= c.rel * scale, c.mode)
    end
  end)

  it("refuses affine quantized activations, as MLX does", function()
    assert.has_error(function() lin:to_quantized({ quantize_input = true }) end,
      "to_quantized: quantized activations are only supported for modes 'mxfp8' and 'nvfp4', got 'affine'")
    assert.has_error(function() nn.QQLinear(64, 8, { mode = "affine" }) end,
      "QQLinear: quantized activations are only supported for modes 'mxfp8' and 'nvfp4', got 'affine'")
  end)
end)

describe("QuantizedEmbedding", function()
  local rows = normal_rows(10, 64, 7)
  local emb = nn.Embedding(10, 64)
  emb.weight = lattice.array(rows)
  local ids = lattice.array({ { 3, 0 }, { 9, 3 } }, "int32")

  it("gives the dequantized rows, within a step of the float table", function()
    local qe = emb:to_quantized({ bits = 8, group_size = 32 })
    assert.equal("QuantizedEmbedding(10, 64, group_size=32, bits=8, mode=affine)", tostring(qe))
    local table_ = qe:quantized_weight():dequantize():tolist()
    local got = qe(ids):tolist()
    assert.are.same({ table_[4], table_[1] }, got[1])
    assert.are.same({ table_[10], table_[4] }, got[2])
    for i, id in ipairs({ 3, 0, 9, 3 }) do
      for k = 1, 64 do
        local g0 = (k - 1) // 32 * 32
        local lo, hi = math.huge, -math.huge
        for j = g0 + 1, g0 + 32 do lo, hi = math.min(lo, rows[id + 1][j]), math.max(hi, rows[id + 1][j]) end
        assert(math.abs(got[(i - 1) // 2 + 1][(i - 1) % 2 + 1][k] - rows[id + 1][k]) <= (hi - lo) / 255 + 1e-6)
      end
    end
  end)

  it("serves as a tied head: as_linear(x) = x @ W^T", function()
    local qe = nn.QuantizedEmbedding.from_embedding(emb, { bits = 4, group_size = 64 })
    local x = lattice.array(normal_rows(2, 64, 8))
    assert.are.same(lattice.linear(x, qe:quantized_weight()):tolist(), qe:as_linear(x):tolist())
  end)

  it("rejects ids out of range and quantized inputs", function()
    local qe = nn.QuantizedEmbedding.from_embedding(emb)
    assert.has_error(function() qe(lattice.array({ 10 }, "int32")) end, "embedding: id 10 is out of range for 10 embeddings")
    assert.has_error(function() qe(lattice.array({ 1.5 })) end, "embedding: ids must be integers, got float32")
    assert.has_error(function() emb:to_quantized({ quantize_input = true }) end,
      "to_quantized: an Embedding takes no quantize_input")
  end)
end)

-- ---- whole models ----

local function small_model()
  local m = nn.Sequential(nn.Embedding(32, 64), nn.LayerNorm(64), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 32))
  m.layers[1].weight = lattice.array(normal_rows(32, 64, 11))
  m.layers[3].weight = lattice.array(normal_rows(128, 64, 12, 0.1))
  m.layers[5].weight = lattice.array(normal_rows(32, 128, 13, 0.1))
  m.layers[3].bias = lattice.array(normal_rows(1, 128, 14, 0.1)[1])
  m.layers[5].bias = lattice.array(normal_rows(1, 32, 15, 0.1)[1])
  return m
end

local SIZES = { float32 = 4, float16 = 2, bfloat16 = 2, uint32 = 4, uint8 = 1 }
local function param_bytes(m)
  local n = 0
  for _, t in pairs(m:named_parameters()) do n = n + t.size * SIZES[t.dtype] end
  return n
end

local ids = lattice.array({ 1, 5, 31, 0, 7 }, "int32")

describe("quantize_model", function()
  it("replaces every Linear and Embedding in place and leaves the norm", function()
    local m = small_model()
    local norm, before = m.layers[2], param_bytes(m)
    local yf = m(ids):tolist()
    assert.equal(m, lattice.quantize_model(m, { bits = 4, group_size = 64 }))
    local names = {}
    for i, l in ipairs(m.layers) do names[i] = getmetatable(l).__type_name end
    assert.are.same({ "QuantizedEmbedding", "LayerNorm", "QuantizedLinear", "ReLU", "QuantizedLinear" }, names)
    assert.equal(norm, m.layers[2])
    -- float32 weights of 4 bytes a value become 4 bits plus a float32 scale
    -- and bias per 64 values: 0.5 + 8/64 = 0.625 bytes, a factor of 6.4
    local weights = 32 * 64 + 128 * 64 + 32 * 128
    local rest = before - 4 * weights
    assert.equal(rest + weights * 5 // 8, param_bytes(m))
    local yq = m(ids):tolist()
    local scale = 0
    for i = 1, #yf do
      for j = 1, #yf[i] do scale = math.max(scale, math.abs(yf[i][j])) end
    end
    -- the layers' rigorous bounds are checked above; through a whole model a
    -- 4-bit weight's error (RMS about a tenth of its group's spread, measured
    -- 0.11 of the largest logit here) and an 8-bit one's (17 times smaller)
    -- give these loose sanity bounds
    assert(max_abs_diff(yq, yf) <= 0.25 * scale, "4-bit logits within a quarter of the float model's largest")
    local m8 = small_model()
    lattice.quantize_model(m8, { bits = 8 })
    assert(max_abs_diff(m8(ids):tolist(), yf) <= 0.01 * scale, "8-bit logits within a hundredth")
    assert.equal(rest + weights + 2 * 4 * (weights // 64), param_bytes(m8)) -- a byte a value
  end)

  it("quantizes what a predicate chooses, with its own options when it returns a table", function()
    local m = small_model()
    lattice.quantize_model(m, {
      predicate = function(path) return path == "layers.2" or (path == "layers.4" and { bits = 8, group_size = 32 }) end,
    })
    assert.equal("Embedding", getmetatable(m.layers[1]).__type_name)
    assert.equal(4, m.layers[3].bits)
    assert.equal(8, m.layers[5].bits)
    assert.equal(32, m.layers[5].group_size)
  end)

  it("quantizes activations of the Linear layers with quantize_input, the embedding's weight only", function()
    local m = small_model()
    lattice.quantize_model(m, { mode = "mxfp8", quantize_input = true })
    assert.equal("QQLinear", getmetatable(m.layers[3]).__type_name)
    assert.equal("QuantizedEmbedding", getmetatable(m.layers[1]).__type_name)
    assert.equal("mxfp8", m.layers[1].mode)
    assert.are.same({ 5, 32 }, m(ids).shape)
  end)

  it("changes nothing when one layer cannot be quantized, and says which", function()
    local m = nn.Sequential(nn.Linear(64, 64), nn.Linear(48, 8))
    local first = m.layers[1]
    assert.has_error(function() lattice.quantize_model(m) end,
      "layers.1: QuantizedLinear.from_linear: the input dimension (the last axis, 48) is not divisible by group_size 64")
    assert.equal(first, m.layers[1])
    local n = small_model()
    assert.has_error(function() lattice.quantize_model(n, { predicate = function() return true end }) end,
      "quantize_model: 'layers.1' (LayerNorm) cannot be quantized")
    assert.equal("Embedding", getmetatable(n.layers[1]).__type_name)
    assert.has_error(function() lattice.quantize_model(n, { predicate = function() return 1 end }) end,
      "quantize_model: predicate must return a boolean or an options table, got number for 'layers.0'")
    assert.has_error(function() lattice.quantize_model(n, { bit = 4 }) end, "quantize_model: unknown option 'bit'")
    assert.has_error(function() lattice.quantize_model({}) end, "quantize_model: model must be a module, got table")
  end)

  it("is undone by dequantize_model: float layers holding the dequantized weights", function()
    local m = small_model()
    lattice.quantize_model(m, { bits = 8, group_size = 32 })
    local wq = m.layers[3]:quantized_weight():dequantize():tolist()
    local yq = m(ids):tolist()
    assert.equal(m, lattice.dequantize_model(m))
    local names = {}
    for i, l in ipairs(m.layers) do names[i] = getmetatable(l).__type_name end
    assert.are.same({ "Embedding", "LayerNorm", "Linear", "ReLU", "Linear" }, names)
    assert.are.same(wq, m.layers[3].weight:tolist())
    assert(max_abs_diff(m(ids):tolist(), yq) <= 1e-5)
    assert.are.same({ 32, 64 }, m.layers[1].weight.shape)
  end)
end)

describe("quantized weights on disk", function()
  local path = os.tmpname()
  after_each(function() os.remove(path) end)

  it("save and load under MLX's names weight, scales and biases", function()
    local m = small_model()
    lattice.quantize_model(m, { bits = 4, group_size = 32 })
    m:save_weights(path)
    local saved = lattice.load_safetensors(path)
    assert.equal("uint32", saved["layers.2.weight"].dtype)
    assert.are.same({ 128, 2 }, saved["layers.2.scales"].shape)
    assert.is_not_nil(saved["layers.2.biases"])
    assert.is_not_nil(saved["layers.0.scales"])
    local n = small_model()
    for _, l in ipairs(n.layers) do
      if l.weight then l.weight = lattice.zeros(l.weight.shape) end
    end
    lattice.quantize_model(n, { bits = 4, group_size = 32 })
    n:load_weights(path)
    assert.are.same(m(ids):tolist(), n(ids):tolist())
    local float = small_model()
    assert.has_error(function() float:load_weights(path) end, "load_weights: " .. path .. ": 6 unexpected parameters: "
      .. "layers.0.biases, layers.0.scales, layers.2.biases, layers.2.scales, layers.4.biases, layers.4.scales")
  end)

  it("load a checkpoint written as MLX writes one", function()
    local rows = normal_rows(16, 64, 21, 0.2)
    local words, scales, biases = qref.quantize_rows(rows, 4, 64)
    lattice.save_safetensors(path, {
      ["layers.0.weight"] = lattice.array(words, "uint32"), ["layers.0.scales"] = lattice.array(scales),
      ["layers.0.biases"] = lattice.array(biases), ["layers.0.bias"] = lattice.zeros({ 16 }),
    })
    local m = nn.Sequential(nn.Linear(64, 16))
    lattice.quantize_model(m, { bits = 4, group_size = 64 })
    m:load_weights(path)
    local x = lattice.array(normal_rows(2, 64, 22))
    local want = {}
    for i, xr in ipairs(x:tolist()) do
      want[i] = {}
      for j = 1, 16 do
        local s = 0
        for k = 1, 64 do
          local q = (words[j][(k - 1) // 8 + 1] >> (((k - 1) % 8) * 4)) & 15
          s = s + f32(f32(scales[j][1] * q) + biases[j][1]) * xr[k]
        end
        want[i][j] = s
      end
    end
    ref.assert_close(m(x):tolist(), want, 1e-5)
  end)
end)

describe("the quantized constructors reject", function()
  it("what they cannot make", function()
    assert.has_error(function() nn.QuantizedLinear.from_linear(nn.ReLU()) end,
      "QuantizedLinear.from_linear: expected a Linear, got ReLU")
    assert.has_error(function() nn.QuantizedLinear(0, 4) end,
      "QuantizedLinear: input_dims must be a positive integer, got 0")
    assert.has_error(function() nn.QuantizedLinear(64, 4, { mode = "int4" }) end,
      "QuantizedLinear: mode must be 'affine', 'mxfp8' or 'nvfp4', got int4")
    assert.has_error(function() nn.QuantizedLinear(64, 4, { bits = 3 }) end,
      "QuantizedLinear: bits must be 2, 4 or 8 for mode 'affine', got 3")
    assert.has_error(function() nn.QuantizedLinear(64, 4, { biass = true }) end,
      "QuantizedLinear: unknown option 'biass'")
    assert.has_error(function() nn.QuantizedEmbedding.from_embedding(nn.Linear(2, 2)) end,
      "QuantizedEmbedding.from_embedding: expected an Embedding, got Linear")
    assert.has_error(function() nn.Linear(64, 4):to_quantized({ quantize_input = 1 }) end,
      "to_quantized: quantize_input must be a boolean, got number")
  end)
end)

describe("quantize_model on a LanguageModel", function()
  local function lm(tie)
    lattice.random.seed(40)
    local block = lattice.BlockConfig({ attention = "gqa", ffn = "gated", norm = "rms_norm", position = "rope",
      d_model = 64, n_heads = 4, n_kv_heads = 2, d_ff = 128, bias = false, max_seq_len = 32 })
    return nn.LanguageModel(lattice.ModelConfig({ block = block, vocab_size = 96, n_layers = 2, tie_embeddings = tie }))
  end
  local tokens = lattice.array({ { 1, 5, 9, 2, 77, 40, 3 }, { 8, 8, 1, 0, 95, 12, 60 } }, "int32")

  -- Float32 bytes of the tensors with 2 dimensions (the Linear and Embedding
  -- weights) and of the rest (the norms' weights).
  local function split_bytes(m)
    local mats, rest = 0, 0
    for _, t in pairs(m:named_parameters()) do
      if t.ndim == 2 then mats = mats + t.size * 4 else rest = rest + t.size * 4 end
    end
    return mats, rest
  end

  it("shrinks every weight matrix by the expected factor and keeps the logits within the quantization error", function()
    for _, tie in ipairs({ true, false }) do
      local float = lm(tie)
      local yf = float(tokens)
      local mats, rest = split_bytes(float)
      local scale = yf:abs():max():item()
      local errs = {}
      for _, bits in ipairs({ 8, 4 }) do
        local q = lattice.quantize_model(lm(tie), { bits = bits, group_size = 32 })
        assert.equal("QuantizedEmbedding", getmetatable(q.embed).__type_name)
        assert.equal("QuantizedLinear", getmetatable(q.blocks[1].attention.q_proj).__type_name)
        assert.equal("RMSNorm", getmetatable(q.final_norm).__type_name)
        -- 4 bytes a value become bits/8 plus a float32 scale and bias per 32 values
        assert.equal(rest + mats * bits // 32 + mats // 32 * 2, param_bytes(q))
        local yq = q(tokens)
        errs[#errs + 1] = (yq - yf):abs():max():item() / scale
        -- cached decoding gives the full forward's logits
        local cache = q:make_cache(2, 7)
        q(tokens:slice(2, 1, 6), { cache = cache })
        local step = q(tokens:slice(2, -1, -1), { cache = cache })
        assert((step - yq:slice(2, -1, -1)):abs():max():item() <= 1e-5 * scale)
        -- and dequantize_model puts float layers back with the same logits (the same weights, summed apart)
        lattice.dequantize_model(q)
        assert.equal("Embedding", getmetatable(q.embed).__type_name)
        assert((q(tokens) - yq):abs():max():item() <= 1e-5 * scale)
      end
      -- the error relative to the logits' scale: a weight's error is its
      -- group's step / 2, (2^8 - 1) / (2^4 - 1) = 17 times smaller at 8 bits,
      -- and small errors pass through the blocks linearly: 8 bits under 1%
      -- (0.8% measured), 4 bits more than 8 times that and under 25% (17%
      -- measured through two blocks and the head)
      assert(errs[1] < 0.01 and errs[2] < 0.25 and errs[1] * 8 < errs[2], ("%g %g"):format(errs[1], errs[2]))
    end
  end)
end)
