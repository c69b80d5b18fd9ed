-- One full training step (forward, backward, AdamW) of a GPT-style
-- LanguageModel: tokens/s, the achieved fraction of the fp32 FMA peak measured
-- in the same run, and the peak resident memory against the least a step
-- must hold. Prints one JSON line.
--
-- Model: d_model 384, 6 layers, 6 heads, d_ff 1536, T 256, batch 8, a byte
-- vocabulary (256), MHA, GELU FFN, LayerNorm, sinusoidal positions, biases,
-- tied embeddings (GPT-2's layout at a small size).
--
-- FLOPs of a step (the usual count, PaLM's appendix B):
--   6 N B T  +  12 L T^2 d B
-- N the parameters (the tied embedding counted once: it is the output head's
-- matrix, whose 2 V d per token is part of 6 N), B T the tokens, L the layers,
-- d d_model: 6 N for the weight products (2 forward, 4 backward per
-- parameter and token) and 12 L T^2 d for the scores and the weighted values
-- (2 T d each per token and layer forward, twice that backward), counted as
-- if unmasked although the causal kernel skips about half. Norms,
-- activations, softmax and the optimizer are not counted.
--
-- The least memory a step needs (bytes, float32):
--   16 N                            parameters, gradients, AdamW's m and v
--   + 4 B T (L (16 d + H) + 2 d + 2 V)   activations saved for the backward:
--     per layer and token x, ln1(x), q, k, v, the attention output, its
--     log-sum-exp (H), x + attn, ln2(.), the FFN pre-activation (4d) and
--     gelu of it (4d) = 16 d + H; then the final norm's input and output
--     and the logits with their softmax (2 V).
-- Transients (one layer's gradients at a time) and the process itself
-- (code, libraries, OpenBLAS buffers: the RSS before the model exists) are
-- reported beside it, not counted in it.
--
-- Same-run references: the FMA peak (lattice.core.peak_gflops, AVX-512 or
-- AVX2, the best the CPU has; a sample before each timed step, and before and
-- after them all), the AVX2 peak beside it (what OpenBLAS reaches under
-- OPENBLAS_CORETYPE=Haswell), and OpenBLAS sgemm of the FFN's shape,
-- (2048 x 384) (384 x 1536).
-- Targets (issue 16): >= 50% of the FMA peak with 2 threads, peak memory <=
-- 1.5x the minimum. PyTorch 1.13 at its best on this machine: 1,664 tokens/s
-- (the issue's figure, not measured here).
-- Usage: lattice bench/train.lua [timed steps, default 5] [threads]
package.path = arg[0]:gsub("[^/]*$", "") .. "?.lua;" .. package.path
local lattice = require "lattice"
local core = require "lattice.core" -- the measuring hooks stay out of the public namespace
local common = require "common"

local nn, optim = lattice.nn, lattice.optim
local STEPS = math.tointeger(tonumber(arg and arg[1]) or 5) or error("train bench: steps must be an integer")
if arg and arg[2] then
  lattice.set_num_threads(math.tointeger(tonumber(arg[2])) or error("train bench: threads must be an integer"))
end

local D, L, H, FF, T, B, V = 384, 6, 6, 1536, 256, 8, 256

-- Resident memory now and at its highest (kB), from /proc/self/status.
local function status_kb()
  local f = io.open("/proc/self/status")
  if not f then return nil, nil end
  local text = f:read("a")
  f:close()
  return tonumber(text:match("VmRSS:%s*(%d+)")), tonumber(text:match("VmHWM:%s*(%d+)"))
end

local function peak(isa, n)
  local xs = {}
  for i = 1, n do xs[i] = core.peak_gflops(isa, 0.2) end
  return xs
end

local base_rss = status_kb()
local isa = core.peak_gflops("avx512", 0.01) and "avx512" or "avx2"
local peaks = peak(isa, 3)

-- The reference product, checked against a plain dot product on one element.
local sgemm
do
  local a, w = lattice.random.normal({ B * T, D }), lattice.random.normal({ D, FF })
  local c = lattice.matmul(a, w)
  local row, col = a[1]:tolist(), w:slice(2, 1, 1):reshape({ D }):tolist()
  local want = 0
  for k = 1, D do want = want + row[k] * col[k] end
  assert(math.abs(c[1]:tolist()[1] - want) < 1e-3 * math.sqrt(D), "train bench: sgemm check failed")
  local secs = common.median_time(function() lattice.matmul(a, w):close() end, 9)
  sgemm = 2 * B * T * D * FF / secs * 1e-9
  a:close(); w:close(); c:close()
end

lattice.random.seed(0)
local config = lattice.ModelConfig {
  block = lattice.BlockConfig { attention = "mha", ffn = "standard", norm = "layer_norm", position = "sinusoidal",
    d_model = D, n_heads = H, d_ff = FF, bias = true, max_seq_len = T },
  vocab_size = V, n_layers = L,
}
local model = nn.LanguageModel(config)
local N = model:num_parameters()
local optimizer = optim.AdamW { learning_rate = 3e-4 }
local value_and_grad = nn.value_and_grad(model, function(m, x, y)
  return nn.losses.cross_entropy(m(x), y, { reduction = "mean" })
end)
-- One fixed batch: the step's cost does not depend on the ids.
local tokens = lattice.random.randint(0, V, { B, T + 1 })
local x, y = tokens:slice(2, 1, T):contiguous(), tokens:slice(2, 2, T + 1):contiguous()

local function step()
  local loss, grads = value_and_grad(model, x, y)
  optimizer:update(model, grads)
  return loss:item()
end

-- Checked before timing: the untrained model's loss is about ln V (above it
-- by what the random logits' spread adds) and steps on the one batch bring it
-- down.
local first = step()
assert(first > math.log(V) - 0.5 and first < 2 * math.log(V),
  ("train bench: first loss %g, expected about %g"):format(first, math.log(V)))
local second = step()
-- The machine is shared: each timed step is paired with a peak sample taken
-- right before it, and the fraction reported is the median of the pairs'
-- ratios, so a neighbour that slows one slows its partner alike.
local flops = 6 * N * B * T + 12 * L * T * T * D * B
local times, losses, fractions, rss_mb = {}, {}, {}, {}
for i = 1, STEPS do
  rss_mb[i] = (status_kb() or 0) / 1024 -- flat from step to step: a step allocates nothing it keeps
  peaks[#peaks + 1] = core.peak_gflops(isa, 0.2)
  local t0 = lattice.now()
  losses[i] = step()
  times[i] = lattice.now() - t0
  fractions[i] = flops / times[i] * 1e-9 / peaks[#peaks]
end
assert(losses[STEPS] < first, "train bench: the loss did not fall")

-- The forward alone (no gradient taken), to split the step's time.
local forward = common.median_time(function()
  nn.losses.cross_entropy(model(x), y, { reduction = "mean" }):item()
end, 3)

for _, p in ipairs(peak(isa, 3)) do peaks[#peaks + 1] = p end
local avx2_peak = isa == "avx512" and common.median(peak("avx2", 3)) or nil
local rss, hwm = status_kb()
local mem = lattice.memory_stats()

local secs = common.median(times)
local peak_gflops = common.median(peaks)
local gflops = flops / secs * 1e-9
local state_bytes = 16 * N
local act_bytes = 4 * B * T * (L * (16 * D + H) + 2 * D + 2 * V)
local min_bytes = state_bytes + act_bytes
local MB = 1024 * 1024
common.report({
  bench = "train", model = "gpt", d_model = D, n_layers = L, n_heads = H, d_ff = FF, seq_len = T, batch = B,
  vocab = V, params = N, steps = STEPS, step_seconds = secs, step_seconds_min = math.min(table.unpack(times)),
  forward_seconds = forward, tokens_per_sec = B * T / secs, gflop_per_step = flops * 1e-9, gflops = gflops,
  peak_isa = isa, peak_gflops = peak_gflops, peak_fraction = common.median(fractions),
  peak_fraction_of_medians = gflops / peak_gflops, avx2_peak_gflops = avx2_peak, sgemm_ffn_gflops = sgemm,
  sgemm_fraction = sgemm / peak_gflops, pytorch_1_13_tokens_per_sec = 1664,
  loss_first = first, loss_second = second, loss_last = losses[STEPS],
  vm_hwm_mb = hwm and hwm / 1024, vm_rss_before_steps_mb = rss_mb, vm_rss_mb = rss and rss / 1024, process_base_mb = base_rss and base_rss / 1024,
  min_mb = min_bytes / MB, min_state_mb = state_bytes / MB, min_activations_mb = act_bytes / MB,
  hwm_over_min = hwm and hwm * 1024 / min_bytes, hwm_less_base_over_min = hwm and base_rss and (hwm - base_rss) * 1024 / min_bytes,
  allocator_peak_mb = mem.peak / MB, allocator_in_use_mb = mem.in_use / MB, allocator_cached_mb = mem.cached / MB,
})
