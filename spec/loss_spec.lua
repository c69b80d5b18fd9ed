-- cross_entropy and mse_loss against references written plainly in Lua doubles,
-- with PyTorch's semantics (ignore_index, label smoothing, reductions).
local lattice = require "lattice"
local gradcheck = require "support.gradcheck"
local ref = require "support.reference"

local i64, generator, rand, f32 = ref.i64, ref.generator, ref.rand, ref.f32
local assert_close = ref.assert_close

-- Values as float32 holds them, so the reference sees the same inputs.
local function round32(t)
  if type(t) ~= "table" then return f32(t) end
  local r = {}
  for i, v in ipairs(t) do r[i] = round32(v) end
  return r
end

-- PyTorch's cross_entropy over rows (N, C) with targets (N), in doubles:
-- log p_c = z_c - log sum exp z; loss = (1-eps)(-log p_t) + eps * mean_c(-log p_c);
-- ignored rows count 0 and leave the mean's denominator.
local function ce_ref(rows, targets, opts)
  local ignore, eps, red = opts.ignore_index or -100, opts.label_smoothing or 0, opts.reduction or "mean"
  local losses, total, count = {}, 0, 0
  for r, z in ipairs(rows) do
    if targets[r] == ignore then
      losses[r] = 0
    else
      local s = 0
      for _, v in ipairs(z) do s = s + math.exp(v) end
      local logp, smooth = {}, 0
      for c, v in ipairs(z) do
        logp[c] = v - math.log(s)
        smooth = smooth - logp[c]
      end
      losses[r] = (1 - eps) * -logp[targets[r] + 1] + eps * smooth / #z
      count = count + 1
    end
    total = total + losses[r]
  end
  if red == "none" then return losses end
  if red == "sum" then return total end
  return total / count
end

-- A scalar that weighs every element differently: sum((y - r)^2) for a fixed r.
local function weigh(y, seed)
  local r = lattice.array(rand(y.shape, generator(seed or 7))):reshape(y.shape)
  return lattice.mse_loss(y, r, { reduction = "sum" })
end

-- float32 logsumexp over <= 8 classes of values in [-3, 3]: relative error ~1e-7
-- per step; 1e-6 is a few ulps of the result.
local TOL = 1e-6

describe("cross_entropy", function()
  it("is -log softmax at the target for one row", function()
    local y = lattice.cross_entropy(lattice.array({ { 1, 2, 3 } }), i64({ 2 }))
    assert.are.same({}, y.shape)
    assert_close(y:item(), math.log(1 + math.exp(-1) + math.exp(-2)), TOL)
    -- 1-D logits (C) with a 0-d target
    local y1 = lattice.cross_entropy(lattice.array({ 1, 2, 3 }), lattice.array(0, "int64"), { reduction = "none" })
    assert.are.same({}, y1.shape)
    assert_close(y1:item(), 2 + math.log(1 + math.exp(-1) + math.exp(-2)), TOL)
  end)

  it("matches the reference for every reduction, smoothing and ignore_index", function()
    local rows = round32(rand({ 7, 5 }, generator(21)))
    for i, row in ipairs(rows) do
      for c = 1, 5 do row[c] = row[c] * 3 end
      rows[i] = row
    end
    local targets = { 0, 4, -100, 2, 3, -100, 1 }
    local z, t = lattice.array(rows), i64(targets)
    for _, eps in ipairs({ 0, 0.1, 0.5, 1 }) do
      for _, red in ipairs({ "none", "mean", "sum" }) do
        local opts = { label_smoothing = eps, reduction = red }
        local got = lattice.cross_entropy(z, t, opts):tolist()
        assert_close(got, ce_ref(rows, targets, opts), TOL, ("eps %g %s"):format(eps, red))
      end
    end
    -- a valid class as ignore_index: rows with target 3 drop out
    local opts = { ignore_index = 3, label_smoothing = 0.2 }
    local t3 = { 0, 4, 3, 2, 3, 1, 1 }
    assert_close(lattice.cross_entropy(z, i64(t3), opts):item(), ce_ref(rows, t3, opts), TOL)
  end)

  it("takes (..., C) logits with targets of the leading shape", function()
    local data = round32(rand({ 2, 3, 4 }, generator(22)))
    local targets = { { 0, 3, 1 }, { 2, -100, 3 } }
    local y = lattice.cross_entropy(lattice.array(data), lattice.array(targets, "int32"), { reduction = "none" })
    assert.are.same({ 2, 3 }, y.shape)
    local flat_rows, flat_t = {}, {}
    for b = 1, 2 do
      for s = 1, 3 do
        flat_rows[#flat_rows + 1] = data[b][s]
        flat_t[#flat_t + 1] = targets[b][s]
      end
    end
    local want = ce_ref(flat_rows, flat_t, { reduction = "none" })
    assert_close(y:tolist(), { { want[1], want[2], want[3] }, { want[4], want[5], want[6] } }, TOL)
  end)

  it("matches the reference on wide rows, independently of the thread count", function()
    -- 3001 classes: several 1024-wide chunks and a tail that is not a multiple of 16;
    -- 12 x 3001 elements is past the parallel grain.
    local rows = round32(rand({ 12, 3001 }, generator(25)))
    local targets = { 0, 3000, 17, -100, 2999, 1024, 1023, 5, 6, 7, 8, 9 }
    local z, t = lattice.array(rows), i64(targets)
    local opts = { label_smoothing = 0.1, reduction = "none" }
    -- each exp is within 2 ulps and the float lanes hold <= 64 terms each before
    -- going to double: 1e-6 relative on a loss of ~8 is ample
    assert_close(lattice.cross_entropy(z, t, opts):tolist(), ce_ref(rows, targets, opts), TOL)
    local function run(threads)
      local saved = lattice.num_threads()
      lattice.set_num_threads(threads)
      local v, g = lattice.value_and_grad(function(x) return lattice.cross_entropy(x, t, { label_smoothing = 0.1 }) end)(z)
      lattice.set_num_threads(saved)
      return v:item(), g:tolist()
    end
    local v1, g1 = run(1)
    local v2, g2 = run(2)
    assert.are.equal(v1, v2) -- bitwise
    assert.are.same(g1, g2)
  end)

  it("is stable for large logits", function()
    local y = lattice.cross_entropy(lattice.array({ { 1000, 0, -1000 }, { -1000, 1000, 999 } }), i64({ 0, 2 }),
      { reduction = "none" })
    assert_close(y:tolist(), { 0, 1 + math.log(1 + math.exp(-1)) }, TOL)
  end)

  it("gives NaN for a mean over only ignored targets, as PyTorch does, and 0 for their sum", function()
    local z, t = lattice.array({ { 1, 2 } }), i64({ -100 })
    local m = lattice.cross_entropy(z, t):item()
    assert.is_true(m ~= m)
    assert.are.equal(0, lattice.cross_entropy(z, t, { reduction = "sum" }):item())
  end)

  it("keeps float16 and bfloat16 logits' dtype", function()
    local rows = { { 0.5, -1, 2 }, { 1.5, 0.25, -0.75 } }
    local want = ce_ref(rows, { 1, 0 }, { label_smoothing = 0.1 })
    for dt, tol in pairs({ float16 = 2e-3, bfloat16 = 1e-2 }) do -- half an ulp of the result in each format
      local y = lattice.cross_entropy(lattice.array(rows, dt), i64({ 1, 0 }), { label_smoothing = 0.1 })
      assert.are.equal(dt, y.dtype)
      assert_close(y:item(), want, tol, dt)
    end
  end)

  it("has the gradient (softmax - smoothed one-hot) scaled by the reduction", function()
    local z = lattice.array({ { 1, 2, 3 }, { 0, 0, 0 } })
    local g = lattice.grad(function(v) return lattice.cross_entropy(v, i64({ 2, -100 })) end)(z):tolist()
    local s = math.exp(1) + math.exp(2) + math.exp(3)
    assert_close(g[1], { math.exp(1) / s, math.exp(2) / s, math.exp(3) / s - 1 }, TOL)
    assert.are.same({ 0, 0, 0 }, g[2]) -- ignored rows get exactly zero
    local gs = lattice.grad(function(v)
      return lattice.cross_entropy(v, i64({ 0, 1 }), { label_smoothing = 0.3, reduction = "sum" })
    end)(z):tolist()
    assert_close(gs[2], { 1 / 3 - 0.1, 1 / 3 - 0.7 - 0.1, 1 / 3 - 0.1 }, TOL)
  end)

  it("passes gradcheck for each reduction, with smoothing and ignore_index", function()
    local z = lattice.array(rand({ 5, 4 }, generator(23)))
    local t = i64({ 3, 7, 0, 1, 7 })
    for _, eps in ipairs({ 0, 0.25 }) do
      for _, red in ipairs({ "mean", "sum" }) do
        local opts = { label_smoothing = eps, reduction = red, ignore_index = 7 }
        gradcheck.each_dtype(function(v) return lattice.cross_entropy(v, i64({ 3, 2, 0, 1, 7 }), opts) end, { z })
      end
      gradcheck.each_dtype(function(v)
        return weigh(lattice.cross_entropy(v, t, { label_smoothing = eps, reduction = "none", ignore_index = 7 }))
      end, { z })
    end
    local z3 = lattice.array(rand({ 2, 2, 3 }, generator(24)))
    gradcheck.each_dtype(function(v) return lattice.cross_entropy(v, i64({ { 0, 2 }, { 1, -100 } })) end, { z3 })
  end)

  it("rejects bad inputs with clear messages", function()
    local z = lattice.zeros({ 4, 5 })
    assert.has_error(function() lattice.cross_entropy(z, i64({ 0, 1, 5, 2 })) end,
      "cross_entropy: target 5 is out of range for 5 classes")
    assert.has_error(function() lattice.cross_entropy(z, i64({ 0, -1, 1, 2 })) end,
      "cross_entropy: target -1 is out of range for 5 classes")
    assert.has_error(function() lattice.cross_entropy(z, i64({ 0, 1, 2 })) end,
      "cross_entropy: logits have shape {4,5}, so targets must have shape {4}, got {3}")
    assert.has_error(function() lattice.cross_entropy(z, i64({ { 0 }, { 1 }, { 2 }, { 3 } })) end,
      "cross_entropy: logits have shape {4,5}, so targets must have shape {4}, got {4,1}")
    assert.has_error(function() lattice.cross_entropy(z, lattice.array({ 0, 1, 2, 3 })) end,
      "cross_entropy: targets must be integer class ids, got float32")
    assert.has_error(function() lattice.cross_entropy(i64({ { 1, 2 } }), i64({ 0 })) end,
      "cross_entropy: logits must be floating point, got int64")
    assert.has_error(function() lattice.cross_entropy(z, i64({ 0, 1, 2, 3 }), { label_smoothing = 1.5 }) end,
      "cross_entropy: label_smoothing must be in [0, 1], got 1.5")
    assert.has_error(function() lattice.cross_entropy(z, i64({ 0, 1, 2, 3 }), { label_smoothing = -0.1 }) end,
      "cross_entropy: label_smoothing must be in [0, 1], got -0.1")
    assert.has_error(function() lattice.cross_entropy(z, i64({ 0, 1, 2, 3 }), { reduction = "avg" }) end,
      "cross_entropy: reduction must be 'none', 'mean' or 'sum', got 'avg'")
    assert.has_error(function() lattice.cross_entropy(z, i64({ 0, 1, 2, 3 }), { smoothing = 0.1 }) end,
      "cross_entropy: unknown option 'smoothing'")
    assert.has_error(function() lattice.cross_entropy(z, i64({ 0, 1, 2, 3 }), {}, "sum") end,
      "cross_entropy: too many arguments (expected at most 3, got 4)")
    assert.has_error(function() lattice.mse_loss(z, z, nil, 1) end, "mse_loss: too many arguments (expected at most 3, got 4)")
    assert.has_error(function() lattice.cross_entropy(z, { 0, 1, 2, 3 }) end,
      'cross_entropy: targets must be a tensor of 0-based integers (e.g. lattice.array({0, 2}, "int64")), not a Lua table')
    assert.has_error(function() lattice.cross_entropy(lattice.zeros({ 2, 0 }), i64({ 0, 0 })) end,
      "cross_entropy: logits have 0 classes")
  end)
end)

describe("mse_loss", function()
  local p, t = lattice.array({ { 1, 2, 3 }, { -1, 0.5, 4 } }), lattice.array({ { 0, 2, 5 }, { 1, 0.5, 3 } })

  it("averages, sums or keeps the squared differences", function()
    assert.are.same({ { 1, 0, 4 }, { 4, 0, 1 } }, lattice.mse_loss(p, t, { reduction = "none" }):tolist())
    assert.are.equal(10, lattice.mse_loss(p, t, { reduction = "sum" }):item())
    assert_close(lattice.mse_loss(p, t):item(), 10 / 6, TOL)
  end)

  it("matches a plain reference on a larger input", function()
    -- 100,000 elements: past the parallel grain; float32 squares summed in double blocks
    local n = 100000
    local a, b = rand({ n }, generator(31)), rand({ n }, generator(32))
    local s = 0
    for i = 1, n do s = s + (f32(a[i]) - f32(b[i])) ^ 2 end
    local pa, pb, saved = lattice.array(a), lattice.array(b), lattice.num_threads()
    lattice.set_num_threads(1)
    local got = lattice.mse_loss(pa, pb):item()
    lattice.set_num_threads(2)
    assert.are.equal(got, lattice.mse_loss(pa, pb):item()) -- fixed blocks: bitwise the same
    lattice.set_num_threads(saved)
    assert_close(got, s / n, 1e-6) -- each square is rounded once to float32 (2^-24 relative)
  end)

  it("keeps float16 and bfloat16 inputs' dtype", function()
    for _, dt in ipairs({ "float16", "bfloat16" }) do
      local y = lattice.mse_loss(p:astype(dt), t:astype(dt), { reduction = "sum" })
      assert.are.equal(dt, y.dtype)
      assert.are.equal(10, y:item()) -- inputs and result are exact in both formats
    end
  end)

  it("passes gradcheck for both inputs and every reduction", function()
    local a, b = lattice.array(rand({ 3, 4 }, generator(33))), lattice.array(rand({ 3, 4 }, generator(34)))
    gradcheck.each_dtype(function(u, v) return lattice.mse_loss(u, v) end, { a, b })
    gradcheck.each_dtype(function(u, v) return lattice.mse_loss(u, v, { reduction = "sum" }) end, { a, b })
    gradcheck.each_dtype(function(u, v) return weigh(lattice.mse_loss(u, v, { reduction = "none" })) end, { a, b })
  end)

  it("rejects bad inputs with clear messages", function()
    assert.has_error(function() lattice.mse_loss(p, lattice.zeros({ 3, 2 })) end,
      "mse_loss: pred has shape {2,3}, target has shape {3,2}")
    assert.has_error(function() lattice.mse_loss(p, lattice.zeros({ 3 })) end,
      "mse_loss: pred has shape {2,3}, target has shape {3}")
    assert.has_error(function() lattice.mse_loss(p, lattice.zeros({ 2, 3 }, "int32")) end,
      "mse_loss: target must be floating point, got int32")
    assert.has_error(function() lattice.mse_loss(p, t, { reduction = "max" }) end,
      "mse_loss: reduction must be 'none', 'mean' or 'sum', got 'max'")
    assert.has_error(function() lattice.mse_loss(p, t, { weight = 1 }) end, "mse_loss: unknown option 'weight'")
  end)
end)

describe("float64 losses", function()
  it("cross_entropy computes in double and matches the reference to 1e-13", function()
    local rows, targets = rand({ 6, 9 }, generator(41)), { 3, 0, -100, 8, 1, 1 }
    local z = lattice.array(rows, "float64")
    for _, opts in ipairs({ {}, { label_smoothing = 0.2 }, { reduction = "sum" }, { reduction = "none" } }) do
      local y = lattice.cross_entropy(z, i64(targets), opts)
      assert.are.equal("float64", y.dtype)
      local want = ce_ref(rows, targets, opts)
      assert_close(opts.reduction == "none" and y:tolist() or y:item(), want, 1e-13)
    end
    -- d/dz mean loss = (softmax(z) - onehot) / count on the rows not ignored
    local g = lattice.grad(function(v) return lattice.cross_entropy(v, i64(targets)) end)(z):tolist()
    assert.are.same({ 0, 0, 0, 0, 0, 0, 0, 0, 0 }, g[3])
    local s = 0
    for _, v in ipairs(rows[1]) do s = s + math.exp(v) end
    assert_close(g[1][4], (math.exp(rows[1][4]) / s - 1) / 5, 1e-14)
    assert_close(g[1][1], math.exp(rows[1][1]) / s / 5, 1e-14)
  end)

  it("mse_loss gives float64 when either input is and matches plain sums", function()
    local a, b = rand({ 1000 }, generator(42)), rand({ 1000 }, generator(43))
    local s = 0
    for i = 1, #a do s = s + (a[i] - b[i]) ^ 2 end
    local y = lattice.mse_loss(lattice.array(a, "float64"), lattice.array(b, "float64"))
    assert.are.equal("float64", y.dtype)
    assert_close(y:item(), s / #a, 1e-13)
    assert.are.equal("float64", lattice.mse_loss(lattice.array(a, "float64"), lattice.array(b)).dtype)
    assert.are.equal("float64", lattice.mse_loss(lattice.array(a, "float16"), lattice.array(b, "float64")).dtype)
  end)
end)
