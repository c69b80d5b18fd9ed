-- A transformer block and a language model's decode, one JSON line per case,
-- each with its references measured in the same run:
--   block: nn.ConfigurableBlock of the seed's GPT (mha, standard GELU FFN,
--     layer_norm, bias), d_model 384, 6 heads, d_ff 1536, batch 8, causal,
--     T = 256 and 2048: forward and forward+backward (nn.value_and_grad of
--     sum(block(x)) for every parameter and x) in tokens/s and as a fraction
--     of the fp32 FMA peak. FLOPs: the projections 2 N (4 d^2 + 2 d d_ff) for
--     N = 8 T tokens, the attention's causal pairs 4 D B H T(T+1)/2; three
--     times the projections and 3.5 times the attention for
--     forward+backward. Beside them, `sgemm_ratio`: the time direct OpenBLAS
--     sgemm calls take for the block's projections (the same (M, N, K)
--     products; three times those for forward+backward) over the block's
--     time, i.e. the share of the time an ideal non-GEMM part would leave.
--   decode: a 6-layer d_model 384 GPT (vocab 32000, tied), batch 1, one
--     token after a cache of 1024 positions, in tokens/s and in GB/s of the
--     bytes each token must read (every weight once, the head's 32000 x 384
--     included, and the 6 layers' keys and values) against
--     lattice.core.bench_memcpy of the same bytes.
-- Each timed sample alternates with its reference and the ratio reported is
-- the median of the per-pair ratios: the machine is shared, and a neighbour
-- that slows one sample slows its partner alike.
-- Targets (2 threads): block forward+backward at T = 256 >= 45% of the FMA
-- peak; decode >= 70% of memcpy.
-- Usage: lattice bench/transformer.lua [threads [block|decode]]
-- (the attention kernel alone, its FLOP rate and its memory at T = 2048
-- against T = 256, are bench/attention.lua's)
package.path = arg[0]:gsub("[^/]*$", "") .. "?.lua;" .. package.path
local lattice = require "lattice"
local core = require "lattice.core" -- peak_gflops, bench_sgemm, bench_memcpy: same-run references
local common = require "common"

local nn = lattice.nn
if arg and arg[1] then lattice.set_num_threads(math.tointeger(tonumber(arg[1])) or error("transformer: bad threads")) end
local ISA = lattice.isa()
local median = common.median

local D_MODEL, HEADS, D_FF = 384, 6, 1536

local function gpt_block(max_seq_len)
  return lattice.BlockConfig { attention = "mha", ffn = "standard", norm = "layer_norm", position = "sinusoidal",
    d_model = D_MODEL, n_heads = HEADS, d_ff = D_FF, bias = true, max_seq_len = max_seq_len or 2048 }
end

local function max_rel_diff(a, b)
  local x, y, m = a:reshape({ -1 }):tolist(), b:reshape({ -1 }):tolist(), 0
  for i = 1, #x do m = math.max(m, math.abs(x[i] - y[i]) / (1 + math.abs(y[i]))) end
  return m
end

-- ---- checks first ----

-- The block against its parts composed by hand, and the cached decode of a
-- small model against its full forward.
local function check()
  local block = nn.ConfigurableBlock(gpt_block())
  local x = lattice.random.normal({ 2, 16, D_MODEL })
  local h = x + block.attention(block.attn_norm(x), "causal")
  local want = h + block.ffn(block.ffn_norm(h))
  assert(max_rel_diff(block(x, "causal"), want) < 1e-5, "transformer bench: the block disagrees with its parts")
  local m = nn.LanguageModel(lattice.ModelConfig { block = gpt_block(), vocab_size = 100, n_layers = 2 })
  local tokens = lattice.random.randint(0, 100, { 1, 12 })
  local cache = m:make_cache(1, 12)
  m(tokens:slice(2, 1, 11), { cache = cache })
  local last = m(tokens:slice(2, 12, 12), { cache = cache })
  assert(max_rel_diff(last, m(tokens):slice(2, 12, 12)) < 1e-4, "transformer bench: cached decode disagrees")
end
check()

-- ---- the block ----

local SAMPLES = 5

-- Direct sgemm time of the block's forward projections for n tokens.
local function sgemm_forward(n)
  return 4 * core.bench_sgemm(n, D_MODEL, D_MODEL, 1) + core.bench_sgemm(n, D_FF, D_MODEL, 1) +
      core.bench_sgemm(n, D_MODEL, D_FF, 1)
end

-- Median seconds of fn, and the median per-sample ratios of its GFLOP/s to
-- the FMA peak and of the sgemm reference's time to its own.
local function measure(fn, flops, sgemm_factor, n)
  fn()
  local times, peak_ratios, sgemm_ratios, peaks = {}, {}, {}, {}
  for i = 1, SAMPLES do
    peaks[i] = core.peak_gflops(ISA, 0.1)
    local sg = sgemm_factor * sgemm_forward(n)
    collectgarbage() -- last sample's tensors back to the cache: warm pages, as in a training loop
    local t0 = lattice.now()
    fn()
    times[i] = lattice.now() - t0
    peak_ratios[i] = flops / times[i] * 1e-9 / peaks[i]
    sgemm_ratios[i] = sg / times[i]
  end
  return median(times), median(peak_ratios), median(sgemm_ratios), median(peaks)
end

local function block_case(T)
  local B = 8
  local block = nn.ConfigurableBlock(gpt_block())
  local x = lattice.random.normal({ B, T, D_MODEL })
  local n = B * T
  local proj = 2 * n * (4 * D_MODEL * D_MODEL + 2 * D_MODEL * D_FF)
  local attn = 4 * (D_MODEL // HEADS) * B * HEADS * (T * (T + 1) // 2)
  local t_f, r_f, s_f, peak = measure(function() block(x, "causal"):close() end, proj + attn, 1, n)
  local step = nn.value_and_grad(block, function(m, xx) return lattice.sum(m(xx, "causal")) end)
  local fb_flops = 3 * proj + 3.5 * attn
  local t_b, r_b, s_b = measure(function() step(block, x) end, fb_flops, 3, n)
  common.report({
    bench = "transformer", case = "block", block = "gpt (mha, standard, layer_norm, bias)", B = B, T = T,
    d_model = D_MODEL, n_heads = HEADS, d_ff = D_FF, fma_peak_gflops = peak,
    forward_ms = t_f * 1e3, forward_tokens_per_s = n / t_f, forward_gflops = (proj + attn) / t_f * 1e-9,
    forward_peak_ratio = r_f, forward_sgemm_ratio = s_f,
    forward_backward_ms = t_b * 1e3, forward_backward_tokens_per_s = n / t_b,
    forward_backward_gflops = fb_flops / t_b * 1e-9, forward_backward_peak_ratio = r_b,
    forward_backward_sgemm_ratio = s_b, target_forward_backward_peak_ratio = T == 256 and 0.45 or nil,
  })
end

-- ---- decode ----

local function decode()
  local context, layers, vocab = 1024, 6, 32000
  local m = nn.LanguageModel(lattice.ModelConfig { block = gpt_block(), vocab_size = vocab, n_layers = layers })
  m:eval()
  local cache = m:make_cache(1, context + 1)
  m(lattice.random.randint(0, vocab, { 1, context }), { cache = cache })
  local token = lattice.array({ { 7 } }, "int32")
  local function step()
    cache:truncate(context)
    m(token, { cache = cache })
  end
  local bytes = m:num_parameters() * 4 + layers * 2 * (context + 1) * D_MODEL * 4
  local reps = 10
  for _ = 1, reps do step() end
  local t, c, ratio = common.against_memcpy(function()
    local t0 = lattice.now()
    for _ = 1, reps do step() end
    return (lattice.now() - t0) / reps
  end, bytes, 9, 3)
  common.report({
    bench = "transformer", case = "decode", model = "gpt d384, 6 layers, vocab 32000, tied", layers = layers,
    context = context, B = 1, tokens_per_s = 1 / t, ms_per_token = t * 1e3, bytes_per_token = bytes,
    gbps = bytes / t * 1e-9, memcpy_gbps = bytes / c * 1e-9, memcpy_ratio = ratio, target_memcpy_ratio = 0.7,
  })
end

local only = arg and arg[2]
if only ~= nil and only ~= "block" and only ~= "decode" then error("transformer: the case must be block or decode") end
if only ~= "decode" then
  block_case(256)
  block_case(2048)
end
if only ~= "block" then decode() end
