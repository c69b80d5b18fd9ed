-- take, take_along_axis (gather) and embedding against plain-Lua references.
-- Axes are Lua axes (1-based); index values inside tensors are 0-based.
local lattice = require "lattice"
local gradcheck = require "support.gradcheck"
local ref = require "support.reference"

local i64, generator, rand, f32 = ref.i64, ref.generator, ref.rand, ref.f32

-- Random 0-based integers in [lo, hi] (a nested table of the given shape).
local function randint(shape, lo, hi, gen)
  local u = generator(gen)
  local function fill(d)
    local t = {}
    for i = 1, shape[d] do
      t[i] = d == #shape and lo + math.floor((u() + 1) / 2 * (hi - lo + 1)) % (hi - lo + 1) or fill(d + 1)
    end
    return t
  end
  return fill(1)
end

-- A scalar that weighs every element of y differently: sum((y - r)^2) for a
-- fixed r, so a gradient sent to the wrong place cannot hide behind symmetry.
local function weigh(y, seed)
  local r = lattice.array(rand(y.shape, generator(seed or 7))):reshape(y.shape)
  return lattice.mse_loss(y, r, { reduction = "sum" })
end

describe("take", function()
  local x = lattice.array({ { 1, 2, 3 }, { 4, 5, 6 } })

  it("takes from the flattened tensor when no axis is given", function()
    local y = lattice.take(x, i64({ 5, 0, -1, 3 }))
    assert.are.same({ 4 }, y.shape)
    assert.are.same({ 6, 1, 6, 4 }, y:tolist())
  end)

  it("takes along an axis, negative indices counting from the end", function()
    assert.are.same({ { 3, 1, 3 }, { 6, 4, 6 } }, lattice.take(x, i64({ 2, 0, -1 }), 2):tolist())
    assert.are.same({ { 4, 5, 6 }, { 1, 2, 3 } }, lattice.take(x, i64({ -1, 0 }), 1):tolist())
    assert.are.same({ { 2 }, { 5 } }, lattice.take(x, i64({ -2 }), -1):tolist())
  end)

  it("puts the indices' shape in place of the axis", function()
    local y = lattice.take(x, i64({ { 0, 1 }, { 2, 2 } }), 2)
    assert.are.same({ 2, 2, 2 }, y.shape)
    assert.are.same({ { { 1, 2 }, { 3, 3 } }, { { 4, 5 }, { 6, 6 } } }, y:tolist())
    local s = lattice.take(x, lattice.array(1, "int64"), 2) -- 0-d index removes the axis
    assert.are.same({ 2 }, s.shape)
    assert.are.same({ 2, 5 }, s:tolist())
    assert.are.same({ 2, 0 }, lattice.take(x, i64({}), 2).shape)
  end)

  it("matches a plain reference on a 3-D tensor", function()
    local data = rand({ 3, 5, 4 }, generator(1))
    local idx = randint({ 2, 3 }, -5, 4, 2)
    local y = lattice.take(lattice.array(data), i64(idx), 2)
    local want = {}
    for a = 1, 3 do
      want[a] = {}
      for p = 1, 2 do
        want[a][p] = {}
        for q = 1, 3 do
          local j = idx[p][q] % 5 -- Lua's % maps -1 to 4, like counting from the end
          want[a][p][q] = {}
          for c = 1, 4 do want[a][p][q][c] = f32(data[a][j + 1][c]) end
        end
      end
    end
    assert.are.same({ 3, 2, 3, 4 }, y.shape)
    assert.are.same(want, y:tolist())
  end)

  it("accepts int32 and uint8 indices and copies any dtype exactly", function()
    assert.are.same({ 3, 1 }, lattice.take(x, lattice.array({ 2, 0 }, "int32")):tolist())
    assert.are.same({ 3, 1 }, lattice.take(x, lattice.array({ 2, 0 }, "uint8")):tolist())
    local xi = lattice.array({ 7, -8, 9 }, "int64")
    local yi = lattice.take(xi, i64({ 1, 1, 2 }))
    assert.are.equal("int64", yi.dtype)
    assert.are.same({ -8, -8, 9 }, yi:tolist())
    local b = lattice.take(lattice.array({ true, false }, "bool"), i64({ 1, 0 }))
    assert.are.same({ false, true }, b:tolist())
    for _, dt in ipairs({ "float16", "bfloat16" }) do
      local h = lattice.array({ 1.5, -2.25, 3.0 }, dt)
      local yh = lattice.take(h, i64({ 2, 0 }))
      assert.are.equal(dt, yh.dtype)
      assert.are.same({ 3.0, 1.5 }, yh:tolist())
    end
  end)

  it("reads strided views", function()
    local t = x:transpose() -- (3,2), not contiguous
    assert.are.same({ { 3, 6 }, { 1, 4 } }, lattice.take(t, i64({ 2, 0 }), 1):tolist())
  end)

  it("has the gradient of a scatter-add, repeated indices accumulating", function()
    -- d/dx sum(take(x)^2) = 2 x times how often each column is taken: {3, 0, 1}
    local zero = lattice.zeros({ 2, 4 })
    local g = lattice.grad(function(v) return lattice.mse_loss(lattice.take(v, i64({ 0, 2, 0, -3 }), 2), zero, { reduction = "sum" }) end)
    assert.are.same({ { 6, 0, 6 }, { 24, 0, 12 } }, g(x):tolist())
    local x3 = lattice.array(rand({ 2, 3, 4 }, generator(3)))
    gradcheck.each_dtype(function(v) return weigh(lattice.take(v, i64({ { 0, 2 }, { 0, -1 } }), 2)) end, { x3 })
    gradcheck.each_dtype(function(v) return weigh(lattice.take(v, i64({ 3, -1, 3 }), 3)) end, { x3 })
    gradcheck.each_dtype(function(v) return weigh(lattice.take(v, i64({ 23, 0, 23, 5 }))) end, { x3 })
  end)

  it("has zero-size gradients for zero-size rows", function()
    local g = lattice.grad(function(v) return lattice.sum(lattice.take(v, i64({ 0, 2 }), 1)) end)(lattice.zeros({ 3, 0 }))
    assert.are.same({ 3, 0 }, g.shape)
    local ge = lattice.grad(function(v) return lattice.sum(lattice.embedding(v, i64({ 1 }))) end)(lattice.zeros({ 3, 0 }))
    assert.are.same({ 3, 0 }, ge.shape)
  end)

  it("returns float16 gradients for float16 inputs", function()
    local h = lattice.array({ 1, 2, 3 }, "float16")
    local g = lattice.grad(function(v) return weigh(lattice.take(v, i64({ 0, 0, 2 }))) end)(h)
    assert.are.equal("float16", g.dtype)
    assert.are.same({ 3 }, g.shape)
  end)

  it("rejects bad inputs with clear messages", function()
    assert.has_error(function() lattice.take(x, lattice.array({ 0, 1 })) end,
      "take: indices must be integers, got float32")
    assert.has_error(function() lattice.take(x, i64({ 0, 7 }), 2) end,
      "take: index 7 is out of range for axis 2 of size 3")
    assert.has_error(function() lattice.take(x, i64({ -4 }), 2) end,
      "take: index -4 is out of range for axis 2 of size 3")
    assert.has_error(function() lattice.take(x, i64({ 2 }), 1) end,
      "take: index 2 is out of range for axis 1 of size 2")
    assert.has_error(function() lattice.take(x, i64({ 6 })) end, "take: index 6 is out of range for size 6")
    assert.has_error(function() lattice.take(x, i64({ 0 }), 3) end, "take: axis 3 is out of range for 2 dimensions")
    assert.has_error(function() lattice.take(x, i64({ 0 }), 2 ^ 32 + 1) end,
      "take: axis 4294967297 is out of range for 2 dimensions")
    assert.has_error(function() lattice.take(x, i64({ 0 }), 1, 2) end,
      "take: too many arguments (expected at most 3, got 4)")
    assert.has_error(function() lattice.take(x, { 0, 1 }, 2) end,
      'take: indices must be a tensor of 0-based integers (e.g. lattice.array({0, 2}, "int64")), not a Lua table')
    assert.has_error(function() lattice.take(x, "a") end, "bad argument #2 to 'take' (lattice.Tensor expected, got string)")
  end)
end)

describe("take_along_axis", function()
  local x = lattice.array({ { 10, 20, 30 }, { 40, 50, 60 } })

  it("picks one element per position along the axis", function()
    assert.are.same({ { 30, 10 }, { 50, 50 } }, lattice.take_along_axis(x, i64({ { 2, 0 }, { 1, 1 } }), 2):tolist())
    assert.are.same({ { 40, 20, 60 } }, lattice.take_along_axis(x, i64({ { 1, 0, -1 } }), 1):tolist())
    assert.are.same({ { 30 }, { 40 } }, lattice.take_along_axis(x, i64({ { -1 }, { 0 } }), -1):tolist())
  end)

  it("flattens both when no axis is given", function()
    assert.are.same({ 60, 10, 50 }, lattice.take_along_axis(x, i64({ 5, 0, -2 })):tolist())
  end)

  it("matches a plain reference on a 3-D tensor", function()
    local data = rand({ 2, 4, 3 }, generator(5))
    local idx = randint({ 2, 6, 3 }, -4, 3, 6)
    local y = lattice.take_along_axis(lattice.array(data), i64(idx), 2)
    local want = {}
    for a = 1, 2 do
      want[a] = {}
      for k = 1, 6 do
        want[a][k] = {}
        for c = 1, 3 do want[a][k][c] = f32(data[a][idx[a][k][c] % 4 + 1][c]) end
      end
    end
    assert.are.same(want, y:tolist())
  end)

  it("is also called gather, with lattice's argument order (x, indices, axis)", function()
    local idx = i64({ { 2, 0 }, { 1, 1 } })
    assert.are.same(lattice.take_along_axis(x, idx, 2):tolist(), lattice.gather(x, idx, 2):tolist())
    assert.has_error(function() lattice.gather(x, i64({ { 3 }, { 0 } }), 2) end,
      "gather: index 3 is out of range for axis 2 of size 3")
    assert.has_error(function() lattice.gather(x, i64({ { 0 } }), 4) end,
      "gather: axis 4 is out of range for 2 dimensions")
    assert.has_error(function() lattice.gather(x, i64({ { 0 } }), 1) end,
      "gather: indices have shape {1,1}, x has shape {2,3}; they must match except along axis 1")
  end)

  it("has the gradient of a scatter-add", function()
    local x3 = lattice.array(rand({ 2, 3, 4 }, generator(8)))
    gradcheck.each_dtype(function(v) return weigh(lattice.take_along_axis(v, i64(randint({ 2, 5, 4 }, -3, 2, 9)), 2)) end, { x3 })
    gradcheck.each_dtype(function(v) return weigh(lattice.take_along_axis(v, i64(randint({ 2, 3, 6 }, 0, 3, 10)), 3)) end, { x3 })
    gradcheck.each_dtype(function(v) return weigh(lattice.gather(v, i64(randint({ 1, 3, 4 }, 0, 1, 11)), 1)) end, { x3 })
  end)

  it("rejects bad inputs with clear messages", function()
    assert.has_error(function() lattice.take_along_axis(x, i64({ 0, 1 }), 2) end,
      "take_along_axis: indices have shape {2}, x has shape {2,3}; they must match except along axis 2")
    assert.has_error(function() lattice.take_along_axis(x, i64({ { 0 }, { 1 }, { 1 } }), 2) end,
      "take_along_axis: indices have shape {3,1}, x has shape {2,3}; they must match except along axis 2")
    assert.has_error(function() lattice.take_along_axis(x, i64({ { 0 } })) end,
      "take_along_axis: with no axis, indices must be 1-D, got shape {1,1}")
    assert.has_error(function() lattice.take_along_axis(x, i64({ { 0 }, { -4 } }), 2) end,
      "take_along_axis: index -4 is out of range for axis 2 of size 3")
    assert.has_error(function() lattice.take_along_axis(x, lattice.array({ { 0 }, { 1 } }), 2) end,
      "take_along_axis: indices must be integers, got float32")
    assert.has_error(function() lattice.gather(x, { { 0 } }, 2) end,
      'gather: indices must be a tensor of 0-based integers (e.g. lattice.array({0, 2}, "int64")), not a Lua table')
  end)
end)

describe("embedding", function()
  local w = lattice.array({ { 0, 0.5 }, { 1, 1.5 }, { 2, 2.5 } })

  it("looks up rows for ids of any shape", function()
    local y = lattice.embedding(w, i64({ { 2, 0 }, { 1, 2 } }))
    assert.are.same({ 2, 2, 2 }, y.shape)
    assert.are.same({ { { 2, 2.5 }, { 0, 0.5 } }, { { 1, 1.5 }, { 2, 2.5 } } }, y:tolist())
    assert.are.same({ 2 }, lattice.embedding(w, lattice.array(1, "int32")).shape)
    local b = lattice.embedding(w:astype("bfloat16"), lattice.array({ 1 }, "uint8"))
    assert.are.equal("bfloat16", b.dtype)
    assert.are.same({ { 1, 1.5 } }, b:tolist())
  end)

  it("accumulates the weight gradient over repeated ids", function()
    local ids = i64({ { 0, 2, 2 }, { 2, 1, 0 } })
    gradcheck.each_dtype(function(v) return weigh(lattice.embedding(v, ids)) end, { w })
  end)

  it("gives the same weight gradient for any thread count, equal to a plain reference", function()
    -- (V, D) = (50, 96) and 2000 ids: past the parallel grain, so the backward is split over D.
    local V, D, N = 50, 96, 2000
    local ids = randint({ N }, 0, V - 1, 12)
    local weight = lattice.array(rand({ V, D }, generator(13)))
    local target = rand({ N, D }, generator(14))
    local function f(v) return lattice.mse_loss(lattice.embedding(v, i64(ids)), lattice.array(target), { reduction = "sum" }) end
    local saved = lattice.num_threads()
    lattice.set_num_threads(1)
    local g1 = lattice.grad(f)(weight):tolist()
    lattice.set_num_threads(2)
    local g2 = lattice.grad(f)(weight):tolist()
    lattice.set_num_threads(saved)
    assert.are.same(g1, g2) -- bitwise
    -- d/dw sum((w[ids] - target)^2) = scatter-add of 2 (w[ids[n]] - target[n])
    local wl, want = weight:tolist(), {}
    for v = 1, V do
      want[v] = {}
      for d = 1, D do want[v][d] = 0 end
    end
    for n = 1, N do
      local v = ids[n] + 1
      for d = 1, D do want[v][d] = want[v][d] + 2 * (wl[v][d] - f32(target[n][d])) end
    end
    for v = 1, V do
      for d = 1, D do
        -- ~40 float32 additions (ids per row) of terms below 4: the rounding stays below 1e-4
        assert(math.abs(g1[v][d] - want[v][d]) < 1e-4, ("w[%d][%d]: %g vs %g"):format(v, d, g1[v][d], want[v][d]))
      end
    end
  end)

  it("rejects bad inputs with clear messages", function()
    local big = lattice.zeros({ 10, 4 })
    assert.has_error(function() lattice.embedding(big, i64({ 1, 12 })) end,
      "embedding: id 12 is out of range for 10 embeddings")
    assert.has_error(function() lattice.embedding(big, i64({ -1 })) end,
      "embedding: id -1 is out of range for 10 embeddings")
    assert.has_error(function() lattice.embedding(big, lattice.array({ 1 })) end,
      "embedding: ids must be integers, got float32")
    assert.has_error(function() lattice.embedding(lattice.zeros({ 10 }), i64({ 1 })) end,
      "embedding: weight must be 2-D (V,D), got shape {10}")
    assert.has_error(function() lattice.embedding(big, { 1 }) end,
      'embedding: ids must be a tensor of 0-based integers (e.g. lattice.array({0, 2}, "int64")), not a Lua table')
    assert.has_error(function() lattice.embedding(big, i64({ 1 }), 1) end,
      "embedding: too many arguments (expected at most 2, got 3)")
  end)
end)

describe("float64 indexing", function()
  it("copies float64 values exactly and scatter-adds their gradients in double, for any thread count", function()
    -- the gradient of sum(embedding(w, ids) * p) is the scatter-add of p's rows:
    -- ~40 double additions per row, against the same additions in Lua
    local V, D, N = 50, 96, 2000
    local ids = randint({ N }, 0, V - 1, 21)
    local weight = lattice.array(rand({ V, D }, generator(22)), "float64")
    local P = rand({ N, D }, generator(23))
    local p = lattice.array(P, "float64")
    local y = lattice.embedding(weight, i64(ids))
    assert.are.equal("float64", y.dtype)
    local wl = weight:tolist()
    assert.are.same(wl[ids[7] + 1], y:tolist()[7])
    local function f(v) return lattice.sum(lattice.embedding(v, i64(ids)) * p) end
    local saved = lattice.num_threads()
    lattice.set_num_threads(1)
    local g1 = lattice.grad(f)(weight)
    lattice.set_num_threads(2)
    local g2 = lattice.grad(f)(weight)
    lattice.set_num_threads(saved)
    assert.are.equal("float64", g1.dtype)
    assert.are.same(g1:tolist(), g2:tolist())
    local want = {}
    for v = 1, V do
      want[v] = {}
      for d = 1, D do want[v][d] = 0 end
    end
    for n = 1, N do
      for d = 1, D do want[ids[n] + 1][d] = want[ids[n] + 1][d] + P[n][d] end
    end
    ref.assert_close(g1:tolist(), want, 1e-13)
  end)

  it("take and take_along_axis keep float64 forward and backward", function()
    local x = lattice.array({ { 0.1, 0.2, 0.3 }, { 0.4, 0.5, 0.6 } }, "float64")
    assert.are.same({ { 0.3, 0.1 }, { 0.6, 0.4 } }, lattice.take(x, i64({ 2, 0 }), 2):tolist())
    assert.are.same({ { 0.2 }, { 0.4 } }, lattice.take_along_axis(x, i64({ { 1 }, { 0 } }), 2):tolist())
    local g = lattice.grad(function(v) return lattice.sum(lattice.take(v, i64({ 2, 2, 0 }), 2) * 0.1) end)(x)
    assert.are.equal("float64", g.dtype)
    assert.are.same({ { 0.1, 0, 0.1 + 0.1 }, { 0.1, 0, 0.1 + 0.1 } }, g:tolist())
  end)
end)
