local lattice = require "lattice"
local core = require "lattice.core" -- sgemm_with_isa: the test hook of lattice's dense sgemm
local ref = require "support.reference"

-- lattice's own float32 GEMM (core/kernels/sgemm*):
--   c (m, n) = alpha op(a) op(b) + beta c
-- with op(a) = a or a^T (ta) and op(b) = b or b^T (tb). Every variant
-- computes each c[i][j] as one chain of fused multiply-adds over p
-- ascending, fmaf(alpha * a(i, p), b(p, j), acc) from acc = 0, c or beta c:
-- the order of the scalar _ref's plain loops, whatever the ISA, the blocking
-- (k past one 256-deep panel, m past one 336-row block, n past one
-- 2048-column block) or the thread count. So the AVX2 and AVX-512 kernels
-- must match the _ref bit for bit, and 1 and 2 threads must too. Against a
-- plain Lua reference (doubles) the tolerance is the rounding bound of such
-- a chain: k + 2 roundings (alpha * a, the k steps, beta * c) each within
-- 2^-24 relative, so the error is within (k + 2) 2^-24 (sum_p |alpha a b| +
-- |beta c|) (Higham, Accuracy and Stability of Numerical Algorithms, 3.1).

math.randomseed(314159)
local U = 2 ^ -24
local isas = { "avx2", "avx512" }

local function randm(r, c) return ref.tensor(ref.randn(r * c), { r, c }) end

-- alpha op(a) op(b) + beta c in Lua doubles, with the bound of each entry.
local function textbook(a, b, o, m, n, k)
  local A, B = a:tolist(), b:tolist()
  local C = o.c and o.c:tolist()
  local alpha, beta = o.alpha or 1, o.beta or 0
  local want, tol = {}, {}
  for i = 1, m do
    local wr, tr = {}, {}
    for j = 1, n do
      local s, mag = 0, 0
      for p = 1, k do
        local x = o.ta and A[p][i] or A[i][p]
        local y = o.tb and B[j][p] or B[p][j]
        s, mag = s + alpha * x * y, mag + math.abs(alpha * x * y)
      end
      if beta ~= 0 then
        s, mag = s + beta * C[i][j], mag + math.abs(beta * C[i][j])
      end
      wr[j], tr[j] = s, (k + 2) * U * mag
    end
    want[i], tol[i] = wr, tr
  end
  return want, tol
end

local function operands(m, n, k, o)
  local a = o.ta and randm(k, m) or randm(m, k)
  local b = o.tb and randm(n, k) or randm(k, n)
  return a, b
end

local function assert_within(got, want, tol, what)
  for i = 1, #want do
    for j = 1, #want[i] do
      local d = math.abs(got[i][j] - want[i][j])
      if d ~= d or d > tol[i][j] then
        error(("%s: entry (%d, %d) is %.9g, expected %.9g within %.3g"):format(what, i, j, got[i][j], want[i][j],
          tol[i][j]))
      end
    end
  end
end

local transposes = { { ta = false, tb = false }, { ta = true, tb = false }, { ta = false, tb = true },
  { ta = true, tb = true } }

describe("sgemm against a plain reference", function()
  -- m, n, k: sizes around the tiles (14 x 32 AVX-512, 6 x 16 AVX2), past one
  -- reduction panel (k 257) and big enough to take the packed, threaded path
  local shapes = { { 1, 1, 1 }, { 7, 13, 5 }, { 13, 7, 63 }, { 65, 63, 13 }, { 1, 257, 65 }, { 63, 65, 257 },
    { 30, 33, 300 } }
  for _, tr in ipairs(transposes) do
    it(("gives alpha op(a) op(b) + beta c, ta=%s tb=%s, every ISA"):format(tr.ta, tr.tb), function()
      for _, s in ipairs(shapes) do
        local m, n, k = s[1], s[2], s[3]
        local a, b = operands(m, n, k, tr)
        for _, ab in ipairs({ { 1, 0 }, { -0.5, 1 }, { 1.5, 0.75 } }) do
          local o = { ta = tr.ta, tb = tr.tb, alpha = ab[1], beta = ab[2], c = randm(m, n) }
          local want, tol = textbook(a, b, o, m, n, k)
          for _, isa in ipairs({ "scalar", "avx2", "avx512" }) do
            local got = core.sgemm_with_isa(a, b, isa, o)
            assert_within(got:tolist(), want, tol, ("%s %dx%dx%d alpha %g beta %g"):format(isa, m, n, k, ab[1], ab[2]))
          end
        end
      end
    end)
  end

  it("ignores what c held when beta is 0 (NaN and infinity included), as BLAS does", function()
    local a, b = randm(20, 40), randm(40, 70)
    local held = {}
    for i = 1, 20 * 70 do held[i] = ({ 0 / 0, math.huge, -math.huge })[i % 3 + 1] end
    local c = ref.tensor(held, { 20, 70 })
    for _, isa in ipairs({ "scalar", "avx2", "avx512" }) do
      local got = core.sgemm_with_isa(a, b, isa, { c = c, beta = 0 })
      local want, tol = textbook(a, b, {}, 20, 70, 40)
      assert_within(got:tolist(), want, tol, isa .. " beta 0")
    end
  end)

  it("starts every row's chains from a bias: the bits of c filled with it and beta 1, every ISA", function()
    -- tiny (unpacked), packed with short edge tiles (n 300), past one
    -- reduction panel (k 260: the bias only in the first), on the threads
    for _, s in ipairs({ { 7, 13, 5 }, { 65, 63, 13 }, { 115, 300, 260 }, { 30, 2100, 17 }, { 9, 5, 0 } }) do
      local m, n, k = s[1], s[2], s[3]
      for _, tr in ipairs(transposes) do
        local a, b = operands(m, n, k, tr)
        local bias = ref.tensor(ref.randn(n), { n })
        local filled = lattice.broadcast_to(bias:reshape({ 1, n }), { m, n }):contiguous()
        for _, isa in ipairs({ "scalar", "avx2", "avx512" }) do
          local o = { ta = tr.ta, tb = tr.tb, alpha = 0.75 }
          local want = core.sgemm_with_isa(a, b, isa, { ta = tr.ta, tb = tr.tb, alpha = 0.75, beta = 1, c = filled })
          o.bias = bias
          local got = core.sgemm_with_isa(a, b, isa, o)
          assert.are.same(want:tolist(), got:tolist(), ("%s %dx%dx%d ta=%s tb=%s"):format(isa, m, n, k, tr.ta, tr.tb))
          if k > 0 and m < 100 then
            local exact, tol = textbook(a, b, { ta = tr.ta, tb = tr.tb, alpha = 0.75, beta = 1, c = filled }, m, n, k)
            assert_within(got:tolist(), exact, tol, isa .. " bias")
          end
        end
      end
    end
  end)

  it("leaves its inputs as they were and gives 0 (or beta c) for k = 0", function()
    local a, b, c = randm(5, 0), randm(0, 6), randm(5, 6)
    local c0 = c:tolist()
    assert.are.same((c * 0.5):tolist(), core.sgemm_with_isa(a, b, "avx512", { c = c, beta = 0.5 }):tolist())
    assert.are.same(c0, c:tolist())
    assert.are.same(lattice.zeros({ 5, 6 }):tolist(), core.sgemm_with_isa(a, b, "scalar"):tolist())
  end)
end)

describe("sgemm bits", function()
  -- big enough for several register tiles, reduction panels, row blocks and
  -- (n 2100) column blocks, and for both ways of splitting c over threads
  local shapes = { { 130, 97, 65 }, { 20, 300, 100 }, { 345, 40, 300 }, { 15, 2100, 17 }, { 1, 1000, 300 } }

  for _, isa in ipairs(isas) do
    it(isa .. " gives the bits of the _ref, every transpose, alpha and beta", function()
      for _, s in ipairs(shapes) do
        for _, tr in ipairs(transposes) do
          local m, n, k = s[1], s[2], s[3]
          local a, b = operands(m, n, k, tr)
          local o = { ta = tr.ta, tb = tr.tb, alpha = 0.75, beta = -1.25, c = randm(m, n) }
          local want = core.sgemm_with_isa(a, b, "scalar", o)
          local got, used = core.sgemm_with_isa(a, b, isa, o)
          if used ~= isa then
            pending(isa .. " is not available here")
            return
          end
          assert.are.same(want:tolist(), got:tolist())
        end
      end
    end)
  end

  it("gives the same bits on 1 and 2 threads, every ISA", function()
    for _, s in ipairs(shapes) do
      for _, tr in ipairs(transposes) do
        local m, n, k = s[1], s[2], s[3]
        local a, b = operands(m, n, k, tr)
        for _, isa in ipairs({ "scalar", "avx2", "avx512" }) do
          local o = { ta = tr.ta, tb = tr.tb, beta = 1, c = randm(m, n), threads = 1 }
          local one = core.sgemm_with_isa(a, b, isa, o):tolist()
          o.threads = 2
          assert.are.same(one, core.sgemm_with_isa(a, b, isa, o):tolist())
        end
      end
    end
  end)

  it("is what lattice.matmul and lattice.linear compute in float32", function()
    local x, w = randm(70, 90), randm(50, 90)
    local isa = lattice.isa()
    assert.are.same(core.sgemm_with_isa(x, w, isa, { tb = true }):tolist(), lattice.linear(x, w):tolist())
    -- a strided view: rows of a 110-column matrix, read in place
    local big = randm(70, 110)
    local xs = big:slice(2, 11, 100)
    assert.are.same(core.sgemm_with_isa(xs:contiguous(), w, isa, { tb = true }):tolist(),
      lattice.matmul(xs, w:transpose()):tolist())
  end)
end)

describe("sgemm batches", function()
  after_each(function() lattice.set_num_threads(2) end)

  it("gives every entry of a batched matmul the bits of its own product, on 1 and 2 threads", function()
    -- (3, 70, 40) @ (3, 40, 90): entries spread over the threads, one product each
    local a = ref.tensor(ref.randn(3 * 70 * 40), { 3, 70, 40 })
    local b = ref.tensor(ref.randn(3 * 40 * 90), { 3, 40, 90 })
    local isa = lattice.isa()
    local results = {}
    for threads = 1, 2 do
      lattice.set_num_threads(threads)
      results[threads] = lattice.matmul(a, b):tolist()
    end
    assert.are.same(results[1], results[2])
    for e = 1, 3 do
      local ae = a:slice(1, e, e):reshape({ 70, 40 })
      local be = b:slice(1, e, e):reshape({ 40, 90 })
      assert.are.same(core.sgemm_with_isa(ae, be, isa):tolist(), results[2][e])
    end
  end)
end)

describe("sgemm_with_isa", function()
  it("rejects bad operands with the hook's name", function()
    local a = randm(3, 4)
    assert.has_error(function() core.sgemm_with_isa(a, randm(5, 2), "avx2") end,
      "sgemm_with_isa: op(a) and op(b) do not align")
    assert.has_error(function() core.sgemm_with_isa(a, randm(4, 2), "avx9") end,
      "sgemm_with_isa: unknown ISA 'avx9' (expected scalar, avx2 or avx512)")
    assert.has_error(function() core.sgemm_with_isa(a, randm(4, 2), "avx2", { c = randm(2, 2) }) end,
      "sgemm_with_isa: c must be a (3, 2) float32 tensor")
    assert.has_error(function() core.sgemm_with_isa(a:astype("float64"), randm(4, 2), "avx2") end,
      "sgemm_with_isa: a and b must be 2-D float32 tensors")
    assert.has_error(function() core.sgemm_with_isa(a, randm(4, 2), "avx2", { bias = lattice.zeros({ 3 }) }) end,
      "sgemm_with_isa: bias must be a contiguous (2) float32 tensor")
    assert.has_error(function() core.sgemm_with_isa(a, randm(4, 2), "avx2", { bias = lattice.zeros({ 2 }), beta = 1 })
    end, "sgemm_with_isa: a bias needs beta 0")
  end)
end)
