-- lattice.optim: each optimizer's first steps against references written
-- plainly in Lua doubles from MLX's formulas and defaults
-- (python/mlx/optimizers/optimizers.py), the schedules against MLX's own
-- examples (schedulers.py), clipping, in-place semantics, steady-state memory,
-- exact resume from a saved state, and every bad input with its message.
local lattice = require "lattice"
local ref = require "support.reference"

local nn, optim = lattice.nn, lattice.optim
local generator, f32, flat, tensor, assert_close = ref.generator, ref.f32, ref.flat, ref.tensor, ref.assert_close

-- Three steps of a few float32 operations each (2^-24 ~ 6e-8 relative
-- rounding per operation) on parameters and moments of order 1: a few 1e-7
-- of error at most; 1e-6 leaves a margin and still catches a wrong formula,
-- whose error is of the order of the learning rate times the update.
local TOL = 1e-6
-- Adafactor's moments are means of squares and its update divides by their
-- square roots: a few more roundings than the elementwise kinds.
local STATE_TOL = 1e-5

-- A Lua module holding the parameters it is given as fields.
local Holder = nn.Module:extend("Holder")
function Holder:init(fields)
  for k, v in pairs(fields or {}) do self[k] = v end
end

-- n values in [-scale, scale), as float32 holds them.
local function values(n, seed, scale)
  local gen, out = generator(seed), {}
  for i = 1, n do out[i] = f32(gen() * (scale or 1)) end
  return out
end

local function copy(t) return { table.unpack(t) } end

local numel = ref.numel

-- Three gradients for a parameter of n elements.
local function three_grads(n, seed)
  return { values(n, seed), values(n, seed + 1), values(n, seed + 2) }
end

-- Runs opt on Holder{w = p0} for each gradient in grads; returns the
-- parameter after each step (flat lists) and the model.
local function run(opt, p0, shape, grads, dtype)
  local m = Holder { w = tensor(p0, shape, dtype) }
  local out = {}
  for t, g in ipairs(grads) do
    opt:update(m, { w = tensor(g, shape, dtype) })
    out[t] = flat(m.w:astype("float32"))
  end
  return out, m
end

-- ---- references, one element at a time, from MLX's apply_single ----

local ref_step = {}

function ref_step.SGD(o)
  local lr, mu, wd, damp = o.learning_rate, o.momentum, o.weight_decay, o.dampening
  return function(s, p, g)
    g = g + wd * p
    if mu <= 0 then return p - lr * g end
    s.v = mu * (s.v or 0) + (1 - damp) * g
    return p - lr * (o.nesterov and g + mu * s.v or s.v)
  end
end

-- Adam, and AdamW when o.weight_decay is set: p (1 - lr wd), then Adam.
function ref_step.Adam(o)
  local lr, b1, b2, eps, wd = o.learning_rate, o.betas[1], o.betas[2], o.eps, o.weight_decay or 0
  return function(s, p, g, t)
    p = p * (1 - lr * wd)
    s.m = b1 * (s.m or 0) + (1 - b1) * g
    s.v = b2 * (s.v or 0) + (1 - b2) * g * g
    if o.bias_correction then
      return p - lr / (1 - b1 ^ t) * s.m / (math.sqrt(s.v) / math.sqrt(1 - b2 ^ t) + eps)
    end
    return p - lr * s.m / (math.sqrt(s.v) + eps)
  end
end

function ref_step.Lion(o)
  local lr, b1, b2, wd = o.learning_rate, o.betas[1], o.betas[2], o.weight_decay
  return function(s, p, g)
    local m = s.m or 0
    local c = b1 * m + (1 - b1) * g
    s.m = b2 * m + (1 - b2) * g
    if wd > 0 then p = (1 - lr * wd) * p end
    return p - lr * (c > 0 and 1 or c < 0 and -1 or 0)
  end
end

function ref_step.RMSprop(o)
  local lr, alpha, eps = o.learning_rate, o.alpha, o.eps
  return function(s, p, g)
    s.v = alpha * (s.v or 0) + (1 - alpha) * g * g
    return p - lr * g / (math.sqrt(s.v) + eps)
  end
end

function ref_step.Adagrad(o)
  local lr, eps = o.learning_rate, o.eps
  return function(s, p, g)
    s.v = (s.v or 0) + g * g
    return p - lr * g / (math.sqrt(s.v) + eps)
  end
end

-- The elementwise reference: the parameter after each step and the final
-- per-element states. round(x), when given, is the parameter's storage
-- rounding (float16, bfloat16), applied after each step.
local function elementwise_ref(step, p0, grads, round)
  local p, states, out = copy(p0), {}, {}
  for i = 1, #p do states[i] = {} end
  for t, g in ipairs(grads) do
    for i = 1, #p do
      p[i] = step(states[i], p[i], g[i], t)
      if round then p[i] = round(p[i]) end
    end
    out[t] = copy(p)
  end
  return out, states
end

local function state_list(states, key)
  local out = {}
  for i, s in ipairs(states) do out[i] = s[key] end
  return out
end

-- ---- Adafactor's reference, on a flat parameter of a shape ----

local function rms(x)
  local s = 0
  for _, v in ipairs(x) do s = s + v * v end
  return math.sqrt(s / #x)
end

-- Second moments factored over the last two axes (R, C) of a parameter of
-- two or more axes, per leading index b (B of them): HF transformers'
-- per-matrix outer product, the same as MLX's for 2-D parameters.
local function factored_update(st, g, B, R, C, beta2, eps1)
  local u = {}
  for b = 0, B - 1 do
    local base = b * R * C
    for r = 0, R - 1 do
      local s = 0
      for c = 0, C - 1 do s = s + g[base + r * C + c + 1] ^ 2 + eps1 end
      st.row[b * R + r + 1] = beta2 * st.row[b * R + r + 1] + (1 - beta2) * s / C
    end
    for c = 0, C - 1 do
      local s = 0
      for r = 0, R - 1 do s = s + g[base + r * C + c + 1] ^ 2 + eps1 end
      st.col[b * C + c + 1] = beta2 * st.col[b * C + c + 1] + (1 - beta2) * s / R
    end
    local mean = 0
    for r = 1, R do mean = mean + st.row[b * R + r] end
    mean = mean / R
    for r = 0, R - 1 do
      for c = 0, C - 1 do
        local i = base + r * C + c + 1
        u[i] = g[i] / math.sqrt(st.row[b * R + r + 1] / mean) / math.sqrt(st.col[b * C + c + 1])
      end
    end
  end
  return u
end

-- o holds every option (MLX's defaults written out by the caller).
local function adafactor_ref(o, p0, shape, grads)
  local nd, n = #shape, #p0
  local factored = nd >= 2
  local C, R = shape[nd], factored and shape[nd - 1] or 1
  local B = n // (R * C)
  local st = { row = {}, col = {}, v = {}, m = {} }
  for i = 1, B * R do st.row[i] = 0 end
  for i = 1, B * C do st.col[i] = 0 end
  for i = 1, n do st.v[i], st.m[i] = 0, 0 end
  local p, out, clipped = copy(p0), {}, {}
  for t, g in ipairs(grads) do
    local lr = o.learning_rate
    if o.relative_step then lr = math.min(o.warmup_init and 1e-6 * t or 1e-2, 1 / math.sqrt(t)) end
    if o.scale_parameter then lr = lr * math.max(o.eps[2], rms(p)) end
    local beta2 = 1 - t ^ o.decay_rate
    local u
    if factored then
      u = factored_update(st, g, B, R, C, beta2, o.eps[1])
    else
      u = {}
      for i = 1, n do
        st.v[i] = beta2 * st.v[i] + (1 - beta2) * (g[i] ^ 2 + o.eps[1])
        u[i] = g[i] / math.sqrt(st.v[i])
      end
    end
    local denom = math.max(1, rms(u) / o.clip_threshold)
    clipped[t] = denom > 1
    for i = 1, n do
      u[i] = lr * (u[i] / denom)
      if o.beta_1 then
        st.m[i] = o.beta_1 * st.m[i] + (1 - o.beta_1) * u[i]
        u[i] = st.m[i]
      end
      if o.weight_decay ~= 0 then p[i] = p[i] + p[i] * (-o.weight_decay * lr) end
      p[i] = p[i] - u[i]
    end
    out[t] = copy(p)
  end
  return out, st, clipped
end

local ADAFACTOR_DEFAULTS = {
  eps = { 1e-30, 1e-3 }, clip_threshold = 1, decay_rate = -0.8, weight_decay = 0, scale_parameter = true,
  relative_step = true, warmup_init = false,
}
local function with_defaults(o)
  local full = {}
  for k, v in pairs(ADAFACTOR_DEFAULTS) do full[k] = v end
  for k, v in pairs(o) do full[k] = v end
  return full
end

-- ---- the specs ----

-- Runs the lattice optimizer and the reference for three steps on a (2, 3)
-- parameter and compares every step and the final state.
local function check_elementwise(make, reference, state_keys, seed)
  local shape = { 2, 3 }
  local p0, grads = values(6, seed), three_grads(6, seed + 10)
  local opt = make()
  local got, m = run(opt, p0, shape, grads)
  local want, states = elementwise_ref(reference, p0, grads)
  for t = 1, 3 do assert_close(got[t], want[t], TOL, "step " .. t) end
  for _, k in ipairs(state_keys) do
    local s = opt.state.w[k]
    assert.are.equal("float32", s.dtype)
    assert.are.same(shape, s.shape)
    assert_close(flat(s), state_list(states, k), TOL, "state " .. k)
  end
  assert.are.equal(3, opt.step)
  return m, opt
end

describe("optim.SGD", function()
  local base = { learning_rate = 0.1, momentum = 0, weight_decay = 0, dampening = 0, nesterov = false }
  local function o(extra)
    local r = {}
    for k, v in pairs(base) do r[k] = v end
    for k, v in pairs(extra) do r[k] = v end
    return r
  end

  it("takes plain steps p - lr g, with no state", function()
    local _, opt = check_elementwise(function() return optim.SGD { learning_rate = 0.1 } end, ref_step.SGD(o {}), {},
      1)
    assert.is_nil(opt.state.w and opt.state.w.v)
  end)

  it("adds weight decay to the gradient (L2)", function()
    check_elementwise(function() return optim.SGD { learning_rate = 0.1, weight_decay = 0.05 } end,
      ref_step.SGD(o { weight_decay = 0.05 }), {}, 2)
  end)

  it("keeps a velocity with momentum", function()
    check_elementwise(function() return optim.SGD { learning_rate = 0.1, momentum = 0.9 } end,
      ref_step.SGD(o { momentum = 0.9 }), { "v" }, 3)
  end)

  it("dampens the velocity's new gradient from the first step, as MLX does", function()
    -- v1 = (1 - dampening) g1, not g1 as PyTorch's first step
    check_elementwise(function() return optim.SGD { learning_rate = 0.1, momentum = 0.9, dampening = 0.3 } end,
      ref_step.SGD(o { momentum = 0.9, dampening = 0.3 }), { "v" }, 4)
  end)

  it("takes Nesterov steps g + mu v, with weight decay", function()
    check_elementwise(function()
      return optim.SGD { learning_rate = 0.1, momentum = 0.8, nesterov = true, weight_decay = 0.01 }
    end, ref_step.SGD(o { momentum = 0.8, nesterov = true, weight_decay = 0.01 }), { "v" }, 5)
  end)

  it("gives a hand-computed first step", function()
    -- p = 1, g = 0.5, wd = 0.1, mu = 0.9: g' = 0.6, v = 0.6, nesterov u = 0.6 + 0.54
    local m = Holder { w = lattice.array({ 1 }) }
    optim.SGD({ learning_rate = 0.5, momentum = 0.9, weight_decay = 0.1, nesterov = true })
      :update(m, { w = lattice.array({ 0.5 }) })
    assert_close(m.w:tolist(), { 1 - 0.5 * 1.14 }, TOL)
  end)
end)

describe("optim.Adam", function()
  local mlx = { learning_rate = 0.01, betas = { 0.9, 0.999 }, eps = 1e-8 }

  it("takes MLX's default steps: betas {0.9, 0.999}, eps 1e-8, no bias correction", function()
    check_elementwise(function() return optim.Adam { learning_rate = 0.01 } end, ref_step.Adam(mlx), { "m", "v" }, 11)
  end)

  it("corrects the bias with the step count after the increment (1 at the first update)", function()
    local o = { learning_rate = 0.01, betas = { 0.8, 0.99 }, eps = 1e-6, bias_correction = true }
    check_elementwise(function() return optim.Adam(o) end, ref_step.Adam(o), { "m", "v" }, 12)
    -- the first step with bias correction is lr g / (|g| + eps): lr sign(g)
    local m = Holder { w = lattice.array({ 0, 0 }) }
    optim.Adam({ learning_rate = 0.01, bias_correction = true }):update(m, { w = lattice.array({ 0.25, -4 }) })
    assert_close(m.w:tolist(), { -0.01, 0.01 }, TOL)
  end)

  it("makes a first step of lr (1 - b1) / sqrt(1 - b2) without bias correction", function()
    -- m = 0.1 g, v = 0.001 g^2: the step is lr 0.1 / sqrt(0.001) sign(g)
    local m = Holder { w = lattice.array({ 0 }) }
    optim.Adam({ learning_rate = 0.01 }):update(m, { w = lattice.array({ 2 }) })
    assert_close(m.w:tolist(), { -0.01 * 0.1 * 2 / (math.sqrt(0.001 * 4) + 1e-8) }, TOL)
  end)
end)

describe("optim.AdamW", function()
  it("decays the weights decoupled from the moments, 0.01 by default", function()
    local o = { learning_rate = 0.05, betas = { 0.9, 0.999 }, eps = 1e-8, weight_decay = 0.01 }
    check_elementwise(function() return optim.AdamW { learning_rate = 0.05 } end, ref_step.Adam(o), { "m", "v" }, 21)
  end)

  it("decays with a given weight decay and bias correction", function()
    local o = { learning_rate = 0.05, betas = { 0.9, 0.99 }, eps = 1e-8, weight_decay = 0.3, bias_correction = true }
    check_elementwise(function() return optim.AdamW(o) end, ref_step.Adam(o), { "m", "v" }, 22)
  end)

  it("shrinks a parameter with a zero gradient by (1 - lr wd) each step", function()
    local m = Holder { w = lattice.array({ 2 }) }
    local opt = optim.AdamW { learning_rate = 0.1, weight_decay = 0.5 }
    for _ = 1, 3 do opt:update(m, { w = lattice.array({ 0 }) }) end
    assert_close(m.w:tolist(), { 2 * 0.95 ^ 3 }, TOL)
  end)
end)

describe("optim.Lion", function()
  it("takes sign steps with MLX's default betas {0.9, 0.99}", function()
    local o = { learning_rate = 0.01, betas = { 0.9, 0.99 }, weight_decay = 0 }
    check_elementwise(function() return optim.Lion { learning_rate = 0.01 } end, ref_step.Lion(o), { "m" }, 31)
  end)

  it("decays the weights", function()
    local o = { learning_rate = 0.01, betas = { 0.95, 0.98 }, weight_decay = 0.5 }
    check_elementwise(function() return optim.Lion(o) end, ref_step.Lion(o), { "m" }, 32)
  end)

  it("steps by the sign of b1 m + (1 - b1) g, neither the gradient's nor the new momentum's", function()
    -- g1 = 1: c = 0.1, m1 = 0.01. g2 = -0.05: c = 0.009 - 0.005 > 0 (the gradient is
    -- negative), m2 = 0.0094. g3 = -0.188: c = 0.00846 - 0.0188 < 0 while
    -- m3 = 0.009306 - 0.00188 > 0.
    local m = Holder { w = lattice.array({ 0 }) }
    local opt = optim.Lion { learning_rate = 0.5 }
    local seen = {}
    for t, g in ipairs({ 1, -0.05, -0.188 }) do
      opt:update(m, { w = lattice.array({ g }) })
      seen[t] = m.w:item()
    end
    assert.are.same({ -0.5, -1, -0.5 }, seen)
  end)
end)

describe("optim.RMSprop", function()
  it("takes MLX's default steps: alpha 0.99, eps 1e-8", function()
    local o = { learning_rate = 0.01, alpha = 0.99, eps = 1e-8 }
    check_elementwise(function() return optim.RMSprop { learning_rate = 0.01 } end, ref_step.RMSprop(o), { "v" }, 41)
  end)

  it("takes steps with a given alpha and eps", function()
    local o = { learning_rate = 0.02, alpha = 0.5, eps = 1e-3 }
    check_elementwise(function() return optim.RMSprop(o) end, ref_step.RMSprop(o), { "v" }, 42)
  end)
end)

describe("optim.Adagrad", function()
  it("accumulates squared gradients, eps 1e-8 by default", function()
    local o = { learning_rate = 0.1, eps = 1e-8 }
    check_elementwise(function() return optim.Adagrad { learning_rate = 0.1 } end, ref_step.Adagrad(o), { "v" }, 51)
  end)

  it("makes a first step of lr sign(g)", function()
    local m = Holder { w = lattice.array({ 1, 1 }) }
    optim.Adagrad({ learning_rate = 0.1 }):update(m, { w = lattice.array({ 3, -0.5 }) })
    assert_close(m.w:tolist(), { 0.9, 1.1 }, TOL)
  end)
end)

describe("optim.Adafactor", function()
  -- Runs lattice's Adafactor and the reference for three steps; returns
  -- the optimizer, the reference state and which steps were clipped.
  local function check(opts, shape, seed, scale)
    local n = numel(shape)
    local p0 = values(n, seed, scale)
    local grads = three_grads(n, seed + 10)
    local opt = optim.Adafactor(opts)
    local got = run(opt, p0, shape, grads)
    local want, st, clipped = adafactor_ref(with_defaults(opts), p0, shape, grads)
    for t = 1, 3 do assert_close(got[t], want[t], TOL, "step " .. t) end
    local s = opt.state.w
    if #shape >= 2 then
      assert.is_nil(s.exp_avg_sq)
      assert_close(flat(s.exp_avg_sq_row), st.row, STATE_TOL, "exp_avg_sq_row")
      assert_close(flat(s.exp_avg_sq_col), st.col, STATE_TOL, "exp_avg_sq_col")
    else
      assert.is_nil(s.exp_avg_sq_row)
      assert_close(flat(s.exp_avg_sq), st.v, STATE_TOL, "exp_avg_sq")
    end
    if opts.beta_1 then
      assert_close(flat(s.exp_avg), st.m, STATE_TOL, "exp_avg")
    else
      assert.is_nil(s.exp_avg)
    end
    return opt, st, clipped
  end

  it("factors a matrix's second moment into rows and columns, with MLX's defaults", function()
    local opt = check({}, { 3, 4 }, 61)
    assert.are.same({ 3 }, opt.state.w.exp_avg_sq_row.shape)
    assert.are.same({ 4 }, opt.state.w.exp_avg_sq_col.shape)
  end)

  it("factors each matrix of a 3-D parameter over its last two axes", function()
    local opt = check({ relative_step = false, learning_rate = 0.1, clip_threshold = 100 }, { 2, 3, 4 }, 62)
    assert.are.same({ 2, 3 }, opt.state.w.exp_avg_sq_row.shape)
    assert.are.same({ 2, 4 }, opt.state.w.exp_avg_sq_col.shape)
  end)

  it("keeps a vector's full second moment", function()
    local opt = check({ relative_step = false, learning_rate = 0.1, clip_threshold = 100 }, { 5 }, 63)
    assert.are.same({ 5 }, opt.state.w.exp_avg_sq.shape)
  end)

  it("keeps a first moment with beta_1, factored and not", function()
    check({ beta_1 = 0.9 }, { 3, 4 }, 64)
    check({ beta_1 = 0.9, relative_step = false, learning_rate = 0.2 }, { 6 }, 65)
    check({ beta_1 = 0.5, relative_step = false, learning_rate = 0.2 }, { 2, 2, 3 }, 66)
  end)

  it("clips the unscaled update's RMS at clip_threshold", function()
    local _, _, clipped = check({ relative_step = false, learning_rate = 0.3, clip_threshold = 0.5 }, { 4, 3 }, 67)
    assert.are.same({ true, true, true }, clipped)
    _, _, clipped = check({ relative_step = false, learning_rate = 0.3, clip_threshold = 0.5 }, { 7 }, 68)
    assert.are.same({ true, true, true }, clipped)
  end)

  it("scales by the parameter's RMS, or not with scale_parameter = false", function()
    check({ relative_step = false, learning_rate = 0.05, scale_parameter = false }, { 3, 4 }, 69)
    -- parameters of RMS below eps[2] = 1e-3 are scaled by 1e-3
    check({ scale_parameter = true }, { 3, 4 }, 70, 1e-4)
  end)

  it("decays the weights by weight_decay times the step size", function()
    check({ weight_decay = 0.5, relative_step = false, learning_rate = 0.1 }, { 3, 4 }, 71)
    check({ weight_decay = 0.5, beta_1 = 0.9 }, { 5 }, 72)
  end)

  it("warms the relative step up with warmup_init (1e-6 t)", function()
    -- beta_1 = 0 keeps the first moment equal to the scaled update, so the
    -- tiny warmup steps are compared in exp_avg, not lost in the parameter
    check({ warmup_init = true, beta_1 = 0 }, { 3, 4 }, 73)
    check({ warmup_init = true, beta_1 = 0, eps = { 1e-20, 1e-2 }, decay_rate = -0.5 }, { 4 }, 74)
  end)
end)

describe("16-bit parameters", function()
  -- The value a 16-bit tensor stores for x.
  local function rounder(dtype)
    return function(x) return lattice.array({ x }, dtype):astype("float32"):tolist()[1] end
  end
  -- One unit in the last place of the 16-bit value: 2^-7 (bfloat16) or 2^-10
  -- (float16) relative, where the float32 computation and the reference in
  -- doubles can round to neighbours.
  local ULP = { float16 = 2 ^ -10, bfloat16 = 2 ^ -7 }

  for _, dtype in ipairs({ "float16", "bfloat16" }) do
    for _, case in ipairs({
      { "SGD", { learning_rate = 0.1, momentum = 0.9, weight_decay = 0.01 },
        { learning_rate = 0.1, momentum = 0.9, weight_decay = 0.01, dampening = 0, nesterov = false }, "v" },
      { "AdamW", { learning_rate = 0.05, bias_correction = true },
        { learning_rate = 0.05, betas = { 0.9, 0.999 }, eps = 1e-8, weight_decay = 0.01, bias_correction = true },
        "m" },
      { "Lion", { learning_rate = 0.05 }, { learning_rate = 0.05, betas = { 0.9, 0.99 }, weight_decay = 0 }, "m" },
    }) do
      local kind, opts, o, key = case[1], case[2], case[3], case[4]
      it(("updates %s %s parameters in their dtype, with a float32 state"):format(dtype, kind), function()
        local round = rounder(dtype)
        local p0 = values(6, 81)
        for i, v in ipairs(p0) do p0[i] = round(v) end
        local grads = three_grads(6, 91)
        for _, g in ipairs(grads) do
          for i, v in ipairs(g) do g[i] = round(v) end
        end
        local opt = optim[kind](opts)
        local got, m = run(opt, p0, { 2, 3 }, grads, dtype)
        local step = (kind == "Lion" and ref_step.Lion or kind == "SGD" and ref_step.SGD or ref_step.Adam)(o)
        local want = elementwise_ref(step, p0, grads, round)
        for t = 1, 3 do assert_close(got[t], want[t], 2 * ULP[dtype], "step " .. t) end
        assert.are.equal(dtype, m.w.dtype)
        assert.are.equal("float32", opt.state.w[key].dtype)
      end)
    end

    it(("updates %s parameters with Adafactor"):format(dtype), function()
      local round = rounder(dtype)
      local p0 = values(12, 82)
      for i, v in ipairs(p0) do p0[i] = round(v) end
      local grads = three_grads(12, 92)
      local opts = { relative_step = false, learning_rate = 0.1 }
      local opt = optim.Adafactor(opts)
      local got, m = run(opt, p0, { 3, 4 }, grads, dtype)
      -- the first step, rounded as the storage holds it (the later ones start
      -- from values that may sit an ulp apart, and Adafactor's step size
      -- depends on the parameter's RMS)
      local want = adafactor_ref(with_defaults(opts), p0, { 3, 4 }, grads)
      for i, v in ipairs(want[1]) do want[1][i] = round(v) end
      assert_close(got[1], want[1], 2 * ULP[dtype], "step 1")
      assert.are.equal(dtype, m.w.dtype)
      assert.are.equal("float32", opt.state.w.exp_avg_sq_row.dtype)
    end)
  end
end)

describe("optimizer updates", function()
  it("update parameters in place: a caller holding one sees it change", function()
    local w = lattice.array({ { 1, 2 }, { 3, 4 } })
    local m = Holder { w = w }
    local opt = optim.SGD { learning_rate = 0.5 }
    opt:update(m, { w = lattice.ones({ 2, 2 }) })
    assert.is_true(rawequal(w, m.w))
    assert.are.same({ { 0.5, 1.5 }, { 2.5, 3.5 } }, w:tolist())
    -- a built-in layer's parameters, read through its fields
    local lin = nn.Linear(3, 2)
    local weight, before = lin.weight, lin.weight:tolist()
    optim.SGD({ learning_rate = 1 }):update(lin, { weight = lattice.ones({ 2, 3 }) })
    assert.is_true(rawequal(weight, lin.weight))
    assert_close(weight:tolist()[2], { before[2][1] - 1, before[2][2] - 1, before[2][3] - 1 }, TOL)
  end)

  it("replace a parameter that shares its storage with a view by an updated copy", function()
    local w = lattice.array({ { 1, 2 }, { 3, 4 } })
    local m = Holder { w = w }
    local v = m.w:reshape(-1)
    local opt = optim.SGD { learning_rate = 0.5, momentum = 0.5 }
    opt:update(m, { w = lattice.ones({ 2, 2 }) })
    assert.is_false(rawequal(w, m.w))
    assert.are.same({ { 0.5, 1.5 }, { 2.5, 3.5 } }, m.w:tolist())
    -- the view and the old tensor keep the old values
    assert.are.same({ 1, 2, 3, 4 }, v:tolist())
    assert.are.same({ { 1, 2 }, { 3, 4 } }, w:tolist())
    -- from then on the copy is updated in place
    local copy_w = m.w
    opt:update(m, { w = lattice.ones({ 2, 2 }) })
    assert.is_true(rawequal(copy_w, m.w))
    -- v = 0.5 + 1 = 1.5: p = 0.5 - 0.75
    assert.are.same({ { -0.25, 0.75 }, { 1.75, 2.75 } }, m.w:tolist())
  end)

  it("update in place again once a view is closed", function()
    local w = lattice.array({ 1, 2 })
    local m = Holder { w = w }
    local v = w:reshape({ 2, 1 })
    v:close()
    optim.SGD({ learning_rate = 1 }):update(m, { w = lattice.ones({ 2 }) })
    assert.is_true(rawequal(w, m.w))
    assert.are.same({ 0, 1 }, w:tolist())
  end)

  it("replace a view inside a built-in layer, which then computes with the copy", function()
    local lin = nn.Linear(2, 2, { bias = false })
    local old = lin.weight
    local view = lin.weight:reshape(-1)
    optim.SGD({ learning_rate = 1 }):update(lin, { weight = lattice.ones({ 2, 2 }) })
    assert.is_false(rawequal(old, lin.weight))
    local x = lattice.array({ { 1, 0 } })
    assert_close(lin(x):tolist()[1], { lin.weight:tolist()[1][1], lin.weight:tolist()[2][1] }, TOL)
    assert_close(lin.weight:reshape(-1):tolist(), { view:tolist()[1] - 1, view:tolist()[2] - 1,
      view:tolist()[3] - 1, view:tolist()[4] - 1 }, TOL)
  end)

  it("replace a parameter that is not contiguous by a contiguous updated copy", function()
    local m = Holder { w = lattice.array({ { 1, 2, 3 }, { 4, 5, 6 } }):transpose() }
    optim.SGD({ learning_rate = 1 }):update(m, { w = lattice.ones({ 3, 2 }) })
    assert.are.same({ { 0, 3 }, { 1, 4 }, { 2, 5 } }, m.w:tolist())
    -- the copy is now updated in place
    local w = m.w
    optim.SGD({ learning_rate = 1 }):update(m, { w = lattice.ones({ 3, 2 }) })
    assert.is_true(rawequal(w, m.w))
  end)

  it("walk nested models: lists, Lua modules and built-in layers, named from 0", function()
    local model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    local grads = { layers = { { weight = lattice.ones({ 3, 2 }) }, { bias = lattice.ones({ 1 }) } } }
    local w0, b0 = model.layers[1].weight:tolist(), model.layers[2].bias:tolist()
    local opt = optim.Adam { learning_rate = 0.1, bias_correction = true } -- first step: lr sign(g)
    opt:update(model, grads)
    assert.is_table(opt.state["layers.0.weight"])
    assert.is_table(opt.state["layers.1.bias"])
    assert.is_nil(opt.state["layers.0.bias"]) -- no gradient, no state, no change
    assert_close(model.layers[1].weight:tolist()[1], { w0[1][1] - 0.1, w0[1][2] - 0.1 }, 1e-5)
    assert_close(model.layers[2].bias:tolist(), { b0[1] - 0.1 }, 1e-5)
  end)

  it("accept the gradients of nn.value_and_grad", function()
    local model = nn.Linear(2, 1)
    local step = nn.value_and_grad(model, function(mod, x, y) return lattice.mse_loss(mod(x), y) end)
    local x, y = lattice.array({ { 1, 2 }, { 3, 4 } }), lattice.array({ { 1 }, { 2 } })
    local opt = optim.SGD { learning_rate = 0.01 }
    local first, weight = step(model, x, y):item(), model.weight
    for _ = 1, 20 do
      local _, grads = step(model, x, y)
      opt:update(model, grads)
    end
    assert.is_true(step(model, x, y):item() < first)
    -- value_and_grad leaves no view of the parameters behind: no copies were needed
    assert.is_true(rawequal(weight, model.weight))
  end)

  it("allocate nothing in steady state and keep each parameter's identity", function()
    local cases = {
      function() return optim.SGD { learning_rate = 1e-3, momentum = 0.9, nesterov = true } end,
      function() return optim.AdamW { learning_rate = 1e-3, bias_correction = true } end,
      function() return optim.Lion { learning_rate = 1e-4, weight_decay = 0.1 } end,
      function() return optim.RMSprop { learning_rate = 1e-3 } end,
      function() return optim.Adagrad { learning_rate = 1e-3 } end,
      function() return optim.Adafactor { beta_1 = 0.9 } end,
    }
    for ci, make in ipairs(cases) do
      for _, dtype in ipairs({ "float32", "bfloat16" }) do
        local model = nn.Sequential(nn.Linear(64, 32), nn.Linear(32, 4))
        model:apply(function(p) return p:astype(dtype) end)
        local grads = {}
        for i, layer in ipairs(model.layers) do
          grads[i] = { weight = lattice.full(layer.weight.shape, 0.01, dtype), bias = lattice.full(layer.bias.shape, 0.02,
            dtype) }
        end
        grads = { layers = grads }
        local opt = make()
        opt:update(model, grads)
        local held = model.layers[1].weight
        collectgarbage("collect")
        local before = lattice.memory_stats()
        for _ = 1, 50 do opt:update(model, grads) end
        local after = lattice.memory_stats()
        local where = ("case %d %s"):format(ci, dtype)
        assert.are.equal(before.in_use, after.in_use, where)
        assert.are.equal(before.peak, after.peak, where)
        assert.is_true(rawequal(held, model.layers[1].weight), where)
      end
    end
  end)

  it("give the same bits with one thread and with two", function()
    -- past the size at which the loops split (32768 elements)
    local shape = { 300, 200 }
    local p0, g = lattice.random.normal(shape), lattice.random.normal(shape)
    local results, before = {}, lattice.num_threads()
    for _, threads in ipairs({ 1, 2 }) do
      lattice.set_num_threads(threads)
      for _, make in ipairs({ function() return optim.AdamW { learning_rate = 0.01 } end,
        function() return optim.Adafactor { beta_1 = 0.9 } end }) do
        local m, opt = Holder { w = lattice.array(p0) }, make()
        for _ = 1, 2 do opt:update(m, { w = g }) end
        results[#results + 1] = m.w
      end
    end
    lattice.set_num_threads(before)
    assert.are.equal(0, lattice.max(lattice.abs(results[1] - results[3])):item())
    assert.are.equal(0, lattice.max(lattice.abs(results[2] - results[4])):item())
    assert.is_true(lattice.max(lattice.abs(results[1] - p0)):item() > 0)
  end)

  it("leave the model, the state and the step untouched when one gradient is wrong", function()
    local m = Holder { a = lattice.array({ 1, 2 }), b = lattice.array({ 1, 2, 3 }) }
    local opt = optim.Adam { learning_rate = 0.1 }
    assert.has_error(function() opt:update(m, { a = lattice.ones({ 2 }), b = lattice.ones({ 4 }) }) end,
      "Adam: b: the gradient has shape {4}, the parameter {3}")
    assert.are.equal(0, opt.step)
    assert.are.same({ 1, 2 }, m.a:tolist())
    assert.is_nil(opt.state.a)
    assert.is_nil(opt.state.b)
    m.b = lattice.array({ 1, 2, 3 }, "float64")
    assert.has_error(function() opt:update(m, { a = lattice.ones({ 2 }), b = lattice.ones({ 3 }) }) end,
      "Adam: b: parameters must be float32, float16 or bfloat16, got float64")
    assert.are.equal(0, opt.step)
    assert.are.same({ 1, 2 }, m.a:tolist())
    assert.is_nil(opt.state.a)
  end)
end)

describe("schedules", function()
  it("match MLX's formulas at known steps", function()
    local lin = optim.linear_schedule(0, 0.1, 10)
    assert_close({ lin(0), lin(5), lin(10), lin(20) }, { 0, 0.05, 0.1, 0.1 }, 1e-12)
    local cos = optim.cosine_decay(0.1, 100)
    assert_close({ cos(0), cos(50), cos(100), cos(200) }, { 0.1, 0.05, 0, 0 }, 1e-12)
    local cos_min = optim.cosine_decay(1, 10, 0.2)
    assert_close({ cos_min(5), cos_min(10), cos_min(11) }, { 0.5, 0.2, 0.2 }, 1e-12)
    assert_close(cos(25), 0.1 * 0.5 * (1 + math.cos(math.pi / 4)), 1e-12)
    local sd = optim.step_decay(0.1, 0.9, 10)
    assert_close({ sd(0), sd(9), sd(10), sd(25) }, { 0.1, 0.1, 0.09, 0.081 }, 1e-12)
    local ed = optim.exponential_decay(0.1, 0.9)
    assert_close({ ed(0), ed(1), ed(4) }, { 0.1, 0.09, 0.06561 }, 1e-12)
    local joined = optim.join_schedules({ lin, cos }, { 10 })
    assert_close({ joined(0), joined(9), joined(10), joined(60) }, { 0, 0.09, 0.1, 0.05 }, 1e-12)
    local three = optim.join_schedules({ lin, optim.exponential_decay(1, 0.5), optim.linear_schedule(7, 7, 1) },
      { 10, 12 })
    assert_close({ three(11), three(12), three(100) }, { 0.5, 7, 7 }, 1e-12)
  end)

  -- MLX's docstring examples: optimizer.learning_rate after n updates is the
  -- schedule at step n - 1 (each update evaluates it before counting itself).
  -- MLX prints float32 values, hence the tolerance.
  local empty = Holder {}
  local function after(make, n)
    local opt = make()
    for _ = 1, n do opt:update(empty, {}) end
    return opt.learning_rate
  end

  it("give MLX's documented values through an optimizer", function()
    assert_close(after(function() return optim.SGD { learning_rate = optim.exponential_decay(1e-1, 0.9) } end, 0), 0.1,
      1e-6)
    assert_close(after(function() return optim.SGD { learning_rate = optim.exponential_decay(1e-1, 0.9) } end, 5),
      0.06561, 1e-6)
    assert_close(after(function() return optim.SGD { learning_rate = optim.step_decay(1e-1, 0.9, 10) } end, 21), 0.081,
      1e-6)
    assert_close(after(function() return optim.SGD { learning_rate = optim.cosine_decay(1e-1, 1000) } end, 5),
      0.0999961, 1e-6)
    local function joined()
      local warmup = optim.linear_schedule(0, 1e-1, 10)
      return optim.Adam { learning_rate = optim.join_schedules({ warmup, optim.cosine_decay(1e-1, 200) }, { 10 }) }
    end
    assert.are.equal(0, after(joined, 0))
    assert_close(after(joined, 12), 0.0999938, 1e-6)
    assert_close(after(function() return optim.Adam { learning_rate = optim.linear_schedule(0, 1e-1, 100) } end, 101),
      0.1, 1e-6)
  end)

  it("drive an optimizer at the step count before each update", function()
    -- SGD with g = 1: each step moves the parameter by the schedule's value
    -- at 0, 1, 2, ...: the first warmup step is 0
    local m = Holder { w = lattice.array({ 0 }) }
    local opt = optim.SGD { learning_rate = optim.linear_schedule(0, 0.4, 4) }
    local moves, last = {}, 0
    for t = 1, 6 do
      opt:update(m, { w = lattice.array({ -1 }) })
      moves[t], last = m.w:item() - last, m.w:item()
      assert.are.equal(t, opt.step)
    end
    assert_close(moves, { 0, 0.1, 0.2, 0.3, 0.4, 0.4 }, TOL)
    assert_close(opt.learning_rate, 0.4, 1e-12)
  end)
end)

describe("clip_grad_norm", function()
  it("returns the gradients unchanged below max_norm, and the global norm", function()
    local grads = { a = lattice.array({ 3 }), b = { lattice.array({ 4 }) } }
    local clipped, norm = optim.clip_grad_norm(grads, 10)
    assert.are.equal(5, norm)
    assert.is_true(rawequal(grads.a, clipped.a))
    assert.are.same({ 4 }, clipped.b[1]:tolist())
  end)

  it("scales every gradient by max_norm / (norm + 1e-6) at or above max_norm, in nested trees", function()
    local grads = { layers = { { weight = lattice.array({ { 1, 2 }, { 2, 4 } }) }, { bias = lattice.array({ 0 }) } },
      head = { lattice.array({ 0, 0, 4 }) } }
    -- 1 + 4 + 4 + 16 + 16 = 41
    local clipped, norm = optim.clip_grad_norm(grads, 2)
    assert_close(norm, math.sqrt(41), 1e-12)
    local s = 2 / (math.sqrt(41) + 1e-6)
    assert_close(clipped.layers[1].weight:tolist(), { { s, 2 * s }, { 2 * s, 4 * s } }, TOL)
    assert_close(clipped.layers[2].bias:tolist(), { 0 }, TOL)
    assert_close(clipped.head[1]:tolist(), { 0, 0, 4 * s }, TOL)
    -- the input tree is left as it was
    assert.are.same({ { 1, 2 }, { 2, 4 } }, grads.layers[1].weight:tolist())
    -- at exactly max_norm MLX scales too (by 1 / (1 + 1e-6 / norm))
    local at, n5 = optim.clip_grad_norm({ lattice.array({ 3, 4 }) }, 5)
    assert.are.equal(5, n5)
    assert_close(at[1]:tolist(), { 3 * 5 / (5 + 1e-6), 4 * 5 / (5 + 1e-6) }, 1e-7)
  end)

  it("keeps a 16-bit gradient's dtype", function()
    local clipped = optim.clip_grad_norm({ lattice.array({ 30, 40 }, "bfloat16") }, 1)
    assert.are.equal("bfloat16", clipped[1].dtype)
    assert_close(clipped[1]:astype("float32"):tolist(), { 0.6, 0.8 }, 2 ^ -8)
  end)

  it("rejects bad arguments", function()
    assert.has_error(function() optim.clip_grad_norm(3, 1) end, "clip_grad_norm: grads must be a table, got number")
    assert.has_error(function() optim.clip_grad_norm({}, -1) end, "clip_grad_norm: max_norm must be a number >= 0")
    assert.has_error(function() optim.clip_grad_norm({}, "1") end, "clip_grad_norm: max_norm must be a number >= 0")
  end)
end)

describe("optimizer state", function()
  local path = os.tmpname()
  after_each(function() os.remove(path) end)

  local function model_of(ws)
    local M = Holder { layers = { nn.Linear(3, 2), nn.Linear(2, 1) }, scale = lattice.array({ 1.5 }) }
    if ws then
      for i, layer in ipairs(M.layers) do
        layer.weight, layer.bias = ws.layers[i].weight, ws.layers[i].bias
      end
      M.scale = ws.scale
    end
    return M
  end
  local function grads_at(t)
    local gen = generator(100 + t)
    local function g(shape)
      local n = numel(shape)
      local v = {}
      for i = 1, n do v[i] = gen() end
      return tensor(v, shape)
    end
    return { layers = { { weight = g({ 2, 3 }), bias = g({ 2 }) }, { weight = g({ 1, 2 }), bias = g({ 1 }) } },
      scale = g({ 1 }) }
  end
  local function snapshot(m)
    local out = {}
    for name, p in pairs(m:named_parameters()) do out[name] = p:tolist() end
    return out
  end
  local function copies(m)
    local c = { layers = {} }
    for i, layer in ipairs(m.layers) do
      c.layers[i] = { weight = lattice.array(layer.weight), bias = lattice.array(layer.bias) }
    end
    c.scale = lattice.array(m.scale)
    return c
  end

  local makers = {
    AdamW = function() return optim.AdamW { learning_rate = 1e-3 } end,
    Adam = function() return optim.Adam { learning_rate = 0.0123, bias_correction = true } end,
    SGD = function() return optim.SGD { learning_rate = 0.1, momentum = 0.9, nesterov = true, weight_decay = 0.1 } end,
    Lion = function() return optim.Lion { learning_rate = 0.003, weight_decay = 0.3 } end,
    RMSprop = function() return optim.RMSprop { learning_rate = 0.01 } end,
    Adagrad = function() return optim.Adagrad { learning_rate = 0.1 } end,
    Adafactor = function() return optim.Adafactor { beta_1 = 0.9, weight_decay = 0.1 } end,
    scheduled = function()
      return optim.AdamW { learning_rate = optim.join_schedules({ optim.linear_schedule(0, 0.1, 2),
        optim.cosine_decay(0.1, 7) }, { 2 }) }
    end,
  }
  for name, make in pairs(makers) do
    it(("resumes %s exactly: the next updates are bit for bit an uninterrupted run's"):format(name), function()
      local m1, opt1 = model_of(), make()
      for t = 1, 3 do opt1:update(m1, grads_at(t)) end
      opt1:save_state(path)
      local m2, opt2 = model_of(copies(m1)), make()
      for t = 4, 6 do opt1:update(m1, grads_at(t)) end
      opt2:load_state(path)
      assert.are.equal(3, opt2.step)
      for t = 4, 6 do opt2:update(m2, grads_at(t)) end
      assert.are.same(snapshot(m1), snapshot(m2))
      assert.are.equal(6, opt2.step)
      assert.are.equal(opt1.learning_rate, opt2.learning_rate)
    end)
  end

  it("is written as MLX flattens it, with the optimizer's name", function()
    local m, opt = model_of(), optim.Adam { learning_rate = 0.5 }
    opt:update(m, grads_at(1))
    opt:save_state(path)
    local flat_state, meta = lattice.load_safetensors(path)
    assert.are.equal("Adam", meta.optimizer)
    assert.are.equal("int64", flat_state.step.dtype)
    assert.are.equal(1, flat_state.step:item())
    assert.are.equal(0.5, flat_state.learning_rate:item())
    for _, key in ipairs({ "layers.0.weight.m", "layers.0.weight.v", "layers.1.bias.m", "scale.v" }) do
      assert.is_true(lattice.is_tensor(flat_state[key]), key)
    end
    assert.are.same({ 2, 3 }, flat_state["layers.0.weight.v"].shape)
  end)

  it("refuses the state of another optimizer and files that are not a state", function()
    local m, opt = model_of(), optim.AdamW { learning_rate = 0.5 }
    opt:update(m, grads_at(1))
    opt:save_state(path)
    assert.has_error(function() optim.Adam({ learning_rate = 1 }):load_state(path) end,
      ("Adam:load_state: %s holds the state of AdamW, not Adam"):format(path))
    lattice.save_safetensors(path, { ["w.m"] = lattice.zeros({ 2 }) })
    assert.has_error(function() optim.Adam({ learning_rate = 1 }):load_state(path) end,
      ("Adam:load_state: %s has no 'step'"):format(path))
    lattice.save_safetensors(path, { step = lattice.array(1, "int64"), junk = lattice.zeros({ 2 }) })
    assert.has_error(function() optim.Adam({ learning_rate = 1 }):load_state(path) end,
      ("Adam:load_state: %s has an unknown entry 'junk'"):format(path))
    lattice.save_safetensors(path, { step = lattice.array({ 1, 2 }, "int64") })
    assert.has_error(function() optim.Adam({ learning_rate = 1 }):load_state(path) end,
      ("Adam:load_state: %s: 'step' must be one integer >= 0"):format(path))
    lattice.save_safetensors(path, { step = lattice.array(1.5) })
    assert.has_error(function() optim.Adam({ learning_rate = 1 }):load_state(path) end,
      ("Adam:load_state: %s: 'step' must be one integer >= 0"):format(path))
    lattice.save_safetensors(path, { step = lattice.array(1, "int64"), learning_rate = lattice.zeros({ 2 }) })
    assert.has_error(function() optim.Adam({ learning_rate = 1 }):load_state(path) end,
      ("Adam:load_state: %s: 'learning_rate' must be one number"):format(path))
  end)

  it("names a state that does not fit its parameter", function()
    local m = Holder { w = lattice.zeros({ 2, 3 }) }
    local opt = optim.Adam { learning_rate = 0.1 }
    opt:update(m, { w = lattice.ones({ 2, 3 }) })
    opt.state.w.m = lattice.zeros({ 3 })
    assert.has_error(function() opt:update(m, { w = lattice.ones({ 2, 3 }) }) end,
      "Adam: w: state 'm' has shape {3}, expected {2,3}")
    opt.state.w.m = nil
    assert.has_error(function() opt:update(m, { w = lattice.ones({ 2, 3 }) }) end, "Adam: the state of w has no 'm'")
    assert.are.equal(1, opt.step)
  end)
end)

describe("opt.learning_rate and opt.step", function()
  it("give the rate of the latest update and the updates made", function()
    local opt = optim.SGD { learning_rate = 0.25 }
    assert.are.equal(0.25, opt.learning_rate)
    assert.are.equal(0, opt.step)
    opt:update(Holder {}, {})
    assert.are.equal(1, opt.step)
    assert.are.equal(1, opt.state.step)
    opt.learning_rate = 0.125
    assert.are.equal(0.125, opt.learning_rate)
  end)

  it("replace a schedule when a number is assigned", function()
    local m = Holder { w = lattice.array({ 0 }) }
    local opt = optim.SGD { learning_rate = optim.exponential_decay(1, 0.5) }
    opt:update(m, { w = lattice.array({ -1 }) })
    opt.learning_rate = 0.25
    opt:update(m, { w = lattice.array({ -1 }) })
    opt:update(m, { w = lattice.array({ -1 }) })
    assert.are.equal(1.5, m.w:item())
    assert.are.equal(0.25, opt.learning_rate)
  end)

  it("reject other assignments", function()
    local opt = optim.Adam { learning_rate = 0.1 }
    assert.has_error(function() opt.step = 3 end, "Adam: field 'step' cannot be set")
    assert.has_error(function() opt.learning_rate = "fast" end, "Adam: learning_rate must be a number")
  end)
end)

describe("bad input", function()
  it("unknown options", function()
    for _, kind in ipairs({ "SGD", "Adam", "AdamW", "Lion", "RMSprop", "Adagrad", "Adafactor" }) do
      assert.has_error(function() optim[kind] { learning_rate = 1, lr = 1 } end, kind .. ": unknown option 'lr'")
    end
    assert.has_error(function() optim.Adam { learning_rate = 1, weight_decay = 0.1 } end,
      "Adam: unknown option 'weight_decay'")
    assert.has_error(function() optim.SGD(0.1) end, "SGD: options must be a table, got number")
  end)

  it("a missing or mistyped learning rate", function()
    for _, kind in ipairs({ "SGD", "Adam", "AdamW", "Lion", "RMSprop", "Adagrad" }) do
      assert.has_error(function() optim[kind] {} end, kind .. ": learning_rate is required")
    end
    assert.has_error(function() optim.SGD() end, "SGD: learning_rate is required")
    assert.has_error(function() optim.Adafactor { relative_step = false } end,
      "Adafactor: learning_rate is required when relative_step is false")
    assert.has_error(function() optim.Adam { learning_rate = "0.1" } end,
      "Adam: learning_rate must be a number or a schedule (a function of the step), got string")
    assert.has_error(function() optim.SGD { learning_rate = function() return nil end } end,
      "SGD: the learning rate schedule returned nil at step 0, not a number")
    local opt = optim.SGD { learning_rate = function(step) return step < 2 and 0.1 or "fast" end }
    opt:update(Holder {}, {})
    opt:update(Holder {}, {})
    assert.has_error(function() opt:update(Holder {}, {}) end,
      "SGD: the learning rate schedule returned string at step 2, not a number")
    assert.are.equal(2, opt.step)
  end)

  it("bad betas, eps and other hyperparameters", function()
    for _, kind in ipairs({ "Adam", "AdamW", "Lion" }) do
      assert.has_error(function() optim[kind] { learning_rate = 1, betas = { 0.9 } } end,
        kind .. ": betas must be a list of two numbers")
      assert.has_error(function() optim[kind] { learning_rate = 1, betas = 0.9 } end,
        kind .. ": betas must be a list of two numbers")
    end
    assert.has_error(function() optim.Adam { learning_rate = 1, eps = -1 } end, "Adam: eps must be a number >= 0, got -1")
    assert.has_error(function() optim.RMSprop { learning_rate = 1, alpha = -0.5 } end,
      "RMSprop: alpha must be a number >= 0, got -0.5")
    assert.has_error(function() optim.SGD { learning_rate = 1, momentum = -1 } end,
      "SGD: momentum must be a number >= 0, got -1")
    assert.has_error(function() optim.Adafactor { eps = 1e-30 } end, "Adafactor: eps must be a list of two numbers")
    assert.has_error(function() optim.Adafactor { clip_threshold = 0 } end,
      "Adafactor: clip_threshold must be a number > 0, got 0")
    assert.has_error(function() optim.SGD { learning_rate = 1, nesterov = 1 } end,
      "SGD: nesterov must be a boolean, got number")
    assert.has_error(function() optim.Adam { learning_rate = 1, bias_correction = "yes" } end,
      "Adam: bias_correction must be a boolean, got string")
  end)

  it("Nesterov momentum without momentum or with dampening", function()
    assert.has_error(function() optim.SGD { learning_rate = 1, nesterov = true } end,
      "SGD: Nesterov momentum requires a momentum and zero dampening")
    assert.has_error(function() optim.SGD { learning_rate = 1, nesterov = true, momentum = 0.9, dampening = 0.1 } end,
      "SGD: Nesterov momentum requires a momentum and zero dampening")
  end)

  it("gradients that do not fit the model", function()
    local model = nn.Sequential(nn.Linear(2, 3))
    local opt = optim.SGD { learning_rate = 1 }
    assert.has_error(function() opt:update(model, { layers = { { weight = lattice.ones({ 2, 3 }) } } }) end,
      "SGD: layers.0.weight: the gradient has shape {2,3}, the parameter {3,2}")
    assert.has_error(function() opt:update(model, { layers = { { scale = lattice.ones({ 2 }) } } }) end,
      "SGD: the gradient layers.0.scale has no parameter in the model")
    assert.has_error(function() opt:update(model, { layers = { {}, { weight = lattice.ones({ 2 }) } } }) end,
      "SGD: the gradient layers.1 has no parameter in the model")
    assert.has_error(function() opt:update(model, { layers = { { weight = { lattice.ones({ 2 }) } } } }) end,
      "SGD: layers.0.weight: expected a gradient tensor, got table")
    assert.has_error(function() opt:update(model, { layers = { { bias = lattice.array({ 1, 2, 3 }, "int32") } } }) end,
      "SGD: layers.0.bias: the gradient must be a float tensor, got int32")
    assert.has_error(function() opt:update({}, {}) end, "SGD:update: model must be a module, got table")
    assert.has_error(function() opt:update(model, 3) end, "SGD:update: grads must be a table, got number")
    assert.are.equal(0, opt.step)
  end)

  it("float64 parameters", function()
    local m = Holder { w = lattice.zeros({ 2 }, "float64") }
    assert.has_error(function() optim.AdamW({ learning_rate = 1 }):update(m, { w = lattice.ones({ 2 }, "float64") }) end,
      "AdamW: w: parameters must be float32, float16 or bfloat16, got float64")
  end)

  it("bad schedule arguments", function()
    assert.has_error(function() optim.linear_schedule(0, 1, 0) end,
      "linear_schedule: steps must be a positive integer, got 0")
    assert.has_error(function() optim.linear_schedule(0, "1", 3) end, "linear_schedule: end must be a number, got string")
    assert.has_error(function() optim.cosine_decay(1, 2.5) end,
      "cosine_decay: decay_steps must be a positive integer, got 2.5")
    assert.has_error(function() optim.step_decay(1, 0.5) end,
      "step_decay: step_size must be a positive integer, got nil")
    assert.has_error(function() optim.exponential_decay(nil, 0.5) end, "exponential_decay: init must be a number, got nil")
    assert.has_error(function() optim.join_schedules({}, {}) end,
      "join_schedules: schedules must be a non-empty list of functions")
    local s = optim.exponential_decay(1, 0.5)
    assert.has_error(function() optim.join_schedules({ s, s }, {}) end, "join_schedules: 2 schedules need 1 boundaries, got 0")
    assert.has_error(function() optim.join_schedules({ s, 3 }, { 1 }) end, "join_schedules: schedule 2 is not a function")
    assert.has_error(function() optim.join_schedules({ s, s, s }, { 5, 2 }) end,
      "join_schedules: boundaries must be increasing integers")
  end)
end)
