-- Scaled dot-product attention alone (lattice.scaled_dot_product_attention),
-- one JSON line per case, each with its reference measured in the same run:
--   prefill: B = 8, H = 6, D = 64, causal, T = 256 and 2048: forward and
--     forward+backward (lattice.grad of sum(out * g) for q, k and v) in GFLOP/s
--     against the fp32 FMA peak. FLOPs count the causal pairs only,
--     B H T(T+1)/2, at 4 D per pair for the forward (q k^T and p v) and 3.5
--     times that for forward+backward (the backward's five products, the
--     recomputed scores included, as FlashAttention-2 counts them).
--   memory: the op's peak bytes at T = 2048 against T = 256 (each in a new
--     process, from lattice.memory_stats().peak): linear in T means ~8x.
--   decode: one query against a cache of 1024 keys, 6 heads, D = 64, batch 1,
--     in tokens/s and in GB/s of the K/V bytes each token reads, against
--     lattice.core.bench_memcpy of the same bytes; for one layer's cache (3 MB:
--     it stays in the cores' L2) and for six layers' caches read in turn (18 MB,
--     as a 6-layer model reads them).
-- Each timed sample alternates with a sample of its reference and the ratio
-- reported is the median of the per-pair ratios: the machine is shared, and a
-- neighbour that slows one sample slows its partner alike.
-- Targets (2 threads): decode >= 70% of memcpy; memory linear in T.
-- Usage: lattice bench/attention.lua [threads]
package.path = arg[0]:gsub("[^/]*$", "") .. "?.lua;" .. package.path
local lattice = require "lattice"
local core = require "lattice.core"
local common = require "common"

if arg and arg[1] then lattice.set_num_threads(math.tointeger(tonumber(arg[1])) or error("attention: bad threads")) end
local ISA = lattice.isa()

local function median(xs)
  local s = {}
  for i, x in ipairs(xs) do s[i] = x end
  table.sort(s)
  return s[(#s + 1) // 2]
end

-- ---- a check against the _ref first ----

local function max_rel_diff(a, b)
  local x, y, m = a:reshape({ -1 }):tolist(), b:reshape({ -1 }):tolist(), 0
  for i = 1, #x do m = math.max(m, math.abs(x[i] - y[i]) / (1 + math.abs(y[i]))) end
  return m
end

-- The kernels the cases time, forward, decode and backward, against the plain
-- float32 _ref on one batch row of two heads of the same sizes.
local function check(T, S)
  local q, k, v = lattice.random.normal({ 1, 2, T, 64 }), lattice.random.normal({ 1, 2, S, 64 }),
    lattice.random.normal({ 1, 2, S, 64 })
  local o = lattice.scaled_dot_product_attention(q, k, v, { causal = true })
  local want = core.attention_with_isa(q, k, v, { causal = true }, "scalar")
  assert(max_rel_diff(o, want) < 1e-5, "attention bench: the forward disagrees with the _ref")
  local g = lattice.random.normal(o.shape)
  local got = lattice.grad(function(a, b, c)
    return (lattice.scaled_dot_product_attention(a, b, c, { causal = true }) * g):sum()
  end, { 1, 2, 3 })(q, k, v)
  local ref = { core.attention_grad_with_isa(q, k, v, g, { causal = true }, "scalar") }
  for i = 1, 3 do assert(max_rel_diff(got[i], ref[i]) < 1e-4, "attention bench: a gradient disagrees with the _ref") end
end
check(256, 256)
check(1, 1024)

-- ---- prefill ----

local SAMPLES = 7

-- Median seconds of fn and median ratio of its GFLOP/s to the FMA peak, from
-- samples alternating with short peak measurements.
local function against_peak(fn, flops)
  fn()
  local times, ratios, peaks = {}, {}, {}
  for i = 1, SAMPLES do
    peaks[i] = core.peak_gflops(ISA, 0.1)
    collectgarbage() -- last sample's tensors back to the cache: warm pages, as in a training loop
    local t0 = lattice.now()
    fn()
    times[i] = lattice.now() - t0
    ratios[i] = flops / times[i] * 1e-9 / peaks[i]
  end
  return median(times), median(ratios), median(peaks)
end

local function prefill(T)
  local B, H, D = 8, 6, 64
  local q, k, v, g = lattice.random.normal({ B, H, T, D }), lattice.random.normal({ B, H, T, D }),
    lattice.random.normal({ B, H, T, D }), lattice.random.normal({ B, H, T, D })
  local flops = B * H * (T * (T + 1) // 2) * 4 * D
  local t_f, r_f, peak = against_peak(function()
    lattice.scaled_dot_product_attention(q, k, v, { causal = true }):close()
  end, flops)
  local grad = lattice.grad(function(a, b, c)
    return (lattice.scaled_dot_product_attention(a, b, c, { causal = true }) * g):sum()
  end, { 1, 2, 3 })
  local t_b, r_b = against_peak(function()
    for _, t in ipairs(grad(q, k, v)) do t:close() end
  end, 3.5 * flops)
  common.report({
    bench = "attention", case = "prefill_causal", B = B, H = H, T = T, D = D, fma_peak_gflops = peak,
    forward_ms = t_f * 1e3, forward_gflops = flops / t_f * 1e-9, forward_peak_ratio = r_f,
    forward_backward_ms = t_b * 1e3, forward_backward_gflops = 3.5 * flops / t_b * 1e-9,
    forward_backward_peak_ratio = r_b,
  })
end

-- ---- memory ----

-- The op's peak bytes above its inputs at T, in a new process.
local function peak_bytes(T, backward)
  local code = ([[
    local lattice = require "lattice"
    local q, k, v, g = lattice.random.normal({8, 6, %d, 64}), lattice.random.normal({8, 6, %d, 64}),
      lattice.random.normal({8, 6, %d, 64}), lattice.random.normal({8, 6, %d, 64})
    collectgarbage()
    local base = lattice.memory_stats().in_use
    if %s then
      local gr = lattice.grad(function(a, b, c)
        return (lattice.scaled_dot_product_attention(a, b, c, {causal = true}) * g):sum() end, {1, 2, 3})(q, k, v)
    else
      local o = lattice.scaled_dot_product_attention(q, k, v, {causal = true})
    end
    io.write(lattice.memory_stats().peak - base)
  ]]):format(T, T, T, T, backward and "true" or "false")
  local prelude = ("package.path = %q; package.cpath = %q; "):format(package.path, package.cpath)
  local pipe = assert(io.popen(("%q -e %q 2>&1"):format(arg[-1], prelude .. code:gsub("\n%s*", " "))))
  local out = pipe:read("a")
  pipe:close()
  return assert(math.tointeger(tonumber(out)), out)
end

local function memory()
  for _, backward in ipairs({ false, true }) do
    local small, big = peak_bytes(256, backward), peak_bytes(2048, backward)
    common.report({
      bench = "attention", case = backward and "memory_forward_backward" or "memory_forward", B = 8, H = 6, D = 64,
      peak_bytes_t256 = small, peak_bytes_t2048 = big, ratio = big / small, linear_ratio = 8, quadratic_ratio = 64,
      score_matrix_bytes_t2048 = 8 * 6 * 2048 * 2048 * 4,
    })
  end
end

-- ---- decode ----

local function decode(layers)
  local S, H, D = 1024, 6, 64
  local caches = {}
  for l = 1, layers do
    caches[l] = { q = lattice.random.normal({ 1, H, 1, D }), k = lattice.random.normal({ 1, H, S, D }),
      v = lattice.random.normal({ 1, H, S, D }) }
  end
  local bytes = layers * 2 * S * H * D * 4
  local opts = { causal = true }
  local function token()
    for _, c in ipairs(caches) do lattice.scaled_dot_product_attention(c.q, c.k, c.v, opts):close() end
  end
  local reps = 200 // layers
  for _ = 1, reps do token() end
  local t, c, ratio = common.against_memcpy(function()
    local t0 = lattice.now()
    for _ = 1, reps do token() end
    return (lattice.now() - t0) / reps
  end, bytes, 15, 5)
  common.report({
    bench = "attention", case = "decode", layers = layers, context = S, H = H, D = D, B = 1,
    tokens_per_s = 1 / t, us_per_token = t * 1e6, kv_bytes_per_token = bytes, kv_gbps = bytes / t * 1e-9,
    memcpy_gbps = bytes / c * 1e-9, memcpy_ratio = ratio, target_memcpy_ratio = 0.7,
  })
end

prefill(256)
prefill(2048)
memory()
decode(1)
decode(6)
