-- nn.losses (lua/lattice/nn/losses.lua) against references written plainly in
-- Lua doubles from the formulas of mlx.nn.losses, in every reduction and with
-- each loss's default, gradchecked in float32 and float64, MLX's documented
-- examples, and every bad input with its message.
local lattice = require "lattice"
local nn = require "lattice.nn"
local gradcheck = require "support.gradcheck"
local ref = require "support.reference"

local losses = nn.losses
local generator, rand, assert_close, i64 = ref.generator, ref.rand, ref.assert_close, ref.i64

-- Every number of a nested table (row-major), and f applied keeping the nesting.
local function leaves(t, out)
  out = out or {}
  if type(t) ~= "table" then
    out[#out + 1] = t
  else
    for _, v in ipairs(t) do leaves(v, out) end
  end
  return out
end

local function zip(a, b, f)
  if type(a) ~= "table" then return f(a, b) end
  local out = {}
  for i = 1, #a do out[i] = zip(a[i], b[i], f) end
  return out
end

-- The reduction of a nested table of per-element losses, as MLX's _reduce.
local function reduced(per, reduction)
  if reduction == "none" then return per end
  local s, n = 0, 0
  for _, v in ipairs(leaves(per)) do s, n = s + v, n + 1 end
  return reduction == "sum" and s or s / n
end

-- A scalar that weighs every element of y differently, for gradchecks of "none".
local weighted = ref.weighted

-- float32 losses of O(1) inputs: each element a few ulps off (~1e-7); a sum
-- or mean of <= 30 of them adds ~30 ulps, so 4e-6. float64: 1e-12.
local TOL32, TOL64 = 4e-6, 1e-12

-- Asserts loss(a, b, opts) matches reference(A, B) (per element, from the
-- values the tensors hold) for every reduction, the default one included,
-- in float32 and float64.
local function check_reductions(loss, a, b, opts, reference, default)
  local want = reference(a:tolist(), b:tolist())
  for _, dt in ipairs({ "float32", "float64" }) do
    local a_, b_ = a:astype(dt), b.dtype == "float32" and b:astype(dt) or b
    local tol = dt == "float32" and TOL32 or TOL64
    for _, red in ipairs({ "none", "mean", "sum" }) do
      local o = { reduction = red }
      for k, v in pairs(opts or {}) do o[k] = v end
      local got = loss(a_, b_, o)
      assert.are.equal(dt, got.dtype)
      local w = reduced(want, red)
      assert_close(red == "none" and got:tolist() or got:item(), w, tol, dt .. " " .. red)
    end
    local o = {}
    for k, v in pairs(opts or {}) do o[k] = v end
    local got = loss(a_, b_, o)
    assert_close(default == "none" and got:tolist() or got:item(), reduced(want, default), tol, dt .. " default")
  end
end

-- Gradchecks loss(a, b) (its "none" form, weighted) with respect to the
-- float inputs among a and b, float32 and float64.
local function check_grad(loss, a, b, opts)
  local o = { reduction = "none" }
  for k, v in pairs(opts or {}) do o[k] = v end
  gradcheck.each_dtype(function(a_, b_)
    local y = loss(a_, b_, o)
    return y.size == 1 and y or weighted(y)
  end, { a, b })
end

-- Inputs whose differences stay 0.02 or more away from the given kinks (and
-- from their negatives), so central differences never straddle one.
local function apart(shape, seed, kinks)
  local gen = generator(seed)
  local a, b = rand(shape, gen), rand(shape, gen)
  local function fix(x, y)
    for _, k in ipairs(kinks) do
      for _, kk in ipairs({ k, -k }) do
        if math.abs((x - y) - kk) < 0.02 then x = x + 0.05 end
      end
    end
    return x
  end
  return lattice.array(zip(a, b, fix)), lattice.array(b)
end

-- ---------------------------------------------------------------------------

-- Cross entropy of one row of logits against class c (0-based) with label
-- smoothing ls: logsumexp(z) - (1 - ls) z_c - ls mean(z).
local function lse(z)
  local m = -math.huge
  for _, v in ipairs(z) do m = math.max(m, v) end
  local s = 0
  for _, v in ipairs(z) do s = s + math.exp(v - m) end
  return m + math.log(s)
end

local function mean_of(z)
  local s = 0
  for _, v in ipairs(z) do s = s + v end
  return s / #z
end

local function ce_index_row(z, c, ls) return lse(z) - (1 - ls) * z[c + 1] - ls * mean_of(z) end

-- ... and against probabilities t: logsumexp(z) - (1 - ls) sum(z t) - ls mean(z).
local function ce_prob_row(z, t, ls)
  local s = 0
  for j = 1, #z do s = s + z[j] * t[j] end
  return lse(z) - (1 - ls) * s - ls * mean_of(z)
end

describe("nn.losses.cross_entropy", function()
  local gen = generator(31)

  it("gives MLX's documented examples", function()
    local z = lattice.array({ { 2, -1 }, { -1, 2 } })
    assert_close(losses.cross_entropy(z, i64({ 0, 1 })):tolist(), { 0.0485873, 0.0485873 }, 1e-6)
    assert_close(losses.cross_entropy(z, lattice.array({ { 0.9, 0.1 }, { 0.1, 0.9 } })):tolist(),
      { 0.348587, 0.348587 }, 1e-6)
  end)

  it("matches the reference with class indices, every reduction and smoothing", function()
    local z = lattice.array(rand({ 6, 5 }, gen)) * 3
    local T = { 0, 4, 2, 2, 1, 3 }
    for _, ls in ipairs({ 0, 0.1, 0.7 }) do
      check_reductions(losses.cross_entropy, z, i64(T), { label_smoothing = ls }, function(Z)
        local per = {}
        for r = 1, #Z do per[r] = ce_index_row(Z[r], T[r], ls) end
        return per
      end, "none")
    end
  end)

  it("matches the reference with probability targets, every reduction and smoothing", function()
    local z = lattice.array(rand({ 4, 3 }, gen)) * 2
    local P = lattice.softmax(lattice.array(rand({ 4, 3 }, gen)), -1)
    for _, ls in ipairs({ 0, 0.25 }) do
      check_reductions(losses.cross_entropy, z, P, { label_smoothing = ls }, function(Z, Tp)
        local per = {}
        for r = 1, #Z do per[r] = ce_prob_row(Z[r], Tp[r], ls) end
        return per
      end, "none")
    end
    -- one-hot probabilities are class indices
    local onehot = lattice.array({ { 1, 0, 0 }, { 0, 0, 1 }, { 0, 1, 0 }, { 0, 0, 1 } })
    assert_close(losses.cross_entropy(z, onehot):tolist(), losses.cross_entropy(z, i64({ 0, 2, 1, 2 })):tolist(), 1e-6)
  end)

  it("takes the class axis from opts.axis", function()
    -- logits (N, C, T) = (2, 3, 4) with classes on axis 2; targets (2, 4)
    local Z = rand({ 2, 3, 4 }, gen)
    local T = { { 0, 1, 2, 1 }, { 2, 2, 0, 1 } }
    local z = lattice.array(Z)
    local got = losses.cross_entropy(z, i64(T), { axis = 2 }):tolist()
    local Zf = z:tolist()
    for n = 1, 2 do
      for t = 1, 4 do
        local row = { Zf[n][1][t], Zf[n][2][t], Zf[n][3][t] }
        assert_close(got[n][t], ce_index_row(row, T[n][t], 0), 1e-6)
      end
    end
    -- and probabilities along that axis: the one-hot form of the same targets
    local P = {}
    for n = 1, 2 do
      P[n] = {}
      for c = 1, 3 do
        P[n][c] = {}
        for t = 1, 4 do P[n][c][t] = T[n][t] == c - 1 and 1 or 0 end
      end
    end
    assert_close(losses.cross_entropy(z, lattice.array(P), { axis = -2 }):tolist(), got, 1e-6)
  end)

  it("leaves ignore_index rows out, of the mean too, weighted or not", function()
    local z = lattice.array({ { 2, -1 }, { -1, 2 }, { 0, 0 } })
    local t = i64({ 0, -100, 1 })
    local l0, l2 = ce_index_row({ 2, -1 }, 0, 0), math.log(2)
    assert_close(losses.cross_entropy(z, t):tolist(), { l0, 0, l2 }, 1e-6)
    assert_close(losses.cross_entropy(z, t, { reduction = "mean" }):item(), (l0 + l2) / 2, 1e-6)
    local w = lattice.array({ 1, 2, 3 })
    assert_close(losses.cross_entropy(z, t, { weights = w, reduction = "mean" }):item(), (l0 + 3 * l2) / 2, 1e-6)
    assert_close(losses.cross_entropy(z, t, { weights = w, reduction = "sum" }):item(), l0 + 3 * l2, 1e-6)
    -- another ignore_index: -100 is then an ordinary (and out of range) target
    assert_close(losses.cross_entropy(z, i64({ 0, 1, 1 }), { ignore_index = 1 }):tolist(), { l0, 0, 0 }, 1e-6)
  end)

  it("multiplies in weights before the reduction", function()
    local z = lattice.array(rand({ 3, 4 }, gen))
    local t, w = i64({ 1, 0, 3 }), lattice.array({ 0.5, 2, 0 })
    local per = losses.cross_entropy(z, t):tolist()
    local want = { per[1] * 0.5, per[2] * 2, 0 }
    assert_close(losses.cross_entropy(z, t, { weights = w }):tolist(), want, 1e-6)
    assert_close(losses.cross_entropy(z, t, { weights = w, reduction = "mean" }):item(), (want[1] + want[2]) / 3, 1e-6)
    local P = lattice.softmax(lattice.array(rand({ 3, 4 }, gen)), -1)
    local pp = losses.cross_entropy(z, P):tolist()
    assert_close(losses.cross_entropy(z, P, { weights = w, reduction = "sum" }):item(), pp[1] * 0.5 + pp[2] * 2, 1e-6)
  end)

  it("gradchecks for logits, and for probability targets", function()
    local z = lattice.array(rand({ 3, 4 }, gen))
    check_grad(losses.cross_entropy, z, i64({ 1, 0, 3 }), { label_smoothing = 0.2 })
    check_grad(losses.cross_entropy, z, lattice.softmax(lattice.array(rand({ 3, 4 }, gen)), -1), { label_smoothing = 0.2 })
    check_grad(losses.cross_entropy, z, i64({ 1, -100, 3 }), { weights = lattice.array({ 1, 2, 3 }), reduction = "mean" })
  end)

  describe("rejects", function()
    local z = lattice.array({ { 2, -1 }, { -1, 2 } })
    it("targets of the wrong shape or dtype", function()
      assert.has_error(function() losses.cross_entropy(z, i64({ 0, 1, 1 })) end,
        "cross_entropy: inputs have shape {2,2}, so class-index targets must have shape {2}, got {3}")
      assert.has_error(function() losses.cross_entropy(z, lattice.array({ 0, 1 })) end,
        "cross_entropy: class-index targets must be integers, got float32")
      assert.has_error(function() losses.cross_entropy(z, lattice.array({ { 1, 0, 0 }, { 0, 1, 0 } })) end,
        "cross_entropy: logits and probability targets must have the same shape, got {2,2} and {2,3}")
      assert.has_error(function() losses.cross_entropy(z, i64({ 0, 5 })) end,
        "cross_entropy: target 5 is out of range for 2 classes")
      assert.has_error(function() losses.cross_entropy(z, { 0, 1 }) end,
        "cross_entropy: targets must be a lattice.Tensor, got table")
    end)

    it("bad options", function()
      local t = i64({ 0, 1 })
      assert.has_error(function() losses.cross_entropy(z, t, { label_smoothing = 1.5 }) end,
        "cross_entropy: label_smoothing must be in [0, 1], got 1.5")
      assert.has_error(function() losses.cross_entropy(z, lattice.softmax(z, -1), { label_smoothing = -0.1 }) end,
        "cross_entropy: label_smoothing must be in [0, 1], got -0.1")
      assert.has_error(function() losses.cross_entropy(z, t, { label_smoothing = "a" }) end,
        "cross_entropy: label_smoothing must be a number, got string")
      assert.has_error(function() losses.cross_entropy(z, t, { reduction = "avg" }) end,
        "cross_entropy: reduction must be 'none', 'mean' or 'sum', got avg")
      assert.has_error(function() losses.cross_entropy(z, t, { axis = 3 }) end,
        "cross_entropy: axis 3 is out of range for 2 dimensions")
      assert.has_error(function() losses.cross_entropy(z, t, { axis = 1.5 }) end,
        "cross_entropy: axis must be an integer, got 1.5")
      assert.has_error(function() losses.cross_entropy(z, t, { ignore_index = 1.5 }) end,
        "cross_entropy: ignore_index must be an integer, got 1.5")
      assert.has_error(function() losses.cross_entropy(z, lattice.softmax(z, -1), { ignore_index = 0 }) end,
        "cross_entropy: ignore_index needs class-index targets")
      assert.has_error(function() losses.cross_entropy(z, t, { weights = lattice.array({ 1, 2, 3 }) }) end,
        "cross_entropy: weights have shape {3}, the loss has shape {2}")
      assert.has_error(function() losses.cross_entropy(z, t, { smoothing = 0.1 }) end,
        "cross_entropy: unknown option 'smoothing'")
    end)
  end)
end)

-- ---------------------------------------------------------------------------

local function softplus(x) return math.max(x, 0) + math.log(1 + math.exp(-math.abs(x))) end
local function log_clip(p) return p > 0 and math.max(math.log(p), -100) or -100 end

describe("nn.losses.binary_cross_entropy", function()
  local gen = generator(32)

  it("gives MLX's documented examples (mean by default)", function()
    local logits = lattice.array({ 0.105361, 0.223144, 1.20397, 0.916291 })
    assert_close(losses.binary_cross_entropy(logits, lattice.array({ 0, 0, 1, 1 })):item(), 0.539245, 1e-6)
    local probs = lattice.array({ 0.1, 0.1, 0.4, 0.4 })
    assert_close(losses.binary_cross_entropy(probs, lattice.array({ 0, 0, 1, 1 }), { with_logits = false }):item(),
      0.510826, 1e-6)
  end)

  it("with logits is softplus(x) - x t, every reduction", function()
    local x, t = lattice.array(rand({ 3, 4 }, gen)) * 4, lattice.array(rand({ 3, 4 }, gen)) * 0.5 + 0.5
    check_reductions(losses.binary_cross_entropy, x, t, nil,
      function(X, T) return zip(X, T, function(a, b) return softplus(a) - a * b end) end, "mean")
    -- stable for large logits: 100 with target 0 costs 100, -100 with target 1 too
    assert_close(losses.binary_cross_entropy(lattice.array({ 100, -100, 100 }), lattice.array({ 0, 1, 1 }),
      { reduction = "none" }):tolist(), { 100, 100, 0 }, 1e-6)
  end)

  it("with probabilities clips each log at -100", function()
    local p, t = lattice.array(rand({ 2, 5 }, gen)) * 0.45 + 0.5, lattice.array(rand({ 2, 5 }, gen)) * 0.5 + 0.5
    check_reductions(losses.binary_cross_entropy, p, t, { with_logits = false }, function(P, T)
      return zip(P, T, function(a, b) return -(b * log_clip(a) + (1 - b) * log_clip(1 - a)) end)
    end, "mean")
    -- p = 0 with target 1 and p = 1 with target 0 cost 100 each, not infinity
    assert_close(losses.binary_cross_entropy(lattice.array({ 0, 1, 0, 1 }), lattice.array({ 1, 0, 0, 1 }),
      { with_logits = false, reduction = "none" }):tolist(), { 100, 100, 0, 0 }, 1e-6)
  end)

  it("has a finite gradient where a probability is exactly 0 or 1", function()
    -- a sigmoid saturates to 1 in float32 beyond x ~ 17; the clipped log then
    -- passes no gradient and the other term 1/(1 - p) or 1/p remains
    local g = lattice.grad(function(p)
      return losses.binary_cross_entropy(p, lattice.array({ 0, 1, 0.5 }), { with_logits = false, reduction = "sum" })
    end)(lattice.array({ 0, 1, 0.5 }))
    assert.are.same({ 1, -1, 0 }, g:tolist())
  end)

  it("multiplies in weights", function()
    local x, t, w = lattice.array({ 1, -2 }), lattice.array({ 1, 0 }), lattice.array({ 3, 0.5 })
    local want = { 3 * softplus(-1), 0.5 * softplus(-2) }
    assert_close(losses.binary_cross_entropy(x, t, { weights = w, reduction = "none" }):tolist(), want, 1e-6)
    assert_close(losses.binary_cross_entropy(x, t, { weights = w }):item(), (want[1] + want[2]) / 2, 1e-6)
  end)

  it("gradchecks for inputs and targets, logits and probabilities", function()
    local x, t = lattice.array(rand({ 2, 3 }, gen)) * 3, lattice.array(rand({ 2, 3 }, gen)) * 0.5 + 0.5
    check_grad(losses.binary_cross_entropy, x, t)
    check_grad(losses.binary_cross_entropy, x * 0.1 + 0.5, t, { with_logits = false })
  end)

  it("rejects mismatched shapes, a with_logits that is not a boolean, bad weights", function()
    local x = lattice.array({ 1, 2 })
    assert.has_error(function() losses.binary_cross_entropy(lattice.array({ 1 }), x) end,
      "binary_cross_entropy: inputs and targets must have the same shape, got {1} and {2}")
    assert.has_error(function() losses.binary_cross_entropy(x, x, { with_logits = "no" }) end,
      "binary_cross_entropy: with_logits must be a boolean, got string")
    assert.has_error(function() losses.binary_cross_entropy(x, x, { weights = lattice.ones({ 3 }) }) end,
      "binary_cross_entropy: weights have shape {3}, the loss has shape {2}")
    assert.has_error(function() losses.binary_cross_entropy(x, x, { reduction = "max" }) end,
      "binary_cross_entropy: reduction must be 'none', 'mean' or 'sum', got max")
    assert.has_error(function() losses.binary_cross_entropy(1, x) end,
      "binary_cross_entropy: inputs must be a lattice.Tensor, got number")
  end)
end)

-- ---------------------------------------------------------------------------

describe("nn.losses.nll_loss", function()
  local gen = generator(33)

  it("is minus the log-probability at the target, every reduction (none by default)", function()
    local x = lattice.log_softmax(lattice.array(rand({ 5, 4 }, gen)), -1)
    local T = { 3, 0, 1, 1, 2 }
    check_reductions(losses.nll_loss, x, i64(T), nil, function(X)
      local per = {}
      for r = 1, #X do per[r] = -X[r][T[r] + 1] end
      return per
    end, "none")
  end)

  it("equals cross_entropy on log_softmax, along any axis", function()
    local z = lattice.array(rand({ 2, 3, 4 }, gen))
    local t = i64({ { 0, 2, 1, 0 }, { 1, 1, 2, 0 } })
    local a = losses.nll_loss(lattice.log_softmax(z, 2), t, { axis = 2 })
    assert_close(a:tolist(), losses.cross_entropy(z, t, { axis = 2 }):tolist(), 1e-6)
  end)

  it("gradchecks for its inputs", function()
    check_grad(losses.nll_loss, lattice.array(rand({ 3, 4 }, gen)), i64({ 1, 0, 3 }))
  end)

  it("rejects targets of the wrong shape, dtype or range, and bad axes", function()
    local x = lattice.array({ { -1, -2 } })
    assert.has_error(function() losses.nll_loss(x, i64({ 2 })) end, "nll_loss: target 2 is out of range for 2 classes")
    assert.has_error(function() losses.nll_loss(x, i64({ -1 })) end, "nll_loss: target -1 is out of range for 2 classes")
    assert.has_error(function() losses.nll_loss(x, i64({ 1, 0 })) end,
      "nll_loss: inputs have shape {1,2}, so class-index targets must have shape {1}, got {2}")
    assert.has_error(function() losses.nll_loss(x, lattice.array({ 1 })) end,
      "nll_loss: class-index targets must be integers, got float32")
    assert.has_error(function() losses.nll_loss(x, i64({ 1 }), { axis = -3 }) end,
      "nll_loss: axis -3 is out of range for 2 dimensions")
  end)
end)

-- ---------------------------------------------------------------------------

-- Elementwise regression losses of d = a - b, with their MLX defaults.
local elementwise = {
  { "mse_loss", nil, "mean", function(d) return d * d end, {} },
  { "l1_loss", nil, "mean", function(d) return math.abs(d) end, { 0 } },
  { "smooth_l1_loss", nil, "mean", function(d)
    d = math.abs(d)
    return d < 1 and 0.5 * d * d or d - 0.5
  end, { 0, 1 } },
  { "smooth_l1_loss", { beta = 0.25 }, "mean", function(d)
    d = math.abs(d)
    return d < 0.25 and 0.5 * d * d / 0.25 or d - 0.125
  end, { 0, 0.25 } },
  { "smooth_l1_loss", { beta = 0 }, "mean", function(d) return math.abs(d) end, { 0 } },
  { "huber_loss", nil, "none", function(d)
    d = math.abs(d)
    return d <= 1 and 0.5 * d * d or d - 0.5
  end, { 0, 1 } },
  { "huber_loss", { delta = 0.3 }, "none", function(d)
    d = math.abs(d)
    return d <= 0.3 and 0.5 * d * d or 0.3 * (d - 0.15)
  end, { 0, 0.3 } },
}

for k, case in ipairs(elementwise) do
  local name, opts, default, fn, kinks = case[1], case[2], case[3], case[4], case[5]
  local label = name .. (opts and (" " .. next(opts) .. "=" .. tostring(select(2, next(opts)))) or "")
  describe("nn.losses." .. label, function()
    it("matches the reference in every reduction (" .. default .. " by default)", function()
      -- differences spread over [-2, 2], across both sides of every kink
      local a, b = apart({ 4, 5 }, 40 + k, kinks)
      check_reductions(losses[name], a * 1.5, b, opts, function(A, B)
        return zip(A, B, function(x, y) return fn(x - y) end)
      end, default)
    end)

    it("gradchecks for predictions and targets", function()
      local a, b = apart({ 3, 4 }, 60 + k, kinks)
      check_grad(losses[name], a, b, opts)
    end)
  end)
end

describe("elementwise losses", function()
  it("reject mismatched shapes, bad parameters and reductions", function()
    local a, b = lattice.ones({ 2 }), lattice.ones({ 3 })
    for _, name in ipairs({ "mse_loss", "l1_loss", "smooth_l1_loss" }) do
      assert.has_error(function() losses[name](a, b) end,
        name .. ": predictions and targets must have the same shape, got {2} and {3}")
      assert.has_error(function() losses[name](a, a, { reduction = "avg" }) end,
        name .. ": reduction must be 'none', 'mean' or 'sum', got avg")
      assert.has_error(function() losses[name]("a", a) end,
        name .. ": predictions must be a lattice.Tensor, got string")
    end
    assert.has_error(function() losses.huber_loss(a, b) end,
      "huber_loss: inputs and targets must have the same shape, got {2} and {3}")
    assert.has_error(function() losses.smooth_l1_loss(a, a, { beta = -1 }) end,
      "smooth_l1_loss: beta must be non-negative, got -1")
    assert.has_error(function() losses.smooth_l1_loss(a, a, { beta = "1" }) end,
      "smooth_l1_loss: beta must be a number, got string")
    assert.has_error(function() losses.huber_loss(a, a, { delta = 0 }) end, "huber_loss: delta must be positive, got 0")
    assert.has_error(function() losses.huber_loss(a, a, { delta = {} }) end, "huber_loss: delta must be a number, got table")
    assert.has_error(function() losses.mse_loss(a, a, { axis = 1 }) end, "mse_loss: unknown option 'axis'")
    assert.has_error(function() losses.l1_loss(a, a, "sum") end, "l1_loss: options must be a table, got string")
  end)
end)

-- ---------------------------------------------------------------------------

describe("nn.losses.kl_div_loss", function()
  local gen = generator(34)

  it("sums exp(targets) (targets - inputs) over the axis, every reduction", function()
    local x = lattice.log_softmax(lattice.array(rand({ 3, 4 }, gen)), -1)
    local t = lattice.log_softmax(lattice.array(rand({ 3, 4 }, gen)), -1)
    local function per_row(X, T)
      local per = {}
      for r = 1, #X do
        local s = 0
        for j = 1, #X[r] do s = s + math.exp(T[r][j]) * (T[r][j] - X[r][j]) end
        per[r] = s
      end
      return per
    end
    check_reductions(losses.kl_div_loss, x, t, nil, per_row, "none")
    -- along axis 1: the same on the transposes
    local got = losses.kl_div_loss(x:transpose(), t:transpose(), { axis = 1 }):tolist()
    assert_close(got, per_row(x:tolist(), t:tolist()), 1e-6)
  end)

  it("is 0 for equal distributions and gradchecks", function()
    local p = lattice.log_softmax(lattice.array(rand({ 2, 5 }, gen)), -1)
    assert_close(losses.kl_div_loss(p, p):tolist(), { 0, 0 }, 1e-7)
    check_grad(losses.kl_div_loss, lattice.array(rand({ 2, 3 }, gen)), lattice.array(rand({ 2, 3 }, gen)))
  end)

  it("rejects mismatched shapes and bad axes", function()
    assert.has_error(function() losses.kl_div_loss(lattice.ones({ 1, 2 }), lattice.ones({ 1, 1 })) end,
      "kl_div_loss: inputs and targets must have the same shape, got {1,2} and {1,1}")
    assert.has_error(function() losses.kl_div_loss(lattice.ones({ 2 }), lattice.ones({ 2 }), { axis = 2 }) end,
      "kl_div_loss: axis 2 is out of range for 1 dimensions")
  end)
end)

describe("nn.losses.cosine_similarity_loss", function()
  local gen = generator(35)

  -- <a, b> / max(|a| |b|, eps) over each row.
  local function cos_rows(A, B, eps)
    local per = {}
    for r = 1, #A do
      local ab, aa, bb = 0, 0, 0
      for j = 1, #A[r] do
        ab, aa, bb = ab + A[r][j] * B[r][j], aa + A[r][j] ^ 2, bb + B[r][j] ^ 2
      end
      per[r] = ab / math.max(math.sqrt(aa) * math.sqrt(bb), eps or 1e-8)
    end
    return per
  end

  it("is the cosine along axis 2 (MLX's axis=1) by default, every reduction", function()
    check_reductions(losses.cosine_similarity_loss, lattice.array(rand({ 4, 5 }, gen)),
      lattice.array(rand({ 4, 5 }, gen)), nil, cos_rows, "none")
    assert_close(losses.cosine_similarity_loss(lattice.array({ { 1, 0 } }), lattice.array({ { 1, 1 } })):tolist(),
      { math.sqrt(0.5) }, 1e-7)
  end)

  it("takes another axis, and floors the norms' product at eps", function()
    local a, b = lattice.array(rand({ 3, 4 }, gen)), lattice.array(rand({ 3, 4 }, gen))
    local got = losses.cosine_similarity_loss(a:transpose(), b:transpose(), { axis = 1 }):tolist()
    assert_close(got, cos_rows(a:tolist(), b:tolist()), 1e-6)
    -- |a| |b| = 0.01 * 0.02 = 2e-4 < eps = 1: <a, b> = 2e-4 itself
    local tiny = losses.cosine_similarity_loss(lattice.array({ { 0.01, 0 } }), lattice.array({ { 0.02, 0 } }), { eps = 1 })
    assert_close(tiny:tolist(), { 2e-4 }, 1e-7)
  end)

  it("gradchecks, and gives a zero vector a finite gradient", function()
    check_grad(losses.cosine_similarity_loss, lattice.array(rand({ 3, 4 }, gen)), lattice.array(rand({ 3, 4 }, gen)))
    -- at x1 = 0 the loss is <x1, x2> / eps: its gradient is x2 / eps, not NaN
    local g = lattice.grad(function(x1)
      return lattice.sum(losses.cosine_similarity_loss(x1, lattice.array({ { 1, 2 } }), { eps = 0.5 }))
    end)(lattice.zeros({ 1, 2 }))
    assert.are.same({ { 2, 4 } }, g:tolist())
  end)

  it("rejects mismatched shapes, bad axes and a bad eps", function()
    local a = lattice.ones({ 2, 2 })
    assert.has_error(function() losses.cosine_similarity_loss(a, lattice.ones({ 2, 3 })) end,
      "cosine_similarity_loss: x1 and x2 must have the same shape, got {2,2} and {2,3}")
    assert.has_error(function() losses.cosine_similarity_loss(lattice.ones({ 2 }), lattice.ones({ 2 })) end,
      "cosine_similarity_loss: axis 2 is out of range for 1 dimensions")
    assert.has_error(function() losses.cosine_similarity_loss(a, a, { eps = "a" }) end,
      "cosine_similarity_loss: eps must be a number, got string")
    assert.has_error(function() losses.cosine_similarity_loss(a, a, { eps = -1 }) end,
      "cosine_similarity_loss: eps must be non-negative, got -1")
  end)
end)
