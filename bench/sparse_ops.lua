-- The gather/scatter-bound sparse ops on the ~150,000-voxel surface support
-- of bench/sparse_conv.lua (bench/sparse_support.lua builds it), C = 64
-- float32 features: max pooling k2s2 (the relation cached, as in a network
-- where a conv of that spec built it), global average pooling (batch counts
-- of 4 scenes), and sparse_add of two tensors of different identities (the
-- support and itself shifted by one voxel: an outer join with a new map and
-- its hash each call). Each case is checked against plain Lua first, then
-- timed against a memcpy moving the same bytes in the same run (the op and
-- the copy alternate; medians). The bytes are those the op cannot avoid:
-- the features it reads and writes, plus the relation index or coordinate
-- rows it reads and writes. Target (2 threads): ratio >= 0.25. Then kNN
-- (k = 16) of every support row among them (the same target), the radius
-- relation of radius 2 (no target), voxelize
-- (mean) and sparse_quantize of 1M points (targets: voxelize under 15 ms;
-- sparse_quantize has none: like voxelize it is bound by its hash, not by
-- gathers, and prints its ratio for comparison only).
-- A case is one entry of `cases`: name, target ({ratio} or {ms}, absent for
-- none: the JSON's target_ratio or target_ms, and met), and prepare()
-- returning {run, bytes, check, fields} (fields: extra JSON).
-- Usage: lattice bench/sparse_ops.lua [voxels, default 150000] [threads] [case name pattern]
package.path = arg[0]:gsub("[^/]*$", "") .. "?.lua;" .. package.path
local lattice = require "lattice"
local core = require "lattice.core"
local common = require "common"
local sparse_support = require "sparse_support"

local ops = lattice.ops
local TARGET = math.tointeger(tonumber(arg and arg[1]) or 150000) or error("sparse_ops: bad voxel count")
if arg and arg[2] then lattice.set_num_threads(math.tointeger(tonumber(arg[2])) or error("sparse_ops: bad threads")) end
local C, SAMPLES = 64, 9
local QUARTER = {ratio = 0.25}

-- The support as a tensor only: the cases build their Lua tables (for the
-- checks) in prepare and drop them, so the GC steps that every op's
-- allocations trigger do not walk 150,000 live tables while an op is timed.
local coords = lattice.array(sparse_support.surface_voxels(TARGET, 0.05), "int32")
local N = coords.shape[1]

local function key(r) return table.concat(r, ",") end

local function median(xs)
  local s = {table.unpack(xs)}
  table.sort(s)
  return s[(#s + 1) // 2]
end

local function close(got, want, what)
  assert(math.abs(got - want) <= 1e-5 * (1 + math.abs(want)), ("sparse_ops: %s check failed (%g vs %g)"):format(what,
    got, want))
end

local x = lattice.SparseTensor(coords, lattice.random.normal({N, C}))

local cases = {}

cases[#cases + 1] = {name = "max_pool3d_k2s2", target = QUARTER, prepare = function()
  local y = ops.max_pool3d(x) -- builds and caches the relation
  local rel = core.kernel_relation("conv", x, {size = {2, 2, 2}, stride = {2, 2, 2}})
  return {
    run = function() return ops.max_pool3d(x) end,
    bytes = (N * C + #y * C + #y * rel.n_kernels) * 4,
    fields = {rows_in = N, rows_out = #y, channels = C},
    check = function(out)
      local index, xf = {}, x.feats
      for i, r in ipairs(coords:tolist()) do index[key(r)] = i end
      local oc = out.coords
      for o = 1, #out, 997 do
        local orow, want = oc[o]:tolist(), -math.huge
        for _, d in ipairs(rel.kernel_offsets) do
          local i = index[key({orow[1], orow[2] * 2 + d[1], orow[3] * 2 + d[2], orow[4] * 2 + d[3]})]
          if i then want = math.max(want, xf[i]:tolist()[3]) end
        end
        close(out.feats[o]:tolist()[3], want, "max_pool3d")
      end
    end,
  }
end}

cases[#cases + 1] = {name = "global_avg_pool", target = QUARTER, prepare = function()
  -- four scenes: the support's rows split into batches by their order
  local batched, counts = {}, {0, 0, 0, 0}
  for i, r in ipairs(coords:tolist()) do
    local b = (i - 1) * 4 // N
    batched[i], counts[b + 1] = {b, r[2], r[3], r[4]}, counts[b + 1] + 1
  end
  local xb = lattice.SparseTensor(lattice.array(batched, "int32"), x.feats, {batch_counts = counts})
  return {
    run = function() return ops.global_avg_pool(xb) end,
    bytes = N * C * 4 + N * 16 + 4 * C * 4, -- features, the rows' batch column (a 16-byte row each), the result
    fields = {rows_in = N, batches = 4, channels = C},
    check = function(out)
      local col, s = lattice.slice(x.feats, 2, 5, 5):reshape({N}):tolist(), 0
      for i = 1, counts[1] do s = s + col[i] end
      close(out:tolist()[1][5], s / counts[1], "global_avg_pool")
    end,
  }
end}

cases[#cases + 1] = {name = "sparse_add_outer_different_identities", target = QUARTER, prepare = function()
  local y = lattice.SparseTensor(lattice.add(coords, lattice.array({0, 1, 0, 0}, "int32")), lattice.random.normal({N, C}))
  local out = ops.sparse_add(x, y)
  local M = #out
  return {
    run = function() return ops.sparse_add(x, y) end,
    -- both inputs' features and rows read, the output's features and rows written
    bytes = (2 * N * C + M * C) * 4 + (2 * N + M) * 16,
    fields = {rows_a = N, rows_b = N, rows_out = M, channels = C, join = "outer"},
    check = function(res)
      local index, rows = {}, coords:tolist()
      for i, r in ipairs(y.coords:tolist()) do index[key(r)] = i end
      for j = 1, N, 1009 do
        local i = index[key(rows[j])]
        local want = x.feats[j]:tolist()[7] + (i and y.feats[i]:tolist()[7] or 0)
        close(res.feats[j]:tolist()[7], want, "sparse_add")
      end
    end,
  }
end}

-- Every row of the support's batch as (d², row) from query q (1-based), nearest first, ties by row.
local function by_distance(rows, q)
  local cand = {}
  for i, r in ipairs(rows) do
    if r[1] == rows[q][1] then
      cand[#cand + 1] = {(r[2] - rows[q][2]) ^ 2 + (r[3] - rows[q][3]) ^ 2 + (r[4] - rows[q][4]) ^ 2, i - 1}
    end
  end
  table.sort(cand, function(a, b) return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]) end)
  return cand
end

-- A relation of every support row among them (build() makes it, fields
-- its own JSON), checked by brute force for a few queries: their edges are
-- the first keep(cand) of their (d², row) candidates, in that order.
local function relation_case(name, target, build, fields, keep)
  return {name = name, target = target, prepare = function()
    local rel = build()
    fields.queries, fields.sources, fields.edges = N, N, rel.source_row.shape[1]
    return {
      run = build,
      -- the source and query rows read; the four edge fields and the offsets written
      bytes = 2 * N * 16 + fields.edges * 16 + (N + 1) * 8,
      fields = fields,
      check = function(out)
        local rows, got, offsets = coords:tolist(), out.source_row:tolist(), rel.row_offsets:tolist()
        for q = 1, N, 15013 do
          local cand = by_distance(rows, q)
          local n = keep(cand)
          assert(offsets[q + 1] - offsets[q] == n, ("sparse_ops: %s check failed (count)"):format(name))
          for e = 1, n do
            assert(got[offsets[q] + e] == cand[e][2], ("sparse_ops: %s check failed"):format(name))
          end
        end
      end,
    }
  end}
end

cases[#cases + 1] = relation_case("knn_k16", QUARTER, function() return ops.build_knn_relation(x, {k = 16}) end,
  {k = 16}, function() return 16 end)

-- The radius relation of radius 2 (no target: for comparison with kNN; its
-- count pass and its fill both walk the shells): every row at d² <= 4.
cases[#cases + 1] = relation_case("radius_r2", nil, function() return ops.build_radius_relation(x, {radius = 2}) end,
  {radius = 2}, function(cand)
    local n = 0
    while cand[n + 1] and cand[n + 1][1] <= 4 do n = n + 1 end
    return n
  end)

-- ---- points and voxels ----
-- 1M points scattered inside the support's voxels (a voxel picked at random,
-- a uniform offset inside it): ~7 points per voxel at voxel_size 1, as a
-- LiDAR sweep voxelized at the network's resolution; 4 float32 features
-- (x, y, z, intensity).
local NP, PC = 1000000, 4
local points = lattice.add(lattice.take(lattice.slice(coords, 2, 2, 4):astype("float32"),
  lattice.random.randint(0, N, {NP}, {dtype = "int32"}), 1), lattice.random.uniform({NP, 3}))
local point_feats = lattice.random.normal({NP, PC})

-- The voxel of each sampled point, and the mean of each sampled voxel's features, in plain Lua.
local function check_voxels(out_coords, inverse, what)
  local p, rows, inv = points:tolist(), out_coords:tolist(), inverse:tolist()
  for i = 1, NP, 9973 do
    local r = rows[inv[i] + 1]
    for a = 1, 3 do assert(r[a + 1] == math.floor(p[i][a]), ("sparse_ops: %s check failed at point %d"):format(what, i)) end
  end
  return inv
end

cases[#cases + 1] = {name = "voxelize_mean_1M", target = {ms = 15}, prepare = function()
  local out = ops.voxelize(points, point_feats)
  local M = #out
  return {
    run = function() return ops.voxelize(points, point_feats) end,
    -- points and features read, the voxels' rows and features written
    bytes = NP * (12 + PC * 4) + M * (16 + PC * 4),
    fields = {points = NP, voxels = M, channels = PC, reduction = "mean"},
    check = function(res)
      local _, inverse = ops.sparse_quantize(points, {return_inverse = true})
      local inv = check_voxels(res.coords, inverse, "voxelize")
      local col, sum, count = lattice.slice(point_feats, 2, 2, 2):reshape({NP}):tolist(), {}, {}
      for i = 1, NP do
        local v = inv[i] + 1
        if v % 997 == 1 then sum[v], count[v] = (sum[v] or 0) + col[i], (count[v] or 0) + 1 end
      end
      local got = lattice.slice(res.feats, 2, 2, 2):reshape({M}):tolist()
      for v, s in pairs(sum) do close(got[v], s / count[v], "voxelize") end
    end,
  }
end}

cases[#cases + 1] = {name = "sparse_quantize_1M", prepare = function()
  local c0 = ops.sparse_quantize(points)
  local M = c0.shape[1]
  return {
    run = function() return ops.sparse_quantize(points, {return_inverse = true}) end,
    bytes = NP * (12 + 4) + M * 16, -- points read, voxel rows and the inverse written
    fields = {points = NP, voxels = M},
    check = function(res)
      local _, inverse = ops.sparse_quantize(points, {return_inverse = true})
      check_voxels(res, inverse, "sparse_quantize")
    end,
  }
end}

-- The result's tensors go back to the context's cache after each call, so
-- every timed call reuses warm pages, as a training loop does: a relation's
-- five, not only the one a case reads (left to the collector, the others
-- come back late: ~470 page faults a kNN call, 20 calls counted).
local function release(out)
  if lattice.is_tensor(out) then
    out:close()
  elseif out.feats then
    out.feats:close()
  else
    for _, t in pairs(out) do
      if lattice.is_tensor(t) then t:close() end
    end
  end
end

local only = arg and arg[3]
for _, case in ipairs(cases) do
  if only and not case.name:find(only) then goto next end
  local c = case.prepare()
  c.check(c.run())
  c.check = nil
  collectgarbage()
  collectgarbage()
  release(c.run())
  local op_times, cp_times, ratios = {}, {}, {}
  for i = 1, SAMPLES do
    local t0 = lattice.now()
    local out = c.run()
    op_times[i] = lattice.now() - t0
    release(out)
    cp_times[i] = core.bench_memcpy(c.bytes // 2, 1)
    ratios[i] = cp_times[i] / op_times[i]
  end
  local t_op, t_cp = median(op_times), median(cp_times)
  local fields = {bench = "sparse_ops", case = case.name, bytes = c.bytes, ms = t_op * 1e3,
    gbps = c.bytes / t_op * 1e-9, memcpy_gbps = c.bytes / t_cp * 1e-9, ratio = median(ratios)}
  local target = case.target
  if target then
    fields.target_ratio, fields.target_ms = target.ratio, target.ms
    if target.ratio then fields.met = fields.ratio >= target.ratio else fields.met = fields.ms < target.ms end
  end
  for k, v in pairs(c.fields) do fields[k] = v end
  common.report(fields)
  ::next::
end
