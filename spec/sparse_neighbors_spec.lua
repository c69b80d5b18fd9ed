-- Neighbour relations (lattice.ops.build_knn_relation, build_radius_relation,
-- gather_neighbor_features) against brute force in plain Lua: every source
-- row of the query's batch, sorted by (squared distance, source row). The
-- integer lattice makes ties common, so the tie order is exercised throughout.
local lattice = require "lattice"
local gradcheck = require "support.gradcheck"
local ref = require "support.reference"

local ops = lattice.ops
local core = require "lattice.core" -- sparse.neighbors_with_isa: a test hook
local generator, weighted = ref.generator, ref.weighted

local function key(r) return table.concat(r, ",") end

local function random_rows(gen, n, r, batches)
  local rows, seen = {}, {}
  while #rows < n do
    local row = { math.floor((gen() + 1) / 2 * batches) }
    for a = 2, 4 do row[a] = math.floor(gen() * r) end
    if not seen[key(row)] then rows[#rows + 1], seen[key(row)] = row, true end
  end
  return rows
end

-- {query_row, source_row, neighbor_id, distances} by brute force; cap: most per query; r2: the d² bound.
local function brute(source, query, cap, r2)
  local out = { query_row = {}, source_row = {}, neighbor_id = {}, distances = {} }
  for qi, q in ipairs(query) do
    local cand = {}
    for si, s in ipairs(source) do
      if s[1] == q[1] then
        local d = (s[2] - q[2]) ^ 2 + (s[3] - q[3]) ^ 2 + (s[4] - q[4]) ^ 2
        if not r2 or d <= r2 then cand[#cand + 1] = { d, si - 1 } end
      end
    end
    table.sort(cand, function(x, y) return x[1] < y[1] or (x[1] == y[1] and x[2] < y[2]) end)
    for rank = 1, math.min(#cand, cap or #cand) do
      local e = #out.query_row + 1
      out.query_row[e], out.source_row[e], out.neighbor_id[e], out.distances[e] = qi - 1, cand[rank][2], rank - 1,
        cand[rank][1]
    end
  end
  return out
end

-- The relation's distances are float32: brute's rounded alike (exact below 2^24).
local function f32(x) return (string.unpack("f", string.pack("f", x))) end

local function same(rel, want)
  for _, f in ipairs { "query_row", "source_row", "neighbor_id" } do
    assert.are.same(want[f], rel[f]:tolist(), f)
  end
  local d = {}
  for e, x in ipairs(want.distances) do d[e] = f32(x) end
  assert.are.same(d, rel.distances:tolist(), "distances")
end

-- The k = 16 relation of `coords` built on one thread and on two: the same.
local function assert_same_for_1_and_2_threads(coords)
  local threads = lattice.num_threads()
  lattice.set_num_threads(1)
  local a = ops.build_knn_relation(coords, { k = 16 })
  lattice.set_num_threads(2)
  local b = ops.build_knn_relation(coords, { k = 16 })
  lattice.set_num_threads(threads)
  assert.are.same(a.source_row:tolist(), b.source_row:tolist())
  assert.are.same(a.distances:tolist(), b.distances:tolist())
end

describe("build_knn_relation", function()
  local gen = generator(13)
  local source = random_rows(gen, 300, 6, 2)
  local query = random_rows(gen, 120, 7, 3) -- batch 2 has no sources: no edges
  local ts, tq = lattice.array(source, "int32"), lattice.array(query, "int32")

  it("matches brute force, ties by source row", function()
    for _, k in ipairs { 1, 4, 16, 40 } do same(ops.build_knn_relation(ts, tq, { k = k }), brute(source, query, k)) end
  end)

  it("includes the query itself, first, when it is a source", function()
    local rel = ops.build_knn_relation(ts, { k = 5 })
    same(rel, brute(source, source, 5))
    local q, s = rel.query_row:tolist(), rel.source_row:tolist()
    for e = 1, #q, 5 do assert.are.equal(q[e], s[e]) end
  end)

  it("gives the row offsets of each query's edges", function()
    local rel = ops.build_knn_relation(ts, tq, { k = 8 })
    local offsets, q = rel.row_offsets:tolist(), rel.query_row:tolist()
    assert.are.equal(#query + 1, #offsets)
    for i = 1, #query do
      for e = offsets[i] + 1, offsets[i + 1] do assert.are.equal(i - 1, q[e]) end
    end
    assert.are.equal(#q, offsets[#offsets])
  end)

  it("is the same for any thread count, on a support large enough to run in parallel", function()
    local big = lattice.array(random_rows(generator(3), 5000, 30, 2), "int32")
    assert_same_for_1_and_2_threads(big)
  end)

  it("builds its brick index in parallel, on rows in brick order and scattered", function()
    -- 40,000 rows (past the size that splits the index's scan over threads),
    -- two batches of a dense block: listed brick by brick (each brick one run
    -- of rows, as in Morton order), then shuffled
    local ordered = {}
    for b = 0, 1 do
      for bx = 0, 24, 4 do
        for by = 0, 24, 4 do
          for bz = 0, 31, 4 do
            for x = bx, math.min(bx + 3, 24) do
              for y = by, math.min(by + 3, 24) do
                for z = bz, bz + 3 do ordered[#ordered + 1] = { b, x, y, z } end
              end
            end
          end
        end
      end
    end
    local g, scattered = generator(7), { table.unpack(ordered) }
    for i = #scattered, 2, -1 do
      local j = math.floor((g() + 1) / 2 * i) % i + 1
      scattered[i], scattered[j] = scattered[j], scattered[i]
    end
    for _, rows in ipairs { ordered, scattered } do
      local t = lattice.array(rows, "int32")
      assert_same_for_1_and_2_threads(t)
      local rel = ops.build_knn_relation(t, { k = 16 })
      local src, dist = rel.source_row:tolist(), rel.distances:tolist()
      for q = 1, #rows, 3331 do
        local want = brute(rows, { rows[q] }, 16)
        for j = 1, 16 do
          assert.are.equal(want.source_row[j], src[(q - 1) * 16 + j])
          assert.are.equal(want.distances[j], dist[(q - 1) * 16 + j])
        end
      end
    end
  end)

  it("takes empty sources and queries", function()
    local none = lattice.zeros({ 0, 4 }, "int32")
    assert.are.same({ 0 }, ops.build_knn_relation(none, tq, { k = 3 }).source_row.shape)
    assert.are.same({ 1 }, ops.build_knn_relation(ts, none, { k = 3 }).row_offsets.shape)
  end)

  it("orders sources up to 2^32 apart on an axis by their distance (d² past int64)", function()
    local lo, hi = -2147483648, 2147483647
    local rows = { { 0, lo, 0, 0 }, { 0, lo + 1, 0, 0 }, { 0, 0, 0, 0 }, { 0, hi, 0, 0 }, { 0, hi, 5, 0 } }
    same(ops.build_knn_relation(lattice.array(rows, "int32"), { k = 5 }), brute(rows, rows, 5))
  end)

  it("finds the neighbours of a far outlier and every source of a batch with fewer than k", function()
    -- the outlier's k-th lies 2^24 cells away, batch 1's two sources 10^6
    -- apart (k = 3), beside batch 0 spread over 2^24: a search ring by ring
    -- around each query would visit every empty cell between
    local rows = {}
    for x = 0, 5 do
      for y = 0, 5 do
        for z = 0, 5 do rows[#rows + 1] = { 0, x, y, z } end
      end
    end
    rows[#rows + 1] = { 0, 16777216, 0, 0 }
    rows[#rows + 1] = { 1, 0, 0, 0 }
    rows[#rows + 1] = { 1, 1000000, 0, 0 }
    local t = lattice.array(rows, "int32")
    for _, k in ipairs { 3, 300 } do same(ops.build_knn_relation(t, { k = k }), brute(rows, rows, k)) end
  end)

  it("takes k beyond the number of sources: each query gets its batch's every source", function()
    same(ops.build_knn_relation(ts, tq, { k = 1 << 40 }), brute(source, query, nil))
  end)

  it("rejects bad input with messages naming the problem", function()
    local function err(...) return select(2, pcall(ops.build_knn_relation, ...)) end
    assert.matches("build_knn_relation: k must be a positive integer, got 0", err(ts, { k = 0 }), 1, true)
    assert.matches("build_knn_relation: k must be a positive integer, got nil", err(ts, tq, {}), 1, true)
    assert.matches("build_knn_relation: source and query have different tensor strides",
      err(lattice.SparseTensor(ts, lattice.zeros({ 300, 1 }), { stride = 2 }), tq, { k = 2 }), 1, true)
    assert.matches("build_knn_relation: rows 1 and 2 are the same coordinate (0, 0, 0, 0)",
      err({ { 0, 0, 0, 0 }, { 0, 0, 0, 0 } }, { k = 1 }), 1, true)
  end)
end)

describe("build_radius_relation", function()
  local gen = generator(29)
  local source = random_rows(gen, 250, 5, 2)
  local query = random_rows(gen, 100, 6, 2)
  local ts, tq = lattice.array(source, "int32"), lattice.array(query, "int32")

  it("matches brute force, all neighbours or the nearest max_neighbors", function()
    for _, r in ipairs { 0, 0.5, 1, 1.5, 2, 3.2 } do
      same(ops.build_radius_relation(ts, tq, { radius = r }), brute(source, query, nil, math.floor(r * r)))
      same(ops.build_radius_relation(ts, tq, { radius = r, max_neighbors = 3 }),
        brute(source, query, 3, math.floor(r * r)))
    end
  end)

  it("takes max_neighbors beyond the number of sources", function()
    same(ops.build_radius_relation(ts, tq, { radius = 3.2, max_neighbors = 1 << 40 }), brute(source, query, nil, 10))
    same(ops.build_radius_relation(ts, tq, { radius = 7.5, max_neighbors = 1 << 40 }), brute(source, query, nil, 56))
  end)

  it("leaves out sources whose squared distance passes int64, however wide the radius", function()
    local v = 1799999999 -- d² = 3 v² > 2^63, in the cells next to the query's for radius 9e8
    local rows = { { 0, 0, 0, 0 }, { 0, v, v, v } }
    same(ops.build_radius_relation(lattice.array(rows, "int32"), { radius = 9e8 }), brute(rows, rows, nil, 81e16))
  end)

  it("rejects bad input with messages naming the problem", function()
    local function err(...) return select(2, pcall(ops.build_radius_relation, ...)) end
    assert.matches("build_radius_relation: radius must be a non-negative number, got -1", err(ts, { radius = -1 }), 1,
      true)
    assert.matches("build_radius_relation: max_neighbors must be a positive integer, got 0",
      err(ts, tq, { radius = 1, max_neighbors = 0 }), 1, true)
    assert.matches("build_radius_relation: unknown option 'k'", err(ts, tq, { radius = 1, k = 2 }), 1, true)
  end)
end)

-- The near part of both relations lists each query brick's candidates
-- within 3 cells once (core/sparse/neighbor_window.c, a scalar _ref and an
-- AVX2 query) and walks shells of integer offsets
-- (core/sparse/neighbor_shells.c, a scalar _ref and an AVX-512 kernel) for
-- the queries the window cannot decide (a k-th at or past the window's
-- bound, a window of more than 256 candidates, too few candidates); queries
-- whose k-th neighbour lies beyond the shells (d² > 16), whose batch has
-- fewer than k sources, or whose k is past the shells' 257 offsets take the
-- grid search. Each ISA against brute force on supports that send queries
-- down every path: a dense blob, a plane (a surface, as a voxelized scan),
-- scattered points, negative coordinates, a batch of three sources, a dense
-- cube in shuffled row order (windows past 256 candidates, rows to sort), a
-- lattice of spacing 4 off the bricks' grid (k-th at d² = 16: below the
-- bound of an interior cell's window, at the bound of the AVX2 query) and a
-- sparse line (k-th far beyond every window).
describe("the shell walk of each ISA", function()
  local gen = generator(41)
  local blob = random_rows(gen, 400, 6, 2)
  local plane, seen = {}, {}
  while #plane < 300 do
    local r = { 0, math.floor(gen() * 12), math.floor(gen() * 12), math.floor(gen() * 1.5) }
    if not seen[key(r)] then plane[#plane + 1], seen[key(r)] = r, true end
  end
  local scattered = random_rows(gen, 150, 40, 1)
  local mixed = { { 5, 0, 0, 0 }, { 5, 3, 0, 0 }, { 5, 0, 9, -9 } } -- batch 5: three sources
  for i = 1, 100 do mixed[#mixed + 1] = blob[i] end
  for i = 1, 60 do mixed[#mixed + 1] = scattered[i] end
  local queries = random_rows(gen, 150, 8, 2)
  queries[#queries + 1] = { 5, 1, 1, 1 }
  local cube = {}
  for x = 0, 6 do
    for y = 0, 6 do
      for z = 0, 6 do cube[#cube + 1] = { 0, x, y, z } end
    end
  end
  for i = #cube, 2, -1 do -- shuffled: the window's rows are not in brick order
    local j = math.floor((gen() + 1) / 2 * i) % i + 1
    cube[i], cube[j] = cube[j], cube[i]
  end
  local spaced, line = {}, {}
  for x = 0, 3 do
    for y = 0, 3 do
      for z = 0, 2 do spaced[#spaced + 1] = { 1, 4 * x + 1, 4 * y + 1, 4 * z + 2 } end
    end
  end
  for x = 0, 12 do line[#line + 1] = { 0, 3 * x - 7, 2, 0 } end
  -- Morton order (by batch, then x, y, z bits interleaved, x lowest), as
  -- coords_sort gives it: each brick's rows one run in the order the bits
  -- kernel ranks them by; `swapped` breaks one brick's order (two of its rows).
  local function spread(v)
    local r = 0
    for b = 0, 20 do r = r | (((v >> b) & 1) << (3 * b)) end
    return r
  end
  local function morton(rows)
    local out = { table.unpack(rows) }
    local function code(r) return spread(r[2] + 1024) | spread(r[3] + 1024) << 1 | spread(r[4] + 1024) << 2 end
    table.sort(out, function(a, b) return a[1] < b[1] or (a[1] == b[1] and code(a) < code(b)) end)
    return out
  end
  local sorted_cube = morton(cube)
  local swapped = { table.unpack(sorted_cube) }
  swapped[70], swapped[71] = swapped[71], swapped[70]
  local cases = {
    { "a dense blob", blob, blob }, { "a plane", plane, plane }, { "scattered points", scattered, scattered },
    { "another query set", mixed, queries }, { "a dense cube, shuffled", cube, cube },
    { "a lattice of spacing 4", spaced, spaced }, { "a sparse line", line, line },
    { "a dense blob in Morton order", morton(blob), morton(blob) }, { "a plane in Morton order", morton(plane), plane },
    { "another query set, its sources in Morton order", morton(mixed), queries },
    { "a dense cube in Morton order", sorted_cube, sorted_cube },
    { "a dense cube in Morton order but for one brick", swapped, sorted_cube },
  }

  local function run(kind, source, query, k, radius, isa)
    return core.sparse.neighbors_with_isa(kind, lattice.array(source, "int32"), lattice.array(query, "int32"), k,
      radius, "spec", isa)
  end

  for _, isa in ipairs { "scalar", "avx2", "avx512" } do
    for _, c in ipairs(cases) do
      it(("finds each query's k nearest on %s (%s)"):format(c[1], isa), function()
        for _, k in ipairs { 1, 5, 16, 33, 300 } do same(run("knn", c[2], c[3], k, 0, isa), brute(c[2], c[3], k)) end
      end)

      it(("finds the neighbours within a radius on %s (%s)"):format(c[1], isa), function()
        for _, r in ipairs { 0, 1, 2.5, 4, 4.2 } do
          same(run("radius", c[2], c[3], 0, r, isa), brute(c[2], c[3], nil, math.floor(r * r)))
          same(run("radius", c[2], c[3], 7, r, isa), brute(c[2], c[3], 7, math.floor(r * r)))
        end
      end)
    end
  end

  it("runs the AVX-512 kernel where the machine has it, and scalar when asked", function()
    local _, used = run("knn", plane, plane, 16, 0, "avx512")
    local _, scalar = run("knn", plane, plane, 16, 0, "scalar")
    local _, avx2 = run("knn", plane, plane, 16, 0, "avx2")
    assert.are.equal("scalar", scalar)
    assert.is_true(avx2 == "avx2" or (avx2 == "scalar" and used == "scalar")) -- the window's AVX2 query where there is AVX2
    if used ~= "avx512" then return pending("avx512 is not available here") end
  end)

  it("is the same for any thread count on a dense support", function()
    local big = lattice.array(random_rows(generator(5), 6000, 12, 2), "int32")
    assert_same_for_1_and_2_threads(big)
  end)
end)

describe("gather_neighbor_features", function()
  local rows = { { 0, 0, 0, 0 }, { 0, 1, 0, 0 }, { 0, 0, 2, 0 } }
  local x = lattice.SparseTensor(rows, lattice.array({ { 1, 2 }, { 3, 4 }, { 5, 6 } }, "float32"))

  it("takes the source features in edge order", function()
    local rel = ops.build_knn_relation(x, { k = 2 })
    assert.are.same({ 0, 1, 1, 0, 2, 0 }, rel.source_row:tolist())
    assert.are.same({ { 1, 2 }, { 3, 4 }, { 3, 4 }, { 1, 2 }, { 5, 6 }, { 1, 2 } },
      ops.gather_neighbor_features(x, rel):tolist())
    assert.are.same(ops.gather_neighbor_features(x, rel):tolist(), ops.gather_neighbor_features(x.feats, rel):tolist())
  end)

  it("is differentiable in the features", function()
    local rel = ops.build_knn_relation(x, { k = 3 })
    gradcheck.each_dtype(function(f) return weighted(ops.gather_neighbor_features(f, rel)) end, { x.feats })
  end)

  it("rejects bad input with messages naming the problem", function()
    assert.matches("gather_neighbor_features: relation must be a neighbour relation (a table with source_row), got nil",
      select(2, pcall(ops.gather_neighbor_features, x)), 1, true)
    assert.matches("gather_neighbor_features: source must be a SparseTensor or a lattice.Tensor, got string",
      select(2, pcall(ops.gather_neighbor_features, "x", {})), 1, true)
    -- a relation built on a larger source: its edges reach rows the features lack
    local rel = ops.build_knn_relation(x, { k = 2 })
    assert.matches("gather_neighbor_features: the relation reaches source row 2 (0-based), the source has 2 rows: " ..
      "a relation of another source?", select(2, pcall(ops.gather_neighbor_features, lattice.ones({ 2, 2 }), rel)), 1,
      true)
    assert.matches("gather_neighbor_features: take: indices must be integers, got float32",
      select(2, pcall(ops.gather_neighbor_features, x, { source_row = lattice.zeros({ 1 }) })), 1, true)
  end)
end)
