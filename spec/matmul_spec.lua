-- matmul: NumPy matmul semantics against a plain triple-loop reference.
local lattice = require "lattice"
local gradcheck = require "support.gradcheck"
local ref = require "support.reference"

local generator, rand, assert_close = ref.generator, ref.rand, ref.assert_close
local weighted = ref.weighted

-- Plain (M,K) @ (K,N) in double precision.
local function mm(A, B)
  local C = {}
  for i = 1, #A do
    C[i] = {}
    for j = 1, #B[1] do
      local s = 0
      for k = 1, #B do s = s + A[i][k] * B[k][j] end
      C[i][j] = s
    end
  end
  return C
end

-- float32 sums of K products of values in [-1, 1]: the error is below K ulps of
-- the largest partial sum, ~1e-6 for K <= 8; 1e-5 leaves a margin.
local TOL = 1e-5

local function row(v) return { v } end              -- 1-D a as (1, K)
local function col(v)                               -- 1-D b as (K, 1)
  local t = {}
  for i = 1, #v do t[i] = { v[i] } end
  return t
end

describe("matmul", function()
  local gen = generator(7)

  it("multiplies 2-D matrices", function()
    local A, B = rand({ 3, 4 }, gen), rand({ 4, 5 }, gen)
    local y = lattice.matmul(lattice.array(A), lattice.array(B))
    assert.are.same({ 3, 5 }, y.shape)
    assert.are.equal("float32", y.dtype)
    assert_close(y:tolist(), mm(A, B), TOL)
  end)

  it("computes a hand-checked product", function()
    local a = lattice.array({ { 1, 2, 3 }, { 4, 5, 6 } })
    local y = lattice.matmul(a, lattice.array({ { 1, 0 }, { 0, 1 }, { 1, 1 } }))
    assert.are.same({ { 4, 5 }, { 10, 11 } }, y:tolist())
  end)

  it("treats a 1-D left operand as a row and drops it", function()
    local v, B = rand({ 4 }, gen), rand({ 4, 5 }, gen)
    local y = lattice.matmul(lattice.array(v), lattice.array(B))
    assert.are.same({ 5 }, y.shape)
    assert_close(y:tolist(), mm(row(v), B)[1], TOL)
  end)

  it("treats a 1-D right operand as a column and drops it", function()
    local A, v = rand({ 3, 4 }, gen), rand({ 4 }, gen)
    local y = lattice.matmul(lattice.array(A), lattice.array(v))
    assert.are.same({ 3 }, y.shape)
    local want = {}
    for i, r in ipairs(mm(A, col(v))) do want[i] = r[1] end
    assert_close(y:tolist(), want, TOL)
  end)

  it("gives a 0-d dot product for two vectors", function()
    local y = lattice.matmul(lattice.array({ 1, 2, 3 }), lattice.array({ 4, 5, 6 }))
    assert.are.same({}, y.shape)
    assert.are.equal(32, y:item())
  end)

  it("multiplies 3-D batches pairwise", function()
    local A, B = rand({ 2, 3, 4 }, gen), rand({ 2, 4, 5 }, gen)
    local y = lattice.matmul(lattice.array(A), lattice.array(B))
    assert.are.same({ 2, 3, 5 }, y.shape)
    assert_close(y:tolist(), { mm(A[1], B[1]), mm(A[2], B[2]) }, TOL)
  end)

  it("broadcasts a 2-D right operand over the left batch", function()
    local A, B = rand({ 2, 3, 4 }, gen), rand({ 4, 5 }, gen)
    local y = lattice.matmul(lattice.array(A), lattice.array(B))
    assert.are.same({ 2, 3, 5 }, y.shape)
    assert_close(y:tolist(), { mm(A[1], B), mm(A[2], B) }, TOL)
  end)

  it("broadcasts a 2-D left operand over the right batch", function()
    local A, B = rand({ 3, 4 }, gen), rand({ 2, 4, 5 }, gen)
    local y = lattice.matmul(lattice.array(A), lattice.array(B))
    assert.are.same({ 2, 3, 5 }, y.shape)
    assert_close(y:tolist(), { mm(A, B[1]), mm(A, B[2]) }, TOL)
  end)

  it("broadcasts 4-D batch axes of size 1 against each other", function()
    local A, B = rand({ 2, 1, 3, 4 }, gen), rand({ 1, 3, 4, 2 }, gen)
    local y = lattice.matmul(lattice.array(A), lattice.array(B))
    assert.are.same({ 2, 3, 3, 2 }, y.shape)
    local want = {}
    for i = 1, 2 do
      want[i] = {}
      for j = 1, 3 do want[i][j] = mm(A[i][1], B[1][j]) end
    end
    assert_close(y:tolist(), want, TOL)
  end)

  it("broadcasts a 1-D operand against a batch", function()
    local v, B = rand({ 4 }, gen), rand({ 2, 4, 5 }, gen)
    local y = lattice.matmul(lattice.array(v), lattice.array(B))
    assert.are.same({ 2, 5 }, y.shape)
    assert_close(y:tolist(), { mm(row(v), B[1])[1], mm(row(v), B[2])[1] }, TOL)
    local A = rand({ 2, 3, 4 }, gen)
    local z = lattice.matmul(lattice.array(A), lattice.array(v))
    assert.are.same({ 2, 3 }, z.shape)
    local want = {}
    for b = 1, 2 do
      want[b] = {}
      for i, r in ipairs(mm(A[b], col(v))) do want[b][i] = r[1] end
    end
    assert_close(z:tolist(), want, TOL)
  end)

  it("reads transposed views without changing the result", function()
    local A, B = rand({ 4, 3 }, gen), rand({ 5, 4 }, gen)
    local a, b = lattice.array(A), lattice.array(B)
    -- a^T (3,4) @ b^T (4,5): both operands column-major
    local y = lattice.matmul(a:transpose(), b:transpose())
    local At, Bt = a:transpose():tolist(), b:transpose():tolist()
    assert_close(y:tolist(), mm(At, Bt), TOL)
    -- a batched transposed view (2,4,3) -> (2,3,4)
    local C = rand({ 2, 4, 3 }, gen)
    local ct = lattice.array(C):transpose({ 1, 3, 2 })
    local D = rand({ 4, 2 }, gen)
    local z = lattice.matmul(ct, lattice.array(D))
    local Ct = ct:tolist()
    assert_close(z:tolist(), { mm(Ct[1], D), mm(Ct[2], D) }, TOL)
  end)

  it("reads strided and sliced views", function()
    local A, B = rand({ 4, 6 }, gen), rand({ 3, 2 }, gen)
    local a = lattice.array(A)
    -- every other column: a stride sgemm cannot take, so it is copied
    local strided = a:slice(2, 1, -1, 2)
    assert_close(lattice.matmul(strided, lattice.array(B)):tolist(), mm(strided:tolist(), B), TOL)
    -- the first three columns: rows with a leading dimension of 6
    local narrow = a:slice(2, 1, 3)
    assert_close(lattice.matmul(narrow, lattice.array(B)):tolist(), mm(narrow:tolist(), B), TOL)
    -- a broadcast (stride 0) batch
    local wide = lattice.array(B):broadcast_to({ 3, 3, 2 })
    local y = lattice.matmul(narrow, wide)
    assert.are.same({ 3, 4, 2 }, y.shape)
    local m = mm(narrow:tolist(), B)
    assert_close(y:tolist(), { m, m, m }, TOL)
  end)

  it("handles empty operands", function()
    assert.are.same({ 0, 2 }, lattice.matmul(lattice.zeros({ 0, 3 }), lattice.zeros({ 3, 2 })).shape)
    -- K = 0: the sum over nothing is zero
    local y = lattice.matmul(lattice.zeros({ 2, 0 }), lattice.zeros({ 0, 3 }))
    assert.are.same({ { 0, 0, 0 }, { 0, 0, 0 } }, y:tolist())
  end)

  it("keeps float16 and bfloat16 and meets in float32 when mixed", function()
    -- multiples of 1/8 in [-1, 1] are exact in both 16-bit types, so only the
    -- final rounding differs from the reference: 2^-11 (float16) and 2^-8 (bfloat16)
    local q = function() return math.floor(gen() * 8) / 8 end
    local A, B = rand({ 2, 3, 4 }, q), rand({ 4, 5 }, q)
    local want = { mm(A[1], B), mm(A[2], B) }
    for dt, tol in pairs({ float16 = 2 ^ -10, bfloat16 = 2 ^ -7 }) do
      local y = lattice.matmul(lattice.array(A, dt), lattice.array(B, dt))
      assert.are.equal(dt, y.dtype)
      assert_close(y:tolist(), want, tol)
    end
    local z = lattice.matmul(lattice.array(A, "float16"), lattice.array(B, "bfloat16"))
    assert.are.equal("float32", z.dtype)
    assert_close(z:tolist(), want, TOL)
  end)

  it("matches a product with many terms to float32 accuracy", function()
    -- K = 300: sgemm's blocked sums against a double reference; 300 terms of
    -- size <= 1 give errors below 300 * 2^-24 * |partial sums| ~ 1e-4 at worst
    local A, B = rand({ 17, 300 }, gen), rand({ 300, 9 }, gen)
    assert_close(lattice.matmul(lattice.array(A), lattice.array(B)):tolist(), mm(A, B), 1e-4)
  end)

  describe("gradient", function()
    local function check(sa, sb)
      local a, b = lattice.array(rand(sa, gen)), lattice.array(rand(sb, gen))
      gradcheck.each_dtype(function(x, y) return weighted(lattice.matmul(x, y)) end, { a, b })
    end

    it("matches finite differences for 2-D operands", function() check({ 3, 4 }, { 4, 2 }) end)
    it("matches finite differences for 3-D batches", function() check({ 2, 3, 4 }, { 2, 4, 2 }) end)
    it("sums over a broadcast right operand", function() check({ 2, 3, 4 }, { 4, 2 }) end)
    it("sums over a broadcast left operand", function() check({ 3, 4 }, { 2, 4, 2 }) end)
    it("sums over size-1 batch axes", function() check({ 2, 1, 3, 2 }, { 1, 2, 2, 3 }) end)
    it("handles a 1-D left operand", function() check({ 4 }, { 4, 3 }) end)
    it("handles a 1-D right operand", function() check({ 3, 4 }, { 4 }) end)
    it("handles two vectors", function() check({ 4 }, { 4 }) end)
    it("handles a 1-D operand against a batch", function()
      check({ 4 }, { 2, 4, 3 })
      check({ 2, 3, 4 }, { 4 })
    end)

    it("flows through transposed views", function()
      local a, b = lattice.array(rand({ 4, 3 }, gen)), lattice.array(rand({ 2, 4 }, gen))
      gradcheck.each_dtype(function(x, y) return weighted(lattice.matmul(x:transpose(), y:transpose())) end, { a, b })
    end)

    it("keeps the 16-bit dtype of each input", function()
      local a, b = lattice.array(rand({ 2, 3 }, gen), "float16"), lattice.array(rand({ 3, 2 }, gen), "bfloat16")
      local g = lattice.grad(function(x, y) return weighted(lattice.matmul(x, y)) end, { 1, 2 })(a, b)
      assert.are.equal("float16", g[1].dtype)
      assert.are.equal("bfloat16", g[2].dtype)
    end)
  end)

  describe("rejects", function()
    it("inner dimensions that do not align", function()
      assert.has_error(function() lattice.matmul(lattice.zeros({ 3, 4 }), lattice.zeros({ 3, 4 })) end,
        "matmul: shapes {3,4} and {3,4} do not align: 4 ~= 3")
      assert.has_error(function() lattice.matmul(lattice.zeros({ 3 }), lattice.zeros({ 4 })) end,
        "matmul: shapes {3} and {4} do not align: 3 ~= 4")
    end)

    it("batch shapes that do not broadcast", function()
      assert.has_error(function() lattice.matmul(lattice.zeros({ 2, 3, 4 }), lattice.zeros({ 3, 4, 5 })) end,
        "matmul: batch shapes {2} and {3} cannot be broadcast")
    end)

    it("integer and boolean inputs", function()
      assert.has_error(function() lattice.matmul(lattice.zeros({ 2, 2 }, "int32"), lattice.zeros({ 2, 2 })) end,
        "matmul: integer inputs are not supported, got int32")
      assert.has_error(function() lattice.matmul(lattice.zeros({ 2, 2 }), lattice.zeros({ 2, 2 }, "bool")) end,
        "matmul: boolean inputs are not supported, got bool")
    end)

    it("0-d operands", function()
      assert.has_error(function() lattice.matmul(lattice.array(2), lattice.zeros({ 2 })) end,
        "matmul: operands must have at least 1 dimension, got shapes {} and {2}")
    end)

    it("arguments that are not tensors", function()
      assert.has_error(function() lattice.matmul(lattice.zeros({ 2 }), "x") end,
        "bad argument #2 to 'matmul' (lattice.Tensor expected, got string)")
    end)

    it("a third operand", function()
      local x = lattice.zeros({ 2, 2 })
      assert.has_error(function() lattice.matmul(x, x, x) end, "matmul: too many arguments (expected at most 2, got 3)")
    end)
  end)
end)

describe("float64 matmul", function()
  local gen = generator(17)

  it("goes to dgemm and matches the double reference to 1e-13", function()
    local A, B = rand({ 17, 300 }, gen), rand({ 300, 9 }, gen)
    local y = lattice.matmul(lattice.array(A, "float64"), lattice.array(B, "float64"))
    assert.are.equal("float64", y.dtype)
    assert_close(y:tolist(), mm(A, B), 1e-13)
  end)

  it("reads transposed views, batches and 1-D operands as the float32 path does", function()
    local A, B = rand({ 2, 4, 3 }, gen), rand({ 5, 4 }, gen)
    local a = lattice.array(A, "float64"):transpose({ 1, 3, 2 }) -- (2, 3, 4), column-major matrices
    local b = lattice.array(B, "float64"):transpose()            -- (4, 5)
    local at, bt = a:tolist(), b:tolist()
    local y = lattice.matmul(a, b)
    assert.are.same({ 2, 3, 5 }, y.shape)
    assert_close(y:tolist(), { mm(at[1], bt), mm(at[2], bt) }, 1e-14)
    local V = rand({ 4 }, gen)
    local want = {}
    for i = 1, 2 do
      want[i] = {}
      for r = 1, 3 do want[i][r] = mm(at[i], col(V))[r][1] end
    end
    assert_close(lattice.matmul(a, lattice.array(V, "float64")):tolist(), want, 1e-14, "matrix-vector")
  end)

  it("wins over float32 and the 16-bit types", function()
    local A, B = rand({ 3, 4 }, gen), rand({ 4, 2 }, gen)
    for _, dt in ipairs({ "float32", "float16", "bfloat16" }) do
      local b = lattice.array(B, dt)
      local y = lattice.matmul(lattice.array(A, "float64"), b)
      assert.are.equal("float64", y.dtype, dt)
      assert_close(y:tolist(), mm(A, b:astype("float64"):tolist()), 1e-14)
      assert.are.equal("float64", lattice.matmul(b:transpose(), lattice.array(A, "float64"):transpose()).dtype)
    end
  end)
end)
