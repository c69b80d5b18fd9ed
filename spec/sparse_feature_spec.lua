-- Feature ops (lattice.ops.linear .. dropout) and the nn layers on
-- SparseTensors: each transforms the features and keeps the coordinates, so
-- the result has the input's coordinate identity and batch counts. References
-- are plain Lua on the rows, and the same ops on dense tensors.
local lattice = require "lattice"
local gradcheck = require "support.gradcheck"
local ref = require "support.reference"
local sr = require "support.sparse_random"

local ops, nn = lattice.ops, lattice.nn
local generator, assert_close, weighted = ref.generator, ref.assert_close, ref.weighted

-- float32 results of O(1) values from a few float32 operations: ~1e-7 each.
local TOL = 1e-6

local function sigmoid(v) return 1 / (1 + math.exp(-v)) end

-- Each element of nested table t through fn.
local function map(t, fn)
  local out = {}
  for i, v in ipairs(t) do out[i] = type(v) == "table" and map(v, fn) or fn(v) end
  return out
end

local function same_support(y, x)
  assert(y.coordinate_map_key == x.coordinate_map_key, "the coordinate identity is kept")
  assert.are.same(x.batch_counts, y.batch_counts)
end

describe("feature ops on a SparseTensor", function()
  local gen = generator(17)
  local rows = sr.support(gen, { n = 12, batches = 2, lo = -2, hi = 2 })
  local vals = sr.values(gen, #rows, 4)
  for _, r in ipairs(vals) do
    for j = 1, 4 do r[j] = ref.f32(3 * r[j]) end -- spread over [-3, 3): both sides of every kink
  end
  local x = sr.tensor(rows, vals, "float32", 2)

  local elementwise = {
    relu = function(v) return v > 0 and v or 0 end,
    sigmoid = sigmoid,
    silu = function(v) return v * sigmoid(v) end,
    tanh = function(v) return (math.exp(v) - math.exp(-v)) / (math.exp(v) + math.exp(-v)) end,
  }
  for name, fn in pairs(elementwise) do
    it(name .. " transforms the features and keeps the coordinates", function()
      local y = ops[name](x)
      same_support(y, x)
      assert_close(y.feats:tolist(), map(vals, fn), TOL)
      assert_close(ops[name](x.feats):tolist(), map(vals, fn), TOL) -- dense in, dense out
    end)
  end

  it("leaky_relu takes its slope", function()
    assert_close(ops.leaky_relu(x).feats:tolist(), map(vals, function(v) return v >= 0 and v or 0.01 * v end), TOL)
    local y = ops.leaky_relu(x, { negative_slope = 0.2 })
    same_support(y, x)
    assert_close(y.feats:tolist(), map(vals, function(v) return v >= 0 and v or 0.2 * v end), TOL)
  end)

  it("gelu takes mlx_lattice's approximations", function()
    local exact = ref.gelu
    local tanh = function(v)
      local u = math.sqrt(2 / math.pi) * (v + 0.044715 * v ^ 3)
      return 0.5 * v * (1 + (math.exp(u) - math.exp(-u)) / (math.exp(u) + math.exp(-u)))
    end
    local fast = function(v) return v * sigmoid(1.702 * v) end
    assert_close(ops.gelu(x).feats:tolist(), map(vals, exact), TOL)
    assert_close(ops.gelu(x, { approximate = "precise" }).feats:tolist(), map(vals, exact), TOL)
    assert_close(ops.gelu(x, { approximate = "tanh" }).feats:tolist(), map(vals, tanh), TOL)
    local y = ops.gelu(x, { approximate = "fast" })
    same_support(y, x)
    assert_close(y.feats:tolist(), map(vals, fast), TOL)
  end)

  it("softplus takes beta and threshold", function()
    local function sp(beta, threshold)
      return function(v) return beta * v > threshold and v or math.log(1 + math.exp(beta * v)) / beta end
    end
    assert_close(ops.softplus(x).feats:tolist(), map(vals, sp(1, 20)), TOL)
    local y = ops.softplus(x, { beta = 2, threshold = 1 })
    same_support(y, x)
    assert_close(y.feats:tolist(), map(vals, sp(2, 1)), TOL)
  end)

  it("linear projects the features", function()
    local W, B = sr.values(gen, 3, 4), sr.values(gen, 1, 3)[1]
    local y = ops.linear(x, lattice.array(W), lattice.array(B))
    same_support(y, x)
    local want = {}
    for i, r in ipairs(vals) do
      want[i] = {}
      for o = 1, 3 do
        local s = B[o]
        for c = 1, 4 do s = s + r[c] * W[o][c] end
        want[i][o] = s
      end
    end
    assert_close(y.feats:tolist(), want, 1e-5)
    assert.are.same({ #rows, 3 }, ops.linear(x, lattice.array(W)).feats.shape)
  end)

  it("layer_norm and rms_norm normalise each row", function()
    local w, b = lattice.array({ 1, 2, 3, 4 }), lattice.array({ 0, 1, 0, -1 })
    local y = ops.layer_norm(x, { weight = w, bias = b, eps = 1e-3 })
    same_support(y, x)
    assert_close(y.feats:tolist(), lattice.layer_norm(x.feats, w, b, 1e-3):tolist(), 0)
    local want = {}
    for i, r in ipairs(vals) do
      local ms = 0
      for c = 1, 4 do ms = ms + r[c] ^ 2 / 4 end
      want[i] = {}
      for c = 1, 4 do want[i][c] = r[c] / math.sqrt(ms + 1e-5) * c end
    end
    local z = ops.rms_norm(x, { weight = w })
    same_support(z, x)
    assert_close(z.feats:tolist(), want, TOL)
  end)

  it("batch_norm normalises each channel over the rows, or with the statistics given", function()
    local mean, var = {}, {}
    for c = 1, 4 do
      local s, q = 0, 0
      for i = 1, #vals do s = s + vals[i][c] end
      mean[c] = s / #vals
      for i = 1, #vals do q = q + (vals[i][c] - mean[c]) ^ 2 end
      var[c] = q / #vals
    end
    local function expect(y, m, v, w, b)
      local want = {}
      for i, r in ipairs(vals) do
        want[i] = {}
        for c = 1, 4 do want[i][c] = (r[c] - m[c]) / math.sqrt(v[c] + 1e-5) * (w and w[c] or 1) + (b and b[c] or 0) end
      end
      assert_close(y.feats:tolist(), want, 1e-5)
    end
    local y = ops.batch_norm(x)
    same_support(y, x)
    expect(y, mean, var)
    local gm, gv, w, b = { 0.5, 0, -1, 2 }, { 1, 2, 0.5, 4 }, { 2, 1, 1, 3 }, { 0, 0, 1, 1 }
    expect(ops.batch_norm(x, { mean = lattice.array(gm), var = lattice.array(gv), weight = lattice.array(w),
      bias = lattice.array(b) }), gm, gv, w, b)
    expect(ops.batch_norm(x, { mean = lattice.array(gm) }), gm, var) -- var of the rows
  end)

  it("batch_norm takes a dense tensor's statistics over every axis but the channels, as nn.BatchNorm", function()
    -- (2, 2, 2): channel 1 holds 1, 3, 5, 7 (mean 4, biased var 5), channel 2 holds 2, 4, 6, 9 (5.25, 6.6875)
    local d = lattice.array({ { { 1, 2 }, { 3, 4 } }, { { 5, 6 }, { 7, 9 } } })
    local m, v = { 4, 5.25 }, { 5, 6.6875 }
    local want = map(d:tolist(), function() return 0 end)
    for i = 1, 2 do
      for j = 1, 2 do
        for c = 1, 2 do want[i][j][c] = (d:tolist()[i][j][c] - m[c]) / math.sqrt(v[c] + 1e-5) end
      end
    end
    assert_close(ops.batch_norm(d):tolist(), want, 1e-6)
    assert_close(nn.BatchNorm(2)(d):tolist(), want, 1e-6)
    assert.has_error(function() ops.batch_norm(lattice.array({ 1, 2, 3 })) end,
      "batch_norm: x must have a row axis and a channel axis, got 1 dimension")
  end)

  it("batch_norm normalises float16 and bfloat16 features in float32, rounding once to their dtype", function()
    -- rows around 30 with unit spread: a mean rounded to float16 (ulp 2^-6
    -- there) or bfloat16 (2^-3) would move every output by several ulps
    local g2 = generator(29)
    local rows2 = sr.support(g2, { n = 200, batches = 1, lo = -5, hi = 5 })
    local v2 = sr.values(g2, #rows2, 3)
    for _, r in ipairs(v2) do
      for j = 1, 3 do r[j] = 30 + 2 * r[j] end
    end
    for dt, tol in pairs({ float16 = 2 ^ -10, bfloat16 = 2 ^ -7 }) do -- twice the half-ulp of one rounding
      local t = sr.tensor(rows2, v2, dt)
      local held = t.feats:astype("float64"):tolist() -- the values the dtype holds
      local want = {}
      for i = 1, #held do want[i] = {} end
      for c = 1, 3 do
        local s, q = 0, 0
        for i = 1, #held do s = s + held[i][c] end
        local m = s / #held
        for i = 1, #held do q = q + (held[i][c] - m) ^ 2 end
        for i = 1, #held do want[i][c] = (held[i][c] - m) / math.sqrt(q / #held + 1e-5) end
      end
      local y = ops.batch_norm(t)
      assert.are.equal(dt, y.feats.dtype)
      assert_close(y.feats:astype("float64"):tolist(), want, tol, dt)
    end
  end)

  it("dropout zeroes and scales in training, and is the identity otherwise", function()
    lattice.random.seed(4)
    local y = ops.dropout(x, { p = 0.5 })
    same_support(y, x)
    local kept = 0
    for i, r in ipairs(y.feats:tolist()) do
      for c, v in ipairs(r) do
        if v ~= 0 then
          kept = kept + 1
          assert_close(v, 2 * vals[i][c], TOL)
        end
      end
    end
    assert(kept > 0 and kept < 4 * #rows, "some features dropped, some kept")
    assert.are.equal(x, ops.dropout(x, { p = 0.5, training = false }))
    assert.are.equal(x, ops.dropout(x, { p = 0 }))
    assert.has_error(function() ops.dropout(2, { training = false }) end,
      "dropout: x must be a SparseTensor or a lattice.Tensor, got number")
  end)

  it("are differentiable in the features (float64)", function()
    local t = x:astype("float64")
    local W = lattice.array(sr.values(gen, 2, 4), "float64")
    local fns = {
      function(f) return ops.gelu(t:with_feats(f), { approximate = "fast" }) end,
      function(f) return ops.softplus(t:with_feats(f), { beta = 2, threshold = 1 }) end,
      function(f) return ops.batch_norm(t:with_feats(f)) end,
      function(f) return ops.batch_norm(t:with_feats(f), { var = lattice.array({ 1, 2, 3, 4 }, "float64") }) end,
      function(f) return ops.layer_norm(t:with_feats(f)) end,
      function(f) return ops.linear(t:with_feats(f), W) end,
    }
    for _, fn in ipairs(fns) do gradcheck(function(f) return weighted(fn(f).feats) end, { t.feats }) end
  end)

  it("reject bad arguments with their messages", function()
    local cases = {
      { function() ops.relu(3) end, "relu: x must be a SparseTensor or a lattice.Tensor, got number" },
      { function() ops.gelu(x, { approximate = "erf" }) end,
        "gelu: approximate must be 'fast', 'none', 'precise', 'tanh', got erf" },
      { function() ops.gelu(x, { approx = "tanh" }) end, "gelu: unknown option 'approx'" },
      { function() ops.leaky_relu(x, { negative_slope = "a" }) end, "leaky_relu: negative_slope must be a number, got string" },
      { function() ops.softplus(x, { beta = 0 }) end, "softplus: beta must be positive, got 0" },
      { function() ops.layer_norm(x, { eps = 0 }) end, "layer_norm: eps must be a positive number, got 0" },
      { function() ops.rms_norm(x, { weight = { 1, 2 } }) end, "rms_norm: weight must be a lattice.Tensor, got table" },
      { function() ops.batch_norm(x, { mean = lattice.zeros({ 3 }) }) end, "batch_norm: mean must have shape {4}, got {3}" },
      { function() ops.batch_norm(x, { eps = -1 }) end, "batch_norm: eps must be a positive number, got -1" },
      { function() ops.dropout(x, { p = 1 }) end, "dropout: p must be in [0, 1), got 1" },
      { function() ops.dropout(x, { training = 1 }) end, "dropout: training must be a boolean, got number" },
      { function() ops.linear(x, { { 1 } }) end, "linear: weight must be a lattice.Tensor or a QuantizedWeight, got table" },
      { function() ops.linear(x, lattice.ones({ 3, 5 })) end, "linear: weight has 5 input features, x has 4" },
    }
    for _, c in ipairs(cases) do assert.has_error(c[1], c[2]) end
  end)
end)

describe("feature op errors", function()
  it("are raised at the caller's line", function()
    local x = sr.tensor({ { 0, 0, 0, 0 } }, { { 1, 2 } })
    sr.assert_raised_here({
      function() ops.relu(3) end,
      function() ops.gelu(x, { approximate = "erf" }) end,
      function() ops.linear(x, lattice.ones({ 3, 5 })) end,
      function() ops.layer_norm(x, { weight = lattice.ones({ 3 }) }) end,
      function() ops.batch_norm(x, { mean = lattice.zeros({ 3 }) }) end,
      function() ops.softplus(x, { beta = 0 }) end,
    })
  end)
end)

describe("nn layers on a SparseTensor", function()
  local gen = generator(23)
  local rows = sr.support(gen, { n = 20, batches = 3, lo = -3, hi = 3 })
  local vals = sr.values(gen, #rows, 4)
  local x = sr.tensor(rows, vals, "float32", 3)

  it("return a SparseTensor of the input's coordinates, with the dense layer's features", function()
    local layers = { nn.Linear(4, 6), nn.LayerNorm(4), nn.RMSNorm(4), nn.ReLU(), nn.LeakyReLU(), nn.GELU(),
      nn.SiLU(), nn.Sigmoid(), nn.Tanh(), nn.Softplus(), nn.Identity() }
    for _, m in ipairs(layers) do
      local y = m(x)
      assert(y.coordinate_map_key == x.coordinate_map_key, tostring(m))
      assert.are.same(x.batch_counts, y.batch_counts)
      assert.are.same(m(x.feats):tolist(), y.feats:tolist())
    end
  end)

  it("BatchNorm takes its statistics over the sparse rows in training and moves its running averages", function()
    local bn = nn.BatchNorm(4, { momentum = 0.5 })
    local y = bn(x)
    assert(y.coordinate_map_key == x.coordinate_map_key)
    assert_close(y.feats:tolist(), ops.batch_norm(x).feats:tolist(), 1e-5)
    local mean, var = {}, {}
    for c = 1, 4 do
      local s, q = 0, 0
      for i = 1, #vals do s = s + vals[i][c] end
      mean[c] = s / #vals
      for i = 1, #vals do q = q + (vals[i][c] - mean[c]) ^ 2 end
      var[c] = q / #vals
    end
    local rm, rv = {}, {}
    for c = 1, 4 do rm[c], rv[c] = 0.5 * mean[c], 0.5 + 0.5 * var[c] end
    assert_close(bn.running_mean:tolist(), rm, 1e-6)
    assert_close(bn.running_var:tolist(), rv, 1e-6)
    bn:eval()
    local z = bn(x)
    assert(z.coordinate_map_key == x.coordinate_map_key)
    assert_close(z.feats:tolist(), ops.batch_norm(x, { mean = bn.running_mean, var = bn.running_var,
      weight = bn.weight, bias = bn.bias }).feats:tolist(), 1e-5)
    assert_close(bn.running_mean:tolist(), rm, 1e-6) -- evaluation leaves them
  end)

  it("Dropout drops features in training and returns its input in evaluation", function()
    local d = nn.Dropout({ p = 0.25 })
    lattice.random.seed(8)
    local y = d(x)
    assert(y.coordinate_map_key == x.coordinate_map_key)
    lattice.random.seed(8)
    assert.are.same(lattice.dropout(x.feats, 0.25):tolist(), y.feats:tolist())
    d:eval()
    assert.are.equal(x, d(x))
  end)

  it("pass gradients to their parameters and to the features", function()
    local net = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm(5), nn.GELU(), nn.Linear(5, 2))
    local loss_of = function(m, inp)
      local y = m(inp)
      return lattice.sum(lattice.square(lattice.is_tensor(y) and y or y.feats))
    end
    local _, grads = nn.value_and_grad(net, loss_of)(net, x)
    local _, dense = nn.value_and_grad(net, loss_of)(net, x.feats:reshape({ #rows, 4 }))
    assert_close(grads.layers[1].weight:tolist(), dense.layers[1].weight:tolist(), 1e-5)
    local g = lattice.grad(function(f) return loss_of(net, x:with_feats(f)) end)(x.feats)
    assert.are.same({ #rows, 4 }, g.shape)
  end)

  it("keep the dense layers' messages for bad input", function()
    assert.has_error(function() nn.Linear(3, 2)(x) end, "linear: weight has 3 input features, x has 4")
    assert.has_error(function() nn.BatchNorm(4)(sr.tensor({ { 0, 0, 0, 0 } }, { { 1, 2, 3, 4 } })) end,
      "batch_norm: training needs more than one row per channel, got 1")
    -- named after the layer: Lua's own argument error names no function through __call
    for _, m in ipairs({ nn.ReLU(), nn.Linear(4, 2), nn.LayerNorm(4), nn.BatchNorm(4), nn.Dropout() }) do
      local name = tostring(m):match("^%w+")
      assert.has_error(function() m("x") end, name .. ": x must be a lattice.Tensor or a SparseTensor, got string")
    end
  end)

  it("refuse a wrong channel count also when they hold no weight or running statistics to check it", function()
    -- x has 4 channels; without parameters these normalised any count
    local bn = nn.BatchNorm(3, { affine = false, track_running_stats = false })
    assert.has_error(function() bn(x) end, "BatchNorm: x has 4 channels, the layer has 3")
    assert.has_error(function() bn:eval()(x) end, "BatchNorm: x has 4 channels, the layer has 3")
    assert.has_error(function() nn.LayerNorm(5, { affine = false })(x) end, "LayerNorm: x has 4 channels, the layer has 5")
    assert.has_error(function() nn.LayerNorm(5, { affine = false })(x.feats) end,
      "LayerNorm: x has 4 channels, the layer has 5")
    -- the right count still runs, as the op with no weight
    local y = nn.BatchNorm(4, { affine = false, track_running_stats = false })(x)
    assert(y.coordinate_map_key == x.coordinate_map_key)
    assert_close(y.feats:tolist(), ops.batch_norm(x).feats:tolist(), 1e-5) -- the fused kernel against the composed op
    assert.are.same(ops.layer_norm(x).feats:tolist(), nn.LayerNorm(4, { affine = false })(x).feats:tolist())
  end)

  it("name the layer for an input of the wrong kind in the quantized layers and the embeddings too", function()
    for _, m in ipairs({ nn.QuantizedLinear(64, 2), nn.QQLinear(64, 2) }) do
      local name = tostring(m):match("^%w+")
      assert.has_error(function() m("x") end, name .. ": x must be a lattice.Tensor or a SparseTensor, got string")
    end
    -- the embeddings look up ids: a SparseTensor is not one (the message named no function: '?')
    for _, m in ipairs({ nn.Embedding(10, 4), nn.QuantizedEmbedding(10, 64) }) do
      local name = tostring(m):match("^%w+")
      assert.has_error(function() m(x) end, name .. ": ids must be a lattice.Tensor, got lattice.SparseTensor")
      assert.has_error(function() m() end, name .. ": ids must be a lattice.Tensor, got no value")
    end
  end)
end)
