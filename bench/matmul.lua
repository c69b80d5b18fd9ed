-- GFLOP/s of lattice.matmul (lattice's own sgemm, core/kernels/sgemm*)
-- against a direct OpenBLAS sgemm of the same sizes and the machine's FMA
-- peak, all measured in the same run, for square and transformer-shaped
-- products and their backward transposes.
-- Usage: lattice bench/matmul.lua [seconds per sample] [threads] [linear_bias]
-- (or lua5.4 with the paths set; linear_bias runs only that last case)
-- Prints one JSON line per shape. Targets: ratio_to_peak >= 0.70 at the
-- large shapes; lattice at or above OpenBLAS (ratio_to_openblas >= 1).
package.path = arg[0]:gsub("[^/]*$", "") .. "?.lua;" .. package.path
local lattice = require "lattice"
local core = require "lattice.core" -- the measuring hooks stay out of the public namespace
local common = require "common"

-- The machine is shared: lattice, the direct call and the peak kernel are
-- timed in alternating short samples, and the ratios reported are the
-- medians of the per-sample ratios, so a noisy neighbour that slows one
-- sample slows its partners alike.
local SAMPLE = tonumber(arg and arg[1]) or 0.1 -- seconds per timing sample
local SAMPLES = 11                              -- medians over this many samples
if arg and arg[2] then
  lattice.set_num_threads(math.tointeger(tonumber(arg[2])) or error("matmul bench: threads must be an integer"))
end
local ISA = lattice.isa()

-- Cases: a (batch..., M, K) @ b (K, N) or (batch, K, N); `at` passes a as a
-- transposed view (the weight-gradient product G^T @ X of a linear layer),
-- `bt` passes b as one (x @ W^T, a linear layer's forward). The transformer
-- shapes are those of a d384 block over 2048 rows (8 x 256 tokens): for each
-- weight W (n, k) the forward x W^T (2048, k) -> (2048, n), the input
-- gradient G W (2048, n) -> (2048, k) and the weight gradient G^T X.
local cases = {
  { name = "square_512", batch = {}, m = 512, k = 512, n = 512 },
  { name = "square_1024", batch = {}, m = 1024, k = 1024, n = 1024 },
  { name = "square_2048", batch = {}, m = 2048, k = 2048, n = 2048 },
}
for _, w in ipairs({ { "qkv_proj", 384, 384 }, { "ffn_up", 1536, 384 }, { "ffn_down", 384, 1536 } }) do
  local name, n, k = w[1], w[2], w[3]
  cases[#cases + 1] = { name = name, batch = {}, m = 2048, k = k, n = n, bt = true }
  cases[#cases + 1] = { name = name .. "_dx", batch = {}, m = 2048, k = n, n = k }
  cases[#cases + 1] = { name = name .. "_dw", batch = {}, m = n, k = 2048, n = k, at = true }
end
cases[#cases + 1] = { name = "ffn_up_btc", batch = { 8 }, m = 256, k = 384, n = 1536, fold = true }
cases[#cases + 1] = { name = "attn_scores", batch = { 8 }, m = 256, k = 64, n = 256, batched_b = true }

-- Seconds per call of f, from `reps` calls (after one warm-up call).
local function time(f, reps)
  local t0 = lattice.now()
  for _ = 1, reps do f() end
  return (lattice.now() - t0) / reps
end

local function prod(t)
  local p = 1
  for _, v in ipairs(t) do p = p * v end
  return p
end

local function shape_of(batch, r, c)
  local s = {}
  for i, v in ipairs(batch) do s[i] = v end
  s[#s + 1], s[#s + 2] = r, c
  return s
end

-- The operands of a case: a is stored transposed when case.at.
local function operands(c)
  local a
  if c.at then
    a = lattice.random.uniform(-1, 1, shape_of(c.batch, c.k, c.m)):transpose()
  else
    a = lattice.random.uniform(-1, 1, shape_of(c.batch, c.m, c.k))
  end
  local b
  if c.bt then
    b = lattice.random.uniform(-1, 1, { c.n, c.k }):transpose()
  else
    b = lattice.random.uniform(-1, 1, c.batched_b and shape_of(c.batch, c.k, c.n) or { c.k, c.n })
  end
  return a, b
end

-- Element (i, j) of batch 1 of a 2-D or 3-D tensor (1-based).
local function row_of(t, i)
  if t.ndim == 3 then t = t:slice(1, 1, 1):reshape({ t.shape[2], t.shape[3] }) end
  return t:slice(1, i, i):reshape(-1):tolist()
end

local function col_of(t, j)
  if t.ndim == 3 then t = t:slice(1, 1, 1):reshape({ t.shape[2], t.shape[3] }) end
  return t:slice(2, j, j):reshape(-1):tolist()
end

-- Checks a few entries of y = a @ b against dot products computed in Lua.
local function check(c, a, b, y)
  for _, ij in ipairs({ { 1, 1 }, { c.m, c.n }, { (c.m + 1) // 2, (c.n + 2) // 3 } }) do
    local i, j = ij[1], ij[2]
    local ra, cb, want = row_of(a, i), col_of(b, j), 0
    for k = 1, c.k do want = want + ra[k] * cb[k] end
    local got = row_of(y, i)[j]
    -- K float32 products of values in [-1, 1]: error below K * 2^-24 * K ~ 1e-7 K^2 at
    -- the very worst, ~1e-6 * K in practice; 1e-5 * K is a loose but meaningful bound
    if math.abs(got - want) > 1e-5 * c.k then
      error(("matmul %s: entry (%d,%d) is %.7g, expected %.7g"):format(c.name, i, j, got, want))
    end
  end
end

local function layout(c)
  if c.at then return "a transposed view" end
  if c.bt then return "b transposed view" end
  return "row-major"
end

local function run(c)
  local a, b = operands(c)
  local y = lattice.matmul(a, b)
  check(c, a, b, y)
  local flops = 2 * prod(c.batch) * c.m * c.n * c.k
  local nbatch = prod(c.batch)
  -- the reference: one direct row-major sgemm of the same (M,N,K) per batch
  -- entry, each on its own matrices, or one (batch*M, N, K) sgemm when
  -- lattice folds the batch
  local ref_m, ref_batch = c.m, nbatch
  if c.fold then ref_m, ref_batch = c.m * nbatch, 1 end
  local est = math.max(time(function() lattice.matmul(a, b) end, 1), 1e-6)
  local reps = math.max(1, math.floor(SAMPLE / est))
  local lt, ob, pk, vs_blas, vs_peak = {}, {}, {}, {}, {}
  for s = 1, SAMPLES do
    lt[s] = flops / time(function() local z = lattice.matmul(a, b); z:close() end, reps) / 1e9
    ob[s] = flops / core.bench_sgemm(ref_m, c.n, c.k, reps, ref_batch) / 1e9
    pk[s] = core.peak_gflops(ISA, SAMPLE / 2)
    vs_blas[s], vs_peak[s] = lt[s] / ob[s], lt[s] / pk[s]
  end
  local shape = shape_of(c.batch, c.m, c.k)
  shape[#shape + 1] = c.n
  common.report({
    bench = "matmul", case = c.name, shape = shape, layout = layout(c), lattice_gflops = common.median(lt),
    openblas_gflops = common.median(ob), peak_gflops = common.median(pk), ratio_to_peak = common.median(vs_peak),
    ratio_to_openblas = common.median(vs_blas), openblas_ratio_to_peak = common.median(ob) / common.median(pk),
  })
end

-- A linear layer's bias: lattice.linear(x, w, b) against lattice.linear(x,
-- w) of the same shape, timed in alternating samples (the bias is where the
-- sgemm's sums start, so it should cost next to nothing). Target:
-- bias_time_ratio <= 1.1.
local function linear_bias(m, k, n)
  local x, w = lattice.random.normal({ m, k }), lattice.random.normal({ n, k })
  local b = lattice.random.normal({ n })
  local with, without = lattice.linear(x, w, b):tolist(), lattice.linear(x, w):tolist()
  local bl = b:tolist()
  for i = 1, m, 37 do
    for j = 1, n do
      assert(math.abs(with[i][j] - (without[i][j] + bl[j])) <= 1e-5 * (k + math.abs(bl[j])),
        "matmul bench: linear with a bias disagrees")
    end
  end
  local reps = math.max(1, math.floor(SAMPLE / math.max(time(function() lattice.linear(x, w, b) end, 3), 1e-6)))
  local tb, tn, ratios = {}, {}, {}
  for s = 1, SAMPLES do
    tb[s] = time(function() lattice.linear(x, w, b):close() end, reps)
    tn[s] = time(function() lattice.linear(x, w):close() end, reps)
    ratios[s] = tb[s] / tn[s]
  end
  common.report({
    bench = "matmul", case = "linear_bias", shape = { m, k, n }, bias_ms = common.median(tb) * 1e3,
    no_bias_ms = common.median(tn) * 1e3, bias_time_ratio = common.median(ratios), target_bias_time_ratio = 1.1,
  })
end

lattice.random.seed(1)
if arg and arg[3] == "linear_bias" then
  linear_bias(512, 64, 300)
  return
end
for _, c in ipairs(cases) do run(c) end
linear_bias(512, 64, 300)
