-- Points and voxels (lattice.ops.sparse_quantize, voxelize, devoxelize)
-- against a plain Lua reference: u = (p − origin) / voxel_size rounded to
-- float32 step by step as the C core computes it (a double operation on two
-- float32 values rounded once to float32 is the float32 operation), voxels
-- listed as first met, features reduced or interpolated with plain loops.
local lattice = require "lattice"
local gradcheck = require "support.gradcheck"
local ref = require "support.reference"

local ops = lattice.ops
local generator, assert_close, weighted, f32 = ref.generator, ref.assert_close, ref.weighted, ref.f32

local function key(r) return table.concat(r, ",") end

-- float32 points (N, 3) in [-scale, scale) and their values as Lua numbers.
local function random_points(gen, n, scale)
  local rows = {}
  for i = 1, n do rows[i] = { f32(gen() * scale), f32(gen() * scale), f32(gen() * scale) } end
  return lattice.array(n > 0 and rows or lattice.zeros({ 0, 3 }), "float32"), rows
end

local function random_rows(gen, n, c)
  local rows = {}
  for i = 1, n do
    rows[i] = {}
    for j = 1, c do rows[i][j] = f32(gen()) end
  end
  return rows
end

-- f() run with t threads for each t of counts: its results by t (the
-- caller's thread count restored after, on an error too).
local function per_thread_count(counts, f)
  local saved, got = lattice.num_threads(), {}
  local ok, err = pcall(function()
    for _, t in ipairs(counts) do
      lattice.set_num_threads(t)
      got[t] = f()
    end
  end)
  lattice.set_num_threads(saved)
  if not ok then error(err, 0) end
  return got
end

local function u_of(p, size, origin, a) return f32(f32(p[a] - f32(origin[a])) / f32(size[a])) end

-- The voxels of the points: rows (M) of {b, x, y, z}, first points, inverse (0-based).
local function quantize_ref(pts, size, origin, batch)
  local index, rows, first, inverse = {}, {}, {}, {}
  for i, p in ipairs(pts) do
    local r = { batch and batch[i] or 0 }
    for a = 1, 3 do r[a + 1] = math.floor(u_of(p, size, origin, a)) end
    local k = key(r)
    if not index[k] then
      rows[#rows + 1], first[#rows + 1], index[k] = r, i - 1, #rows + 1
    end
    inverse[i] = index[k] - 1
  end
  return rows, first, inverse
end

local function voxelize_ref(pts, feats, size, origin, reduction, batch)
  local rows, _, inverse = quantize_ref(pts, size, origin, batch)
  local out, count = {}, {}
  for v = 1, #rows do out[v], count[v] = {}, 0 end
  for i, f in ipairs(feats) do
    local v = inverse[i] + 1
    count[v] = count[v] + 1
    for c, x in ipairs(f) do
      local y = out[v][c]
      if reduction == "max" then out[v][c] = (y == nil or x > y) and x or y else out[v][c] = (y or 0) + x end
    end
  end
  if reduction == "mean" then
    for v = 1, #rows do
      for c = 1, #out[v] do out[v][c] = out[v][c] / count[v] end
    end
  end
  return rows, out
end

local function devoxelize_ref(pts, rows, feats, size, origin, mode, renormalize)
  local index = {}
  for v, r in ipairs(rows) do index[key(r)] = v end
  local c, out = #feats[1], {}
  for i, p in ipairs(pts) do
    local u, base, f = {}, {}, {}
    for a = 1, 3 do
      u[a] = u_of(p, size, origin, a)
      base[a] = math.floor(mode == "nearest" and f32(u[a] + 0.5) or u[a])
      f[a] = f32(u[a] - base[a])
    end
    local acc, total = {}, 0
    for ch = 1, c do acc[ch] = 0 end
    for k = 0, mode == "nearest" and 0 or 7 do
      local bit = { k & 1, k >> 1 & 1, k >> 2 & 1 }
      local v = index[key({ 0, base[1] + bit[1], base[2] + bit[2], base[3] + bit[3] })]
      local w = 1
      if mode ~= "nearest" then
        for a = 1, 3 do w = w * (bit[a] == 1 and f[a] or 1 - f[a]) end
      end
      if v then
        total = total + w
        for ch = 1, c do acc[ch] = acc[ch] + w * feats[v][ch] end
      end
    end
    for ch = 1, c do acc[ch] = renormalize and (total > 0 and acc[ch] / total or 0) or acc[ch] end
    out[i] = acc
  end
  return out
end

describe("sparse_quantize", function()
  it("lists the distinct voxels first seen first, with each voxel's first point and each point's voxel", function()
    local gen = generator(7)
    local size, origin = { 0.25, 0.5, 0.3 }, { -0.1, 0.2, 0 }
    local pts, rows = random_points(gen, 300, 1.5)
    local batch = {}
    for i = 1, 300 do batch[i] = (i * 7) % 3 end
    local coords, index, inverse = ops.sparse_quantize(pts, { voxel_size = size, origin = origin,
      batch = lattice.array(batch, "int32"), return_index = true, return_inverse = true })
    local want, first, inv = quantize_ref(rows, size, origin, batch)
    assert.are.same(want, coords:tolist())
    assert.are.same(first, index:tolist())
    assert.are.same(inv, inverse:tolist())
    assert.are.equal("int32", coords.dtype)
  end)

  it("puts points on voxel borders in the voxel above, below zero too", function()
    local pts = lattice.array({ { 1.0, -0.5, 0 }, { 0.999, -0.501, -1e-7 }, { -1, 0.5, 2.5 } }, "float32")
    local coords, inverse = ops.sparse_quantize(pts, { voxel_size = 0.5, return_inverse = true })
    assert.are.same({ { 0, 2, -1, 0 }, { 0, 1, -2, -1 }, { 0, -2, 1, 5 } }, coords:tolist())
    assert.are.same({ 0, 1, 2 }, inverse:tolist())
  end)

  it("gives the same result on the parallel path as the reference, for any thread count", function()
    local gen = generator(11)
    local pts, rows = random_points(gen, 40000, 20)
    local got = per_thread_count({ 1, 2 },
      function() return { ops.sparse_quantize(pts, { voxel_size = 0.5, return_inverse = true }) } end)
    local c1, i1, c2, i2 = got[1][1], got[1][2], got[2][1], got[2][2]
    local want, _, inv = quantize_ref(rows, { 0.5, 0.5, 0.5 }, { 0, 0, 0 })
    assert.are.same(want, c1:tolist())
    assert.are.same(inv, i1:tolist())
    assert.are.same(c1:tolist(), c2:tolist())
    assert.are.same(i1:tolist(), i2:tolist())
  end)

  it("cuts more than 131,072 points into several parts, the same for any thread count", function()
    local gen = generator(23)
    local pts, rows = random_points(gen, 140000, 30) -- two parts, eight chunks
    local batch = {}
    for i = 1, 140000 do batch[i] = i % 2 end
    local opts = { voxel_size = { 0.5, 0.75, 0.5 }, origin = { 0.1, 0, -0.2 }, batch = lattice.array(batch, "int32"),
      return_index = true, return_inverse = true }
    local got = per_thread_count({ 1, 2 }, function() return { ops.sparse_quantize(pts, opts) } end)
    local want, first, inv = quantize_ref(rows, opts.voxel_size, opts.origin, batch)
    for _, n in ipairs { 1, 2 } do
      assert.are.same(want, got[n][1]:tolist())
      assert.are.same(first, got[n][2]:tolist())
      assert.are.same(inv, got[n][3]:tolist())
    end
  end)

  -- Each point's voxel is read back per chunk by replaying the parts'
  -- cursors: with two parts of uneven loads (half the points in three
  -- voxels) and eight chunks, every chunk's cursors start where the chunk
  -- before left them.
  it("gives every point its voxel over two uneven parts and eight chunks, the same for any thread count", function()
    local gen = generator(31)
    local n, rows = 140000, {}
    for i = 1, n do
      if i % 2 == 0 then
        local v = i % 3
        rows[i] = { f32(v + 0.5), f32(-v - 0.25), f32(0.75) }
      else
        rows[i] = { f32(gen() * 40), f32(gen() * 40), f32(gen() * 40) }
      end
    end
    local pts = lattice.array(rows, "float32")
    local got = per_thread_count({ 1, 3 },
      function() return { ops.sparse_quantize(pts, { return_index = true, return_inverse = true }) } end)
    local want, first, inv = quantize_ref(rows, { 1, 1, 1 }, { 0, 0, 0 })
    -- the first difference, if any (a failure then prints two numbers, not two tables of 140,000)
    local function show(x) return type(x) == "table" and key(x) or tostring(x) end
    local function differ(a, b)
      for i = 1, math.max(#a, #b) do
        if show(a[i]) ~= show(b[i]) then return { i, show(a[i]), show(b[i]) } end
      end
    end
    for _, t in ipairs { 1, 3 } do
      assert.is_nil(differ(want, got[t][1]:tolist()))
      assert.is_nil(differ(first, got[t][2]:tolist()))
      assert.is_nil(differ(inv, got[t][3]:tolist()))
    end
  end)

  -- Past 64 × 65,536 points a chunk ranks its first points a window of
  -- 65,536 at a time. Too many points for the Lua reference: the outputs are
  -- checked for what defines them, with tensor ops (each point's voxel holds
  -- its cell, the first points ascend, each voxel's first point is its own
  -- and no point comes before its voxel's first).
  it("lists the voxels of 4.3M points as first met, the same for any thread count", function()
    local n = 4300000
    lattice.random.seed(41)
    local pts = lattice.random.uniform(0, 64, { n, 3 }, { dtype = "float32" })
    local got = per_thread_count({ 1, 2 },
      function() return { ops.sparse_quantize(pts, { return_index = true, return_inverse = true }) } end)
    local coords, index, inverse = table.unpack(got[1])
    local m = coords.shape[1]
    local function all(t) return lattice.sum(t:astype("int32")):item() == t.shape[1] end
    local cells = lattice.floor_divide(pts, 1):astype("int32")
    local theirs = lattice.slice(lattice.take(coords, inverse, 1), 2, 2, 4)
    assert.is_true(lattice.sum(lattice.not_equal(theirs, cells):astype("int32")):item() == 0)
    assert.is_true(all(lattice.less(lattice.slice(index, 1, 1, m - 1), lattice.slice(index, 1, 2, m))))
    assert.is_true(all(lattice.equal(lattice.take(inverse, index, 1), lattice.arange(m, "int32"))))
    assert.is_true(all(lattice.less_equal(lattice.take(index, inverse, 1), lattice.arange(n, "int32"))))
    for j = 1, 3 do
      assert.is_true(all(lattice.equal(got[1][j]:reshape({ -1 }), got[2][j]:reshape({ -1 }))))
    end
  end)

  it("takes an empty point set", function()
    local coords, index, inverse = ops.sparse_quantize(lattice.zeros({ 0, 3 }), { return_index = true,
      return_inverse = true })
    assert.are.same({ 0, 4 }, coords.shape)
    assert.are.same({ 0 }, index.shape)
    assert.are.same({ 0 }, inverse.shape)
  end)

  it("rejects bad input with messages naming the problem", function()
    local pts = lattice.zeros({ 2, 3 })
    local function err(p, o) return select(2, pcall(ops.sparse_quantize, p, o)) end
    assert.matches("sparse_quantize: points must have shape {N,3}, got {2,2}", err(lattice.zeros({ 2, 2 })), 1, true)
    assert.matches("sparse_quantize: points must be a float tensor, got int32", err(lattice.zeros({ 2, 3 }, "int32")),
      1, true)
    assert.matches("sparse_quantize: points must be a lattice.Tensor, got table", err({}), 1, true)
    assert.matches("sparse_quantize: voxel_size must be positive and finite, got 0 on x",
      err(pts, { voxel_size = { 0, 1, 1 } }), 1, true)
    assert.matches("sparse_quantize: voxel_size must be a number or a list of 3 numbers, got {1,2}",
      err(pts, { voxel_size = { 1, 2 } }), 1, true)
    assert.matches("sparse_quantize: origin must be finite, got inf on z",
      err(pts, { origin = { 0, 0, math.huge } }), 1, true)
    assert.matches("sparse_quantize: point 2 has a non-finite y",
      err(lattice.array({ { 0, 0, 0 }, { 0, 0 / 0, 0 } }, "float32")), 1, true)
    assert.matches("sparse_quantize: point 1 falls outside the int32 voxel lattice (x: 1e+10 voxels)",
      err(lattice.array({ { 1e10, 0, 0 } }, "float32")), 1, true)
    -- float64 points: a finite value past float32 is named as such, not as the inf it becomes
    assert.matches("sparse_quantize: point 2 has z = 1e+300, beyond float32 (points are taken as float32)",
      err(lattice.array({ { 0, 0, 0 }, { 0, 0, 1e300 } }, "float64")), 1, true)
    -- every digit of a cell just past int32 (-2^31 - 256 as float32; "%g" printed -2.14748e+09)
    assert.matches("sparse_quantize: point 1 falls outside the int32 voxel lattice (y: -2147483904 voxels)",
      err(lattice.array({ { 0, -2147483904, 0 } }, "float32")), 1, true)
    assert.matches("sparse_quantize: batch[2] is -1; batch indices are in 0..2147483647",
      err(pts, { batch = lattice.array({ 0, -1 }, "int32") }), 1, true)
    assert.matches("sparse_quantize: batch has shape {3}, expected {2} (one per point)",
      err(pts, { batch = lattice.array({ 0, 1, 2 }, "int32") }), 1, true)
    assert.matches("sparse_quantize: batch must be an integer tensor, got float32",
      err(pts, { batch = lattice.zeros({ 2 }) }), 1, true)
    assert.matches("sparse_quantize: unknown option 'size'", err(pts, { size = 1 }), 1, true)
  end)
end)

describe("the key digest of sparse_quantize and voxelize", function()
  -- lattice.core.sparse.digests_with_isa runs one ISA's digest kernel
  -- (lowered to what this CPU has; an ISA it lacks is pending) against the
  -- mix written out with Lua's integers (64-bit, wrapping, as the kernel's):
  -- integer arithmetic, so the bits match exactly.
  local core = require "lattice.core"
  local C1, C2, C3 = -7046029254386353131, -4417276706812531889, -2960836687051489901 -- the mix's constants as int64
  local function u32(v) return v & 0xffffffff end
  local function digest_ref(k)
    local a = (u32(k[2]) | u32(k[3]) << 32) * C1
    local b = (u32(k[4]) | u32(k[1]) << 32) * C2
    local h = a + (b << 31 | b >> 33)
    h = h ~ (h >> 32)
    h = h * C3
    return h ~ (h >> 32)
  end
  for _, isa in ipairs { "scalar", "avx2", "avx512" } do
    it(("gives the mix's bits with %s, every tail width included"):format(isa), function()
      local gen = generator(29)
      local keys = {}
      for i = 1, 203 do -- a tail for 4 and 8 lanes
        local big = i % 3 == 0 and 2 ^ 31 or 40 -- near zero, and over all of int32
        local function int() return math.floor(gen() * big) end
        keys[i] = { math.floor((gen() + 1) * 2), int(), int(), int() }
      end
      keys[#keys + 1] = { 2147483647, -2147483648, 2147483647, -2147483648 }
      keys[#keys + 1] = { 0, 0, 0, 0 }
      local got, used = core.sparse.digests_with_isa(lattice.array(keys, "int32"), isa)
      if used ~= isa then return pending(isa .. " is not available here") end
      local want = {}
      for i, k in ipairs(keys) do want[i] = digest_ref(k) end
      assert.are.same(want, got:tolist())
    end)
  end

  it("rejects keys that are not int32 (N, 4)", function()
    assert.has_error(function() core.sparse.digests_with_isa(lattice.zeros({ 3, 4 }), "scalar") end,
      "digests_with_isa: coords must be int32, got float32")
  end)
end)

describe("the cell kernel of sparse_quantize and voxelize", function()
  -- lattice.core.sparse.cells_with_isa runs one ISA's kernel (lowered to
  -- what this CPU has; an ISA it lacks is pending) against the plain floor of
  -- u_of: every step is an IEEE float32 operation, so the cells match exactly.
  local core = require "lattice.core"
  local function cells_ref(rows, size, origin)
    local out = {}
    for i, p in ipairs(rows) do
      out[i] = {}
      for a = 1, 3 do out[i][a] = math.floor(u_of(p, size, origin, a)) end
    end
    return out
  end
  -- random points, points on cell borders (k * size exactly), around zero
  -- and at the ends of int32; a count that leaves a tail for every width
  local function points(gen, size)
    local rows = select(2, random_points(gen, 1003, 40))
    for k = -20, 20 do rows[#rows + 1] = { f32(k * size[1]), f32(k * size[2]), f32(k * size[3]) } end
    for _, v in ipairs { 0, -0.0, 1e-7, -1e-7, 1e-30, -1e-30 } do rows[#rows + 1] = { v, -v, v } end
    return rows
  end
  local grids = {
    { size = { 0.5, 0.5, 0.5 }, origin = { 0, 0, 0 } },            -- power of two: a product
    { size = { 0.3, 0.7, 1.1 }, origin = { -0.1, 0.25, 3 } },      -- quotients
    { size = { 0.25, 0.3, 2 }, origin = { 0.05, 0, -1.5 } },       -- mixed
  }
  for _, isa in ipairs { "scalar", "avx2", "avx512" } do
    it(("gives the plain floor's cells with %s, borders and tails included"):format(isa), function()
      local gen = generator(17)
      for _, g in ipairs(grids) do
        local rows = points(gen, g.size)
        local cells, good, used = core.sparse.cells_with_isa(lattice.array(rows, "float32"), g.size, g.origin, isa)
        if used ~= isa then return pending(isa .. " is not available here") end
        assert.are.equal(#rows, good)
        assert.are.same(cells_ref(rows, g.size, g.origin), cells:tolist())
      end
    end)

    it(("stops at the first point without a cell with %s"):format(isa), function()
      local one = { size = { 1, 1, 1 }, origin = { 0, 0, 0 } }
      -- -2^31 is a cell, 2^31 is not; 2147483520 is the float32 below 2^31
      local edge = { { -2147483648, 2147483520, 0 } }
      local c, good, used = core.sparse.cells_with_isa(lattice.array(edge, "float32"), one.size, one.origin, isa)
      if used ~= isa then return pending(isa .. " is not available here") end
      assert.are.equal(1, good)
      assert.are.same({ { -2147483648, 2147483520, 0 } }, c:tolist())
      for _, bad in ipairs { { 2147483648, 0, 0 }, { 0, 0 / 0, 0 }, { 0, 0, -math.huge }, { 0, -3e9, 0 } } do
        for _, at in ipairs { 1, 5, 37, 40 } do
          local rows = select(2, random_points(generator(at), 40, 5))
          rows[at] = bad
          local cells, good2 = core.sparse.cells_with_isa(lattice.array(rows, "float32"), one.size, one.origin, isa)
          assert.are.equal(at - 1, good2)
          local want = cells_ref({ table.unpack(rows, 1, at - 1) }, one.size, one.origin)
          assert.are.same(want, { table.unpack(cells:tolist(), 1, at - 1) })
        end
      end
    end)
  end
end)

describe("voxelize", function()
  local gen = generator(3)
  local size, origin = { 0.4, 0.4, 0.6 }, { 0.1, -0.3, 0.05 }
  local pts, prow = random_points(gen, 200, 1)
  local frows = random_rows(gen, 200, 3)
  local feats = lattice.array(frows, "float32")

  for _, reduction in ipairs { "mean", "sum", "max" } do
    it(("reduces each voxel's point features by their %s"):format(reduction), function()
      local x = ops.voxelize(pts, feats, { voxel_size = size, origin = origin, reduction = reduction })
      local rows, want = voxelize_ref(prow, frows, size, origin, reduction)
      assert.are.same(rows, x.coords:tolist())
      assert_close(x.feats:tolist(), want, 1e-6) -- float32 sums of a few values of |v| < 1
      assert.are.same({ 1, 1, 1 }, x.stride)
      assert.are.same({ #rows }, x.batch_counts)
    end)
  end

  it("keeps batches apart and counts their voxels", function()
    local p = lattice.array({ { 0.1, 0, 0 }, { 0.2, 0, 0 }, { 0.3, 0, 0 } }, "float32")
    local f = lattice.array({ { 1 }, { 2 }, { 4 } }, "float32")
    local x = ops.voxelize(p, f, { batch = lattice.array({ 2, 0, 2 }, "int32"), reduction = "sum" })
    assert.are.same({ { 2, 0, 0, 0 }, { 0, 0, 0, 0 } }, x.coords:tolist())
    assert.are.same({ { 5 }, { 2 } }, x.feats:tolist())
    assert.are.same({ 1, 0, 1 }, x.batch_counts)
    local y = ops.voxelize(p, f, { batch = 1 })
    assert.are.same({ { 1, 0, 0, 0 } }, y.coords:tolist())
    assert.are.same({ 0, 1 }, y.batch_counts)
  end)

  it("sends the max's gradient to the first point holding it", function()
    local p = lattice.array({ { 0, 0, 0 }, { 0.5, 0, 0 }, { 0.2, 0, 0 } }, "float32")
    local g = lattice.grad(function(f) return lattice.sum(ops.voxelize(p, f, { reduction = "max" }).feats) end)(
      lattice.array({ { 1, 3 }, { 2, 3 }, { 2, 0 } }, "float32"))
    assert.are.same({ { 0, 1 }, { 1, 0 }, { 0, 0 } }, g:tolist())
  end)

  it("matches the reference on the parallel path, for any thread count", function()
    local g2 = generator(5)
    local p, rows = random_points(g2, 40000, 10)
    local fr = random_rows(g2, 40000, 2)
    local f = lattice.array(fr, "float32")
    local got = per_thread_count({ 1, 2 }, function() return ops.voxelize(p, f, { voxel_size = 0.7 }) end)
    local a, b = got[1], got[2]
    local crow, want = voxelize_ref(rows, fr, { 0.7, 0.7, 0.7 }, { 0, 0, 0 }, "mean")
    assert.are.same(crow, a.coords:tolist())
    assert_close(a.feats:tolist(), want, 1e-6)
    assert.are.same(a.feats:tolist(), b.feats:tolist())
  end)

  -- Four float32 channels summed (sum, mean) have a loop of their own in the
  -- build; the other widths, dtypes and max take the general one.
  for _, width in ipairs { 4, 8 } do
    for _, dt in ipairs { "float32", "float64" } do
      it(("reduces %d %s channels by sum, mean and max"):format(width, dt), function()
        local fr = random_rows(gen, 200, width)
        for _, reduction in ipairs { "sum", "mean", "max" } do
          local x = ops.voxelize(pts, lattice.array(fr, dt), { voxel_size = size, origin = origin, reduction = reduction })
          local rows, want = voxelize_ref(prow, fr, size, origin, reduction)
          assert.are.same(rows, x.coords:tolist())
          assert_close(x.feats:tolist(), want, dt == "float64" and 1e-12 or 1e-6)
        end
      end)
    end
  end

  it("reduces more than 131,072 points in several parts, the same for any thread count", function()
    local g2 = generator(29)
    local p, rows = random_points(g2, 140000, 25)
    local fr = random_rows(g2, 140000, 4) -- four channels: the float32 mean's own loop
    local f = lattice.array(fr, "float32")
    for _, reduction in ipairs { "mean", "max" } do
      local out = per_thread_count({ 1, 2 },
        function() return ops.voxelize(p, f, { voxel_size = 0.5, reduction = reduction }) end)
      local crow, want = voxelize_ref(rows, fr, { 0.5, 0.5, 0.5 }, { 0, 0, 0 }, reduction)
      assert.are.same(crow, out[1].coords:tolist())
      assert_close(out[1].feats:tolist(), want, 1e-6)
      assert.are.same(out[1].feats:tolist(), out[2].feats:tolist())
    end
  end)

  -- Each point's voxel and max's points are kept only when the tape records
  -- (for the backward): recorded or not, the voxels and features are the
  -- same, and the gradient of sum(y) over several parts is the definition's:
  -- mean 1 / n_v (a float32 quotient), max 1 at the first point holding the
  -- maximum, else 0.
  it("gives the same features with and without the tape, and the definition's gradient over several parts", function()
    local g2 = generator(37)
    local p, rows = random_points(g2, 70000, 25)
    local fr = random_rows(g2, 70000, 2)
    local f = lattice.array(fr, "float32")
    local _, _, inv = quantize_ref(rows, { 0.5, 0.5, 0.5 }, { 0, 0, 0 })
    local count, best, first = {}, {}, {}
    for i, v in ipairs(inv) do
      count[v] = (count[v] or 0) + 1
      best[v], first[v] = best[v] or {}, first[v] or {}
      for c = 1, 2 do
        if best[v][c] == nil or fr[i][c] > best[v][c] then best[v][c], first[v][c] = fr[i][c], i end
      end
    end
    for _, reduction in ipairs { "mean", "max" } do
      local opts = { voxel_size = 0.5, reduction = reduction }
      local plain, taped = ops.voxelize(p, f, opts), nil
      local g = lattice.grad(function(x)
        taped = ops.voxelize(p, x, opts)
        return lattice.sum(taped.feats)
      end)(f)
      assert.are.same(plain.coords:tolist(), taped.coords:tolist())
      assert.are.same(plain.feats:tolist(), taped.feats:tolist())
      local want = {}
      for i, v in ipairs(inv) do
        want[i] = {}
        for c = 1, 2 do
          if reduction == "mean" then want[i][c] = f32(1 / count[v]) else want[i][c] = first[v][c] == i and 1 or 0 end
        end
      end
      assert.are.same(want, g:tolist())
    end
  end)

  it("keeps the features' dtype", function()
    for _, dt in ipairs { "float16", "bfloat16", "float64" } do
      local x = ops.voxelize(pts, feats:astype(dt), { voxel_size = size, origin = origin })
      assert.are.equal(dt, x.feats.dtype)
      local _, want = voxelize_ref(prow, lattice.astype(feats:astype(dt), "float64"):tolist(), size, origin, "mean")
      assert_close(x.feats:astype("float64"):tolist(), want, dt == "float64" and 1e-12 or 1e-2)
    end
  end)

  -- The map of voxelize's rows builds its hash on its first lookup: the
  -- lookups, the join and the sparse cache's bytes are those of a map whose
  -- hash was built at once.
  it("looks its voxels up and joins them as any map, its cached bytes counted once", function()
    local g2 = generator(31)
    local p, rows = random_points(g2, 3000, 4)
    local x = ops.voxelize(p, lattice.array(random_rows(g2, 3000, 1), "float32"), { voxel_size = 0.5 })
    local crow = quantize_ref(rows, { 0.5, 0.5, 0.5 }, { 0, 0, 0 })
    local before = lattice.memory_stats().sparse_cache
    local probe, want = {}, {}
    for i = 1, #crow, 7 do
      local r = crow[i]
      probe[#probe + 1], want[#want + 1] = r, i - 1
      probe[#probe + 1], want[#want + 1] = { r[1], r[2], r[3], r[4] + 1000 }, -1
    end
    assert.are.same(want, ops.coords_lookup(x, lattice.array(probe, "int32")):tolist())
    assert.are.equal(before, lattice.memory_stats().sparse_cache)
    local shifted = {}
    for i, r in ipairs(crow) do shifted[i] = { r[1], r[2] + 1, r[3], r[4] } end
    local in_both, seen = 0, {}
    for _, r in ipairs(crow) do seen[key(r)] = true end
    for _, r in ipairs(shifted) do in_both = in_both + (seen[key(r)] and 1 or 0) end
    local y = lattice.SparseTensor(lattice.array(shifted, "int32"), lattice.ones({ #crow, 1 }))
    assert.are.equal(2 * #crow - in_both, #ops.sparse_add(x, y))
  end)

  it("takes an empty point set", function()
    local x = ops.voxelize(lattice.zeros({ 0, 3 }), lattice.zeros({ 0, 5 }))
    assert.are.equal(0, #x)
    assert.are.same({ 0, 5 }, x.feats.shape)
    assert.are.same({ 0 }, x.batch_counts)
  end)

  it("takes point features of no channels, forward and backward, for every reduction", function()
    for _, reduction in ipairs { "mean", "sum", "max" } do
      local f = lattice.zeros({ 200, 0 })
      local x = ops.voxelize(pts, f, { voxel_size = size, origin = origin, reduction = reduction })
      local rows = voxelize_ref(prow, frows, size, origin, reduction)
      assert.are.same({ #rows, 0 }, x.feats.shape)
      local g = lattice.grad(function(v)
        return lattice.sum(ops.voxelize(pts, v, { voxel_size = size, origin = origin, reduction = reduction }).feats)
      end)(f)
      assert.are.same({ 200, 0 }, g.shape)
    end
  end)

  it("has the gradient of its definition", function()
    for _, reduction in ipairs { "mean", "sum", "max" } do
      gradcheck.each_dtype(function(f)
        return weighted(ops.voxelize(pts, f, { voxel_size = size, origin = origin, reduction = reduction }).feats)
      end, { feats })
    end
  end)

  it("rejects bad input with messages naming the problem", function()
    local function err(...) return select(2, pcall(ops.voxelize, ...)) end
    assert.matches("voxelize: point_feats must have shape {200,C} (one row per point), got {3,3}",
      err(pts, lattice.zeros({ 3, 3 })), 1, true)
    assert.matches("voxelize: point_feats must be a float tensor, got int32", err(pts, lattice.zeros({ 200, 1 },
      "int32")), 1, true)
    assert.matches("voxelize: point_feats must be a lattice.Tensor, got nil", err(pts), 1, true)
    assert.matches("voxelize: reduction must be 'max', 'mean', 'sum', got median",
      err(pts, feats, { reduction = "median" }), 1, true)
    assert.matches("voxelize: batch must be in 0..2147483647, got -1", err(pts, feats, { batch = -1 }), 1, true)
    -- batch_counts would list 2^31 batches: refused before any memory is asked for
    assert.matches("voxelize: batch index 2147483647 would make batch_counts 2147483648 long, more than the " ..
      "points and than 1048576: number the batches from 0", err(pts, feats, { batch = 2147483647 }), 1, true)
    local many = lattice.full({ 200 }, 1048575, "int32") -- 2^20 batches: allowed
    local v = ops.voxelize(pts, feats, { batch = many })
    assert.are.same({ 1048576, #v }, { #v.batch_counts, v.batch_counts[1048576] })
    assert.matches("voxelize: voxel_size must be positive and finite, got -1 on y",
      err(pts, feats, { voxel_size = { 1, -1, 1 } }), 1, true)
    -- finite and positive as given, but not as the float32 the grid is computed in
    assert.matches("voxelize: voxel_size is 1e-50 on z, which float32 reads as 0 (the grid is taken as float32)",
      err(pts, feats, { voxel_size = { 1, 1, 1e-50 } }), 1, true)
    assert.matches("voxelize: origin is -1e+39 on x, which float32 reads as -inf (the grid is taken as float32)",
      err(pts, feats, { origin = { -1e39, 0, 0 } }), 1, true)
  end)
end)

describe("devoxelize", function()
  -- voxels (0, 0..1, 0..1, 0) with features 1, 2, 3, 4 and (0, 5, 5, 5)
  local vrows = { { 0, 0, 0, 0 }, { 0, 1, 0, 0 }, { 0, 0, 1, 0 }, { 0, 1, 1, 0 }, { 0, 5, 5, 5 } }
  local vfeats = { { 1, 10 }, { 2, 20 }, { 3, 30 }, { 4, 40 }, { 5, 50 } }
  local voxels = lattice.SparseTensor(lattice.array(vrows, "int32"), lattice.array(vfeats, "float32"))

  it("interpolates hand-computed values", function()
    local p = lattice.array({ { 0.25, 0.5, 0 }, { 5.4, 5.6, 4.5 }, { 0.5, 0.5, 0.5 } }, "float32")
    -- point 1: x weights 3/4, 1/4; y 1/2, 1/2; z at the lattice: 0.5 (3/4 1 + 1/4 2) + 0.5 (3/4 3 + 1/4 4) = 2.25
    -- point 2: nearest (5, 6, 5) is absent; trilinear has (5, 5, 4..5) and friends absent but (5, 5, 5):
    --   weight 0.6 * 0.4 * 0.5 = 0.12
    -- point 3: every corner with z = 1 is absent, the z = 0 ones carry half
    local tri = ops.devoxelize(p, voxels)
    assert_close(tri:tolist(), { { 2.25, 22.5 }, { 0.12 * 5, 0.12 * 50 }, { 1.25, 12.5 } }, 1e-6)
    local ren = ops.devoxelize(p, voxels, { renormalize = true })
    assert_close(ren:tolist(), { { 2.25, 22.5 }, { 5, 50 }, { 2.5, 25 } }, 1e-6)
    local near = ops.devoxelize(p, voxels, { mode = "nearest" })
    assert.are.same({ { 3, 30 }, { 0, 0 }, { 0, 0 } }, near:tolist()) -- floor(u + 0.5): (0, 1, 0); (5, 6, 5); (1, 1, 1)
  end)

  it("matches the reference on random points, negative coordinates included", function()
    local gen = generator(17)
    local size, origin = { 0.3, 0.3, 0.5 }, { -0.2, 0, 0.1 }
    local pts, prow = random_points(gen, 400, 1)
    local frows = random_rows(gen, 400, 2)
    local x = ops.voxelize(pts, lattice.array(frows, "float32"), { voxel_size = size, origin = origin })
    local q, qrow = random_points(gen, 300, 1.2)
    local rows, feats = x.coords:tolist(), x.feats:tolist()
    for _, mode in ipairs { "nearest", "trilinear" } do
      for _, renorm in ipairs { false, true } do
        local got = ops.devoxelize(q, x, { voxel_size = size, origin = origin, mode = mode, renormalize = renorm })
        assert_close(got:tolist(), devoxelize_ref(qrow, rows, feats, size, origin, mode, renorm), 1e-6)
      end
    end
    assert(#prow > 0)
  end)

  it("keeps batches apart", function()
    local p = lattice.array({ { 0, 0, 0 }, { 0, 0, 0 } }, "float32")
    local x = lattice.SparseTensor(lattice.array({ { 1, 0, 0, 0 } }, "int32"), lattice.array({ { 7 } }, "float32"))
    assert.are.same({ { 0 }, { 7 } }, ops.devoxelize(p, x, { batch = lattice.array({ 0, 1 }, "int32") }):tolist())
  end)

  it("takes an empty point set", function()
    assert.are.same({ 0, 2 }, ops.devoxelize(lattice.zeros({ 0, 3 }), voxels).shape)
  end)

  -- Voxels at stride 2 index a grid twice as coarse: the points' own grid
  -- is voxel_size 1, the pooled voxels' is 2.
  it("reads voxels at any stride as cells of the grid it is given", function()
    local p = lattice.array({ { 0.1, 0.1, 0.1 }, { 1.2, 0.3, 0.2 }, { 3.7, 0.2, 0.3 } }, "float32")
    local pooled = ops.max_pool3d(ops.voxelize(p, lattice.array({ { 1 }, { 2 }, { 4 } }, "float32")),
      { kernel_size = 2, stride = 2 })
    assert.are.same({ { 0, 0, 0, 0 }, { 0, 1, 0, 0 } }, pooled.coords:tolist()) -- (0..1) -> 0 holds 2, (3) -> 1 holds 4
    local q = lattice.array({ { 0.2, 0.2, 0.2 }, { 2.4, 0.6, 0.6 } }, "float32")
    -- u = (0.1, 0.1, 0.1) and (1.2, 0.3, 0.3): floor(u + 0.5) = (0, 0, 0) and (1, 0, 0)
    assert.are.same({ { 2 }, { 4 } }, ops.devoxelize(q, pooled, { voxel_size = 2, mode = "nearest" }):tolist())
  end)

  it("has the gradient of its definition", function()
    local gen = generator(23)
    local pts = random_points(gen, 60, 1.5)
    local f = lattice.array(vfeats, "float32")
    for _, mode in ipairs { "nearest", "trilinear" } do
      for _, renorm in ipairs { false, true } do
        gradcheck.each_dtype(function(v)
          return weighted(ops.devoxelize(pts, voxels:with_feats(v), { mode = mode, renormalize = renorm }))
        end, { f })
      end
    end
  end)

  it("rejects bad input with messages naming the problem", function()
    local p = lattice.zeros({ 2, 3 })
    local function err(...) return select(2, pcall(ops.devoxelize, ...)) end
    assert.matches("devoxelize: voxels must be a SparseTensor, got lattice.Tensor", err(p, p), 1, true)
    assert.matches("devoxelize: mode must be 'nearest', 'trilinear', got linear", err(p, voxels, { mode = "linear" }),
      1, true)
    assert.matches("devoxelize: renormalize must be a boolean, got number", err(p, voxels, { renormalize = 1 }), 1, true)
    assert.matches("devoxelize: point 1 has a non-finite x (inf)",
      err(lattice.array({ { math.huge, 0, 0 } }, "float32"), voxels), 1, true)
    assert.matches("devoxelize: point 2 has x = -4e+38, beyond float32 (points are taken as float32)",
      err(lattice.array({ { 0, 0, 0 }, { -4e38, 0, 0 } }, "float64"), voxels), 1, true)
    assert.matches("devoxelize: points must have shape {N,3}, got {2}", err(lattice.zeros({ 2 }), voxels), 1, true)
  end)
end)
