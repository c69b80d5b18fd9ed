-- QLoRA (lua/lattice/lora.lua): LoRAQuantizedLinear against x Q^T + b +
-- (alpha / rank) (x A) B written plainly in Lua with Q the dequantized
-- weight, equal to its QuantizedLinear at init, gradchecked in the input and
-- the LoRA matrices (the input gradient through the quantized kernel's tiles),
-- apply_qlora on a quantized model, a short training run that moves only the
-- adapters (the packed words bit for bit as they were), merging into a float
-- nn.Linear, adapters on disk, and every bad input.
local lattice = require "lattice"
local lora_ref = require "support.lora_reference"
local gradcheck = require "support.gradcheck"
local tiny = require "support.tiny_models"

local nn, optim, lora = lattice.nn, lattice.optim, lattice.lora
local LoRAQuantizedLinear = lora.LoRAQuantizedLinear

local ref_qlora, assert_close, tree_names = lora_ref.forward, lora_ref.assert_close, lora_ref.tree_names

local function rows(t) return t:astype("float64"):tolist() end

local function quantized_layer(seed, input_dims, output_dims, cfg)
  lattice.random.seed(seed)
  return nn.QuantizedLinear.from_linear(nn.Linear(input_dims, output_dims), cfg or { bits = 4, group_size = 32 })
end

describe("LoRAQuantizedLinear", function()
  -- First in the file: the context's peak is still that of this process's
  -- small start, so a whole dequantized weight (64 MB) would show in it.
  it("takes the input gradient through a 4096 x 4096 packed weight without dequantizing it whole", function()
    local out, inp = 4096, 4096
    local l = LoRAQuantizedLinear.from_quantized(nn.QuantizedLinear(64, 64, { bias = false }), { rank = 4 })
    -- its parts replaced by a 4096 x 4096 weight made from parts (10 MB packed, 64 MB as float32)
    l.weight = lattice.zeros({ out, inp // 8 }, "uint32")
    l.scales, l.biases = lattice.full({ out, inp // 64 }, 0.01), lattice.full({ out, inp // 64 }, -0.05)
    l.input_dims, l.output_dims = inp, out
    l.lora_A, l.lora_B = lattice.random.normal({ inp, 4 }, { scale = 0.01 }), lattice.zeros({ 4, out })
    local x = lattice.random.normal({ 2, inp })
    local before = lattice.memory_stats()
    assert(before.peak < before.in_use + 8 * 2 ^ 20, "the spec must run before anything large")
    local dx = lattice.grad(function(xx) return lattice.sum(l(xx)) end)(x)
    -- every code is 0: Q = bias everywhere, so dx[c] = sum over the outputs of -0.05
    assert.are.same({ 2, inp }, dx.shape)
    assert(math.abs(dx[1][1]:item() - out * -0.05) < 1e-3 * out * 0.05)
    local after = lattice.memory_stats()
    assert(after.peak < before.in_use + 16 * 2 ^ 20, ("peak grew by %.1f MB"):format((after.peak - before.in_use) / 2 ^ 20))
  end)

  it("starts as the QuantizedLinear it adapts, sharing its packed parts", function()
    local ql = quantized_layer(1, 64, 24)
    local l = LoRAQuantizedLinear.from_quantized(ql, { rank = 4, alpha = 8 })
    local x = lattice.random.normal({ 5, 64 })
    assert.are.same(ql(x):tolist(), l(x):tolist())
    for _, k in ipairs({ "weight", "scales", "biases", "bias" }) do assert.equal(ql[k], l[k], k) end
    assert.are.same({ 64, 4 }, l.lora_A.shape)
    assert.are.same(lattice.zeros({ 4, 24 }):tolist(), l.lora_B:tolist())
    assert.equal(2, l.scaling)
    assert.equal(4, l.bits)
    assert.equal(32, l.group_size)
    assert.equal("affine", l.mode)
    assert.equal("LoRAQuantizedLinear(input_dims=64, output_dims=24, rank=4, alpha=8, bias=true, group_size=32, "
      .. "bits=4, mode=affine)", tostring(l))
    -- a new one quantizes a fresh weight as the seed does: group 64, 4 bits, no bias
    local fresh = LoRAQuantizedLinear(128, 8)
    assert.are.same({ 8, 128 }, fresh:quantized_weight().shape)
    assert.equal(64, fresh.group_size)
    assert.is_nil(fresh.bias)
    assert.are.same({ 8, 16 }, fresh.weight.shape)
    local fp4 = LoRAQuantizedLinear(32, 4, { mode = "nvfp4" }) -- MLX's defaults for the mode: groups of 16
    assert.are.same({ 16, 4 }, { fp4.group_size, fp4.bits })
    assert.is_nil(fp4.biases)
    assert.are.same(lattice.linear(lattice.ones({ 1, 32 }), fp4:quantized_weight()):tolist(),
      fp4(lattice.ones({ 1, 32 })):tolist())
  end)

  it("computes x Q^T + b + (alpha / rank) (x A) B with Q the dequantized weight", function()
    for _, cfg in ipairs({ { bits = 4, group_size = 32 }, { bits = 8, group_size = 64 }, { mode = "nvfp4" } }) do
      local l = LoRAQuantizedLinear.from_quantized(quantized_layer(2, 64, 10, cfg), { rank = 3, alpha = 1.5 })
      l.lora_B = lattice.random.normal({ 3, 10 })
      local x = lattice.random.normal({ 4, 64 })
      local q = l:quantized_weight():dequantize()
      -- float32 sums of 64 and 3 products of order 1: a few 1e-6 relative at most
      assert_close(rows(l(x)), ref_qlora(x, q, l.bias, l.lora_A, l.lora_B, 0.5), 1e-5)
      local x3 = lattice.random.normal({ 2, 3, 64 })
      assert.are.same({ 2, 3, 10 }, l(x3).shape)
      assert_close(rows(l(x3)[2]), ref_qlora(x3[2], q, l.bias, l.lora_A, l.lora_B, 0.5), 1e-5)
    end
  end)

  it("has the gradients of central differences in x, A and B", function()
    local l = LoRAQuantizedLinear.from_quantized(quantized_layer(3, 32, 2), { rank = 2, alpha = 3 })
    local function f(x, a, bm)
      l.lora_A, l.lora_B = a, bm
      return lattice.sum(lattice.square(l(x)))
    end
    -- values of order 1/2 so that the loss stays of order 1: the float32
    -- differences' rounding (ulp(f) / eps) stays within gradcheck's atol
    gradcheck.each_dtype(f, { lattice.random.normal({ 2, 32 }, { scale = 0.5 }),
      lattice.random.normal({ 32, 2 }, { scale = 0.3 }), lattice.random.normal({ 2, 2 }, { scale = 0.3 }) })
  end)

  it("sends the input gradient back through the quantized weight: g Q, with no gradient for the parts", function()
    local l = LoRAQuantizedLinear.from_quantized(quantized_layer(4, 64, 48), { rank = 2 })
    local x, g = lattice.random.normal({ 9, 64 }), lattice.random.normal({ 9, 48 })
    local dx = lattice.grad(function(xx) return lattice.sum(lattice.multiply(l(xx), g)) end)(x)
    -- B = 0: dx = g Q + s (g B^T) A^T = g Q, which the plain product gives in float64
    local want = lattice.matmul(g:astype("float64"), l:quantized_weight():dequantize():astype("float64"))
    assert_close(rows(dx), rows(want), 1e-5)
    assert.are.same({ "lora_A", "lora_B" }, tree_names(l:trainable_parameters()))
    l:unfreeze() -- the packed parts are buffers; only the bias joins the adapters
    assert.are.same({ "bias", "lora_A", "lora_B" }, tree_names(l:trainable_parameters()))
  end)

  it("transforms a SparseTensor's features and keeps its coordinates", function()
    local l = LoRAQuantizedLinear.from_quantized(quantized_layer(5, 32, 4), { rank = 2 })
    local coords = lattice.array({ { 0, 0, 0, 0 }, { 0, 1, 0, 0 }, { 1, 0, 2, 0 } }, "int32")
    local x = lattice.SparseTensor(coords, lattice.random.normal({ 3, 32 }), { batch_counts = { 2, 1 } })
    local y = l(x)
    assert.is_true(y.coordinate_map_key == x.coordinate_map_key)
    assert.are.same(l(x.feats):tolist(), y.feats:tolist())
  end)

  it("merges into a float nn.Linear with the same outputs", function()
    local l = LoRAQuantizedLinear.from_quantized(quantized_layer(6, 64, 16), { rank = 4, alpha = 4 })
    l.lora_B = lattice.random.normal({ 4, 16 })
    local merged = l:to_linear()
    assert.equal("Linear", getmetatable(merged).__type_name)
    assert.is_true(lattice.shares_storage(merged.bias, l.bias))
    local x = lattice.random.normal({ 8, 64 })
    -- the same value summed two ways in float32: ~64 products of order 1,
    -- rounding of 64 * 2^-24 * 8 ~ 3e-5 at most
    assert_close(merged(x):tolist(), l(x):tolist(), 5e-5)
    assert.truthy(tostring(lora.merge_lora(l)):find("^Linear%(input_dims=64, output_dims=16, bias=true%)"))
  end)
end)

describe("apply_qlora", function()
  -- a quantized tiny.Stack: every Linear and the Embedding at 4 bits, groups of 32
  local function stack()
    lattice.random.seed(10)
    return lattice.quantize_model(tiny.Stack(32, 32, 64, 2), { bits = 4, group_size = 32 })
  end

  local function qlora_layers(model)
    local out = {}
    model:apply_to_modules(function(name, m)
      if getmetatable(m) == LoRAQuantizedLinear then out[#out + 1] = name end
    end)
    table.sort(out)
    return out
  end

  it("adapts the quantized attention projections by default, the outputs unchanged", function()
    local m = stack()
    local ids = lattice.array({ { 1, 2, 3 }, { 4, 5, 6 } }, "int32")
    local before = m(ids):tolist()
    assert.equal(m, lora.apply_qlora(m, { rank = 2 }))
    assert.are.same({ "blocks.0.attention.k_proj", "blocks.0.attention.o_proj", "blocks.0.attention.q_proj",
      "blocks.0.attention.v_proj", "blocks.1.attention.k_proj", "blocks.1.attention.o_proj",
      "blocks.1.attention.q_proj", "blocks.1.attention.v_proj" }, qlora_layers(m))
    assert.are.same(before, m(ids):tolist())
    local want = {}
    for _, n in ipairs(qlora_layers(m)) do want[#want + 1], want[#want + 2] = n .. ".lora_A", n .. ".lora_B" end
    table.sort(want)
    assert.are.same(want, tree_names(m:trainable_parameters()))
    assert.are.same(want, tree_names(lora.lora_parameters(m)))
  end)

  it("trains only the adapters: every packed word, scale and bias stays bit for bit", function()
    local m = lora.apply_qlora(stack(), { rank = 4, alpha = 8, targets = { "attention", "ffn" } })
    local frozen = {}
    for name, p in pairs(m:named_parameters()) do
      if not name:find("lora_") then frozen[name] = p:astype(p.dtype == "uint32" and "float64" or p.dtype):tolist() end
    end
    local seqs, nexts = {}, {}
    for b = 1, 3 do
      seqs[b], nexts[b] = {}, {}
      for t = 1, 15 do seqs[b][t], nexts[b][t] = (8 * b + t) % 32, (8 * b + t + 1) % 32 end
    end
    local inputs, targets = lattice.array(seqs, "int32"), lattice.array(nexts, "int32")
    -- (1e-2 overshoots: the residual stack has no final norm)
    local opt = optim.AdamW({ learning_rate = 1e-3, weight_decay = 0.1 })
    local step = nn.value_and_grad(m, function(model) return tiny.lm_loss(model, inputs, targets) end)
    local first, last
    for i = 1, 25 do
      local loss, grads = step(m)
      opt:update(m, grads)
      if i == 1 then first = loss:item() end
      last = loss:item()
    end
    assert(last < 0.2 * first, ("%g -> %g"):format(first, last))
    for name, p in pairs(m:named_parameters()) do
      if frozen[name] then
        assert.are.same(frozen[name], p:astype(p.dtype == "uint32" and "float64" or p.dtype):tolist(), name)
      end
    end
    assert.are_not.same(lattice.zeros({ 4, 32 }):tolist(), m.blocks[1].attention.q_proj.lora_B:tolist())
    -- adapters on disk: into a fresh quantized copy, the same outputs
    local dir = os.tmpname()
    os.remove(dir)
    lora.save_lora_adapters(dir, m)
    local other = lora.apply_qlora(stack(), { rank = 4, alpha = 8, targets = { "attention", "ffn" } })
    assert.are.same({ rank = 4, alpha = 8.0 }, lora.load_lora_adapters(dir, other))
    os.remove(dir .. "/adapter.safetensors")
    os.remove(dir .. "/adapter_config.json")
    os.remove(dir)
    assert.are.same(m(inputs):tolist(), other(inputs):tolist())
    -- merged: float layers with the adapted outputs
    local adapted = m(inputs)[1]:tolist()
    lora.merge_lora(m)
    assert.are.same({}, qlora_layers(m))
    assert.equal("Linear", getmetatable(m.blocks[1].attention.q_proj).__type_name)
    assert_close(m(inputs)[1]:tolist(), adapted, 1e-4)
  end)

  it("names bad layers, targets and options", function()
    local ql = quantized_layer(7, 32, 4)
    assert.has_error(function() LoRAQuantizedLinear.from_quantized(nn.Linear(32, 4)) end,
      "LoRAQuantizedLinear.from_quantized: ql must be an nn.QuantizedLinear, got Linear")
    assert.has_error(function() LoRAQuantizedLinear.from_quantized(3) end,
      "LoRAQuantizedLinear.from_quantized: ql must be an nn.QuantizedLinear, got number")
    assert.has_error(function() LoRAQuantizedLinear.from_quantized(ql, { rank = 0 }) end,
      "LoRAQuantizedLinear.from_quantized: rank must be a positive integer, got 0")
    assert.has_error(function() LoRAQuantizedLinear.from_quantized(ql, { bits = 8 }) end,
      "LoRAQuantizedLinear.from_quantized: unknown option 'bits'")
    assert.has_error(function() LoRAQuantizedLinear(30, 4) end,
      "LoRAQuantizedLinear: the input dimension (the last axis, 30) is not divisible by group_size 64")
    assert.has_error(function() LoRAQuantizedLinear(64, 4, { bits = 3 }) end,
      "LoRAQuantizedLinear: bits must be 2, 4 or 8 for mode 'affine', got 3")
    assert.has_error(function() LoRAQuantizedLinear(64, 4, { mode = "int4" }) end,
      "LoRAQuantizedLinear: mode must be 'affine', 'mxfp8' or 'nvfp4', got 'int4'")
    assert.has_error(function() LoRAQuantizedLinear(0, 4) end,
      "LoRAQuantizedLinear: input_dims must be a positive integer, got 0")
    local l = LoRAQuantizedLinear.from_quantized(ql)
    assert.has_error(function() l(lattice.zeros({ 2, 16 })) end,
      "LoRAQuantizedLinear: input has 16 features on its last axis, the layer takes 32")
    assert.has_error(function() l("x") end, "LoRAQuantizedLinear: input must be a lattice.Tensor or a SparseTensor, got string")
    -- a float model has no QuantizedLinear to adapt; nothing changes
    lattice.random.seed(10)
    local float = tiny.Stack(32, 32, 64, 1)
    local n = #tree_names(float:trainable_parameters())
    assert.has_error(function() lora.apply_qlora(float) end,
      "apply_qlora: no nn.QuantizedLinear in the model matches the target 'attention'")
    assert.equal(n, #tree_names(float:trainable_parameters()))
    assert.has_error(function() lora.apply_qlora(stack(), { targets = { "mlp" } }) end,
      "apply_qlora: no nn.QuantizedLinear in the model matches the target 'mlp'")
    assert.has_error(function() lora.apply_qlora(stack(), { alpha = "x" }) end,
      "apply_qlora: alpha must be a finite number, got x")
    assert.has_error(function() lora.apply_qlora(1) end, "apply_qlora: model must be a module, got number")
  end)
end)
