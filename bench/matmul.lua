-- GFLOP/s of lattice.matmul against a direct OpenBLAS sgemm of the same sizes,
-- measured in the same run, for a square and transformer-shaped products.
-- Usage: lattice bench/matmul.lua [seconds per sample] [threads]   (or lua5.4 with the paths set)
-- Prints one JSON line per shape. Target: ratio >= 0.90 everywhere.
local lattice = require "lattice"
local core = require "lattice.core" -- the measuring hooks stay out of the public namespace

-- The machine is shared: lattice and the direct call are timed in alternating
-- short samples, and the ratio reported is the median of the per-pair ratios,
-- so a noisy neighbour that slows one sample slows its partner alike.
local SAMPLE = tonumber(arg and arg[1]) or 0.1 -- seconds per timing sample
local SAMPLES = 11                              -- medians over this many pairs
if arg and arg[2] then
  lattice.set_num_threads(math.tointeger(tonumber(arg[2])) or error("matmul bench: threads must be an integer"))
end

-- Cases: a (batch..., M, K) @ b (K, N) or (batch, K, N); `at` passes a as a
-- transposed view (the weight-gradient product X^T @ G of a linear layer).
local cases = {
  { name = "square", batch = {}, m = 2048, k = 2048, n = 2048 },
  { name = "qkv_proj", batch = {}, m = 2048, k = 384, n = 384 },
  { name = "ffn_up", batch = {}, m = 2048, k = 384, n = 1536 },
  { name = "ffn_down", batch = {}, m = 2048, k = 1536, n = 384 },
  { name = "ffn_up_btc", batch = { 8 }, m = 256, k = 384, n = 1536, fold = true },
  { name = "weight_grad", batch = {}, m = 384, k = 2048, n = 1536, at = true },
  { name = "attn_scores", batch = { 8 }, m = 256, k = 64, n = 256, batched_b = true },
}

local function median(xs)
  table.sort(xs)
  return xs[(#xs + 1) // 2]
end

-- Seconds per call of f, from `reps` calls (after one warm-up call).
local function time(f, reps)
  local t0 = lattice.now()
  for _ = 1, reps do f() end
  return (lattice.now() - t0) / reps
end

local function json(v)
  local t = type(v)
  if t == "table" then
    if #v > 0 or next(v) == nil then
      local parts = {}
      for i, x in ipairs(v) do parts[i] = json(x) end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    local keys, parts = {}, {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do parts[#parts + 1] = json(k) .. ":" .. json(v[k]) end
    return "{" .. table.concat(parts, ",") .. "}"
  elseif t == "string" then
    return '"' .. v:gsub('[%c"\\]', function(c) return ("\\u%04x"):format(c:byte()) end) .. '"'
  elseif t == "number" then
    return math.type(v) == "integer" and tostring(v) or ("%.4g"):format(v)
  end
  return tostring(v)
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
  local b = lattice.random.uniform(-1, 1, c.batched_b and shape_of(c.batch, c.k, c.n) or { c.k, c.n })
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

local function run(c)
  local a, b = operands(c)
  local y = lattice.matmul(a, b)
  check(c, a, b, y)
  local flops = 2 * prod(c.batch) * c.m * c.n * c.k
  local nbatch = prod(c.batch)
  -- the reference: one direct sgemm of the same (M,N,K) per batch entry, each on
  -- its own matrices, or one (batch*M, N, K) sgemm when lattice folds the batch
  local ref_m, ref_batch = c.m, nbatch
  if c.fold then ref_m, ref_batch = c.m * nbatch, 1 end
  local est = math.max(time(function() lattice.matmul(a, b) end, 1), 1e-6)
  local reps = math.max(1, math.floor(SAMPLE / est))
  local lt, ob, ratio = {}, {}, {}
  for s = 1, SAMPLES do
    lt[s] = time(function() local z = lattice.matmul(a, b); z:close() end, reps)
    ob[s] = core.bench_sgemm(ref_m, c.n, c.k, reps, ref_batch)
    ratio[s] = ob[s] / lt[s]
  end
  local lt_g, ob_g = flops / median(lt) / 1e9, flops / median(ob) / 1e9
  local shape = shape_of(c.batch, c.m, c.k)
  shape[#shape + 1] = c.n
  print(json({
    bench = "matmul", case = c.name, shape = shape, layout = c.at and "a transposed view" or "row-major",
    lattice_gflops = lt_g, openblas_gflops = ob_g, ratio = median(ratio),
    blas = lattice.blas_info and lattice.blas_info() or "blas_info missing", threads = lattice.num_threads(),
  }))
end

lattice.random.seed(1)
for _, c in ipairs(cases) do run(c) end
