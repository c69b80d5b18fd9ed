-- Sparse convolution on a realistic support: points on the surfaces of random
-- boxes, spheres and a ground plane, voxelized at 5 cm to ~150,000 active
-- voxels (batch 1), rows in Morton order as a voxelizer would give them.
-- Checked against a plain Lua reference on a small crop first; then one JSON
-- line per case with the FMA peak and OpenBLAS sgemm measured in the same run:
-- the relation build, submanifold 3x3x3 C 32->32 and 64->64, a stride-2 2x2x2
-- conv 64->64 and the transposed 2x2x2 conv back, each forward and
-- forward+backward, in effective GFLOP/s (2 x edges x C_in x C_out per pass;
-- the backward counts both gradients) and as a fraction of the FMA peak (the
-- median of each run against the peak measured just before it; the run-start
-- peak is fma_peak_gflops); then subm 64->64 forward with a 4-bit
-- QuantizedWeight against the float weight timed alternately (speed_vs_float).
-- Targets (2 threads): subm 64->64 forward >= 45% of peak, forward+backward
-- >= 40%; 32->32 forward >= 30%; the relation build under one 64->64 forward.
-- Usage: lattice bench/sparse_conv.lua [voxels, default 150000] [threads]
package.path = arg[0]:gsub("[^/]*$", "") .. "?.lua;" .. package.path
local lattice = require "lattice"
local core = require "lattice.core"
local common = require "common"
local sparse_support = require "sparse_support"

local ops = lattice.ops
local TARGET = math.tointeger(tonumber(arg and arg[1]) or 150000) or error("sparse_conv: bad voxel count")
if arg and arg[2] then lattice.set_num_threads(math.tointeger(tonumber(arg[2])) or error("sparse_conv: bad threads")) end
local VOXEL = 0.05

local rows = sparse_support.surface_voxels(TARGET, VOXEL)
local coords = lattice.array(rows, "int32")

-- ---- a check on a crop, against a plain Lua conv ----

local function check_crop()
  local crop = {}
  for _, r in ipairs(rows) do
    if r[2] >= 0 and r[2] < 12 and r[3] >= 0 and r[3] < 12 then crop[#crop + 1] = r end
  end
  assert(#crop > 20, "sparse_conv: the crop is empty")
  local x = lattice.SparseTensor(lattice.array(crop, "int32"), lattice.random.normal({#crop, 5}))
  local w = lattice.random.normal({3, 3, 3, 3, 5})
  local y = ops.subm_conv3d(x, w).feats:tolist()
  local index, xf, wt = {}, x.feats:tolist(), w:tolist()
  for i, r in ipairs(crop) do index[table.concat(r, ",")] = i end
  for o = 1, #crop, 7 do
    local r = crop[o]
    for j = 1, 3 do
      local want = 0
      for a = -1, 1 do for b = -1, 1 do for c = -1, 1 do
        local i = index[table.concat({0, r[2] + a, r[3] + b, r[4] + c}, ",")]
        if i then for ci = 1, 5 do want = want + xf[i][ci] * wt[j][a + 2][b + 2][c + 2][ci] end end
      end end end
      assert(math.abs(y[o][j] - want) <= 1e-4 * (1 + math.abs(want)), "sparse_conv: check failed")
    end
  end
end
check_crop()

-- ---- references measured in this run ----

local ISA = lattice.isa()
local peak = core.peak_gflops(ISA, 0.3)
local sgemm = 2 * 8192 * 64 * 64 / core.bench_sgemm(8192, 64, 64, 50) * 1e-9

local function median_time(fn, reps)
  return common.median_time(fn, reps)
end

-- fn's median time over reps runs (after a warm-up), and the median of its
-- rate as a fraction of the FMA peak measured just before each run: the
-- machine is shared, and a peak taken once at the start says little about
-- the load a later case runs under.
local function timed(fn, reps, flops)
  fn()
  local ts, ratios, peaks = {}, {}, {}
  for i = 1, reps do
    peaks[i] = core.peak_gflops(ISA, 0.05)
    local t0 = lattice.now()
    fn()
    ts[i] = lattice.now() - t0
    ratios[i] = flops / ts[i] * 1e-9 / peaks[i]
  end
  return common.median(ts), common.median(ratios), common.median(peaks)
end

local function report(case, fields)
  fields.bench, fields.case, fields.voxels = "sparse_conv", case, #rows
  fields.fma_peak_gflops, fields.sgemm_gflops = peak, sgemm
  common.report(fields)
end

-- ---- the relation ----

local x64 = lattice.SparseTensor(coords, lattice.random.normal({#rows, 64}))
local x32 = x64:with_feats(lattice.random.normal({#rows, 32}))
local key = x64.coordinate_map_key
-- the relation subm_conv3d builds and caches: the brick index of the input, the
-- lookups and the per-offset counts (the map's own hash exists with x)
local subm_spec = {size = {3, 3, 3}}
local t_rel = median_time(function()
  lattice.clear_cache()
  core.kernel_relation("subm", key, subm_spec)
end, 5)
local rel = core.kernel_relation("subm", key, subm_spec)
report("relation_build_subm_3x3x3", {ms = t_rel * 1e3, edges = rel.edges, per_voxel = rel.edges / #rows})

-- ---- convolutions ----

-- conv(x, w) -> SparseTensor; the backward takes both gradients (features, weight).
local function case(name, conv, x, w, edges, fwd_target, both_target)
  local cin, cout = w.shape[5], w.shape[1]
  local flops = 2 * edges * cin * cout
  local t_fwd, r_fwd, p_fwd = timed(function() conv(x, w) end, 7, flops)
  local vg = lattice.value_and_grad(function(f, ww) return lattice.sum(conv(x:with_feats(f), ww).feats) end, {1, 2})
  local t_both, r_both, p_both = timed(function() vg(x.feats, w) end, 5, 3 * flops)
  report(name, {edges = edges, c_in = cin, c_out = cout, forward_ms = t_fwd * 1e3, forward_gflops = flops / t_fwd * 1e-9,
    forward_peak_ratio = r_fwd, forward_peak_gflops = p_fwd, forward_backward_ms = t_both * 1e3,
    forward_backward_gflops = 3 * flops / t_both * 1e-9, forward_backward_peak_ratio = r_both,
    forward_backward_peak_gflops = p_both, target_forward_ratio = fwd_target,
    target_forward_backward_ratio = both_target})
  return t_fwd
end

for _, c in ipairs({32, 64}) do
  local x = c == 64 and x64 or x32
  local w = lattice.random.normal({c, 3, 3, 3, c}, {scale = 0.05})
  local t = case("subm_3x3x3_" .. c .. "_to_" .. c, ops.subm_conv3d, x, w, rel.edges, c == 64 and 0.45 or 0.30,
    c == 64 and 0.40 or nil)
  if c == 64 then
    report("relation_vs_forward_64", {relation_ms = t_rel * 1e3, forward_ms = t * 1e3, within_target = t_rel < t})
  end
end

local function down_conv(x, w) return ops.conv3d(x, w, {kernel_size = 2, stride = 2}) end
local wd = lattice.random.normal({64, 2, 2, 2, 64}, {scale = 0.05})
local down = down_conv(x64, wd)
local rel_down = core.kernel_relation("conv", key, {size = {2, 2, 2}, stride = {2, 2, 2}})
case("conv_2x2x2_stride2_64_to_64", down_conv, x64, wd, rel_down.edges)
local function up_conv(x, w) return ops.conv_transpose3d(x, w, {kernel_size = 2, stride = 2, coordinates = x64}) end
case("conv_transpose_2x2x2_64_to_64", up_conv, down, lattice.random.normal({64, 2, 2, 2, 64}, {scale = 0.05}),
  rel_down.edges)

-- ---- a quantized weight ----

-- subm 64->64 forward with the weight at 4 bits (groups of 64) against the
-- same convolution with the float weight, timed alternately: the quantized
-- path dequantizes the weight for each call, so the ratio is that cost
-- (a convolution's weight is small beside its activations).
do
  local w = lattice.random.normal({64, 3, 3, 3, 64}, {scale = 0.05})
  local qw = lattice.quantize_weight(w, {bits = 4, group_size = 64})
  local yq, yd = ops.subm_conv3d(x64, qw).feats, ops.subm_conv3d(x64, qw:dequantize()).feats
  assert(lattice.max(lattice.abs(yq - yd)):item() == 0, "sparse_conv: the quantized conv differs from the float one")
  local tq, tf, ratios = {}, {}, {}
  for i = 1, 5 do
    tq[i] = median_time(function() ops.subm_conv3d(x64, qw) end, 3)
    tf[i] = median_time(function() ops.subm_conv3d(x64, w) end, 3)
    ratios[i] = tf[i] / tq[i]
  end
  local flops = 2 * rel.edges * 64 * 64
  local t = common.median(tq)
  report("subm_3x3x3_64_to_64_int4", {edges = rel.edges, bits = 4, group_size = 64, weight_bytes = qw.nbytes,
    float_weight_bytes = 64 * 27 * 64 * 4, forward_ms = t * 1e3, forward_gflops = flops / t * 1e-9,
    forward_peak_ratio = flops / t * 1e-9 / peak, float_forward_ms = common.median(tf) * 1e3,
    speed_vs_float = common.median(ratios)})
end
