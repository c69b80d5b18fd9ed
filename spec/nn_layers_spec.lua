-- The built-in layers of lattice.nn (lua/lattice/nn/layers.lua, core/lua/nn_layers.c)
-- and the ops behind them (lattice.linear, batch_norm, lattice.dropout), each
-- against a reference written plainly with loops over Lua tables, gradchecked
-- in float32 and float64, and every bad input with its message.
local lattice = require "lattice"
local nn = require "lattice.nn"
local gradcheck = require "support.gradcheck"
local ref = require "support.reference"

local generator, rand, assert_close, f32 = ref.generator, ref.rand, ref.assert_close, ref.f32
local weighted, flat, i64 = ref.weighted, ref.flat, ref.i64

-- The rows of a nested table whose innermost lists are the last axis.
local function rows_of(t, out)
  out = out or {}
  if type(t[1]) ~= "table" then
    out[#out + 1] = t
  else
    for _, r in ipairs(t) do rows_of(r, out) end
  end
  return out
end

-- f applied to every innermost row of a nested table, keeping the nesting.
local function map_rows(t, f)
  if type(t[1]) ~= "table" then return f(t) end
  local out = {}
  for i, r in ipairs(t) do out[i] = map_rows(r, f) end
  return out
end

-- f applied to every number of a nested table.
local function map(t, f)
  if type(t) ~= "table" then return f(t) end
  local out = {}
  for i, v in ipairs(t) do out[i] = map(v, f) end
  return out
end

local function with_threads(n, f)
  local before = lattice.num_threads()
  lattice.set_num_threads(n)
  local ok, r = pcall(f)
  lattice.set_num_threads(before)
  if not ok then error(r, 0) end
  return r
end

-- ---------------------------------------------------------------------------

-- y = x W^T + b over the rows of x, in doubles.
local function linear_ref(x, w, b)
  return map_rows(x, function(row)
    local y = {}
    for o = 1, #w do
      local s = b and b[o] or 0
      for i = 1, #row do s = s + row[i] * w[o][i] end
      y[o] = s
    end
    return y
  end)
end

-- float32: 7 products of values in [-1, 1] summed: the rounding error is at
-- most ~K u sum|x w| = 7 * 6e-8 * 7 ~ 3e-6 absolute; 1e-5 leaves a factor 3.
-- float64: the same bound with u = 1.1e-16 is ~5e-15; 1e-13.
local TOL32, TOL64 = 1e-5, 1e-13

describe("lattice.linear", function()
  local gen = generator(1)

  it("is x W^T + b over every leading axis, against the reference", function()
    local x, w, b = lattice.array(rand({ 2, 3, 7 }, gen)), lattice.array(rand({ 5, 7 }, gen)), lattice.array(rand({ 5 }, gen))
    local y = lattice.linear(x, w, b)
    assert.are.same({ 2, 3, 5 }, y.shape)
    assert.are.equal("float32", y.dtype)
    assert_close(y:tolist(), linear_ref(x:tolist(), w:tolist(), b:tolist()), TOL32)
    assert_close(lattice.linear(x, w):tolist(), linear_ref(x:tolist(), w:tolist(), nil), TOL32)
  end)

  it("computes float64 in double (dgemm)", function()
    -- values that float32 cannot hold: 1 + 2^-40 would round to 1
    local X = rand({ 4, 7 }, gen)
    X[1][1] = 1 + 2 ^ -40
    local x, w, b = lattice.array(X, "float64"), lattice.array(rand({ 3, 7 }, gen), "float64"),
      lattice.array(rand({ 3 }, gen), "float64")
    local y = lattice.linear(x, w, b)
    assert.are.equal("float64", y.dtype)
    assert_close(y:tolist(), linear_ref(X, w:tolist(), b:tolist()), TOL64)
    -- one float64 operand is enough, as binary ops promote
    assert.are.equal("float64", lattice.linear(x:astype("float32"), w, nil).dtype)
  end)

  it("reads a 1-D x and a non-contiguous x", function()
    local w, b = lattice.array(rand({ 3, 4 }, gen)), lattice.array(rand({ 3 }, gen))
    local v = lattice.array(rand({ 4 }, gen))
    assert.are.same({ 3 }, lattice.linear(v, w, b).shape)
    assert_close(lattice.linear(v, w, b):tolist(), linear_ref(v:tolist(), w:tolist(), b:tolist()), TOL32)
    local xt = lattice.array(rand({ 4, 5 }, gen)):transpose()
    assert_close(lattice.linear(xt, w, b):tolist(), linear_ref(xt:tolist(), w:tolist(), b:tolist()), TOL32)
  end)

  it("keeps float16 and bfloat16 when x and the weight share it", function()
    for dt, tol in pairs({ float16 = 2 ^ -10, bfloat16 = 2 ^ -7 }) do
      local x, w = lattice.array(rand({ 3, 4 }, gen), dt), lattice.array(rand({ 2, 4 }, gen), dt)
      local y = lattice.linear(x, w, lattice.array({ 0.5, -0.5 }, dt))
      assert.are.equal(dt, y.dtype)
      -- computed in float32 from the 16-bit values; only the output rounding differs
      assert_close(y:tolist(), linear_ref(x:tolist(), w:tolist(), { 0.5, -0.5 }), 2 * tol)
      -- a float32 weight gives float32
      assert.are.equal("float32", lattice.linear(x, w:astype("float32")).dtype)
    end
  end)

  it("handles zero rows and zero input features (then y is the bias)", function()
    local y = lattice.linear(lattice.zeros({ 0, 3 }), lattice.ones({ 2, 3 }), lattice.ones({ 2 }))
    assert.are.same({ 0, 2 }, y.shape)
    local y0 = lattice.linear(lattice.zeros({ 2, 0 }), lattice.zeros({ 3, 0 }), lattice.array({ 1, 2, 3 }))
    assert.are.same({ { 1, 2, 3 }, { 1, 2, 3 } }, y0:tolist())
    local n0 = lattice.linear(lattice.zeros({ 2, 0 }), lattice.zeros({ 3, 0 }))
    assert.are.same({ { 0, 0, 0 }, { 0, 0, 0 } }, n0:tolist())
    -- and their gradients: zero weight and bias sums over no rows, the bias
    -- gradient of zero features the row count
    local f = lattice.grad(function(x_, w_, b_) return lattice.sum(lattice.linear(x_, w_, b_)) end, { 1, 2, 3 })
    local g = f(lattice.zeros({ 0, 3 }), lattice.ones({ 2, 3 }), lattice.ones({ 2 }))
    assert.are.same({ 0, 3 }, g[1].shape)
    assert.are.same({ { 0, 0, 0 }, { 0, 0, 0 } }, g[2]:tolist())
    assert.are.same({ 0, 0 }, g[3]:tolist())
    assert.are.same({ 2, 2, 2 }, f(lattice.zeros({ 2, 0 }), lattice.zeros({ 3, 0 }), lattice.ones({ 3 }))[3]:tolist())
  end)

  describe("gradient", function()
    it("matches finite differences for x, weight and bias, float32 and float64", function()
      local x, w, b = lattice.array(rand({ 2, 3, 4 }, gen)), lattice.array(rand({ 5, 4 }, gen)),
        lattice.array(rand({ 5 }, gen))
      gradcheck.each_dtype(function(x_, w_, b_) return weighted(lattice.linear(x_, w_, b_)) end, { x, w, b })
      gradcheck.each_dtype(function(x_, w_) return weighted(lattice.linear(x_, w_)) end, { x, w })
    end)

    it("gives each input's gradient in its own dtype", function()
      local x, w = lattice.array(rand({ 3, 4 }, gen), "float16"), lattice.array(rand({ 2, 4 }, gen))
      local g = lattice.grad(function(x_, w_) return lattice.sum(lattice.linear(x_, w_)) end, { 1, 2 })(x, w)
      assert.are.equal("float16", g[1].dtype)
      assert.are.equal("float32", g[2].dtype)
      -- d sum / dx[r][i] = sum_o w[o][i]
      local W = w:tolist()
      for _, row in ipairs(g[1]:tolist()) do
        for i = 1, 4 do assert_close(row[i], W[1][i] + W[2][i], 2 ^ -10) end
      end
    end)
  end)

  describe("rejects", function()
    it("mismatched shapes", function()
      assert.has_error(function() lattice.linear(lattice.ones({ 2, 4 }), lattice.ones({ 3, 3 })) end,
        "linear: weight has 3 input features, x has 4")
      assert.has_error(function() lattice.linear(lattice.ones({ 2, 2 }), lattice.ones({ 2 })) end,
        "linear: weight must be 2-D (output, input), got shape {2}")
      assert.has_error(function() lattice.linear(lattice.ones({ 2, 2 }), lattice.ones({ 2, 2 }), lattice.ones({ 3 })) end,
        "linear: bias has shape {3}, expected {2}")
      assert.has_error(function() lattice.linear(lattice.array(1), lattice.ones({ 2, 2 })) end,
        "linear: x must have at least 1 dimension, got a 0-d tensor")
    end)

    it("integer tensors", function()
      assert.has_error(function() lattice.linear(lattice.ones({ 2, 2 }, "int32"), lattice.ones({ 2, 2 })) end,
        "linear: x must be a float tensor, got int32")
      assert.has_error(function() lattice.linear(lattice.ones({ 2, 2 }), lattice.ones({ 2, 2 }, "int64")) end,
        "linear: weight must be a float tensor, got int64")
      assert.has_error(function()
        lattice.linear(lattice.ones({ 2, 2 }), lattice.ones({ 2, 2 }), lattice.ones({ 2 }, "int32"))
      end, "linear: bias must be a float tensor, got int32")
    end)

    it("arguments that are not tensors, and too many", function()
      assert.has_error(function() lattice.linear(lattice.ones({ 2, 2 })) end,
        "bad argument #2 to 'linear' (lattice.Tensor expected, got no value)")
      assert.has_error(function() lattice.linear(lattice.ones({ 2, 2 }), lattice.ones({ 2, 2 }), 3) end,
        "bad argument #3 to 'linear' (lattice.Tensor expected, got number)")
      assert.has_error(function() lattice.linear(lattice.ones({ 2, 2 }), lattice.ones({ 2, 2 }), nil, 5) end,
        "linear: too many arguments (expected at most 3, got 4)")
    end)
  end)
end)

describe("nn.Linear", function()
  local gen = generator(2)

  it("has weight (out, in) and bias (out), initialised uniformly within 1/sqrt(in)", function()
    lattice.random.seed(3)
    local lin = nn.Linear(64, 512)
    assert.are.same({ 512, 64 }, lin.weight.shape)
    assert.are.same({ 512 }, lin.bias.shape)
    -- exact bounds: U[-a, a) with a = 1/8, rounded to float32 (1/8 is exact)
    local a = 1 / 8
    local w = flat(lin.weight)
    local lo, hi, sq = math.huge, -math.huge, 0
    for _, v in ipairs(w) do
      lo, hi, sq = math.min(lo, v), math.max(hi, v), sq + v * v
    end
    assert(lo >= -a and hi <= a, ("weights in [%g, %g]"):format(lo, hi))
    -- 32768 draws fill the interval: the chance that none is within 1% of an
    -- end is 0.995^32768 ~ 1e-71
    assert(lo < -0.99 * a and hi > 0.99 * a)
    -- the std of U(-a, a) is a/sqrt(3); the sample std of n draws has a relative
    -- standard error of ~0.45/sqrt(n) = 0.25% here, so 2% is 8 standard errors,
    -- while a scale of 1/sqrt(out) (a factor 2.8 off) fails by far
    local std = math.sqrt(sq / #w)
    assert(math.abs(std / (a / math.sqrt(3)) - 1) < 0.02, ("std %g"):format(std))
    for _, v in ipairs(flat(lin.bias)) do assert(v >= -a and v <= a) end
  end)

  it("is lattice.linear on its fields", function()
    local lin = nn.Linear(4, 3)
    local x = lattice.array(rand({ 2, 5, 4 }, gen))
    local y = lin(x)
    assert.are.same({ 2, 5, 3 }, y.shape)
    assert_close(y:tolist(), linear_ref(x:tolist(), lin.weight:tolist(), lin.bias:tolist()), TOL32)
    assert.are.same(lattice.linear(x, lin.weight, lin.bias):tolist(), y:tolist())
  end)

  it("has no bias with {bias = false}", function()
    local lin = nn.Linear(4, 3, { bias = false })
    assert.is_nil(lin.bias)
    local x = lattice.array(rand({ 2, 4 }, gen))
    assert_close(lin(x):tolist(), linear_ref(x:tolist(), lin.weight:tolist(), nil), TOL32)
    assert.are.equal("Linear(input_dims=4, output_dims=3, bias=false)", tostring(lin))
  end)

  it("runs in float64 when its weights are float64", function()
    local lin = nn.Linear(7, 2)
    lin.weight, lin.bias = lin.weight:astype("float64"), lin.bias:astype("float64")
    local X = rand({ 3, 7 }, gen)
    local y = lin(lattice.array(X, "float64"))
    assert.are.equal("float64", y.dtype)
    assert_close(y:tolist(), linear_ref(X, lin.weight:tolist(), lin.bias:tolist()), TOL64)
  end)

  it("gradchecks through the module for x, weight and bias", function()
    local lin = nn.Linear(3, 2)
    local function f(x_, w_, b_)
      lin.weight, lin.bias = w_, b_
      return weighted(lin(x_))
    end
    gradcheck.each_dtype(f, { lattice.array(rand({ 4, 3 }, gen)), lin.weight, lin.bias })
  end)

  it("gives nn.value_and_grad the gradients of weight and bias", function()
    local lin = nn.Linear(2, 1)
    lin.weight, lin.bias = lattice.array({ { 2, -1 } }), lattice.array({ 0.5 })
    local x = lattice.array({ { 1, 3 }, { -2, 4 } })
    local loss, g = nn.value_and_grad(lin, function(m, x_) return lattice.sum(m(x_)) end)(lin, x)
    -- y = {2 - 3 + 0.5, -4 - 4 + 0.5} = {-0.5, -7.5}; dW = column sums of x; db = rows
    assert.are.equal(-8, loss:item())
    assert.are.same({ { -1, 7 } }, g.weight:tolist())
    assert.are.same({ 2 }, g.bias:tolist())
  end)

  describe("rejects", function()
    it("bad sizes and options", function()
      assert.has_error(function() nn.Linear(0, 2) end, "Linear: input_dims must be a positive integer, got 0")
      assert.has_error(function() nn.Linear(3.5, 2) end, "Linear: input_dims must be a positive integer, got 3.5")
      assert.has_error(function() nn.Linear(3) end, "Linear: output_dims must be a positive integer, got nil")
      assert.has_error(function() nn.Linear(3, 2, { bias = 1 }) end, "Linear: bias must be a boolean, got number")
      assert.has_error(function() nn.Linear(3, 2, { bais = false }) end, "Linear: unknown option 'bais'")
      assert.has_error(function() nn.Linear(3, 2, true) end, "Linear: options must be a table, got boolean")
    end)

    it("inputs of the wrong size or dtype, naming the op", function()
      local lin = nn.Linear(3, 2)
      assert.has_error(function() lin(lattice.ones({ 4, 4 })) end, "linear: weight has 3 input features, x has 4")
      assert.has_error(function() lin(lattice.ones({ 4, 3 }, "int32")) end, "linear: x must be a float tensor, got int32")
      assert.has_error(function() lin("x") end, "Linear: x must be a lattice.Tensor or a SparseTensor, got string")
    end)

    it("a weight of another shape, or read-only fields", function()
      local lin = nn.Linear(2, 2)
      assert.has_error(function() lin.weight = lattice.ones({ 3, 2 }) end,
        "Linear: weight has shape {2,2}, got a tensor of shape {3,2}")
      assert.has_error(function() lin.weight = lattice.ones({ 2, 2 }, "int32") end,
        "Linear: weight must be a float tensor, got int32")
      assert.has_error(function() lin.input_dims = 5 end, "Linear: field 'input_dims' cannot be set")
    end)
  end)
end)

-- ---------------------------------------------------------------------------

describe("nn.Embedding", function()
  local gen = generator(4)

  it("is initialised N(0, 1/dims)", function()
    lattice.random.seed(5)
    local e = nn.Embedding(1024, 64)
    assert.are.same({ 1024, 64 }, e.weight.shape)
    local w, s, sq = flat(e.weight), 0, 0
    for _, v in ipairs(w) do s, sq = s + v, sq + v * v end
    local n, std = #w, 1 / 8
    -- 65536 draws: the sample mean has a standard error of std/256 and the
    -- sample std a relative one of 1/sqrt(2n) = 0.28%; 5 standard errors each,
    -- while a std of 1 or of 1/dims is far off
    assert(math.abs(s / n) < 5 * std / 256, "mean " .. s / n)
    assert(math.abs(math.sqrt(sq / n) / std - 1) < 5 * 0.0028, "std " .. math.sqrt(sq / n))
  end)

  it("looks up rows by 0-based id, any shape of ids", function()
    local e = nn.Embedding(5, 3)
    local W = e.weight:tolist()
    local y = e(i64({ { 0, 4 }, { 2, 2 } }))
    assert.are.same({ 2, 2, 3 }, y.shape)
    assert.are.same({ { W[1], W[5] }, { W[3], W[3] } }, y:tolist())
    assert.are.same({ W[2] }, e(lattice.array({ 1 }, "int32")):tolist())
    assert.are.equal("Embedding(5, 3)", tostring(e))
  end)

  it("sums the gradient of repeated ids into their rows", function()
    local e = nn.Embedding(4, 3)
    local ids = i64({ 1, 3, 1, 1 })
    gradcheck.each_dtype(function(w_)
      e.weight = w_
      return weighted(e(ids))
    end, { e.weight })
    local g = lattice.grad(function(w_)
      e.weight = w_
      return lattice.sum(e(ids))
    end)(e.weight)
    assert.are.same({ { 0, 0, 0 }, { 3, 3, 3 }, { 0, 0, 0 }, { 1, 1, 1 } }, g:tolist())
  end)

  it("as_linear(x) is x @ weight^T, the tied output head", function()
    local e = nn.Embedding(6, 4)
    local x = lattice.array(rand({ 2, 3, 4 }, gen))
    local y = e:as_linear(x)
    assert.are.same({ 2, 3, 6 }, y.shape)
    assert_close(y:tolist(), linear_ref(x:tolist(), e.weight:tolist(), nil), TOL32)
    gradcheck.each_dtype(function(x_, w_)
      e.weight = w_
      return weighted(e:as_linear(x_))
    end, { x, e.weight })
  end)

  describe("rejects", function()
    it("ids out of range or not integers", function()
      local e = nn.Embedding(5, 3)
      assert.has_error(function() e(i64({ 0, 5 })) end, "embedding: id 5 is out of range for 5 embeddings")
      assert.has_error(function() e(i64({ -1 })) end, "embedding: id -1 is out of range for 5 embeddings")
      assert.has_error(function() e(lattice.array({ 0, 1 })) end, "embedding: ids must be integers, got float32")
    end)

    it("as_linear on the wrong feature size", function()
      assert.has_error(function() nn.Embedding(5, 3):as_linear(lattice.ones({ 2, 4 })) end,
        "linear: weight has 3 input features, x has 4")
    end)

    it("bad sizes and any option (padding_idx is not silently ignored)", function()
      assert.has_error(function() nn.Embedding(0, 3) end, "Embedding: num_embeddings must be a positive integer, got 0")
      assert.has_error(function() nn.Embedding(3, -1) end, "Embedding: dims must be a positive integer, got -1")
      assert.has_error(function() nn.Embedding(3, 3, { padding_idx = 0 }) end, "Embedding: unknown option 'padding_idx'")
    end)
  end)
end)

-- ---------------------------------------------------------------------------

local function sigmoid(x) return 1 / (1 + math.exp(-x)) end
local function tanh(x) return 1 - 2 / (math.exp(2 * x) + 1) end

local activations = {
  { "ReLU", nil, function(x) return x > 0 and x or 0 end },
  { "LeakyReLU", nil, function(x) return x > 0 and x or 0.01 * x end },
  { "LeakyReLU", { negative_slope = 0.2 }, function(x) return x > 0 and x or 0.2 * x end },
  { "LeakyReLU", { negative_slope = -1 }, function(x) return math.abs(x) end },
  { "GELU", nil, ref.gelu },
  { "GELU", { approx = "tanh" }, function(x)
    return 0.5 * x * (1 + tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ^ 3)))
  end },
  { "GELU", { approx = "precise" }, function(x)
    return 0.5 * x * (1 + tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ^ 3)))
  end },
  { "SiLU", nil, function(x) return x * sigmoid(x) end },
  { "Sigmoid", nil, sigmoid },
  { "Tanh", nil, tanh },
  { "Softplus", nil, function(x) return math.log(1 + math.exp(x)) end },
}

-- Inputs in [-3, 3], none within 0.05 of the kinks of ReLU and LeakyReLU at 0,
-- so central differences with eps = 1e-3 never straddle one.
local function activation_input(seed)
  local x = rand({ 3, 5 }, generator(seed))
  return map(x, function(v)
    v = 3 * v
    if math.abs(v) < 0.05 then v = v < 0 and v - 0.05 or v + 0.05 end
    return v
  end)
end

describe("activation modules", function()
  for k, case in ipairs(activations) do
    local name, opts, fn = case[1], case[2], case[3]
    local label = name .. (opts and (" " .. next(opts) .. "=" .. tostring(select(2, next(opts)))) or "")

    it(label .. " matches the reference in float32 and float64", function()
      local m = nn[name](opts)
      local X = activation_input(k)
      -- float32: the reference from the float32 values; a few ulps of the
      -- O(1) results (the SIMD exp is within 2 ulps), 2e-6
      local x32 = lattice.array(X)
      local y32 = m(x32)
      assert.are.equal("float32", y32.dtype)
      assert_close(y32:tolist(), map(x32:tolist(), fn), 2e-6, label)
      -- float64 computes in double through libm: 1e-12 covers the reference's
      -- own error (erf's series, ~1e-14)
      local y64 = m(lattice.array(X, "float64"))
      assert.are.equal("float64", y64.dtype)
      assert_close(y64:tolist(), map(X, fn), 1e-12, label)
    end)

    it(label .. " gradchecks in float32 and float64", function()
      local m = nn[name](opts)
      gradcheck.each_dtype(function(x_) return weighted(m(x_)) end, { lattice.array(activation_input(k + 50)) })
    end)
  end

  it("keep their options as fields and in tostring", function()
    assert.are.equal(0.01, nn.LeakyReLU().negative_slope)
    assert.are.equal("LeakyReLU(negative_slope=0.2)", tostring(nn.LeakyReLU { negative_slope = 0.2 }))
    assert.are.equal("none", nn.GELU().approx)
    assert.are.equal('GELU(approx="tanh")', tostring(nn.GELU { approx = "tanh" }))
    assert.are.equal("ReLU()", tostring(nn.ReLU()))
  end)

  it("keep float16 and bfloat16", function()
    for _, dt in ipairs({ "float16", "bfloat16" }) do
      assert.are.equal(dt, nn.SiLU()(lattice.ones({ 2 }, dt)).dtype)
    end
  end)

  describe("reject", function()
    it("unknown options and bad values", function()
      assert.has_error(function() nn.ReLU { inplace = true } end, "ReLU: unknown option 'inplace'")
      assert.has_error(function() nn.ReLU(3) end, "ReLU: options must be a table, got number")
      assert.has_error(function() nn.LeakyReLU { slope = 1 } end, "LeakyReLU: unknown option 'slope'")
      assert.has_error(function() nn.LeakyReLU { negative_slope = "a" } end,
        "LeakyReLU: negative_slope must be a number, got string")
      assert.has_error(function() nn.GELU { approx = "fast" } end,
        "GELU: approx must be 'none', 'tanh' or 'precise', got fast")
      assert.has_error(function() nn.GELU { approx = true } end,
        "GELU: approx must be 'none', 'tanh' or 'precise', got true")
    end)

    it("nothing on integer inputs: they follow the ops (float results, ReLU keeps integers)", function()
      assert.are.equal("float32", nn.SiLU()(lattice.ones({ 2 }, "int32")).dtype)
      assert.are.same({ 0, 2 }, nn.ReLU()(lattice.array({ -1, 2 }, "int32")):tolist())
    end)
  end)
end)

describe("nn.Identity", function()
  it("returns its input itself", function()
    local x = lattice.ones({ 2, 3 })
    assert.are.equal(x, nn.Identity()(x))
    assert.are.equal("Identity()", tostring(nn.Identity()))
  end)
end)

-- ---------------------------------------------------------------------------

-- layer_norm (center) or rms_norm over the last axis, in doubles.
local function norm_ref(x, w, b, eps, center)
  return map_rows(x, function(row)
    local n, mean, var = #row, 0, 0
    if center then
      for _, v in ipairs(row) do mean = mean + v end
      mean = mean / n
    end
    for _, v in ipairs(row) do var = var + (v - mean) ^ 2 end
    local rstd = 1 / math.sqrt(var / n + eps)
    local y = {}
    for j, v in ipairs(row) do y[j] = (v - mean) * rstd * (w and w[j] or 1) + (b and b[j] or 0) end
    return y
  end)
end

-- O(1) outputs from float32 inputs with double row statistics: a few ulps.
local NORM32, NORM64 = 1e-6, 1e-12

describe("nn.LayerNorm", function()
  local gen = generator(6)

  it("starts with weight 1 and bias 0, eps 1e-5", function()
    local ln = nn.LayerNorm(4)
    assert.are.same({ 1, 1, 1, 1 }, ln.weight:tolist())
    assert.are.same({ 0, 0, 0, 0 }, ln.bias:tolist())
    assert.are.equal(1e-5, ln.eps)
    assert.are.equal("LayerNorm(4, eps=1e-05, affine=true)", tostring(ln))
  end)

  it("matches the reference with its weight and bias, float32 and float64", function()
    local ln = nn.LayerNorm(7, { eps = 1e-3 })
    ln.weight, ln.bias = lattice.array(rand({ 7 }, gen)), lattice.array(rand({ 7 }, gen))
    local x = lattice.array(rand({ 2, 3, 7 }, gen))
    local W, B = ln.weight:tolist(), ln.bias:tolist()
    assert_close(ln(x):tolist(), norm_ref(x:tolist(), W, B, 1e-3, true), NORM32)
    local y64 = ln(x:astype("float64"))
    assert.are.equal("float64", y64.dtype)
    assert_close(y64:tolist(), norm_ref(x:tolist(), W, B, 1e-3, true), NORM64)
  end)

  it("has no parameters with affine = false, and no bias with bias = false", function()
    local x = lattice.array(rand({ 3, 5 }, gen))
    local plain = nn.LayerNorm(5, { affine = false })
    assert.is_nil(plain.weight)
    assert.is_nil(plain.bias)
    assert.are.same({}, plain:parameters())
    assert_close(plain(x):tolist(), norm_ref(x:tolist(), nil, nil, 1e-5, true), NORM32)
    local nob = nn.LayerNorm(5, { bias = false })
    assert.is_nil(nob.bias)
    nob.weight = lattice.array({ 1, 2, 3, 4, 5 })
    assert_close(nob(x):tolist(), norm_ref(x:tolist(), { 1, 2, 3, 4, 5 }, nil, 1e-5, true), NORM32)
  end)

  it("gradchecks through the module", function()
    local ln = nn.LayerNorm(4)
    local function f(x_, w_, b_)
      ln.weight, ln.bias = w_, b_
      return weighted(ln(x_))
    end
    gradcheck.each_dtype(f, { lattice.array(rand({ 3, 4 }, gen)), lattice.array(rand({ 4 }, gen)),
      lattice.array(rand({ 4 }, gen)) })
  end)

  it("rejects bad options and inputs", function()
    assert.has_error(function() nn.LayerNorm(0) end, "LayerNorm: dims must be a positive integer, got 0")
    assert.has_error(function() nn.LayerNorm(4, { eps = -1 }) end, "LayerNorm: eps must be non-negative, got -1")
    local ok, msg = pcall(nn.LayerNorm, 4, { eps = 0 / 0 }) -- NaN prints as nan or -nan
    assert.is_false(ok)
    assert.truthy(msg:find("LayerNorm: eps must be non%-negative, got %-?nan$"), msg)
    assert.has_error(function() nn.LayerNorm(4, { eps = "a" }) end, "LayerNorm: eps must be a number, got string")
    assert.has_error(function() nn.LayerNorm(4, { affine = 1 }) end, "LayerNorm: affine must be a boolean, got number")
    assert.has_error(function() nn.LayerNorm(4, { elementwise_affine = false }) end,
      "LayerNorm: unknown option 'elementwise_affine'")
    assert.has_error(function() nn.LayerNorm(4)(lattice.ones({ 2, 3 })) end,
      "layer_norm: weight has shape {4}, expected {3}")
  end)
end)

describe("nn.RMSNorm", function()
  local gen = generator(7)

  it("matches the reference with its weight, float32 and float64", function()
    local rn = nn.RMSNorm(6, { eps = 1e-4 })
    assert.are.same({ 1, 1, 1, 1, 1, 1 }, rn.weight:tolist())
    rn.weight = lattice.array(rand({ 6 }, gen))
    local x = lattice.array(rand({ 4, 6 }, gen))
    local W = rn.weight:tolist()
    assert_close(rn(x):tolist(), norm_ref(x:tolist(), W, nil, 1e-4, false), NORM32)
    assert_close(rn(x:astype("float64")):tolist(), norm_ref(x:tolist(), W, nil, 1e-4, false), NORM64)
    assert.are.equal("RMSNorm(6, eps=0.0001)", tostring(rn))
  end)

  it("gradchecks through the module", function()
    local rn = nn.RMSNorm(5)
    local function f(x_, w_)
      rn.weight = w_
      return weighted(rn(x_))
    end
    gradcheck.each_dtype(f, { lattice.array(rand({ 3, 5 }, gen)), lattice.array(rand({ 5 }, gen)) })
  end)

  it("rejects bad options and inputs", function()
    assert.has_error(function() nn.RMSNorm(4, { eps = -1 }) end, "RMSNorm: eps must be non-negative, got -1")
    assert.has_error(function() nn.RMSNorm(4, { bias = true }) end, "RMSNorm: unknown option 'bias'")
    assert.has_error(function() nn.RMSNorm(4)(lattice.ones({ 2, 3 })) end,
      "rms_norm: weight has shape {4}, expected {3}")
  end)
end)

-- ---------------------------------------------------------------------------

-- Per-channel biased mean and variance over the rows (every axis but the last).
local function channel_stats(rows)
  local c, n, mean, var = #rows[1], #rows, {}, {}
  for j = 1, c do
    local s = 0
    for _, r in ipairs(rows) do s = s + r[j] end
    mean[j] = s / n
    local v = 0
    for _, r in ipairs(rows) do v = v + (r[j] - mean[j]) ^ 2 end
    var[j] = v / n
  end
  return mean, var
end

-- (x - mean) / sqrt(var + eps) * w + b per channel; the batch's statistics
-- unless mean and var are given.
local function bn_ref(x, w, b, eps, mean, var)
  if not mean then mean, var = channel_stats(rows_of(x)) end
  return map_rows(x, function(row)
    local y = {}
    for j, v in ipairs(row) do
      y[j] = (v - mean[j]) / math.sqrt(var[j] + eps) * (w and w[j] or 1) + (b and b[j] or 0)
    end
    return y
  end)
end

describe("nn.BatchNorm", function()
  local gen = generator(8)

  it("starts with weight 1, bias 0, running_mean 0 and running_var 1, the running ones frozen", function()
    local bn = nn.BatchNorm(3)
    assert.are.same({ 1, 1, 1 }, bn.weight:tolist())
    assert.are.same({ 0, 0, 0 }, bn.bias:tolist())
    assert.are.same({ 0, 0, 0 }, bn.running_mean:tolist())
    assert.are.same({ 1, 1, 1 }, bn.running_var:tolist())
    assert.are.equal(1e-5, bn.eps)
    assert.are.equal(0.1, bn.momentum)
    local p, t = bn:parameters(), bn:trainable_parameters()
    assert.truthy(p.running_mean and p.running_var and t.weight and t.bias)
    assert.is_nil(t.running_mean)
    assert.is_nil(t.running_var)
    assert.are.equal("BatchNorm(3, eps=1e-05, momentum=0.1, affine=true, track_running_stats=true)", tostring(bn))
  end)

  it("keeps the running statistics frozen through unfreeze, its own or a parent's", function()
    local bn = nn.BatchNorm(2)
    bn:freeze()
    assert.are.same({}, bn:trainable_parameters())
    bn:unfreeze()
    local t = bn:trainable_parameters()
    assert.truthy(t.weight and t.bias)
    assert.is_nil(t.running_mean)
    local s = nn.Sequential(nn.Linear(2, 2), bn)
    s:unfreeze()
    assert.is_nil(s:trainable_parameters().layers[2].running_var)
    bn:unfreeze { keys = { "running_mean" } }
    assert.is_nil(bn:trainable_parameters().running_mean)
  end)

  it("normalises with the batch's statistics over every axis but the last in training", function()
    local bn = nn.BatchNorm(4)
    bn.weight, bn.bias = lattice.array(rand({ 4 }, gen)), lattice.array(rand({ 4 }, gen))
    local x = lattice.array(rand({ 2, 3, 4 }, gen))
    assert_close(bn(x):tolist(), bn_ref(x:tolist(), bn.weight:tolist(), bn.bias:tolist(), 1e-5), NORM32)
  end)

  it("computes in double when x is float64", function()
    local bn = nn.BatchNorm(3, { eps = 1e-3 })
    local X = rand({ 5, 3 }, gen)
    X[1][1] = 1 + 2 ^ -40 -- not a float32
    local y = bn(lattice.array(X, "float64"))
    assert.are.equal("float64", y.dtype)
    assert_close(y:tolist(), bn_ref(X, nil, nil, 1e-3), NORM64)
  end)

  it("keeps float16 and bfloat16", function()
    for dt, tol in pairs({ float16 = 2 ^ -10, bfloat16 = 2 ^ -7 }) do
      local x = lattice.array(rand({ 4, 3 }, gen), dt)
      local y = nn.BatchNorm(3)(x)
      assert.are.equal(dt, y.dtype)
      -- outputs up to ~1.7 (4 rows), each off by the output rounding
      assert_close(y:tolist(), bn_ref(x:tolist(), nil, nil, 1e-5), 2 * tol)
    end
  end)

  it("moves the running statistics by momentum with the biased batch variance, step by step", function()
    local bn = nn.BatchNorm(2)
    -- step 1: mean {3, 4}, biased var {8/3, 8/3}
    bn(lattice.array({ { 1, 2 }, { 3, 6 }, { 5, 4 } }))
    -- running_mean = 0.9 * 0 + 0.1 * {3, 4}; running_var = 0.9 * 1 + 0.1 * 8/3 = 7/6
    assert_close(bn.running_mean:tolist(), { 0.3, 0.4 }, 1e-6)
    assert_close(bn.running_var:tolist(), { 7 / 6, 7 / 6 }, 1e-6)
    -- step 2: mean {1, 2}, var {1, 4} (the unbiased variance would be {2, 8})
    bn(lattice.array({ { 0, 0 }, { 2, 4 } }))
    assert_close(bn.running_mean:tolist(), { 0.37, 0.56 }, 1e-6)
    assert_close(bn.running_var:tolist(), { 1.15, 1.45 }, 1e-6)
    -- step 3: mean {2, 1}, var {5, 0}
    bn(lattice.array({ { -1, 1 }, { 1, 1 }, { 3, 1 }, { 5, 1 } }))
    assert_close(bn.running_mean:tolist(), { 0.533, 0.604 }, 1e-6)
    assert_close(bn.running_var:tolist(), { 1.535, 1.305 }, 1e-6)
    -- float32 running statistics after three steps of O(1) values: a few ulps
  end)

  it("moves them by a given momentum, over the rows of a 3-D batch", function()
    local bn = nn.BatchNorm(1, { momentum = 0.5 })
    -- rows 0, 2, 4, 6: mean 3, biased var 5
    bn(lattice.array({ { { 0 }, { 2 } }, { { 4 }, { 6 } } }))
    assert_close(bn.running_mean:tolist(), { 1.5 }, 1e-6)
    assert_close(bn.running_var:tolist(), { 3 }, 1e-6)
    local frozen = nn.BatchNorm(1, { momentum = 0 })
    frozen(lattice.array({ { 5 }, { 7 } }))
    assert.are.same({ 0 }, frozen.running_mean:tolist())
    assert.are.same({ 1 }, frozen.running_var:tolist())
  end)

  it("uses the running statistics in eval mode and leaves them alone", function()
    local bn = nn.BatchNorm(2)
    bn(lattice.array({ { 1, 2 }, { 3, 6 }, { 5, 4 } }))
    bn.weight, bn.bias = lattice.array({ 2, -1 }), lattice.array({ 0.5, 0.25 })
    bn:eval()
    assert.is_false(bn.training)
    local rm, rv = bn.running_mean:tolist(), bn.running_var:tolist()
    local x = lattice.array({ { 0.5, -1 } }) -- one row is enough here
    local y = bn(x)
    assert_close(y:tolist(), bn_ref(x:tolist(), { 2, -1 }, { 0.5, 0.25 }, 1e-5, rm, rv), NORM32)
    assert.are.same(rm, bn.running_mean:tolist())
    assert.are.same(rv, bn.running_var:tolist())
    bn:train()
    bn(lattice.array({ { 1, 2 }, { 3, 6 } }))
    assert.are_not.same(rm, bn.running_mean:tolist())
  end)

  it("without affine has no weight and bias", function()
    local bn = nn.BatchNorm(3, { affine = false })
    assert.is_nil(bn.weight)
    assert.is_nil(bn.bias)
    assert.are.same({}, bn:trainable_parameters())
    local x = lattice.array(rand({ 4, 3 }, gen))
    assert_close(bn(x):tolist(), bn_ref(x:tolist(), nil, nil, 1e-5), NORM32)
    assert.truthy(bn.running_mean)
  end)

  it("without track_running_stats keeps none and uses the batch's in eval mode too", function()
    local bn = nn.BatchNorm(3, { track_running_stats = false })
    assert.is_nil(bn.running_mean)
    assert.is_nil(bn.running_var)
    local x = lattice.array(rand({ 4, 3 }, gen))
    local want = bn_ref(x:tolist(), nil, nil, 1e-5)
    assert_close(bn(x):tolist(), want, NORM32)
    bn:eval()
    assert_close(bn(x):tolist(), want, NORM32)
    assert.is_nil(bn.running_mean)
    local bare = nn.BatchNorm(3, { affine = false, track_running_stats = false })
    assert.are.same({}, bare:parameters())
    assert_close(bare(x):tolist(), want, NORM32)
  end)

  describe("gradient", function()
    local function checker(bn)
      return function(x_, w_, b_)
        bn.weight, bn.bias = w_, b_
        return weighted(bn(x_))
      end
    end

    it("in training flows through the batch statistics (float32 and float64)", function()
      local bn = nn.BatchNorm(3)
      local x, w, b = lattice.array(rand({ 2, 3, 3 }, gen)), lattice.array(rand({ 3 }, gen)),
        lattice.array(rand({ 3 }, gen))
      gradcheck.each_dtype(checker(bn), { x, w, b })
      -- a plain sum of normalised columns is constant: its x gradient is zero
      -- in training (through the statistics), w * rstd in eval
      local gx = lattice.grad(function(x_) return lattice.sum(bn(x_)) end)(x:astype("float64"))
      for _, v in ipairs(flat(gx)) do assert(math.abs(v) < 1e-12, v) end
    end)

    it("in eval mode treats the running statistics as constants", function()
      local bn = nn.BatchNorm(3)
      bn(lattice.array(rand({ 5, 3 }, gen)))
      bn:eval()
      local x, w, b = lattice.array(rand({ 4, 3 }, gen)), lattice.array(rand({ 3 }, gen)),
        lattice.array(rand({ 3 }, gen))
      gradcheck.each_dtype(checker(bn), { x, w, b })
      -- dx = g * w / sqrt(running_var + eps), checked by hand
      bn.weight = w
      local gx = lattice.grad(function(x_) return lattice.sum(bn(x_)) end)(x)
      local W, RV = w:tolist(), bn.running_var:tolist()
      for _, row in ipairs(gx:tolist()) do
        for j = 1, 3 do assert_close(row[j], W[j] / math.sqrt(RV[j] + 1e-5), 1e-6) end
      end
    end)

    it("without affine, and without tracking in eval mode (batch statistics)", function()
      local x = lattice.array(rand({ 4, 2 }, gen))
      local plain = nn.BatchNorm(2, { affine = false })
      gradcheck.each_dtype(function(x_) return weighted(plain(x_)) end, { x })
      local untracked = nn.BatchNorm(2, { track_running_stats = false })
      untracked:eval()
      gradcheck.each_dtype(checker(untracked), { x, untracked.weight, untracked.bias })
    end)

    it("through nn.value_and_grad: no gradient for the running statistics, which move once", function()
      local bn = nn.BatchNorm(2)
      local x = lattice.array({ { 1, 2 }, { 3, 6 }, { 5, 4 } })
      local c = lattice.array({ { 1, 2 }, { 3, 4 }, { 5, 7 } })
      local _, g = nn.value_and_grad(bn, function(m, x_) return lattice.sum(m(x_) * c) end)(bn, x)
      assert.truthy(g.weight and g.bias)
      assert.is_nil(g.running_mean)
      assert.is_nil(g.running_var)
      -- dbias = column sums of c; dweight = sum over rows of c * xhat
      assert.are.same({ 9, 13 }, g.bias:tolist())
      local xhat = bn_ref(x:tolist(), nil, nil, 1e-5)
      local C = c:tolist()
      for j = 1, 2 do
        local s = 0
        for r = 1, 3 do s = s + C[r][j] * xhat[r][j] end
        assert_close(g.weight:tolist()[j], s, 1e-6)
      end
      assert_close(bn.running_mean:tolist(), { 0.3, 0.4 }, 1e-6)
    end)

    it("is the same for one thread and two", function()
      -- 256 x 160 elements pass the parallel threshold; the row sums are taken
      -- in fixed chunks combined in order, so the thread count changes no bit
      local bn = nn.BatchNorm(160)
      local x, w = lattice.array(rand({ 256, 160 }, gen)), lattice.array(rand({ 160 }, gen))
      local f = lattice.grad(checker(bn), { 1, 2, 3 })
      local one = with_threads(1, function() return f(x, w, bn.bias) end)
      local two = with_threads(2, function() return f(x, w, bn.bias) end)
      for k = 1, 3 do assert.are.same(one[k]:tolist(), two[k]:tolist()) end
    end)
  end)

  describe("rejects", function()
    it("bad options", function()
      assert.has_error(function() nn.BatchNorm(0) end, "BatchNorm: num_features must be a positive integer, got 0")
      assert.has_error(function() nn.BatchNorm(4, { momentum = 2 }) end, "BatchNorm: momentum must be in [0, 1], got 2")
      assert.has_error(function() nn.BatchNorm(4, { momentum = -0.1 }) end,
        "BatchNorm: momentum must be in [0, 1], got -0.1")
      assert.has_error(function() nn.BatchNorm(4, { momentum = "a" }) end, "BatchNorm: momentum must be a number, got string")
      assert.has_error(function() nn.BatchNorm(4, { eps = -1 }) end, "BatchNorm: eps must be non-negative, got -1")
      assert.has_error(function() nn.BatchNorm(4, { affine = 1 }) end, "BatchNorm: affine must be a boolean, got number")
      assert.has_error(function() nn.BatchNorm(4, { track_running_stats = "yes" }) end,
        "BatchNorm: track_running_stats must be a boolean, got string")
      assert.has_error(function() nn.BatchNorm(4, { momentun = 0.1 }) end, "BatchNorm: unknown option 'momentun'")
    end)

    it("inputs without a row axis, of another channel count, or of one row in training", function()
      local bn = nn.BatchNorm(3)
      assert.has_error(function() bn(lattice.ones({ 3 })) end,
        "batch_norm: x must have a row axis and a channel axis, got 1 dimension")
      assert.has_error(function() bn(lattice.ones({ 2, 4 })) end, "batch_norm: weight has shape {3}, expected {4}")
      assert.has_error(function() bn(lattice.ones({ 1, 3 })) end,
        "batch_norm: training needs more than one row per channel, got 1")
      assert.has_error(function() bn(lattice.ones({ 2, 3 }, "int32")) end, "batch_norm: x must be a float tensor, got int32")
      -- nothing moved on a failed call
      assert.are.same({ 0, 0, 0 }, bn.running_mean:tolist())
    end)

    it("running statistics replaced by tensors of another shape", function()
      local bn = nn.BatchNorm(3)
      assert.has_error(function() bn.running_mean = lattice.zeros({ 4 }) end,
        "BatchNorm: running_mean has shape {3}, got a tensor of shape {4}")
    end)
  end)
end)

-- ---------------------------------------------------------------------------

-- The keep mask lattice.dropout draws after random.seed(seed): element i is
-- kept when the i-th uniform draw of the generator is >= p. The same counters
-- give random.uniform's draws, which float64 holds exactly.
local function keep_mask(seed, n, p)
  lattice.random.seed(seed)
  local u = lattice.random.uniform({ n }, { dtype = "float64" }):tolist()
  local keep = {}
  for i, v in ipairs(u) do keep[i] = v >= p end
  return keep
end

describe("lattice.dropout", function()
  local gen = generator(9)

  it("keeps the elements whose draw is >= p, scaled by 1/(1 - p)", function()
    local X = rand({ 1000 }, gen)
    local x = lattice.array(X)
    for _, p in ipairs({ 0.1, 0.5, 0.9 }) do
      local keep = keep_mask(21, 1000, p)
      lattice.random.seed(21)
      local y = lattice.dropout(x, p):tolist()
      local s = f32(1 / (1 - p)) -- the float32 scale the kernel multiplies by
      for i, v in ipairs(y) do
        assert.are.equal(keep[i] and f32(f32(X[i]) * s) or 0, v, ("p %g element %d"):format(p, i))
      end
    end
  end)

  it("reproduces its mask with a seed, and draws another one without", function()
    local x = lattice.ones({ 64, 64 })
    lattice.random.seed(7)
    local a = lattice.dropout(x, 0.5):tolist()
    local b = lattice.dropout(x, 0.5):tolist()
    lattice.random.seed(7)
    assert.are.same(a, lattice.dropout(x, 0.5):tolist())
    assert.are_not.same(a, b)
  end)

  it("keeps a fraction 1 - p, and the mean of its output", function()
    lattice.random.seed(13)
    local n, p = 65536, 0.3
    local y = flat(lattice.dropout(lattice.ones({ n }), p))
    local kept, sum = 0, 0
    for _, v in ipairs(y) do
      if v ~= 0 then kept = kept + 1 end
      sum = sum + v
    end
    -- the kept fraction has a standard error of sqrt(p(1-p)/n) = 0.0018; 5 of them
    assert(math.abs(kept / n - (1 - p)) < 5 * 0.0018, "kept " .. kept / n)
    -- E[y] = 1: kept / n / (1 - p), the same 5 standard errors scaled by 1/(1 - p)
    assert(math.abs(sum / n - 1) < 5 * 0.0018 / (1 - p), "mean " .. sum / n)
  end)

  it("is the identity for p = 0 and zero for p = 1", function()
    local x = lattice.array(rand({ 3, 4 }, gen))
    assert.are.same(x:tolist(), lattice.dropout(x, 0):tolist())
    assert.are.same({ 0, 0, 0, 0 }, lattice.dropout(lattice.ones({ 4 }), 1):tolist())
  end)

  it("keeps float64, float16 and bfloat16, the same mask for each", function()
    local keep = keep_mask(3, 100, 0.5)
    for _, dt in ipairs({ "float64", "float16", "bfloat16" }) do
      lattice.random.seed(3)
      local y = lattice.dropout(lattice.ones({ 100 }, dt), 0.5)
      assert.are.equal(dt, y.dtype)
      for i, v in ipairs(y:tolist()) do assert.are.equal(keep[i] and 2 or 0, v) end
    end
  end)

  it("counts elements in row-major order, views included", function()
    local xt = lattice.array(rand({ 6, 5 }, gen)):transpose()
    lattice.random.seed(8)
    local a = lattice.dropout(xt, 0.5):tolist()
    lattice.random.seed(8)
    assert.are.same(lattice.dropout(lattice.array(xt:tolist()), 0.5):tolist(), a)
  end)

  describe("gradient", function()
    it("uses the forward's mask, scaled the same", function()
      local x = lattice.array(rand({ 200 }, gen))
      local y
      lattice.random.seed(17)
      local g = lattice.grad(function(x_)
        y = lattice.dropout(x_, 0.25)
        return lattice.sum(y)
      end)(x)
      -- d sum / dx = keep / (1 - p), keep read off the forward's output
      local Y, X = y:tolist(), x:tolist()
      for i, v in ipairs(g:tolist()) do
        local kept = Y[i] ~= 0
        assert.are.equal(kept and f32(1 / 0.75) or 0, v)
        if kept then assert.are.equal(f32(X[i] * f32(1 / 0.75)), Y[i]) end
      end
    end)

    it("matches finite differences with the mask held by a seed", function()
      local x = lattice.array(rand({ 3, 5 }, gen))
      gradcheck.each_dtype(function(x_)
        lattice.random.seed(5)
        return weighted(lattice.dropout(x_, 0.4))
      end, { x })
    end)
  end)

  it("rejects a p outside [0, 1], integer inputs and missing arguments", function()
    assert.has_error(function() lattice.dropout(lattice.ones({ 3 }), 1.5) end, "dropout: p must be in [0, 1], got 1.5")
    assert.has_error(function() lattice.dropout(lattice.ones({ 3 }), -0.5) end, "dropout: p must be in [0, 1], got -0.5")
    assert.has_error(function() lattice.dropout(lattice.ones({ 3 }), 0 / 0) end)
    assert.has_error(function() lattice.dropout(lattice.ones({ 3 }, "int32"), 0.5) end,
      "dropout: x must be a float tensor, got int32")
    assert.has_error(function() lattice.dropout(lattice.ones({ 3 })) end,
      "bad argument #2 to 'dropout' (number expected, got no value)")
  end)
end)

describe("nn.Dropout", function()
  it("is lattice.dropout in training mode, with p = 0.5 by default", function()
    local d = nn.Dropout()
    assert.are.equal(0.5, d.p)
    assert.are.equal("Dropout(p=0.5)", tostring(d))
    local x = lattice.ones({ 32, 32 })
    lattice.random.seed(4)
    local want = lattice.dropout(x, 0.5):tolist()
    lattice.random.seed(4)
    assert.are.same(want, d(x):tolist())
    lattice.random.seed(4)
    assert.are.same(lattice.dropout(x, 0.2):tolist(), (function()
      lattice.random.seed(4)
      return nn.Dropout { p = 0.2 }(x):tolist()
    end)())
  end)

  it("is the identity in eval mode and for p = 0, returning its input", function()
    local x = lattice.ones({ 4 })
    local d = nn.Dropout { p = 0.9 }
    d:eval()
    assert.are.equal(x, d(x))
    assert.are.equal(x, nn.Dropout { p = 0 }(x))
    local s = nn.Sequential(nn.Dropout { p = 0.5 })
    s:eval()
    assert.are.equal(x, s(x))
  end)

  it("rejects a p outside [0, 1) and unknown options", function()
    assert.has_error(function() nn.Dropout { p = 1 } end, "Dropout: p must be in [0, 1), got 1")
    assert.has_error(function() nn.Dropout { p = -0.1 } end, "Dropout: p must be in [0, 1), got -0.1")
    assert.has_error(function() nn.Dropout { p = "a" } end, "Dropout: p must be a number, got string")
    assert.has_error(function() nn.Dropout(0.5) end, "Dropout: options must be a table, got number")
    assert.has_error(function() nn.Dropout { rate = 0.5 } end, "Dropout: unknown option 'rate'")
    assert.has_error(function() nn.Dropout()(lattice.ones({ 2 }, "int32")) end,
      "dropout: x must be a float tensor, got int32")
  end)
end)

-- ---------------------------------------------------------------------------

describe("nn.Sequential", function()
  local gen = generator(10)

  it("calls its layers in order, functions included", function()
    local a, b = nn.Linear(3, 4), nn.Linear(4, 2)
    local s = nn.Sequential(a, nn.ReLU(), b, function(x) return x * 2 end)
    local x = lattice.array(rand({ 5, 3 }, gen))
    local want = b(lattice.relu(a(x))) * 2
    assert.are.same(want:tolist(), s(x):tolist())
    assert.are.equal(a, s.layers[1])
    assert.are.equal(4, #s.layers)
  end)

  it("with no layers is the identity", function()
    local x = lattice.ones({ 2 })
    assert.are.equal(x, nn.Sequential()(x))
  end)

  it("gradchecks a small MLP through nn.value_and_grad's parameters", function()
    local s = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    local function f(x_, w1, b1, w2, b2)
      s.layers[1].weight, s.layers[1].bias, s.layers[3].weight, s.layers[3].bias = w1, b1, w2, b2
      return weighted(s(x_))
    end
    local l1, l3 = s.layers[1], s.layers[3]
    gradcheck.each_dtype(f, { lattice.array(rand({ 2, 3 }, gen)), l1.weight, l1.bias, l3.weight, l3.bias })
  end)

  it("names the layer an error comes from", function()
    local s = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(3, 2))
    assert.has_error(function() s(lattice.ones({ 1, 3 })) end, "layers.2: linear: weight has 3 input features, x has 2")
  end)

  it("rejects an argument that is neither a module nor a function", function()
    assert.has_error(function() nn.Sequential(nn.ReLU(), 5) end,
      "Sequential: argument 2 must be a module or a function, got number")
  end)
end)
