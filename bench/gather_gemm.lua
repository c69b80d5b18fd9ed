-- The fused gather-GEMM kernels (core/kernels/gather_gemm*) on a realistic
-- kernel map: points on the surfaces of random boxes, spheres and a ground
-- plane, voxelized at 5 cm to ~150,000 active voxels, rows in Morton order,
-- and the 3x3x3 neighbourhood of every voxel (a submanifold conv's map) found
-- with a plain Lua hash. One result of each kernel is checked against a plain
-- Lua reference on a slice first. Then one JSON line per case: 32->32 and
-- 64->64, the forward, the input gradient (the forward over the transposed
-- map with W_k^T), the weight gradient and all three together, in effective
-- GFLOP/s (2 x edges x C_in x C_out per pass, only real edges) and as a
-- fraction of the fp32 FMA peak measured in the same run (sampled before and
-- after each case); beside them OpenBLAS sgemm on a dense (n, C_in) x
-- (C_in, C_out) product, also measured in this run. Times are medians of 9
-- calls (each forward call packs its weight).
-- Targets (issue 13, 2 threads): 64->64 forward >= 45% of the peak, forward
-- + backward >= 40%, 32->32 forward >= 30%.
-- Usage: lattice bench/gather_gemm.lua [voxels, default 150000] [threads] [isa]
package.path = arg[0]:gsub("[^/]*$", "") .. "?.lua;" .. package.path
local lattice = require "lattice"
local core = require "lattice.core"
local common = require "common"
local sparse_support = require "sparse_support"

local TARGET = math.tointeger(tonumber(arg and arg[1]) or 150000) or error("gather_gemm: bad voxel count")
if arg and arg[2] then lattice.set_num_threads(math.tointeger(tonumber(arg[2])) or error("gather_gemm: bad threads")) end
local ISA = arg and arg[3] or lattice.isa()
local VOXEL, K = 0.05, 27

-- ---- the support ----

local function key_of(i, j, k) return (i + 4096) * 67108864 + (j + 4096) * 8192 + (k + 4096) end

-- The submanifold 3x3x3 map: idx[o][k] = the row at voxel o + offset k (x
-- slowest: k = (dx*3 + dy)*3 + dz over -1..1), 0-based, or -1. The
-- transposed map of a submanifold conv is the same map with the offsets
-- mirrored: idx_t[i][k] = idx[i][K-1-k].
local function neighbour_map(vox)
  local row = {}
  for r, v in ipairs(vox) do row[key_of(v[2], v[3], v[4])] = r - 1 end
  local flat, flat_t, edges = {}, {}, 0
  for o, v in ipairs(vox) do
    local base, k = (o - 1) * K, 0
    for a = -1, 1 do
      for b = -1, 1 do
        for c = -1, 1 do
          local i = row[key_of(v[2] + a, v[3] + b, v[4] + c)] or -1
          flat[base + k + 1] = i
          flat_t[base + (K - 1 - k) + 1] = i
          if i >= 0 then edges = edges + 1 end
          k = k + 1
        end
      end
    end
  end
  local n = #vox
  return lattice.reshape(lattice.array(flat, "int64"), {n, K}), lattice.reshape(lattice.array(flat_t, "int64"), {n, K}),
    edges, flat
end

local vox = sparse_support.surface_voxels(TARGET, VOXEL) -- {0, x, y, z} rows, Morton order
local N = #vox
local idx, idx_t, EDGES, flat = neighbour_map(vox)

-- ---- a check on a slice, against plain Lua ----

local function check_slice()
  local rows, cin, cout = 300, 5, 7
  local sub = lattice.slice(idx, 1, 1, rows)
  local x, w = lattice.random.normal({N, cin}), lattice.random.normal({K, cin, cout})
  local dy = lattice.random.normal({rows, cout})
  local y = core.ggemm_with_isa(x, w, sub, ISA):tolist()
  local dw = core.ggemm_wgrad_with_isa(x, dy, sub, ISA):tolist()
  local xs, ws, dys = x:tolist(), w:tolist(), dy:tolist()
  local want_dw = {}
  for k = 1, K do
    want_dw[k] = {}
    for c = 1, cin do want_dw[k][c] = {} for j = 1, cout do want_dw[k][c][j] = 0 end end
  end
  for o = 1, rows do
    for j = 1, cout do
      local want = 0
      for k = 1, K do
        local i = flat[(o - 1) * K + k]
        if i >= 0 then for c = 1, cin do want = want + xs[i + 1][c] * ws[k][c][j] end end
      end
      assert(math.abs(y[o][j] - want) <= 1e-4 * (1 + math.abs(want)), "gather_gemm: the forward check failed")
    end
    for k = 1, K do
      local i = flat[(o - 1) * K + k]
      if i >= 0 then
        for c = 1, cin do for j = 1, cout do want_dw[k][c][j] = want_dw[k][c][j] + xs[i + 1][c] * dys[o][j] end end
      end
    end
  end
  for k = 1, K do for c = 1, cin do for j = 1, cout do
    local want = want_dw[k][c][j]
    assert(math.abs(dw[k][c][j] - want) <= 1e-4 * (1 + math.abs(want)), "gather_gemm: the weight gradient check failed")
  end end end
end
check_slice()

-- ---- references measured in this run ----

local function median(fn, reps)
  local t = {}
  for r = 1, reps do t[r] = fn() end
  table.sort(t)
  return t[(reps + 1) // 2]
end

-- The machine may be shared: the peak is sampled (a median of three) before
-- and after each case's timings, and the case is reported against the mean
-- of the two (both are printed).
local function peak_sample() return median(function() return core.peak_gflops(ISA, 0.2) end, 3) end

-- ---- the cases ----

local function report(case, fields)
  fields.bench, fields.case, fields.voxels, fields.edges = "gather_gemm", case, N, EDGES
  fields.per_voxel = EDGES / N
  common.report(fields)
end

for _, c in ipairs({32, 64}) do
  local flops = 2 * EDGES * c * c
  local x, dy = lattice.random.normal({N, c}), lattice.random.normal({N, c})
  local w = lattice.random.normal({K, c, c}, {scale = 0.05})
  local wt = lattice.transpose(w, {1, 3, 2}) -- W_k^T as a strided view: the packing reads it in place
  local p0 = peak_sample()
  local t_fwd, used = core.bench_ggemm(x, w, idx, ISA, 9)
  local t_dx = core.bench_ggemm(dy, wt, idx_t, ISA, 9)
  local t_dw = core.bench_ggemm_wgrad(x, dy, idx, ISA, 9)
  -- (N, c) x (c, c) as 4 products of N/4 rows (bench_sgemm takes at most 65536)
  local t_gemm = median(function() return core.bench_sgemm(N // 4, c, c, 5, 4) end, 5)
  local p1 = peak_sample()
  local peak = (p0 + p1) / 2
  local sgemm = 2 * (N // 4 * 4) * c * c / t_gemm * 1e-9
  local function g(t, passes) return passes * flops / t * 1e-9 end
  report(c .. "_to_" .. c, {c_in = c, c_out = c, kernel_isa = used, fma_peak_gflops = peak,
    fma_peak_samples = {p0, p1},
    forward_ms = t_fwd * 1e3, forward_gflops = g(t_fwd, 1), forward_peak_ratio = g(t_fwd, 1) / peak,
    input_grad_ms = t_dx * 1e3, input_grad_gflops = g(t_dx, 1), input_grad_peak_ratio = g(t_dx, 1) / peak,
    weight_grad_ms = t_dw * 1e3, weight_grad_gflops = g(t_dw, 1), weight_grad_peak_ratio = g(t_dw, 1) / peak,
    forward_backward_ms = (t_fwd + t_dx + t_dw) * 1e3, forward_backward_gflops = g(t_fwd + t_dx + t_dw, 3),
    forward_backward_peak_ratio = g(t_fwd + t_dx + t_dw, 3) / peak,
    sgemm_gflops = sgemm, forward_vs_sgemm = g(t_fwd, 1) / sgemm,
    target_forward_ratio = c == 64 and 0.45 or 0.30, target_forward_backward_ratio = c == 64 and 0.40 or nil})
end
