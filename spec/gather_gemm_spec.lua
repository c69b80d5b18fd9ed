local lattice = require "lattice"
local core = require "lattice.core" -- ggemm_with_isa, ggemm_wgrad_with_isa: test hooks

-- The fused gather-GEMM kernels of sparse convolution (core/kernels/gather_gemm*):
--   forward  y (n_out, c_out) [+]= sum_k x[idx[o][k]] @ w[k]
--   wgrad    dw[k] (c_in, c_out) [+]= sum_o x[idx[o][k]]^T dy[o]
-- idx (n_out, K) holds 0-based input rows, -1 for none.
--
-- Every variant computes each output element as one chain of fused
-- multiply-adds in a fixed order (the forward: offsets ascending, then input
-- channels; the weight gradient: output rows ascending), the order of the
-- scalar _ref's fmaf loops. So the AVX2 and AVX-512 kernels must match the
-- _ref bit for bit, and 1 and 2 threads must too. Against a plain Lua
-- reference (double precision) the tolerance is the rounding bound of such a
-- chain: n terms summed in float32 with one rounding per step are within
-- n * 2^-24 * sum |terms| of the exact sum (Higham, Accuracy and Stability of
-- Numerical Algorithms, 3.1); the Lua sum itself is exact to 2^-50 relative
-- for these sizes, far inside that.

local isas = {"avx2", "avx512"}
local U = 2 ^ -24

-- A map of n_out rows and K offsets over n_in inputs: each entry an input
-- row with probability `density`, else -1. Returned as a Lua table and as a
-- tensor of `dtype` (int64 unless given).
local function random_map(n_out, K, n_in, density, dtype)
  local rows = {}
  for o = 1, n_out do
    local r = {}
    for k = 1, K do r[k] = (n_in > 0 and math.random() < density) and math.random(0, n_in - 1) or -1 end
    rows[o] = r
  end
  local t = n_out > 0 and K > 0 and lattice.array(rows, dtype or "int64") or lattice.zeros({n_out, K}, dtype or "int64")
  return rows, t
end

-- The forward in plain Lua: y[o][j] and its rounding bound.
local function lua_forward(xs, ws, map, c_out, y0)
  local want, bound = {}, {}
  for o, r in ipairs(map) do
    want[o], bound[o] = {}, {}
    for j = 1, c_out do
      local s = y0 and y0[o][j] or 0
      local a, n = math.abs(s), y0 and 1 or 0
      for k, i in ipairs(r) do
        if i >= 0 then
          for c, xv in ipairs(xs[i + 1]) do
            local t = xv * ws[k][c][j]
            s, a, n = s + t, a + math.abs(t), n + 1
          end
        end
      end
      want[o][j], bound[o][j] = s, n * U * a
    end
  end
  return want, bound
end

-- The weight gradient in plain Lua: dw[k][c][j] and its rounding bound.
local function lua_wgrad(xs, dys, map, K, c_in, c_out, dw0)
  local want, bound = {}, {}
  for k = 1, K do
    want[k], bound[k] = {}, {}
    for c = 1, c_in do
      want[k][c], bound[k][c] = {}, {}
      for j = 1, c_out do
        local s = dw0 and dw0[k][c][j] or 0
        local a, n = math.abs(s), dw0 and 1 or 0
        for o, r in ipairs(map) do
          local i = r[k]
          if i >= 0 then
            local t = xs[i + 1][c] * dys[o][j]
            s, a, n = s + t, a + math.abs(t), n + 1
          end
        end
        want[k][c][j], bound[k][c][j] = s, n * U * a
      end
    end
  end
  return want, bound
end

local function within(got, want, bound, what)
  local function walk(g, w, b, path)
    if type(w) == "table" then
      assert.equal(#w, #g, what .. ": length at " .. path)
      for i = 1, #w do walk(g[i], w[i], b[i], path .. "[" .. i .. "]") end
    else
      local err = math.abs(g - w)
      assert(err <= b * 1.0001 + 1e-30, ("%s%s: got %.9g, want %.9g (bound %.3g)"):format(what, path, g, w, b))
    end
  end
  walk(got, want, bound, "")
end

-- Bit-for-bit equality of two float tensors (max |a - b| is 0; no NaNs here).
local function same_bits(a, b, what)
  assert.same(a.shape, b.shape, what)
  if a.size == 0 then return end
  local d = lattice.max(lattice.abs(a - b)):item()
  assert(d == 0, ("%s: differs by up to %.3g"):format(what, d))
end

local function nonzero(t)
  return t.size > 0 and lattice.max(lattice.abs(t)):item() > 0
end

-- The cases the variants are compared on: every channel count named in the
-- issue (1, 3, 16, 32, 64, 96, 128) and non-multiples of 16 up to 130, each
-- offset count (1, 8, 27, 125), row counts 0, 1, 7, 1000, and densities 0,
-- 0.5 and 1. The pairs are chosen so that each value meets several others
-- while the total work stays small.
local cases = {
  -- c_in, c_out, K, n_out, density
  {1, 1, 27, 1000, 0.5}, {1, 130, 8, 7, 1}, {130, 1, 8, 7, 1}, {3, 16, 27, 1000, 0.5}, {16, 3, 125, 7, 0.5},
  {15, 17, 27, 1000, 0.5}, {17, 15, 1, 1000, 1}, {32, 32, 27, 1000, 0.5}, {31, 33, 8, 1000, 0.5},
  {33, 31, 125, 7, 1}, {64, 64, 27, 1000, 0.35}, {63, 65, 8, 1, 1}, {65, 63, 27, 7, 0.5}, {96, 96, 8, 1000, 0.5},
  {128, 128, 27, 7, 1}, {130, 129, 8, 7, 0.5}, {129, 130, 1, 1000, 1}, {48, 80, 27, 0, 0.5}, {80, 48, 27, 1, 0},
  {2, 100, 27, 1000, 0}, {100, 2, 125, 1000, 0.3}, {7, 7, 125, 1000, 0.5}, {113, 47, 27, 7, 0.5},
}

local function case_name(c)
  return ("c_in %d, c_out %d, K %d, n_out %d, density %g"):format(c[1], c[2], c[3], c[4], c[5])
end

describe("ggemm_with_isa", function()
  it("computes the scalar _ref within float32's rounding bound of a plain Lua sum", function()
    math.randomseed(11)
    for _, c in ipairs({{1, 1, 1, 1, 1}, {3, 5, 27, 7, 0.5}, {17, 16, 8, 40, 0.5}, {16, 33, 27, 20, 1},
                        {5, 2, 125, 3, 0.3}, {4, 4, 27, 0, 0.5}, {6, 3, 8, 9, 0}}) do
      local n_in = 13
      local map, idx = random_map(c[4], c[3], n_in, c[5])
      local x, w = lattice.random.normal({n_in, c[1]}), lattice.random.normal({c[3], c[1], c[2]})
      for _, isa in ipairs({"scalar", "avx2", "avx512"}) do
        local y, used = core.ggemm_with_isa(x, w, idx, isa)
        if used == isa then
          local want, bound = lua_forward(x:tolist(), w:tolist(), map, c[2])
          within(y:tolist(), want, bound, isa .. " " .. case_name(c))
        end
      end
    end
  end)

  it("adds to y when given one, leaving y itself unchanged", function()
    math.randomseed(12)
    local map, idx = random_map(9, 27, 11, 0.5)
    local x, w, y0 = lattice.random.normal({11, 5}), lattice.random.normal({27, 5, 18}), lattice.random.normal({9, 18})
    local before = y0:tolist()
    for _, isa in ipairs({"scalar", "avx2", "avx512"}) do
      local y, used = core.ggemm_with_isa(x, w, idx, isa, y0)
      if used == isa then
        local want, bound = lua_forward(x:tolist(), w:tolist(), map, 18, before)
        within(y:tolist(), want, bound, isa)
        assert.same(before, y0:tolist())
      end
    end
  end)

  it("gives a row without inputs zeros, or y's row when adding", function()
    local x, w = lattice.random.normal({4, 3}), lattice.random.normal({2, 3, 20})
    local idx = lattice.array({{-1, -1}, {2, -1}, {-1, -1}}, "int64")
    local y0 = lattice.random.normal({3, 20})
    for _, isa in ipairs({"scalar", "avx2", "avx512"}) do
      local y = core.ggemm_with_isa(x, w, idx, isa):tolist()
      local ya = core.ggemm_with_isa(x, w, idx, isa, y0):tolist()
      for j = 1, 20 do
        assert.equal(0, y[1][j])
        assert.equal(0, y[3][j])
        assert.equal(y0:tolist()[1][j], ya[1][j])
        assert.equal(y0:tolist()[3][j], ya[3][j])
      end
    end
  end)

  it("never reads the inputs or the weights of a missing entry", function()
    -- row 2 of x is NaN and no entry names it; offset 2's weight is inf and no row has an input there
    local x = lattice.array({{1, 2}, {0 / 0, 0 / 0}, {3, 4}})
    local w = lattice.array({{{1, 0, 2}, {0, 1, 3}}, {{math.huge, 1, 1}, {1, 1, 1}}})
    local idx = lattice.array({{0, -1}, {2, -1}, {-1, -1}}, "int32")
    for _, isa in ipairs({"scalar", "avx2", "avx512"}) do
      local y = core.ggemm_with_isa(x, w, idx, isa)
      assert.same({{1, 2, 8}, {3, 4, 18}, {0, 0, 0}}, y:tolist())
    end
  end)

  for _, isa in ipairs(isas) do
    describe(isa, function()
      it("matches the _ref bit for bit over channels, offsets, rows and densities, overwriting and adding", function()
        math.randomseed(13)
        for n, c in ipairs(cases) do
          local n_in = 300
          local _, idx = random_map(c[4], c[3], n_in, c[5])
          local x, w = lattice.random.normal({n_in, c[1]}), lattice.random.normal({c[3], c[1], c[2]})
          local y0 = n % 2 == 0 and lattice.random.normal({c[4], c[2]}) or nil
          local got, used = core.ggemm_with_isa(x, w, idx, isa, y0)
          if used ~= isa then return pending(isa .. " is not available here") end
          local want = core.ggemm_with_isa(x, w, idx, "scalar", y0)
          same_bits(got, want, case_name(c))
          if c[4] > 0 and c[5] > 0 then assert(nonzero(got), case_name(c)) end
        end
      end)

      it("reads x through its row stride and w in any layout", function()
        math.randomseed(14)
        local _, idx = random_map(200, 27, 50, 0.5)
        local wide = lattice.random.normal({100, 40})
        local x = lattice.slice(lattice.slice(wide, 1, 1, 100, 2), 2, 4, 36) -- rows 80 floats apart, 33 columns
        local w = lattice.transpose(lattice.random.normal({27, 20, 33}), {1, 3, 2}) -- (27, 33, 20), strided
        local got, used = core.ggemm_with_isa(x, w, idx, isa)
        if used ~= isa then return pending(isa .. " is not available here") end
        same_bits(got, core.ggemm_with_isa(lattice.contiguous(x), lattice.contiguous(w), idx, "scalar"), "strided")
      end)

      it("takes an int32 map as the same int64 one", function()
        math.randomseed(15)
        local _, idx = random_map(70, 8, 30, 0.5)
        local x, w = lattice.random.normal({30, 19}), lattice.random.normal({8, 19, 21})
        local got, used = core.ggemm_with_isa(x, w, idx:astype("int32"), isa)
        if used ~= isa then return pending(isa .. " is not available here") end
        same_bits(got, core.ggemm_with_isa(x, w, idx, isa), "int32")
      end)
    end)
  end

  it("gives the same bits on 1 and 2 threads", function()
    math.randomseed(16)
    local _, idx = random_map(1000, 27, 1000, 0.4)
    local x, w = lattice.random.normal({1000, 64}), lattice.random.normal({27, 64, 48})
    local threads = lattice.num_threads()
    for _, isa in ipairs({"scalar", "avx2", "avx512"}) do
      lattice.set_num_threads(1)
      local one = core.ggemm_with_isa(x, w, idx, isa)
      lattice.set_num_threads(2)
      local two = core.ggemm_with_isa(x, w, idx, isa)
      same_bits(one, two, isa)
    end
    lattice.set_num_threads(threads)
  end)

  it("handles no offsets and no input channels", function()
    local y = core.ggemm_with_isa(lattice.zeros({3, 4}), lattice.zeros({0, 4, 5}), lattice.zeros({2, 0}, "int64"), "avx512")
    assert.same({{0, 0, 0, 0, 0}, {0, 0, 0, 0, 0}}, y:tolist())
    y = core.ggemm_with_isa(lattice.zeros({3, 0}), lattice.zeros({2, 0, 2}), lattice.array({{0, 1}}, "int64"), "avx2")
    assert.same({{0, 0}}, y:tolist())
  end)

  it("names what is wrong with its arguments", function()
    local x, w = lattice.random.normal({5, 3}), lattice.random.normal({2, 3, 4})
    local idx = lattice.array({{0, -1}, {4, 2}}, "int64")
    local f = core.ggemm_with_isa
    assert.has_error(function() core.ggemm_with_isa("x", w, idx, "avx2") end,
      "bad argument #1 to 'ggemm_with_isa' (lattice.Tensor expected, got string)")
    assert.has_error(function() f(x, w, idx, "sse9") end,
      "ggemm_with_isa: unknown ISA 'sse9' (expected scalar, avx2 or avx512)")
    assert.has_error(function() f(x:astype("float64"), w, idx, "avx2") end,
      "ggemm_with_isa: x must be float32, got float64")
    assert.has_error(function() f(lattice.zeros({5}), w, idx, "avx2") end, "ggemm_with_isa: x must be 2-D, got shape {5}")
    assert.has_error(function() f(x, lattice.zeros({3, 4}), idx, "avx2") end,
      "ggemm_with_isa: w must be 3-D, got shape {3,4}")
    assert.has_error(function() f(x, lattice.zeros({2, 4, 4}), idx, "avx2") end,
      "ggemm_with_isa: w has 4 input channels, x has 3 columns")
    assert.has_error(function() f(x, w, idx:astype("float32"), "avx2") end,
      "ggemm_with_isa: idx must be int32 or int64, got float32")
    assert.has_error(function() f(x, w, lattice.zeros({2, 2, 1}, "int64"), "avx2") end,
      "ggemm_with_isa: idx must be 2-D (n_out, K), got shape {2,2,1}")
    assert.has_error(function() f(x, w, lattice.zeros({2, 3}, "int64"), "avx2") end,
      "ggemm_with_isa: idx has 3 offsets, w has 2")
    assert.has_error(function() f(x, w, lattice.array({{0, -2}, {4, 2}}, "int64"), "avx2") end,
      "ggemm_with_isa: idx[1][2] is -2; an input row is 0 to 4 (0-based) or -1")
    assert.has_error(function() f(x, w, lattice.array({{0, -1}, {5, 2}}, "int32"), "avx2") end,
      "ggemm_with_isa: idx[2][1] is 5; an input row is 0 to 4 (0-based) or -1")
    assert.has_error(function() f(lattice.zeros({0, 3}), w, idx, "avx2") end,
      "ggemm_with_isa: idx[1][1] is 0; x has no rows, so every entry must be -1")
    assert.has_error(function() f(x, w, idx, "avx2", lattice.zeros({2, 5})) end,
      "ggemm_with_isa: y has shape {2,5}, expected {2,4}")
    assert.has_error(function() f(x, w, idx, "avx2", lattice.zeros({2, 4}, "float16")) end,
      "ggemm_with_isa: y must be float32, got float16")
    assert.has_error(function() f(x, w, idx, "avx2", nil, 1) end,
      "ggemm_with_isa: too many arguments (expected at most 5, got 6)")
  end)
end)

describe("ggemm_wgrad_with_isa", function()
  it("computes the scalar _ref within float32's rounding bound of a plain Lua sum", function()
    math.randomseed(21)
    for _, c in ipairs({{1, 1, 1, 1, 1}, {3, 5, 27, 30, 0.5}, {17, 16, 8, 40, 0.5}, {5, 2, 125, 9, 0.3},
                        {4, 4, 27, 0, 0.5}, {6, 3, 8, 9, 0}}) do
      local n_in = 13
      local map, idx = random_map(c[4], c[3], n_in, c[5])
      local x, dy = lattice.random.normal({n_in, c[1]}), lattice.random.normal({c[4], c[2]})
      local want, bound = lua_wgrad(x:tolist(), dy:tolist(), map, c[3], c[1], c[2])
      for _, isa in ipairs({"scalar", "avx2", "avx512"}) do
        local dw, used = core.ggemm_wgrad_with_isa(x, dy, idx, isa)
        if used == isa then within(dw:tolist(), want, bound, isa .. " " .. case_name(c)) end
      end
    end
  end)

  it("adds to dw when given one, leaving dw itself unchanged", function()
    math.randomseed(22)
    local map, idx = random_map(25, 8, 11, 0.5)
    local x, dy, dw0 = lattice.random.normal({11, 5}), lattice.random.normal({25, 18}), lattice.random.normal({8, 5, 18})
    local before = dw0:tolist()
    local want, bound = lua_wgrad(x:tolist(), dy:tolist(), map, 8, 5, 18, before)
    for _, isa in ipairs({"scalar", "avx2", "avx512"}) do
      local dw, used = core.ggemm_wgrad_with_isa(x, dy, idx, isa, dw0)
      if used == isa then
        within(dw:tolist(), want, bound, isa)
        assert.same(before, dw0:tolist())
      end
    end
  end)

  for _, isa in ipairs(isas) do
    describe(isa, function()
      it("matches the _ref bit for bit over channels, offsets, rows and densities, overwriting and adding", function()
        math.randomseed(23)
        for n, c in ipairs(cases) do
          local n_in = 300
          local _, idx = random_map(c[4], c[3], n_in, c[5])
          local x, dy = lattice.random.normal({n_in, c[1]}), lattice.random.normal({c[4], c[2]})
          local dw0 = n % 2 == 1 and lattice.random.normal({c[3], c[1], c[2]}) or nil
          local got, used = core.ggemm_wgrad_with_isa(x, dy, idx, isa, dw0)
          if used ~= isa then return pending(isa .. " is not available here") end
          same_bits(got, core.ggemm_wgrad_with_isa(x, dy, idx, "scalar", dw0), case_name(c))
          if c[4] > 0 and c[5] > 0 then assert(nonzero(got), case_name(c)) end
        end
      end)

      it("gives each offset's transpose, bit for bit, when asked for (K, c_out, c_in)", function()
        math.randomseed(24)
        -- 33 and 70 columns go through padded accumulators, 32 and 48 straight into dw
        for _, c in ipairs({{33, 70}, {32, 48}}) do
          local _, idx = random_map(600, 27, 200, 0.4)
          local x, dy = lattice.random.normal({200, c[1]}), lattice.random.normal({600, c[2]})
          local dwt, used = core.ggemm_wgrad_with_isa(x, dy, idx, isa, nil, true)
          if used ~= isa then return pending(isa .. " is not available here") end
          assert.same({27, c[2], c[1]}, dwt.shape)
          same_bits(lattice.contiguous(lattice.transpose(dwt, {1, 3, 2})), core.ggemm_wgrad_with_isa(x, dy, idx, "scalar"),
            "transposed")
          local dw0 = lattice.random.normal({27, c[2], c[1]})
          same_bits(core.ggemm_wgrad_with_isa(x, dy, idx, isa, dw0, true),
            core.ggemm_wgrad_with_isa(x, dy, idx, "scalar", dw0, true), "transposed, adding")
        end
      end)

      it("reads x and dy through their row strides", function()
        math.randomseed(25)
        local _, idx = random_map(300, 8, 40, 0.5)
        local x = lattice.slice(lattice.random.normal({80, 50}), 1, 1, 80, 2) -- every other row
        local dy = lattice.slice(lattice.random.normal({300, 40}), 2, 3, 37) -- 35 of 40 columns
        local got, used = core.ggemm_wgrad_with_isa(x, dy, idx, isa)
        if used ~= isa then return pending(isa .. " is not available here") end
        same_bits(got, core.ggemm_wgrad_with_isa(lattice.contiguous(x), lattice.contiguous(dy), idx, "scalar"),
          "strided")
      end)
    end)
  end

  it("gives the same bits on 1 and 2 threads", function()
    math.randomseed(26)
    local _, idx = random_map(3000, 27, 3000, 0.4)
    local x, dy = lattice.random.normal({3000, 64}), lattice.random.normal({3000, 48})
    local threads = lattice.num_threads()
    for _, isa in ipairs({"scalar", "avx2", "avx512"}) do
      lattice.set_num_threads(1)
      local one = core.ggemm_wgrad_with_isa(x, dy, idx, isa)
      lattice.set_num_threads(2)
      local two = core.ggemm_wgrad_with_isa(x, dy, idx, isa)
      same_bits(one, two, isa)
    end
    lattice.set_num_threads(threads)
  end)

  it("names what is wrong with its arguments", function()
    local x, dy = lattice.random.normal({5, 3}), lattice.random.normal({2, 4})
    local idx = lattice.array({{0, -1}, {4, 2}}, "int64")
    local f = core.ggemm_wgrad_with_isa
    assert.has_error(function() core.ggemm_wgrad_with_isa(x, "dy", idx, "avx2") end,
      "bad argument #2 to 'ggemm_wgrad_with_isa' (lattice.Tensor expected, got string)")
    assert.has_error(function() f(x, dy, idx, "neon") end,
      "ggemm_wgrad_with_isa: unknown ISA 'neon' (expected scalar, avx2 or avx512)")
    assert.has_error(function() f(x, dy:astype("bfloat16"), idx, "avx2") end,
      "ggemm_wgrad_with_isa: dy must be float32, got bfloat16")
    assert.has_error(function() f(x, lattice.zeros({3, 4}), idx, "avx2") end,
      "ggemm_wgrad_with_isa: idx has 2 rows, dy has 3")
    assert.has_error(function() f(x, dy, lattice.array({{0, 7}, {4, 2}}, "int64"), "avx2") end,
      "ggemm_wgrad_with_isa: idx[1][2] is 7; an input row is 0 to 4 (0-based) or -1")
    assert.has_error(function() f(x, dy, idx, "avx2", lattice.zeros({2, 4, 3})) end,
      "ggemm_wgrad_with_isa: dw has shape {2,4,3}, expected {2,3,4}")
    assert.has_error(function() f(x, dy, idx, "avx2", lattice.zeros({2, 3, 4}), true) end,
      "ggemm_wgrad_with_isa: dw has shape {2,3,4}, expected {2,4,3}")
    assert.has_error(function() f(x, dy, idx, "avx2", nil, false, 1) end,
      "ggemm_wgrad_with_isa: too many arguments (expected at most 6, got 7)")
  end)
end)
