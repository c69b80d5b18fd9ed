-- Quantized linear layers (core/quant): one JSON line per case.
--   matvec  a QuantizedLinear on one token, the decoding case: GB/s of weight
--           bytes read (codes, scales and biases) and the ratio to a memcpy of
--           the same bytes measured alternately in the same run.
--           Targets (2 threads): int4 >= 0.78, int8 >= 0.75 of memcpy.
--   batch   8 and 64 tokens: GFLOP/s (2 m n k per product, the float work it
--           stands for) and the ratio to the FMA peak, measured alternately;
--           the layer in eval mode (activations "int8": integer products,
--           llama.cpp's numerics) and in training mode ("float").
--           Target: batch 8, int4, int8 activations >= 360 GFLOP/s on a
--           quiet machine (ggml's q4_0 with q8 activations, repacked: ~360).
--   decode  a small LanguageModel (214 MB in float32) quantized to 4 bits:
--           tokens/s against the float32 model, alternately. Target: >= 2.5x.
-- Each case is checked against the scalar _ref kernels before it is timed.
-- The machine is shared: kernel and reference are timed in alternating short
-- samples and the ratio is the median of the per-pair ratios.
-- Usage: lattice bench/quant.lua [seconds per sample] [threads]
package.path = arg[0]:gsub("[^/]*$", "") .. "?.lua;" .. package.path
local lattice = require "lattice"
local core = require "lattice.core" -- peak_gflops, bench_memcpy, quant_linear_with_isa: measuring hooks
local common = require "common"

local SAMPLE = tonumber(arg and arg[1]) or 0.2
local PAIRS = 9
if arg and arg[2] then lattice.set_num_threads(math.tointeger(tonumber(arg[2])) or error("quant bench: threads must be an integer")) end
local ISA = lattice.isa()

local SHAPES = { { out = 4096, inp = 4096 }, { out = 14336, inp = 4096 }, { out = 4096, inp = 14336 } }
local GROUP = 64

local median = common.median

-- Seconds per call of f over about SAMPLE seconds (after one call).
local function per_call(f)
  f()
  local n, t0 = 0, lattice.now()
  repeat
    f()
    n = n + 1
  until lattice.now() - t0 >= SAMPLE
  return (lattice.now() - t0) / n
end

-- The layer's output against the scalar _ref kernels (the plain loops that
-- quant_spec checks against Lua), within a float32 summation's error.
local function check(ql, x, name)
  local y = ql(x)
  local want = core.quant_linear_with_isa(x, ql:quantized_weight(), nil, "scalar")
  local scale = want:abs():max():item()
  local err = (y - want):abs():max():item()
  assert(err <= 1e-4 * scale, ("%s: differs from the _ref kernels by %g (scale %g)"):format(name, err, scale))
end

local function layer(shape, bits)
  return lattice.nn.QuantizedLinear(shape.inp, shape.out, { bits = bits, group_size = GROUP, bias = false })
end

local function matvec_case(shape, bits)
  local ql = layer(shape, bits)
  local x = lattice.random.normal({ 1, shape.inp })
  local name = ("matvec %dx%d int%d"):format(shape.out, shape.inp, bits)
  check(ql, x, name)
  local bytes = ql:quantized_weight().nbytes
  local t, c, ratio = common.against_memcpy(function() return per_call(function() ql(x):close() end) end, bytes, PAIRS, 3)
  common.report({
    bench = "quant", case = "matvec", out = shape.out, inp = shape.inp, bits = bits, group_size = GROUP,
    weight_bytes = bytes, us = t * 1e6, gbps = bytes / t * 1e-9, memcpy_gbps = bytes / c * 1e-9,
    ratio = ratio, target = bits == 4 and 0.78 or 0.75,
  })
end

-- activations "float": the layer in training mode (the float product);
-- "int8": in eval mode, x rounded to int8 per group and integer dot products
-- (docs/quantization.md), checked against the scalar _ref int8 kernel, which
-- gives the same bits.
local function batch_case(shape, bits, m, activations)
  local ql = layer(shape, bits)
  local x = lattice.random.normal({ m, shape.inp })
  local name = ("batch %d %dx%d int%d %s"):format(m, shape.out, shape.inp, bits, activations)
  if activations == "int8" then
    ql:eval()
    local want = core.quant_linear_with_isa(x, ql:quantized_weight(), nil, "scalar", "int8")
    assert((ql(x) - want):abs():max():item() == 0, name .. ": differs from the _ref int8 kernel")
  else
    check(ql, x, name)
  end
  local flops = 2 * m * shape.out * shape.inp
  local times, peaks, ratios = {}, {}, {}
  for i = 1, PAIRS do
    times[i] = per_call(function() ql(x):close() end)
    peaks[i] = core.peak_gflops(ISA, SAMPLE / 2)
    ratios[i] = flops / times[i] * 1e-9 / peaks[i]
  end
  local t = median(times)
  common.report({
    bench = "quant", case = "batch", m = m, out = shape.out, inp = shape.inp, bits = bits, group_size = GROUP,
    activations = activations, us = t * 1e6, gflops = flops / t * 1e-9, peak_gflops = median(peaks),
    ratio = median(ratios), target_gflops = (m == 8 and bits == 4 and activations == "int8") and 360 or nil,
  })
end

for _, shape in ipairs(SHAPES) do
  for _, bits in ipairs({ 4, 8 }) do matvec_case(shape, bits) end
end
for _, m in ipairs({ 8, 64 }) do
  for _, shape in ipairs(SHAPES) do
    for _, bits in ipairs({ 4, 8 }) do
      for _, activations in ipairs({ "int8", "float" }) do batch_case(shape, bits, m, activations) end
    end
  end
end
-- ---- decode: a small LanguageModel at 4 bits against the same model in float32 ----

-- d_model 1024, 4 gated GQA blocks, vocab 8192, tied embeddings: 53.5 M
-- parameters, 214 MB in float32, 34 MB at 4 bits in groups of 64, so a
-- decoded token is bound by the weight bytes it reads (the target: >= 2.5x).
local function language_model()
  lattice.random.seed(1)
  local block = lattice.BlockConfig({ attention = "gqa", ffn = "gated", norm = "rms_norm", position = "rope",
    d_model = 1024, n_heads = 16, n_kv_heads = 4, d_ff = 2816, bias = false, max_seq_len = 256 })
  return lattice.nn.LanguageModel(lattice.ModelConfig({ block = block, vocab_size = 8192, n_layers = 4 }))
end

local PROMPT = lattice.array({ { 1, 2, 3, 4, 5, 6, 7, 8 } }, "int32")
local STEPS = 16

-- Seconds per decoded token over STEPS greedy steps after the prompt.
local function decode_time(model)
  local cache = model:make_cache(1, PROMPT.shape[2] + STEPS)
  local logits = model(PROMPT, { cache = cache })
  local token = lattice.argmax(logits:slice(2, -1, -1), -1):astype("int32")
  local t0 = lattice.now()
  for _ = 1, STEPS do
    logits = model(token, { cache = cache })
    token = lattice.argmax(logits, -1):astype("int32")
  end
  return (lattice.now() - t0) / STEPS
end

-- The quantized model's cached steps against its own full forward over the
-- same tokens (the decode path is right), before anything is timed.
local function check_decode(model)
  local tokens = lattice.array({ { 1, 2, 3, 4, 5, 6, 7, 8, 9 } }, "int32")
  local full = model(tokens):slice(2, -1, -1)
  local cache = model:make_cache(1, 9)
  model(tokens:slice(2, 1, 8), { cache = cache })
  local step = model(tokens:slice(2, -1, -1), { cache = cache })
  local scale = full:abs():max():item()
  local err = (full - step):abs():max():item()
  assert(err <= 1e-4 * scale, ("decode: cached step differs from the full forward by %g (scale %g)"):format(err, scale))
end

do
  local float = language_model()
  local quantized = lattice.quantize_model(language_model(), { bits = 4, group_size = GROUP })
  check_decode(quantized)
  local SIZES = { float32 = 4, float16 = 2, bfloat16 = 2, uint32 = 4, uint8 = 1 }
  local function bytes(m)
    local n = 0
    for _, t in pairs(m:named_parameters()) do n = n + t.size * SIZES[t.dtype] end
    return n
  end
  local tf, tq, ratios = {}, {}, {}
  for i = 1, 5 do
    tf[i], tq[i] = decode_time(float), decode_time(quantized)
    ratios[i] = tf[i] / tq[i]
  end
  common.report({
    bench = "quant", case = "decode", d_model = 1024, n_layers = 4, vocab = 8192, bits = 4, group_size = GROUP,
    float_bytes = bytes(float), quantized_bytes = bytes(quantized), float_tokens_per_s = 1 / median(tf),
    tokens_per_s = 1 / median(tq), speedup = median(ratios), target_speedup = 2.5,
  })
end
