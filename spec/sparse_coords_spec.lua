-- Coordinate utilities (lattice.ops.coords_*, unique_coords, coords_sort,
-- downsample_coords, bounding_box, dense, from_dense) against plain Lua:
-- sets and lookups through Lua tables keyed by the row, orders by
-- table.sort with an explicit comparison, dense grids filled cell by cell.
local lattice = require "lattice"
local gradcheck = require "support.gradcheck"
local ref = require "support.reference"

local ops = lattice.ops
local generator, weighted = ref.generator, ref.weighted

local function key(r) return table.concat(r, ",") end

-- n random rows (batch 0..1, x, y, z in -r..r), duplicates possible unless distinct.
local function random_rows(gen, n, r, distinct)
  local rows, seen = {}, {}
  while #rows < n do
    local row = { math.floor((gen() + 1) * 1) % 2 }
    for a = 2, 4 do row[a] = math.floor(gen() * r) end
    if not (distinct and seen[key(row)]) then rows[#rows + 1], seen[key(row)] = row, true end
  end
  return rows
end

local function set_of(rows)
  local s = {}
  for i, r in ipairs(rows) do s[key(r)] = s[key(r)] or i end
  return s
end

describe("coordinate set operations", function()
  local gen = generator(31)
  local a = random_rows(gen, 60, 3, true)
  local b = random_rows(gen, 50, 3, true)
  local ta, tb = lattice.array(a, "int32"), lattice.array(b, "int32")

  it("match the definitions on overlapping supports", function()
    local sa, sb = set_of(a), set_of(b)
    local union, inter, diff = {}, {}, {}
    for _, r in ipairs(a) do
      union[#union + 1] = r
      if sb[key(r)] then inter[#inter + 1] = r else diff[#diff + 1] = r end
    end
    for _, r in ipairs(b) do
      if not sa[key(r)] then union[#union + 1] = r end
    end
    assert(#inter > 0 and #diff > 0)
    assert.are.same(union, ops.coords_union(ta, tb):tolist())
    assert.are.same(inter, ops.coords_intersection(ta, tb):tolist())
    assert.are.same(diff, ops.coords_difference(ta, tb):tolist())
  end)

  it("take SparseTensors, tables and identical or disjoint supports", function()
    local x = lattice.SparseTensor(ta, lattice.zeros({ #a, 1 }))
    assert.are.same(a, ops.coords_union(x, x):tolist())
    assert.are.same(a, ops.coords_intersection(x, a):tolist())
    assert.are.same({ 0, 4 }, ops.coords_difference(x, ta).shape)
    local far = { { 0, 100, 100, 100 } }
    assert.are.same({ 0, 4 }, ops.coords_intersection(ta, far).shape)
    assert.are.same(a, ops.coords_difference(ta, far):tolist())
  end)

  it("look rows up, -1 where absent", function()
    local sa, want, present = set_of(a), {}, {}
    for i, r in ipairs(b) do
      want[i] = sa[key(r)] and sa[key(r)] - 1 or -1
      present[i] = want[i] >= 0
    end
    assert.are.same(want, ops.coords_lookup(ta, tb):tolist())
    assert.are.same(want, ops.inverse_map(ta, tb):tolist())
    assert.are.same(want, ops.lookup_coords(ta, tb):tolist())
    assert.are.same(present, ops.contains_coords(ta, tb):tolist())
  end)

  it("reject bad input with messages naming the problem", function()
    local function err(f, ...) return select(2, pcall(f, ...)) end
    assert.matches("coords_union: rows 1 and 2 are the same coordinate (0, 1, 1, 1)",
      err(ops.coords_union, { { 0, 1, 1, 1 }, { 0, 1, 1, 1 } }, tb), 1, true)
    assert.matches("coords_lookup: coords must have shape {N,4} (batch, x, y, z), got {2,3}",
      err(ops.coords_lookup, ta, lattice.zeros({ 2, 3 }, "int32")), 1, true)
    assert.matches("coords_intersection: coords must be integers, got non-integer values",
      err(ops.coords_intersection, ta, { { 0, 0.5, 0, 0 } }), 1, true)
    assert.matches("coords_difference: coords must be a lattice.Tensor or a table, got string",
      err(ops.coords_difference, ta, "rows"), 1, true)
    -- a table the array conversion refuses: the op's name, then array's reason
    assert.matches("coords_lookup: coords: the table at depth 1 has a hole at index 2",
      err(ops.coords_lookup, ta, { { 0, 0, 0, 0 }, nil, { 0, 1, 1, 1 } }), 1, true)
    assert.matches("coords_union: coords: ragged nested table at depth 2 (expected 4 elements, got 3)",
      err(ops.coords_union, { { 0, 0, 0, 0 }, { 0, 1, 1 } }, tb), 1, true)
  end)

  it("take maps of one tensor stride, each of the three", function()
    local x = lattice.SparseTensor(ta, lattice.zeros({ #a, 1 }))
    local s2 = lattice.SparseTensor(tb, lattice.zeros({ #b, 1 }), { stride = 2 })
    for _, name in ipairs({ "coords_union", "coords_intersection", "coords_difference" }) do
      assert.has_error(function() ops[name](x, s2) end, name .. ": the tensor strides differ, {1,1,1} and {2,2,2}")
    end
  end)
end)

-- Large maps (60,000 rows, a table of 131,072 slots): every row is found at
-- its own index for any thread count, and the duplicate reported is the first
-- row that repeats an earlier one.
describe("large coordinate maps", function()
  local n = 60000
  local rows = {}
  for i = 0, n - 1 do rows[i + 1] = { i % 2, i % 40, (i // 40) % 40, i // 1600 - 10 } end
  local t = lattice.array(rows, "int32")

  it("find every row at its index, absent rows nowhere, with 1 and 2 threads", function()
    local want, probe, pwant = {}, {}, {}
    for i = 1, n do want[i] = i - 1 end
    for i = 1, 500 do
      local r = rows[(i * 7919) % n + 1]
      probe[2 * i - 1], pwant[2 * i - 1] = r, (i * 7919) % n
      probe[2 * i], pwant[2 * i] = { r[1], r[2], r[3], r[4] + 1000 }, -1
    end
    local threads = lattice.get_num_threads and lattice.get_num_threads() or 2
    for _, th in ipairs({ 1, 2 }) do
      lattice.set_num_threads(th)
      assert.are.same(want, ops.coords_lookup(t, t):tolist())
      assert.are.same(pwant, ops.coords_lookup(t, lattice.array(probe, "int32")):tolist())
    end
    lattice.set_num_threads(threads)
  end)

  it("report the first repeated row and the row it repeats", function()
    local dup = {}
    for i, r in ipairs(rows) do dup[i] = r end
    dup[45000], dup[30001], dup[59000] = rows[100], rows[7], rows[3]
    local d = lattice.array(dup, "int32")
    for _, th in ipairs({ 1, 2 }) do
      lattice.set_num_threads(th)
      assert.has_error(function() lattice.SparseTensor(d, lattice.zeros({ n, 1 })) end,
        ("SparseTensor: rows 7 and 30001 are the same coordinate (%s)"):format(table.concat(rows[7], ", ")))
    end
  end)
end)

describe("unique_coords", function()
  it("lists the distinct rows first seen first, with first rows and the inverse", function()
    local rows = random_rows(generator(5), 200, 2, false)
    local u, index, inverse = ops.unique_coords(lattice.array(rows, "int32"), { return_index = true,
      return_inverse = true })
    local want, first, inv, seen = {}, {}, {}, {}
    for i, r in ipairs(rows) do
      if not seen[key(r)] then want[#want + 1], first[#want + 1], seen[key(r)] = r, i - 1, #want + 1 end
      inv[i] = seen[key(r)] - 1
    end
    assert(#want < #rows)
    assert.are.same(want, u:tolist())
    assert.are.same(first, index:tolist())
    assert.are.same(inv, inverse:tolist())
    assert.are.same({ 0, 4 }, ops.unique_coords(lattice.zeros({ 0, 4 }, "int32")).shape)
  end)
end)

describe("coords_sort", function()
  local rows = random_rows(generator(9), 150, 6, false)
  local t = lattice.array(rows, "int32")

  it("sorts lexicographically by (batch, x, y, z), equal rows by row", function()
    local idx = {}
    for i = 1, #rows do idx[i] = i end
    table.sort(idx, function(i, j)
      for a = 1, 4 do
        if rows[i][a] ~= rows[j][a] then return rows[i][a] < rows[j][a] end
      end
      return i < j
    end)
    local sorted, perm = ops.coords_sort(t)
    for k = 1, #idx do idx[k] = idx[k] - 1 end
    assert.are.same(idx, perm:tolist())
    assert.are.same(lattice.take(t, perm, 1):tolist(), sorted:tolist())
  end)

  it("sorts lexicographically over the whole int32 range", function()
    local ends = { -2147483648, -2147483647, -1048577, -1, 0, 1048576, 2147483646, 2147483647 }
    local gen, wide = generator(13), {}
    for i = 1, 300 do
      local r = { i % 3 }
      for a = 2, 4 do
        local u = gen()
        r[a] = u < 0 and ends[math.floor(-u * #ends) + 1] or math.floor(u * 5) - 2
      end
      wide[i] = r
    end
    local idx = {}
    for i = 1, #wide do idx[i] = i end
    table.sort(idx, function(i, j)
      for a = 1, 4 do
        if wide[i][a] ~= wide[j][a] then return wide[i][a] < wide[j][a] end
      end
      return i < j
    end)
    for k = 1, #idx do idx[k] = idx[k] - 1 end
    local sorted, perm = ops.coords_sort(wide)
    assert.are.same(idx, perm:tolist())
    assert.are.same(lattice.take(lattice.array(wide, "int32"), perm, 1):tolist(), sorted:tolist())
  end)

  it("sorts by Morton code as morton_order does", function()
    local _, perm = ops.coords_sort(t, { order = "morton" })
    assert.are.same(ops.morton_order(t):tolist(), perm:tolist())
  end)

  it("walks a full aligned cube face neighbour to face neighbour in Hilbert order", function()
    local cube = {}
    for x = -4, -1 do
      for y = 0, 3 do
        for z = 4, 7 do cube[#cube + 1] = { 0, x, y, z } end
      end
    end
    local sorted = ops.coords_sort(lattice.array(cube, "int32"), { order = "hilbert" }):tolist()
    local seen = {}
    for k, r in ipairs(sorted) do
      seen[key(r)] = true
      if k > 1 then
        local d = 0
        for a = 2, 4 do d = d + math.abs(r[a] - sorted[k - 1][a]) end
        assert.are.equal(1, d)
      end
    end
    assert.are.equal(64, #sorted)
    for _, r in ipairs(cube) do assert(seen[key(r)]) end
  end)

  it("rejects an unknown order and coordinates out of range", function()
    assert.matches("coords_sort: order must be 'hilbert', 'lex', 'morton', got z",
      select(2, pcall(ops.coords_sort, t, { order = "z" })), 1, true)
    for _, order in ipairs({ "morton", "hilbert" }) do
      assert.matches("coords_sort: row 1 has x = 1048576, outside the Morton range [-1048576, 1048575]",
        select(2, pcall(ops.coords_sort, { { 0, 1048576, 0, 0 } }, { order = order })), 1, true)
    end
  end)
end)

describe("downsample_coords", function()
  it("floors by the stride, negative coordinates included, first seen first", function()
    local rows, inverse = ops.downsample_coords({ { 0, -1, 3, 2 }, { 0, -2, 2, 1 }, { 1, 1, 1, 1 }, { 0, 5, 0, -3 } },
      { 2, 2, 3 })
    assert.are.same({ { 0, -1, 1, 0 }, { 1, 0, 0, 0 }, { 0, 2, 0, -1 } }, rows:tolist())
    assert.are.same({ 0, 0, 1, 2 }, inverse:tolist())
  end)
end)

describe("bounding_box", function()
  it("gives the box of every row, or of each batch", function()
    local x = lattice.SparseTensor({ { 0, 1, -2, 3 }, { 1, 4, 0, 0 }, { 0, -1, 5, 2 } }, lattice.zeros({ 3, 1 }),
      { batch_counts = { 2, 1, 0 } })
    local lo, hi = ops.bounding_box(x)
    assert.are.same({ -1, -2, 0 }, lo)
    assert.are.same({ 4, 5, 3 }, hi)
    local blo, bhi = ops.bounding_box(x, { per_batch = true })
    assert.are.same({ { -1, -2, 2 }, { 4, 0, 0 }, { 2147483647, 2147483647, 2147483647 } }, blo:tolist())
    assert.are.same({ { 1, 5, 3 }, { 4, 0, 0 }, { -2147483648, -2147483648, -2147483648 } }, bhi:tolist())
    assert.are.same({ nil, nil }, { ops.bounding_box(lattice.zeros({ 0, 4 }, "int32")) })
  end)

  it("refuses per-batch boxes up to a batch index far past the rows, which would take gigabytes", function()
    assert.has_error(function() ops.bounding_box({ { 2147483647, 0, 0, 0 } }, { per_batch = true }) end,
      "bounding_box: batch index 2147483647 would make 2147483648 batches, more than the rows and than 1048576: " ..
      "number the batches from 0")
    local lo = ops.bounding_box(lattice.SparseTensor({ { 1048575, 3, 4, 5 } }, lattice.zeros({ 1, 1 })),
      { per_batch = true })
    assert.are.same({ 1048576, 3 }, lo.shape)
    assert.are.same({ { 3, 4, 5 } }, lattice.slice(lo, 1, 1048576, 1048576):tolist())
  end)
end)

describe("dense and from_dense", function()
  local rows = { { 0, 1, -1, 0 }, { 1, 0, 0, 1 }, { 0, 2, 0, 0 } }
  local feats = lattice.array({ { 1, 2 }, { 3, 4 }, { 5, 6 } }, "float32")
  local x = lattice.SparseTensor(rows, feats)

  it("places each row's features at its cell of the grid", function()
    local d = ops.dense(x, { min_coord = { 0, -1, 0 }, shape = { 3, 2, 2 } })
    assert.are.same({ 2, 3, 2, 2, 2 }, d.shape)
    local want = {}
    for b = 1, 2 do
      want[b] = {}
      for i = 1, 3 do
        want[b][i] = {}
        for j = 1, 2 do want[b][i][j] = { { 0, 0 }, { 0, 0 } } end
      end
    end
    local f = feats:tolist()
    for r, row in ipairs(rows) do want[row[1] + 1][row[2] + 1][row[3] + 2][row[4] + 1] = f[r] end
    assert.are.same(want, d:tolist())
    assert.are.same({ 2, 3, 2, 2, 2 }, ops.dense(x).shape) -- the bounding box by default
  end)

  it("round-trips through from_dense", function()
    local d = ops.dense(x, { min_coord = { 0, -1, 0 }, shape = { 3, 2, 2 } })
    local y = ops.from_dense(d, { min_coord = { 0, -1, 0 } })
    local want = { { 0, 1, -1, 0 }, { 0, 2, 0, 0 }, { 1, 0, 0, 1 } } -- cell order
    assert.are.same(want, y.coords:tolist())
    assert.are.same({ { 1, 2 }, { 5, 6 }, { 3, 4 } }, y.feats:tolist())
    assert.are.same({ 2, 1 }, y.batch_counts)
  end)

  it("is differentiable both ways", function()
    gradcheck.each_dtype(function(f)
      return weighted(ops.dense(x:with_feats(f), { min_coord = { 0, -1, 0 }, shape = { 3, 2, 2 } }))
    end, { feats })
    -- every cell nonzero, so that no finite difference changes the support
    local d = lattice.add(ops.dense(x, { min_coord = { 0, -1, 0 }, shape = { 3, 2, 2 } }), 0.5)
    gradcheck.each_dtype(function(t) return weighted(ops.from_dense(t).feats) end, { d })
  end)

  it("rejects bad input with messages naming the problem", function()
    local function err(f, ...) return select(2, pcall(f, ...)) end
    assert.matches("dense: row 2 (1, 0, 0, 1) lies outside the dense grid",
      err(ops.dense, x, { min_coord = { 0, -1, 0 }, shape = { 3, 2, 1 } }), 1, true)
    assert.matches("dense: shape must be a list of 3 integers, got {3,2}", err(ops.dense, x, { shape = { 3, 2 } }), 1,
      true)
    assert.matches("dense: x must be a SparseTensor, got lattice.Tensor", err(ops.dense, feats), 1, true)
    -- a grid of 2^30 batches of 8 cells: gigabytes of index and features for one row
    assert.matches("dense: batch index 1073741823 would make 1073741824 batches, more than the rows and than " ..
      "1048576: number the batches from 0",
      err(ops.dense, lattice.SparseTensor({ { 1073741823, 0, 0, 0 } }, lattice.ones({ 1, 1 })), { shape = { 2, 2, 2 } }),
      1, true)
    assert.matches("from_dense: dense must have shape {B,X,Y,Z,C}, got {3,2}", err(ops.from_dense, feats), 1, true)
  end)
end)
