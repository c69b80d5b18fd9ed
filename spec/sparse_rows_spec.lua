-- Row and support operations (lattice.ops.prune .. replace_feature,
-- sparse_collate) and the ordering and occupancy helpers (morton_*,
-- occupancy_*, child_coords_from_indices) against plain Lua references.
local lattice = require "lattice"
local ref = require "support.reference"
local sr = require "support.sparse_random"

local ops = lattice.ops
local generator = ref.generator
local key = sr.key

describe("prune and prune_mask", function()
  local gen = generator(71)
  local rows = sr.support(gen, { n = 20, batches = 3, lo = -3, hi = 3 })
  local vals = sr.values(gen, #rows, 2)
  local x = sr.tensor(rows, vals, "float32", 3)

  it("keep the listed rows in the order listed, features with them", function()
    local pick = { 7, 0, 19, 3 }
    for _, sel in ipairs({ pick, lattice.array(pick, "int32"), lattice.array(pick, "int64") }) do
      local y = ops.prune(x, sel)
      local want_rows, want_vals = {}, {}
      for j, i in ipairs(pick) do want_rows[j], want_vals[j] = rows[i + 1], vals[i + 1] end
      assert.are.same(want_rows, y.coords:tolist())
      assert.are.same(lattice.array(want_vals):tolist(), y.feats:tolist())
      assert.are.same(sr.counts(want_rows, 3), y.batch_counts) -- every batch kept in the counts
    end
  end)

  it("keep the rows of a bool mask in order", function()
    local mask, want = {}, {}
    for i = 1, #rows do
      mask[i] = i % 3 ~= 0
      if mask[i] then want[#want + 1] = rows[i] end
    end
    assert.are.same(want, ops.prune_mask(x, lattice.array(mask, "bool")).coords:tolist())
    assert.are.same(want, ops.prune(x, lattice.array(mask, "bool")).coords:tolist())
    local none = ops.prune_mask(x, lattice.zeros({ #rows }, "bool"))
    assert.are.same({ 0, 4 }, none.coords.shape)
    assert.are.same({ 0, 0, 0 }, none.batch_counts)
  end)

  it("keep the identity when every row stays in place, and pass gradients to the kept rows", function()
    local all = {}
    for i = 1, #rows do all[i] = i - 1 end
    assert(ops.prune(x, all).coordinate_map_key == x.coordinate_map_key)
    local g = lattice.grad(function(f) return lattice.sum(ops.prune(x:with_feats(f), { 2, 5 }).feats) end)(x.feats)
    local want = {}
    for i = 1, #rows do want[i] = (i == 3 or i == 6) and { 1, 1 } or { 0, 0 } end
    assert.are.same(want, g:tolist())
  end)

  it("reject bad rows and masks with their messages", function()
    local cases = {
      { function() ops.prune(x, { 1, 20 }) end, "prune: row index 20 (entry 2) is out of range for 20 rows" },
      { function() ops.prune(x, { -1 }) end, "prune: row index -1 (entry 1) is out of range for 20 rows" },
      { function() ops.prune(x, { 4, 2, 4 }) end, "prune: row index 4 is selected twice (entries 1 and 3)" },
      { function() ops.prune(x, { 1.5 }) end, "prune: rows[1] must be an integer, got 1.5" },
      { function() ops.prune(x, { 1, nil, 2 }) end, "prune: rows[2] must be an integer, got nil" },
      { function() ops.prune(x, lattice.ones({ 2 })) end, "prune: rows must be an integer tensor, got float32" },
      { function() ops.prune(x, lattice.zeros({ 2, 2 }, "int32")) end, "prune: rows must have shape {M}, got {2,2}" },
      { function() ops.prune(x, "all") end, "prune: rows must be a lattice.Tensor or a list, got string" },
      { function() ops.prune(x.feats, { 0 }) end, "prune: x must be a SparseTensor, got lattice.Tensor" },
      { function() ops.prune_mask(x, lattice.ones({ #rows }, "int32")) end,
        "prune_mask: mask must be a bool tensor, got int32" },
      { function() ops.prune_mask(x, lattice.ones({ 3 }, "bool")) end, "prune_mask: mask has shape {3}, x has 20 rows" },
      { function() ops.prune_mask(x, { true }) end, "prune_mask: mask must be a bool lattice.Tensor, got table" },
    }
    for _, c in ipairs(cases) do assert.has_error(c[1], c[2]) end
  end)
end)

describe("row operation errors", function()
  it("are raised at the caller's line", function()
    local x = sr.tensor({ { 0, 0, 0, 0 }, { 0, 1, 0, 0 } }, { { 1 }, { 2 } })
    sr.assert_raised_here({
      function() ops.prune(x, { 0, 0 }) end,
      function() ops.prune(x, { 0.5 }) end,
      function() ops.crop(x, { min_coord = { 1, 0, 0 }, max_coord = { 0, 0, 0 } }) end,
      function() ops.topk_rows(x, { 1 }) end,
      function() ops.sparse_collate({ { { 0, 0, 0 }, { 0, 0, 0 } } }, { lattice.ones({ 2, 1 }) }) end,
      function() ops.morton_codes({ { 0, 0, 2 ^ 21, 0 } }) end,
      function() ops.occupancy_expand({ { 0, 0, 0, 0 } }, { 256 }) end,
      function() ops.replace_feature(x, lattice.ones({ 3, 1 })) end,
    })
  end)
end)

describe("crop", function()
  local gen = generator(13)
  local rows = sr.support(gen, { n = 40, batches = 2, lo = -4, hi = 4 })
  local x = sr.tensor(rows, sr.values(gen, #rows, 1), "float32", 2)

  local function inside(lo, hi)
    local out = {}
    for _, r in ipairs(rows) do
      local ok = true
      for a = 1, 3 do ok = ok and r[a + 1] >= lo[a] and r[a + 1] <= hi[a] end
      if ok then out[#out + 1] = r end
    end
    return out
  end

  it("keeps the rows inside the inclusive box, every batch, in order", function()
    local y = ops.crop(x, { min_coord = { -2, -1, -4 }, max_coord = { 1, 3, 0 } })
    assert.are.same(inside({ -2, -1, -4 }, { 1, 3, 0 }), y.coords:tolist())
    assert.are.same(#inside({ -2, -1, -4 }, { 1, 3, 0 }), #y)
    assert.are.same(inside({ 0, -100, -100 }, { 100, 100, 100 }), ops.crop(x, { min_coord = { 0, -100, -100 } })
      .coords:tolist())
    assert.are.same(rows, ops.crop(x).coords:tolist())
    assert.are.same({ 0, 4 }, ops.crop(x, { min_coord = { 9, 9, 9 } }).coords.shape)
  end)

  it("rejects bad boxes with their messages", function()
    assert.has_error(function() ops.crop(x, { min_coord = { 2, 0, 0 }, max_coord = { 1, 5, 5 } }) end,
      "crop: min_coord x = 2 is above max_coord x = 1")
    assert.has_error(function() ops.crop(x, { min_coord = { 0, 0 } }) end,
      "crop: min_coord must be a list of 3 integers, got a list of 2")
    assert.has_error(function() ops.crop(x, { max_coord = 3 }) end, "crop: max_coord must be a list of 3 integers, got number")
    assert.has_error(function() ops.crop(x, { max_coord = { 1, 2, 2 ^ 40 } }) end,
      "crop: max_coord must be a list of 3 int32 integers")
  end)
end)

describe("topk_rows", function()
  local gen = generator(29)
  local rows = sr.support(gen, { n = 30, batches = 3, lo = -3, hi = 3 })
  local vals = sr.values(gen, #rows, 2)
  vals[4][1], vals[9][1] = 0.25, 0.25 -- a tie
  vals[11][1] = 0 / 0
  local x = sr.tensor(rows, vals, "float32", 3)

  local function topk_ref(counts, rho)
    local out = {}
    for b = 0, 2 do
      local cand = {}
      for i, r in ipairs(rows) do
        if r[1] == b then cand[#cand + 1] = { s = ref.f32(vals[i][1]), i = i - 1 } end
      end
      table.sort(cand, function(p, q)
        local pn, qn = p.s ~= p.s, q.s ~= q.s
        if pn ~= qn then return qn end
        if not pn and p.s ~= q.s then return p.s > q.s end
        return p.i < q.i
      end)
      for k = 1, math.min(math.floor(counts[b + 1] * rho), #cand) do out[#out + 1] = cand[k].i end
    end
    return out
  end

  it("takes each batch's highest first features, largest first, ties by row, NaN last", function()
    for _, c in ipairs({ { { 3, 2, 5 }, 1 }, { { 100, 0, 100 }, 1 }, { { 4, 4, 4 }, 0.5 } }) do
      assert.are.same(topk_ref(c[1], c[2]), ops.topk_rows(x, c[1], { rho = c[2] }):tolist())
    end
    local all = ops.topk_rows(x, { 100, 100, 100 }):tolist()
    assert.are.equal(#rows, #all)
  end)

  it("keeps every row of a batch whose count times rho is past any integer, none of a count of 0", function()
    local want = topk_ref({ 0, 100, 100 }, 1)
    assert.are.same(want, ops.topk_rows(x, { 0, 2, 3 }, { rho = math.huge }):tolist())
    assert.are.same(want, ops.topk_rows(x, { 0, 2, 3 }, { rho = 1e300 }):tolist())
    assert.are.same(want, ops.topk_rows(x, { 0, math.maxinteger, math.maxinteger }, { rho = 1.0 }):tolist())
  end)

  it("rejects bad arguments with their messages", function()
    local cases = {
      { function() ops.topk_rows(sr.tensor(rows, vals), { 1, 1, 1 }) end,
        "topk_rows: x has no batch_counts, which the per-batch selection needs" },
      { function() ops.topk_rows(x, { 1, 1 }) end, "topk_rows: counts must be a list of 3 integers (one per batch)" },
      { function() ops.topk_rows(x, { 1, -1, 1 }) end, "topk_rows: counts[2] must be a non-negative integer, got -1" },
      { function() ops.topk_rows(x, { 1, nil, 1 }) end, "topk_rows: counts[2] must be a non-negative integer, got nil" },
      { function() ops.topk_rows(x, { 1, 1, 1 }, { rho = 0 }) end, "topk_rows: rho must be a positive number, got 0" },
      { function() ops.topk_rows(x:with_feats(lattice.zeros({ #rows, 0 })), { 1, 1, 1 }) end,
        "topk_rows: features have shape {30,0}; the first channel scores the rows" },
    }
    for _, c in ipairs(cases) do assert.has_error(c[1], c[2]) end
  end)
end)

describe("sparse_collate and replace_feature", function()
  local gen = generator(37)

  it("batches scenes of (N, 3) coordinates with their counts", function()
    local c1, c2 = { { 0, 0, 0 }, { -1, 2, 3 } }, { { 5, 5, 5 } }
    local f1, f2 = lattice.array({ { 1, 2 }, { 3, 4 } }), lattice.array({ { 5, 6 } })
    local y = ops.sparse_collate({ c1, lattice.array(c2, "int32") }, { f1, f2 }, { stride = 2 })
    assert.are.same({ { 0, 0, 0, 0 }, { 0, -1, 2, 3 }, { 1, 5, 5, 5 } }, y.coords:tolist())
    assert.are.same({ { 1, 2 }, { 3, 4 }, { 5, 6 } }, y.feats:tolist())
    assert.are.same({ 2, 1 }, y.batch_counts)
    assert.are.same({ 2, 2, 2 }, y.stride)
  end)

  it("batches single-scene SparseTensors, whatever batch each holds", function()
    local r1 = sr.support(gen, { n = 6, batches = 1 })
    local r2 = { { 3, 1, 1, 1 }, { 3, 0, 0, 0 } }
    local s1, s2 = sr.tensor(r1, sr.values(gen, 6, 3)), sr.tensor(r2, sr.values(gen, 2, 3))
    local y = ops.sparse_collate({ s1, s2, s1 })
    local want = {}
    for b, rs in ipairs({ r1, r2, r1 }) do
      for _, r in ipairs(rs) do want[#want + 1] = { b - 1, r[2], r[3], r[4] } end
    end
    assert.are.same(want, y.coords:tolist())
    assert.are.same({ 6, 2, 6 }, y.batch_counts)
    assert.are.same(lattice.concatenate({ s1.feats, s2.feats, s1.feats }, 1):tolist(), y.feats:tolist())
    local g = lattice.grad(function(f) return lattice.sum(ops.sparse_collate({ s1:with_feats(f), s2 }).feats) end)(
      s1.feats)
    assert.are.same(lattice.ones({ 6, 3 }):tolist(), g:tolist())
  end)

  it("rejects bad scenes with their messages", function()
    local two = sr.tensor({ { 0, 0, 0, 0 }, { 1, 0, 0, 0 } }, { { 1 }, { 2 } })
    local one = sr.tensor({ { 0, 0, 0, 0 } }, { { 1 } })
    local s2 = lattice.SparseTensor(lattice.array({ { 0, 0, 0, 0 } }, "int32"), lattice.ones({ 1, 1 }), { stride = 2 })
    local cases = {
      { function() ops.sparse_collate({}) end, "sparse_collate: expected a non-empty list of scenes" },
      { function() ops.sparse_collate({ two }) end, "sparse_collate: scene 1 holds more than one batch" },
      { function() ops.sparse_collate({ one, s2 }) end, "sparse_collate: scene 2 has tensor stride {2,2,2}, scene 1 {1,1,1}" },
      { function() ops.sparse_collate({ one, nil, one }) end, "sparse_collate: scene 2 must be a SparseTensor, got nil" },
      { function() ops.sparse_collate({ one, sr.tensor({ { 0, 1, 1, 1 } }, { { 1, 2 } }) }) end,
        "sparse_collate: scene 2 has 2 channels, scene 1 has 1" },
      { function() ops.sparse_collate({ { { 0, 0, 0 } } }, {}) end,
        "sparse_collate: coords and feats must be lists of the same length" },
      { function() ops.sparse_collate({ { { 0, 0, 0, 0 } } }, { lattice.ones({ 1, 1 }) }) end,
        "sparse_collate: coords[1] must have shape {N,3}, got {1,4}" },
      { function() ops.sparse_collate({ { { 0, 0, 0 } } }, { lattice.ones({ 2, 1 }) }) end,
        "sparse_collate: feats[1] must be a tensor of 1 rows (N, C)" },
      { function() ops.sparse_collate({ { { 0, 0, 0 }, { 0, 0, 0 } } }, { lattice.ones({ 2, 1 }) }) end,
        "SparseTensor: rows 1 and 2 are the same coordinate (0, 0, 0, 0)" },
    }
    for _, c in ipairs(cases) do assert.has_error(c[1], c[2]) end
  end)

  it("replace_feature keeps the coordinates and their identity", function()
    local x = sr.tensor({ { 0, 0, 0, 0 }, { 1, 2, 3, 4 } }, { { 1 }, { 2 } }, "float32", 2)
    local y = ops.replace_feature(x, lattice.ones({ 2, 5 }, "float16"))
    assert(y.coordinate_map_key == x.coordinate_map_key)
    assert.are.same({ 1, 1 }, y.batch_counts)
    assert.are.same({ 2, 5 }, y.feats.shape)
    assert.has_error(function() ops.replace_feature(x, { 1 }) end,
      "replace_feature: feats must be a lattice.Tensor, got table")
    assert.has_error(function() ops.replace_feature(x, lattice.ones({ 3, 1 })) end,
      "replace_feature: features must have shape {2,C}, got {3,1}")
    assert.has_error(function() ops.replace_feature(x, lattice.ones({ 2, 1 }, "int32")) end,
      "replace_feature: features must be a float tensor, got int32")
  end)
end)

describe("Morton order", function()
  local gen = generator(83)

  -- The code of (x, y, z): bit b of x + 2^20, y + 2^20, z + 2^20 at bits 3b, 3b+1, 3b+2.
  local function code(r)
    local c = 0
    for a = 1, 3 do
      local v = r[a + 1] + (1 << 20)
      for bit = 0, 20 do c = c | (((v >> bit) & 1) << (3 * bit + a - 1)) end
    end
    return c
  end

  it("codes interleave the offset bits, x lowest, batch left out", function()
    local rows = sr.support(gen, { n = 50, batches = 3, lo = -40, hi = 40 })
    rows[#rows + 1] = { 0, -(1 << 20), (1 << 20) - 1, 0 }
    local codes = ops.morton_codes(lattice.array(rows, "int32"))
    assert.are.equal("int64", codes.dtype)
    local want = {}
    for i, r in ipairs(rows) do want[i] = code(r) end
    assert.are.same(want, codes:tolist())
    assert.are.same({ 0, 1, 2, 4, 7 }, ops.morton_codes({ { 0, -1048576, -1048576, -1048576 },
      { 5, -1048575, -1048576, -1048576 }, { 0, -1048576, -1048575, -1048576 }, { 0, -1048576, -1048576, -1048575 },
      { 0, -1048575, -1048575, -1048575 } }):tolist())
  end)

  it("sorts by batch, then code, equal keys by row, duplicates allowed", function()
    local rows = sr.support(gen, { n = 200, batches = 3, lo = -20, hi = 20 })
    rows[#rows + 1] = rows[5] -- a duplicate, after its twin
    local idx = {}
    for i = 1, #rows do idx[i] = i end
    table.sort(idx, function(p, q)
      local a, b = rows[p], rows[q]
      if a[1] ~= b[1] then return a[1] < b[1] end
      if code(a) ~= code(b) then return code(a) < code(b) end
      return p < q
    end)
    local want, inv = {}, {}
    for j, i in ipairs(idx) do want[j], inv[i] = i - 1, j - 1 end
    local c = lattice.array(rows, "int32")
    assert.are.same(want, ops.morton_order(c):tolist())
    local s = ops.morton_sort_coords(c)
    assert.are.same(want, s.order:tolist())
    assert.are.same(inv, s.inverse_rows:tolist())
    local sorted = {}
    for j, i in ipairs(idx) do sorted[j] = rows[i] end
    assert.are.same(sorted, s.coords:tolist())
    local x = sr.tensor({ rows[1], rows[2] }, { { 1 }, { 2 } })
    assert.are.same(ops.morton_order(x.coords):tolist(), ops.morton_order(x):tolist())
    assert.are.same({}, ops.morton_order(lattice.zeros({ 0, 4 }, "int32")):tolist())
  end)

  it("rejects coordinates it cannot code", function()
    assert.has_error(function() ops.morton_codes({ { 0, 0, 0, 0 }, { 0, 0, 1048576, 0 } }) end,
      "morton_codes: row 2 has y = 1048576, outside the Morton range [-1048576, 1048575]")
    assert.has_error(function() ops.morton_sort_coords({ { 0, 0, 0, -1048577 } }) end,
      "morton_sort_coords: row 1 has z = -1048577, outside the Morton range [-1048576, 1048575]")
    assert.has_error(function() ops.morton_order(lattice.zeros({ 2, 3 }, "int32")) end,
      "morton_order: coords must have shape {N,4} (batch, x, y, z), got {2,3}")
    assert.has_error(function() ops.morton_codes({ { 0, 0.5, 0, 0 } }) end,
      "morton_codes: coords must be integers, got non-integer values")
  end)
end)

describe("octree occupancy", function()
  local gen = generator(97)
  local rows = sr.support(gen, { n = 80, batches = 2, lo = -5, hi = 5 })

  local function child(r) return (r[2] & 1) | (r[3] & 1) << 1 | (r[4] & 1) << 2 end

  it("downsamples to the parents in the order first seen, with their children's bits", function()
    local parents, bits, at = {}, {}, {}
    for _, r in ipairs(rows) do
      local p = { r[1], sr.floor_div(r[2], 2), sr.floor_div(r[3], 2), sr.floor_div(r[4], 2) }
      if not at[key(p)] then
        parents[#parents + 1], bits[#parents + 1] = p, 0
        at[key(p)] = #parents
      end
      bits[at[key(p)]] = bits[at[key(p)]] | (1 << child(r))
    end
    local o = ops.occupancy_downsample(lattice.array(rows, "int32"))
    assert.are.same(parents, o.coords:tolist())
    assert.are.same(bits, o.occupancy:tolist())
  end)

  it("expands the bits back to the children, parent by parent, children by index", function()
    local o = ops.occupancy_downsample(lattice.array(rows, "int32"))
    local e = ops.occupancy_expand(o.coords, o.occupancy)
    local want, parent, index = {}, {}, {}
    for i, p in ipairs(o.coords:tolist()) do
      local b = o.occupancy:tolist()[i]
      for k = 0, 7 do
        if (b >> k) & 1 == 1 then
          want[#want + 1] = { p[1], 2 * p[2] + (k & 1), 2 * p[3] + ((k >> 1) & 1), 2 * p[4] + ((k >> 2) & 1) }
          parent[#parent + 1], index[#index + 1] = i - 1, k
        end
      end
    end
    assert.are.same(want, e.coords:tolist())
    assert.are.same(parent, e.parent_rows:tolist())
    assert.are.same(index, e.child_indices:tolist())
    local set = {}
    for _, r in ipairs(rows) do set[key(r)] = true end
    for _, r in ipairs(want) do assert(set[key(r)], "every child is an input row") end
    assert.are.equal(#rows, #want)
    assert.are.same(want, ops.child_coords_from_indices(lattice.take(o.coords, e.parent_rows, 1), e.child_indices)
      :tolist())
  end)

  it("gives children of hand-picked parents, negative ones included", function()
    assert.are.same({ { 1, -2, 3, -5 }, { 0, 0, 0, 1 } },
      ops.child_coords_from_indices({ { 1, -1, 1, -3 }, { 0, 0, 0, 0 } }, { 6, 4 }):tolist())
    assert.are.same({ { { 0, -1, -1, -1 } }, { 1 << 7 } }, (function()
      local o = ops.occupancy_downsample({ { 0, -1, -1, -1 } })
      return { o.coords:tolist(), o.occupancy:tolist() }
    end)())
  end)

  it("rejects bad bits, indices and overflowing children", function()
    local cases = {
      { function() ops.occupancy_expand({ { 0, 0, 0, 0 } }, { 256 }) end,
        "occupancy_expand: occupancy[1] is 256, expected 0..255" },
      { function() ops.occupancy_expand({ { 0, 0, 0, 0 } }, { 1, 2 }) end,
        "occupancy_expand: occupancy has shape {2}, expected {1}" },
      { function() ops.occupancy_expand({ { 0, 0, 0, 0 } }, lattice.ones({ 1 })) end,
        "occupancy_expand: occupancy must be an integer tensor, got float32" },
      { function() ops.child_coords_from_indices({ { 0, 0, 0, 0 } }, { 8 }) end,
        "child_coords_from_indices: child_indices[1] is 8, expected 0..7" },
      { function() ops.child_coords_from_indices({ { 0, 1 << 30, 0, 0 } }, { 0 }) end,
        "child_coords_from_indices: row 1's x = 1073741824 has children outside int32" },
      { function() ops.occupancy_downsample(lattice.zeros({ 4 }, "int32")) end,
        "occupancy_downsample: coords must have shape {N,4} (batch, x, y, z), got {4}" },
    }
    for _, c in ipairs(cases) do assert.has_error(c[1], c[2]) end
  end)
end)
