local lattice = require "lattice"
local core = require "lattice.core" -- sgemm_with_isa: the test hook of lattice's dense sgemm
local ref = require "support.reference"

-- The one-row case of lattice's sgemm (core/kernels/sgemv*): c (1, n) =
-- alpha a (1, k) op(b) + beta c, which sgemm_with_isa (and every float32
-- matmul and linear) takes whenever m is 1: no packing, the lanes of a
-- vector holding different outputs (b transposed: 16 x 16 or 8 x 8 blocks
-- transposed in registers). It keeps the sgemm's promise: each c[j] is one
-- chain of fused multiply-adds over p ascending, fmaf(alpha a(p), b(p, j),
-- acc) from 0, c or beta c. So every ISA gives the scalar _ref's bits, on 1
-- and 2 threads, and a one-row product gives the bits of the same row of a
-- many-row product through the packed, blocked path: a decode step's logits
-- are those of the full forward. Against a plain Lua reference in doubles,
-- the bound of such a chain: (k + 2) 2^-24 (sum_p |alpha a b| + |beta c|)
-- (Higham, Accuracy and Stability of Numerical Algorithms, 3.1), as in
-- sgemm_spec.

math.randomseed(271828)
local U = 2 ^ -24
local ISAS = { "scalar", "avx2", "avx512" }

local function randm(r, c) return ref.tensor(ref.randn(r * c), { r, c }) end

-- alpha a op(b) + beta c for a row a, in Lua doubles, with each entry's bound.
local function textbook(a, b, o, n, k)
  local A, B, C = ref.flat(a), b:tolist(), o.c and ref.flat(o.c)
  local alpha, beta = o.alpha or 1, o.beta or 0
  local want, tol = {}, {}
  for j = 1, n do
    local s, mag = 0, 0
    for p = 1, k do
      local t = alpha * A[p] * (o.tb and B[j][p] or B[p][j])
      s, mag = s + t, mag + math.abs(t)
    end
    if beta ~= 0 then s, mag = s + beta * C[j], mag + math.abs(beta * C[j]) end
    want[j], tol[j] = s, (k + 2) * U * mag
  end
  return want, tol
end

-- a row (1, k) (or, with ta, the column (k, 1)) and b (k, n) or (n, k).
local function operands(n, k, o)
  local a = o.ta and randm(k, 1) or randm(1, k)
  local b = o.tb and randm(n, k) or randm(k, n)
  return a, b
end

local TRANSPOSES = { { ta = false, tb = false }, { ta = true, tb = false }, { ta = false, tb = true },
  { ta = true, tb = true } }
-- n and k around the vector widths (8, 16) and the 16-row groups, odd ones
-- with tails of both; (3001, 350), past 2^20 multiply-adds, is the one
-- that splits over the threads (checked for bits only: the Lua reference
-- would take seconds)
local SHAPES = { { 1, 1 }, { 7, 3 }, { 8, 8 }, { 17, 33 }, { 33, 1 }, { 31, 16 }, { 129, 47 }, { 300, 385 },
  { 1001, 333 } }
local THREADED = { 3001, 350 }
local SCALARS = { { 1, 0 }, { -0.5, 1 }, { 1.5, 0.75 } }

describe("sgemm with one row", function()
  for _, tr in ipairs(TRANSPOSES) do
    it(("gives alpha a op(b) + beta c within the chain's bound, ta=%s tb=%s, every ISA"):format(tr.ta, tr.tb), function()
      for _, s in ipairs(SHAPES) do
        local n, k = s[1], s[2]
        local a, b = operands(n, k, tr)
        for _, ab in ipairs(SCALARS) do
          local o = { ta = tr.ta, tb = tr.tb, alpha = ab[1], beta = ab[2], c = randm(1, n) }
          local want, tol = textbook(a, b, o, n, k)
          for _, isa in ipairs(ISAS) do
            local got = ref.flat(core.sgemm_with_isa(a, b, isa, o))
            for j = 1, n do
              local d = math.abs(got[j] - want[j])
              if d ~= d or d > tol[j] then
                error(("%s 1x%dx%d alpha %g beta %g: entry %d is %.9g, expected %.9g within %.3g"):format(isa, n, k,
                  ab[1], ab[2], j, got[j], want[j], tol[j]))
              end
            end
          end
        end
      end
    end)
  end

  it("gives the scalar _ref's bits with every ISA, on 1 and 2 threads", function()
    for _, s in ipairs({ THREADED, table.unpack(SHAPES) }) do
      for _, tr in ipairs(TRANSPOSES) do
        local n, k = s[1], s[2]
        local a, b = operands(n, k, tr)
        for _, ab in ipairs(SCALARS) do
          local o = { ta = tr.ta, tb = tr.tb, alpha = ab[1], beta = ab[2], c = randm(1, n), threads = 1 }
          local want = core.sgemm_with_isa(a, b, "scalar", o):tolist()
          for _, isa in ipairs(ISAS) do
            for threads = 1, 2 do
              o.threads = threads
              local got, used = core.sgemm_with_isa(a, b, isa, o)
              assert.are.same(want, got:tolist(), ("%s (ran %s) 1x%dx%d on %d threads"):format(isa, used, n, k,
                threads))
            end
          end
        end
      end
    end
  end)

  it("gives each row of a many-row product (the packed path) the same bits", function()
    -- 40 x 300 x 100: past the unpacked small products, split over threads
    local m, n, k = 40, 300, 100
    for _, tb in ipairs({ false, true }) do
      local a = randm(m, k)
      local b = tb and randm(n, k) or randm(k, n)
      local c = randm(m, n)
      for _, isa in ipairs(ISAS) do
        local o = { tb = tb, beta = 1, c = c, threads = 2 }
        local full = core.sgemm_with_isa(a, b, isa, o):tolist()
        for _, i in ipairs({ 1, 17, m }) do
          local row = { tb = tb, beta = 1, c = c:slice(1, i, i), threads = 2 }
          local got = core.sgemm_with_isa(a:slice(1, i, i), b, isa, row):tolist()[1]
          assert.are.same(full[i], got, ("%s tb=%s row %d"):format(isa, tb, i))
        end
      end
    end
  end)

  it("starts the chains from a bias: the bits of c filled with it and beta 1", function()
    for _, s in ipairs(SHAPES) do
      for _, tr in ipairs(TRANSPOSES) do
        local n, k = s[1], s[2]
        local a, b = operands(n, k, tr)
        local bias = ref.tensor(ref.randn(n), { n })
        for _, isa in ipairs(ISAS) do
          local want = core.sgemm_with_isa(a, b, isa, { ta = tr.ta, tb = tr.tb, beta = 1, c = bias:reshape({ 1, n }) })
          local got = core.sgemm_with_isa(a, b, isa, { ta = tr.ta, tb = tr.tb, bias = bias })
          assert.are.same(want:tolist(), got:tolist(), ("%s 1x%dx%d"):format(isa, n, k))
        end
      end
    end
  end)

  it("ignores what c held when beta is 0 (NaN and infinity included)", function()
    for _, tb in ipairs({ false, true }) do
      local n, k = 37, 20
      local a, b = operands(n, k, { tb = tb })
      local held = {}
      for j = 1, n do held[j] = ({ 0 / 0, math.huge, -math.huge })[j % 3 + 1] end
      local want, tol = textbook(a, b, { tb = tb }, n, k)
      for _, isa in ipairs(ISAS) do
        local got = ref.flat(core.sgemm_with_isa(a, b, isa, { tb = tb, c = ref.tensor(held, { 1, n }) }))
        for j = 1, n do
          assert(math.abs(got[j] - want[j]) <= tol[j], ("%s tb=%s entry %d is %s"):format(isa, tb, j, got[j]))
        end
      end
    end
  end)
end)

describe("one-row products in the layers", function()
  after_each(function() lattice.set_num_threads(2) end)

  it("give a linear layer's one-token output the bits of its row of a many-token output", function()
    -- the decode step against the full forward: (1, K) rows of (T, K)
    local x, w, bias = randm(24, 384), randm(1000, 384), ref.tensor(ref.randn(1000), { 1000 })
    for threads = 1, 2 do
      lattice.set_num_threads(threads)
      for _, b in ipairs({ false, true }) do
        local full = (b and lattice.linear(x, w, bias) or lattice.linear(x, w)):tolist()
        for _, t in ipairs({ 1, 24 }) do
          local xt = x:slice(1, t, t)
          local one = (b and lattice.linear(xt, w, bias) or lattice.linear(xt, w)):tolist()[1]
          assert.are.same(full[t], one, ("threads %d bias %s row %d"):format(threads, b, t))
        end
      end
    end
  end)

  it("give a batched matmul of rows each entry's own product", function()
    -- (3, 1, 400) @ (3, 400, 90): one row per entry, past the small
    -- products, so the entries spread over the threads
    local a = ref.tensor(ref.randn(3 * 400), { 3, 1, 400 })
    local b = ref.tensor(ref.randn(3 * 400 * 90), { 3, 400, 90 })
    local isa = lattice.isa()
    local results = {}
    for threads = 1, 2 do
      lattice.set_num_threads(threads)
      results[threads] = lattice.matmul(a, b):tolist()
    end
    assert.are.same(results[1], results[2])
    for e = 1, 3 do
      local want = core.sgemm_with_isa(a:slice(1, e, e):reshape({ 1, 400 }), b:slice(1, e, e):reshape({ 400, 90 }), isa)
      assert.are.same(want:tolist(), results[2][e])
    end
  end)
end)
