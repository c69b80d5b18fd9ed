-- Sparse pooling (lattice.ops.*_pool3d, global_*_pool and the nn modules)
-- against a plain Lua reference that builds the conv relation from its
-- definition: output support floor(p / stride) of the input rows in the order
-- first seen, output o reading the inputs o·stride + d − padding.
local lattice = require "lattice"
local gradcheck = require "support.gradcheck"
local ref = require "support.reference"
local sr = require "support.sparse_random"

local ops, nn = lattice.ops, lattice.nn
local generator, assert_close, weighted, f32 = ref.generator, ref.assert_close, ref.weighted, ref.f32
local key = sr.key

-- float32 sums of at most 27 values of |v| <= 1: a few ulps of 27, ~2e-6 at worst.
local TOL = 1e-5

local function f32_values(gen, n, c)
  local v = sr.values(gen, n, c)
  for _, r in ipairs(v) do
    for j = 1, #r do r[j] = f32(r[j]) end
  end
  return v
end

-- The local pool of rows/values: output rows, features and argmax (0-based rows, -1 for none).
local function triple(v, default)
  v = v or default
  return type(v) == "table" and v or { v, v, v }
end

local function pool_ref(rows, vals, mode, spec)
  local size, stride = triple(spec.kernel_size, 2), triple(spec.stride, 2)
  local padding, dilation = triple(spec.padding, 0), triple(spec.dilation, 1)
  local index, outs, seen = {}, {}, {}
  for i, r in ipairs(rows) do index[key(r)] = i end
  for _, r in ipairs(rows) do
    local o = { r[1], sr.floor_div(r[2], stride[1]), sr.floor_div(r[3], stride[2]), sr.floor_div(r[4], stride[3]) }
    if not seen[key(o)] then seen[key(o)], outs[#outs + 1] = true, o end
  end
  local c = #vals > 0 and #vals[1] or 0
  local y, arg = {}, {}
  for j, o in ipairs(outs) do
    local ins = {}
    for _, d in ipairs(sr.offsets(size, dilation)) do
      local p = { o[1] }
      for a = 1, 3 do p[a + 1] = o[a + 1] * stride[a] + d[a] - padding[a] end
      ins[#ins + 1] = index[key(p)]
    end
    y[j], arg[j] = {}, {}
    for ch = 1, c do
      local s, best, bi = 0, nil, nil
      for _, i in ipairs(ins) do
        local v = vals[i][ch]
        s = s + v
        if best == nil or v > best or (v == best and i < bi) then best, bi = v, i end
      end
      if mode == "max" then
        y[j][ch], arg[j][ch] = best or 0, bi and bi - 1 or -1
      else
        y[j][ch] = (mode == "avg" and #ins > 0) and s / #ins or s
      end
    end
  end
  return outs, y, arg
end

local function pool_op(mode) return ops[mode .. "_pool3d"] end

describe("local sparse pooling", function()
  local gen = generator(31)
  local rows = sr.support(gen, { n = 60, batches = 3, lo = -4, hi = 4 })
  local vals = f32_values(gen, #rows, 5)
  local x = sr.tensor(rows, vals, "float32", 3)

  for _, mode in ipairs({ "sum", "avg", "max" }) do
    it(mode .. "_pool3d matches the reference for kernel 2, stride 2 on batches with negative coordinates", function()
      local y = pool_op(mode)(x)
      local outs, want = pool_ref(rows, vals, mode, {})
      assert.are.same(outs, y.coords:tolist())
      assert_close(y.feats:tolist(), want, TOL)
      assert.are.same({ 2, 2, 2 }, y.stride)
    end)

    it(mode .. "_pool3d matches the reference with overlapping windows, padding and dilation", function()
      for _, spec in ipairs({
        { kernel_size = 3, stride = 2, padding = 1 },
        { kernel_size = { 3, 1, 2 }, stride = { 1, 2, 3 }, dilation = { 2, 1, 1 } },
        { kernel_size = 3, stride = 1 },
      }) do
        local y = pool_op(mode)(x, spec)
        local outs, want = pool_ref(rows, vals, mode, spec)
        assert.are.same(outs, y.coords:tolist())
        assert_close(y.feats:tolist(), want, TOL)
      end
    end)
  end

  it("gives a zero row to an output no input reaches", function()
    -- with padding 1, output o reads 2o - 2 .. 2o: the input at x = 1 (o = 0) is read by no window
    local t = sr.tensor({ { 0, 1, 0, 0 } }, { { 5 } })
    for _, mode in ipairs({ "sum", "avg", "max" }) do
      local y = pool_op(mode)(t, { kernel_size = { 3, 1, 1 }, stride = { 2, 1, 1 }, padding = { 1, 0, 0 } })
      assert.are.same({ { 0, 0, 0, 0 } }, y.coords:tolist())
      assert.are.same({ { 0 } }, y.feats:tolist())
    end
  end)

  it("averages over the contributing rows, not the kernel volume", function()
    -- two of the eight cells of one window: (1 + 4) / 2
    local t = sr.tensor({ { 0, 0, 0, 0 }, { 0, 1, 1, 1 } }, { { 1 }, { 4 } })
    assert.are.same({ { 2.5 } }, ops.avg_pool3d(t).feats:tolist())
  end)

  it("sends the gradient of a tie to the lowest input row, whatever the offset order", function()
    -- rows 1 and 2 hold 7 in channel 1; row 2 sits at the lower offset (kernel id 0)
    local t = sr.tensor({ { 0, 1, 1, 1 }, { 0, 0, 0, 0 }, { 0, 1, 0, 0 } }, { { 7, 1 }, { 7, 3 }, { -2, 2 } })
    local g = lattice.grad(function(f) return lattice.sum(ops.max_pool3d(t:with_feats(f)).feats) end)(t.feats)
    assert.are.same({ { 1, 0 }, { 0, 1 }, { 0, 0 } }, g:tolist())
  end)

  it("propagates NaN and sends its gradient to the NaN's row", function()
    local t = sr.tensor({ { 0, 0, 0, 0 }, { 0, 1, 0, 0 } }, { { 1 }, { 0 / 0 } })
    local y = ops.max_pool3d(t).feats:tolist()[1][1]
    assert(y ~= y, "the maximum is NaN")
    local g = lattice.grad(function(f) return lattice.sum(ops.max_pool3d(t:with_feats(f)).feats) end)(t.feats)
    assert.are.same({ { 0 }, { 1 } }, g:tolist())
  end)

  it("reuses the relation a convolution of the same spec built", function()
    lattice.clear_cache()
    local conv = ops.conv3d(x, lattice.ones({ 5, 2, 2, 2, 5 }), { kernel_size = 2, stride = 2 })
    local built = lattice.memory_stats().sparse_cache
    assert(built > 0, "the convolution cached its relation")
    for _, mode in ipairs({ "sum", "avg", "max" }) do
      assert(pool_op(mode)(x).coordinate_map_key == conv.coordinate_map_key, mode)
      assert.are.equal(built, lattice.memory_stats().sparse_cache, mode .. " built nothing new")
    end
  end)

  it("keeps the batch counts of every batch, trailing empty ones included", function()
    local t = sr.tensor({ { 0, 0, 0, 0 }, { 0, 3, 0, 0 } }, { { 1 }, { 2 } }, "float32", 3)
    assert.are.same({ 2, 0, 0 }, ops.sum_pool3d(t).batch_counts)
    assert.is_nil(ops.sum_pool3d(sr.tensor({ { 0, 0, 0, 0 } }, { { 1 } })).batch_counts)
  end)

  it("pools an empty tensor to an empty one", function()
    local t = sr.tensor({}, { { 0, 0 } }, "float32")
    local y = ops.max_pool3d(lattice.SparseTensor(lattice.zeros({ 0, 4 }, "int32"), lattice.zeros({ 0, 3 })))
    assert.are.same({ 0, 3 }, y.feats.shape)
    assert.are.same({ 0, 4 }, y.coords.shape)
    assert.are.equal(0, #ops.avg_pool3d(t))
  end)

  it("takes every float dtype and keeps it", function()
    for _, dt in ipairs({ "float16", "bfloat16", "float64" }) do
      local t = x:astype(dt)
      local held = t.feats:astype("float64"):tolist() -- the values the dtype holds
      for _, mode in ipairs({ "sum", "avg", "max" }) do
        local y = pool_op(mode)(t)
        assert.are.equal(dt, y.feats.dtype)
        local _, want = pool_ref(rows, held, mode, {})
        -- float16/bfloat16 round the float32 result once: 2^-11 and 2^-8 relative
        local tol = ({ float16 = 1e-3, bfloat16 = 8e-3, float64 = 1e-12 })[dt]
        assert_close(y.feats:astype("float64"):tolist(), want, tol)
      end
    end
  end)

  it("gives float16 and bfloat16 features the float64 gradient, rounded to their dtype", function()
    for _, dt in ipairs({ "float16", "bfloat16" }) do
      local t = x:astype(dt)
      local t64 = t:astype("float64") -- the same values, so the same argmax rows
      for _, mode in ipairs({ "sum", "avg", "max" }) do
        local function loss(src) return function(f) return lattice.sum(pool_op(mode)(src:with_feats(f)).feats) end end
        local g = lattice.grad(loss(t))(t.feats)
        assert.are.equal(dt, g.dtype)
        -- the gradients are 1, 1/count or 0: float16 holds them to 2^-11, bfloat16 to 2^-8
        local tol = ({ float16 = 1e-3, bfloat16 = 8e-3 })[dt]
        assert_close(g:astype("float64"):tolist(), lattice.grad(loss(t64))(t64.feats):tolist(), tol, dt .. " " .. mode)
      end
    end
  end)

  for _, mode in ipairs({ "sum", "avg", "max" }) do
    it(mode .. "_pool3d has the gradient of finite differences (float64)", function()
      local t = x:astype("float64")
      gradcheck(function(f) return weighted(pool_op(mode)(t:with_feats(f), { kernel_size = 3, stride = 2,
        padding = 1 }).feats) end, { t.feats })
      gradcheck(function(f) return weighted(pool_op(mode)(t:with_feats(f)).feats) end, { t.feats })
    end)
  end

  it("gives the same result on one and two threads", function()
    local g2 = generator(5)
    local big_rows = sr.support(g2, { n = 4000, batches = 2, lo = -12, hi = 12 })
    local big = sr.tensor(big_rows, sr.values(g2, #big_rows, 16))
    local before = lattice.num_threads()
    local results = {}
    for _, n in ipairs({ 1, 2 }) do
      lattice.set_num_threads(n)
      results[n] = {}
      for _, mode in ipairs({ "sum", "avg", "max" }) do
        local f = big.feats
        local y, g = lattice.value_and_grad(function(ff) return weighted(pool_op(mode)(big:with_feats(ff),
          { kernel_size = 3, stride = 2 }).feats) end)(f)
        results[n][mode] = { y:item(), g:tolist() }
      end
    end
    lattice.set_num_threads(before)
    assert.are.same(results[1], results[2])
  end)

  it("pool3d takes the mode as an option, sum by default", function()
    assert.are.same(ops.sum_pool3d(x).feats:tolist(), ops.pool3d(x).feats:tolist())
    assert.are.same(ops.max_pool3d(x, { kernel_size = 3 }).feats:tolist(),
      ops.pool3d(x, { mode = "max", kernel_size = 3 }).feats:tolist())
  end)

  it("rejects bad arguments with their messages", function()
    local cases = {
      { function() ops.max_pool3d(x, { kernel_size = 0 }) end, "max_pool3d: kernel_size must be in 1..7, got 0" },
      { function() ops.avg_pool3d(x, { kernel_size = 8 }) end, "avg_pool3d: kernel_size must be in 1..7, got 8" },
      { function() ops.sum_pool3d(x, { stride = { 1, 0, 1 } }) end, "sum_pool3d: stride must be positive, got 0" },
      { function() ops.max_pool3d(x, { padding = -1 }) end, "max_pool3d: padding must be non-negative, got -1" },
      { function() ops.max_pool3d(x, { dilation = 0 }) end, "max_pool3d: dilation must be positive, got 0" },
      { function() ops.max_pool3d(x, { kernel_size = 2.5 }) end,
        "max_pool3d: kernel_size must be an integer or a list of 3 integers, got 2.5" },
      { function() ops.max_pool3d(x, { size = 2 }) end, "max_pool3d: unknown option 'size'" },
      { function() ops.max_pool3d(x, 2) end, "max_pool3d: options must be a table, got number" },
      { function() ops.max_pool3d(x.feats) end, "max_pool3d: x must be a SparseTensor, got lattice.Tensor" },
      { function() ops.pool3d(x, { mode = "min" }) end, "pool3d: mode must be 'avg', 'max', 'sum', got min" },
    }
    for _, c in ipairs(cases) do assert.has_error(c[1], c[2]) end
  end)
end)

describe("sparse pooling errors", function()
  it("are raised at the caller's line", function()
    local x = sr.tensor({ { 0, 0, 0, 0 } }, { { 1 } })
    sr.assert_raised_here({
      function() ops.max_pool3d(x, { kernel_size = 0 }) end,
      function() ops.max_pool3d(x, { kernel_size = 2.5 }) end,
      function() ops.pool3d(x, { mode = "min" }) end,
      function() ops.global_avg_pool(x) end,
      function() nn.MaxPool3d({ stride = 0 }) end, -- (a module's forward raises without a position, as every built-in's)
    })
  end)
end)

describe("global sparse pooling", function()
  local gen = generator(47)
  -- batch 2 of 4 left empty; rows drawn interleaved across the batches
  local rows = sr.support(gen, { n = 30, batches = 4, skip = 2, lo = -3, hi = 3 })
  local vals = f32_values(gen, #rows, 3)
  local x = sr.tensor(rows, vals, "float32", 4)

  local function global_ref(mode)
    local y, n = {}, {}
    for b = 1, 4 do y[b], n[b] = { 0, 0, 0 }, 0 end
    local best = {}
    for i, r in ipairs(rows) do
      local b = r[1] + 1
      n[b] = n[b] + 1
      for c = 1, 3 do
        y[b][c] = y[b][c] + vals[i][c]
        best[b] = best[b] or {}
        if best[b][c] == nil or vals[i][c] > best[b][c] then best[b][c] = vals[i][c] end
      end
    end
    for b = 1, 4 do
      for c = 1, 3 do
        if mode == "avg" and n[b] > 0 then y[b][c] = y[b][c] / n[b] end
        if mode == "max" then y[b][c] = best[b] and best[b][c] or 0 end
      end
    end
    return y
  end

  it("sums and averages each batch, an empty batch giving zeros", function()
    assert_close(ops.global_sum_pool(x):tolist(), global_ref("sum"), TOL)
    assert_close(ops.global_avg_pool(x):tolist(), global_ref("avg"), TOL)
    assert.are.same({ 0, 0, 0 }, ops.global_avg_pool(x):tolist()[3])
  end)

  it("takes each batch's maximum, and refuses an empty batch", function()
    local t = sr.tensor({ { 1, 0, 0, 0 }, { 0, 2, 2, 2 }, { 1, 5, 0, 0 } }, { { 1, 9 }, { 4, 4 }, { 3, -1 } }, "float32",
      2)
    assert.are.same({ { 4, 4 }, { 3, 9 } }, ops.global_max_pool(t):tolist())
    assert.has_error(function() ops.global_max_pool(x) end,
      "global_max_pool: batch 2 has no rows; the maximum of none is undefined")
  end)

  it("returns dense (B, C) in the input's dtype, differentiable", function()
    for _, dt in ipairs({ "float16", "bfloat16", "float64" }) do
      local y = ops.global_avg_pool(x:astype(dt))
      assert.are.equal(dt, y.dtype)
      assert.are.same({ 4, 3 }, y.shape)
    end
    local t = x:astype("float64")
    for _, name in ipairs({ "global_sum_pool", "global_avg_pool" }) do
      gradcheck(function(f) return weighted(ops[name](t:with_feats(f))) end, { t.feats })
    end
    local full_rows = sr.support(gen, { n = 20, batches = 2 }) -- no empty batch: max needs every one
    local full = sr.tensor(full_rows, sr.values(gen, #full_rows, 3), "float64", 2)
    gradcheck(function(f) return weighted(ops.global_max_pool(full:with_feats(f))) end, { full.feats })
  end)

  it("sends the gradient of a tied maximum to the lowest row", function()
    local t = sr.tensor({ { 0, 1, 0, 0 }, { 0, 2, 0, 0 }, { 0, 3, 0, 0 } }, { { 2 }, { 5 }, { 5 } }, "float32", 1)
    local g = lattice.grad(function(f) return lattice.sum(ops.global_max_pool(t:with_feats(f))) end)(t.feats)
    assert.are.same({ { 0 }, { 1 }, { 0 } }, g:tolist())
  end)

  it("gives the same result on one and two threads", function()
    local g2 = generator(9)
    local big_rows = sr.support(g2, { n = 20000, batches = 3, lo = -20, hi = 20 })
    local big = sr.tensor(big_rows, sr.values(g2, #big_rows, 8), "float32", 3)
    local before, out = lattice.num_threads(), {}
    for _, n in ipairs({ 1, 2 }) do
      lattice.set_num_threads(n)
      out[n] = { ops.global_sum_pool(big):tolist(), ops.global_max_pool(big):tolist() }
    end
    lattice.set_num_threads(before)
    assert.are.same(out[1], out[2])
  end)

  -- lattice.core.sparse.colsum_with_isa runs the column-sum kernel of one
  -- ISA (lowered to what this CPU has; one it lacks is pending). Each column
  -- is a chain of double additions in row order, as this plain Lua loop
  -- adds, so the sums match exactly: widths past the vector blocks and row
  -- counts past a tile (128 KiB of rows) leave every tail.
  for _, isa in ipairs({ "scalar", "avx2", "avx512" }) do
    it(("sums columns with the %s kernel exactly as a plain loop in double"):format(isa), function()
      local core = require "lattice.core"
      local g3 = generator(31)
      for _, shape in ipairs({ { 1, 1 }, { 5, 3 }, { 7, 8 }, { 40, 13 }, { 300, 64 }, { 2, 100 }, { 700, 200 } }) do
        local n, c = shape[1], shape[2]
        local xs = f32_values(g3, n, c)
        for _, r in ipairs(xs) do
          for j = 1, c do r[j] = f32(r[j] * 1000) end -- larger sums: more bits rounded away in each addition
        end
        local got, used = core.sparse.colsum_with_isa(lattice.array(xs, "float32"), isa)
        if used ~= isa then return pending(isa .. " is not available here") end
        local want = {}
        for j = 1, c do
          local s = 0
          for i = 1, n do s = s + xs[i][j] end
          want[j] = s
        end
        assert.are.same(want, got:tolist())
      end
    end)
  end

  it("needs batch counts", function()
    local t = sr.tensor(rows, vals)
    for _, name in ipairs({ "global_sum_pool", "global_avg_pool", "global_max_pool" }) do
      assert.has_error(function() ops[name](t) end, name .. ": x has no batch_counts, which global pooling needs " ..
        "(give them to SparseTensor, or build x with ops.sparse_collate)")
    end
    assert.has_error(function() ops.global_sum_pool(lattice.ones({ 2, 2 })) end,
      "global_sum_pool: x must be a SparseTensor, got lattice.Tensor")
  end)
end)

describe("the pooling modules", function()
  local gen = generator(3)
  local rows = sr.support(gen, { n = 25, batches = 2 })
  local x = sr.tensor(rows, sr.values(gen, #rows, 4), "float32", 2)

  it("run the ops with their options", function()
    assert.are.same(ops.max_pool3d(x, { kernel_size = 3, stride = 1 }).feats:tolist(),
      nn.MaxPool3d({ kernel_size = 3, stride = 1 })(x).feats:tolist())
    assert.are.same(ops.avg_pool3d(x).feats:tolist(), nn.AvgPool3d()(x).feats:tolist())
    assert.are.same(ops.sum_pool3d(x, { dilation = 2 }).feats:tolist(), nn.SumPool3d({ dilation = 2 })(x).feats:tolist())
    assert.are.same(ops.pool3d(x, { mode = "avg", padding = 1 }).feats:tolist(),
      nn.Pool3d({ mode = "avg", padding = 1 })(x).feats:tolist())
    assert.are.same(ops.global_max_pool(x):tolist(), nn.GlobalMaxPool()(x):tolist())
    assert.are.same(ops.global_avg_pool(x):tolist(), nn.GlobalAvgPool()(x):tolist())
    assert.are.same(ops.global_sum_pool(x):tolist(), nn.GlobalSumPool()(x):tolist())
  end)

  it("have no parameters and describe themselves", function()
    local m = nn.MaxPool3d({ kernel_size = { 2, 3, 1 } })
    assert.are.same({}, m:parameters())
    assert.are.equal("MaxPool3d(kernel_size=(2, 3, 1), stride=(2, 2, 2), padding=(0, 0, 0), dilation=(1, 1, 1))",
      tostring(m))
    assert.are.equal('Pool3d(mode="max", kernel_size=(2, 2, 2), stride=(2, 2, 2), padding=(0, 0, 0), ' ..
      'dilation=(1, 1, 1))', tostring(nn.Pool3d({ mode = "max" })))
    assert.are.equal("GlobalAvgPool()", tostring(nn.GlobalAvgPool()))
  end)

  it("compose with the layers of a sparse network", function()
    local net = nn.Sequential(nn.SubmConv3d(4, 8), nn.BatchNorm(8), nn.ReLU(), nn.MaxPool3d(), nn.GlobalAvgPool(),
      nn.Linear(8, 2))
    local y = net(x)
    assert.are.same({ 2, 2 }, y.shape)
    local _, grads = nn.value_and_grad(net, function(m, inp) return lattice.sum(m(inp)) end)(net, x)
    assert.are.same({ 8, 3, 3, 3, 4 }, grads.layers[1].weight.shape)
  end)

  it("reject bad options when built and bad input when called", function()
    assert.has_error(function() nn.MaxPool3d({ kernel_size = 0 }) end, "MaxPool3d: kernel_size must be in 1..7, got 0")
    assert.has_error(function() nn.AvgPool3d({ mode = "max" }) end, "AvgPool3d: unknown option 'mode'")
    assert.has_error(function() nn.Pool3d({ mode = "mean" }) end, "Pool3d: mode must be 'avg', 'max', 'sum', got mean")
    assert.has_error(function() nn.GlobalSumPool({ dim = 1 }) end, "GlobalSumPool: unknown option 'dim'")
    assert.has_error(function() nn.MaxPool3d()(x.feats) end,
      "MaxPool3d: x must be a SparseTensor, got lattice.Tensor")
    assert.has_error(function() nn.GlobalMaxPool()(sr.tensor(rows, sr.values(gen, #rows, 4))) end,
      "GlobalMaxPool: x has no batch_counts, which global pooling needs (give them to SparseTensor, or build x " ..
      "with ops.sparse_collate)")
  end)
end)
