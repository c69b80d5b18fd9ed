local lattice = require "lattice"
local gradcheck = require "support.gradcheck"
local support = require "support.reference"

-- Every expected value is computed in plain Lua doubles from the float32 value
-- the tensor actually holds, so the tolerances below measure only lattice's
-- float32 arithmetic: a few ulp (1 ulp = 6e-8 relative) unless said otherwise.
math.randomseed(8)

local f32, flat = support.f32, support.flat
local nan, inf = 0 / 0, math.huge

local erfc = support.erfc

-- log(1 + v) without losing v's digits to the rounding of 1 + v.
local function log1p(v)
  local u = 1 + v
  if u == 1 then return v end
  return math.log(u) * v / (u - 1)
end

local function sigmoid(x) return 1 / (1 + math.exp(-x)) end
local function gelu_u(x) return math.sqrt(2 / math.pi) * (x + 0.044715 * x ^ 3) end

local reference = {
  neg = function(x) return -x end,
  exp = math.exp,
  log = math.log,
  sqrt = math.sqrt,
  rsqrt = function(x) return 1 / math.sqrt(x) end,
  abs = math.abs,
  tanh = function(x)
    if math.abs(x) > 20 then return x > 0 and 1 or -1 end
    local e = math.exp(2 * x)
    return (e - 1) / (e + 1)
  end,
  sigmoid = sigmoid,
  relu = function(x) return x > 0 and x or 0 end,
  leaky_relu = function(x) return x > 0 and x or 0.01 * x end,
  gelu = function(x) return 0.5 * x * erfc(-x / math.sqrt(2)) end,
  -- x/2 (1 + tanh u) = x sigmoid(2u), which does not cancel for negative x
  gelu_approx = function(x) return x * sigmoid(2 * gelu_u(x)) end,
  silu = function(x) return x * sigmoid(x) end,
  softplus = function(x) return x > 20 and x or log1p(math.exp(x)) end,
  square = function(x) return x * x end,
  sin = math.sin,
  cos = math.cos,
}
-- tanh's small-|x| branch above loses digits to e - 1; use the series there.
local tanh_big = reference.tanh
reference.tanh = function(x)
  if math.abs(x) < 1e-3 then return x - x ^ 3 / 3 + 2 * x ^ 5 / 15 end
  return tanh_big(x)
end

local mixed = {-30, -9.5, -5.5, -1, -0.3, -1e-4, 0, 1e-4, 0.3, 1, 2.5, 10, 30}
local positive = {1e-6, 1e-3, 0.25, 1, 2, 100, 1e6}
local inputs = {log = positive, sqrt = positive, rsqrt = positive, exp = {-80, -30, -5.5, -1, 0, 1e-4, 1, 10, 30, 80}}

-- Relative error allowed per op. gelu_approx's argument is a cubic whose
-- rounding the function amplifies in its negative tail (condition number
-- ~4u^2 ~ 400 at x = -9.5), so it gets 2e-5; sin/cos of 30 carry the
-- argument's own rounding (30 is exact, so 1e-6 holds).
local rtol = {gelu_approx = 2e-5}

local function close(got, want, rel, abs)
  if want ~= want then return got ~= got end
  if want == inf or want == -inf then return got == want end
  return math.abs(got - want) <= rel * math.abs(want) + (abs or 1e-37)
end

describe("unary ops", function()
  for name, ref in pairs(reference) do
    it(name .. " matches a plain Lua reference on negative, zero, large and small values", function()
      local xs = inputs[name] or mixed
      local got = flat(lattice[name](lattice.array(xs)))
      for i, v in ipairs(xs) do
        local want = ref(f32(v))
        assert(close(got[i], want, rtol[name] or 2e-6),
          ("%s(%g): got %.9g, want %.9g"):format(name, v, got[i], want))
      end
    end)
  end

  it("leaky_relu takes the negative slope", function()
    assert.same({f32(-0.4), 0, 3}, flat(lattice.leaky_relu(lattice.array({-2, 0, 3}), 0.2)))
    local got = flat(lattice.leaky_relu(lattice.array({-2, 3})))
    assert(close(got[1], -0.02, 1e-6) and got[2] == 3)
  end)

  it("gelu takes approximate = 'none' or 'tanh', and gelu_approx is the tanh form", function()
    local x = lattice.array({-2, -0.5, 0.5, 2})
    assert.same(flat(lattice.gelu(x)), flat(lattice.gelu(x, {approximate = "none"})))
    assert.same(flat(lattice.gelu_approx(x)), flat(lattice.gelu(x, {approximate = "tanh"})))
    -- the two forms differ by up to ~5e-4 (|gelu - gelu_tanh| peaks near |x| = 2)
    local a, b = flat(lattice.gelu(x)), flat(lattice.gelu_approx(x))
    assert(math.abs(a[4] - b[4]) > 1e-5 and math.abs(a[4] - b[4]) < 1e-3)
  end)

  it("follows libm on NaN and infinities", function()
    local x = lattice.array({nan, inf, -inf})
    local e = flat(lattice.exp(x))
    assert(e[1] ~= e[1] and e[2] == inf and e[3] == 0)
    local t = flat(lattice.tanh(x))
    assert(t[1] ~= t[1] and t[2] == 1 and t[3] == -1)
    local s = flat(lattice.sigmoid(x))
    assert(s[1] ~= s[1] and s[2] == 1 and s[3] == 0)
    local r = flat(lattice.relu(x))
    assert(r[1] ~= r[1] and r[2] == inf and r[3] == 0)
    assert.same({0, inf}, flat(lattice.exp(lattice.array({-200, 200}))))
  end)

  it("keeps the integer dtype for neg, abs, square and relu, and computes the rest in float32", function()
    local i = lattice.array({-3, 0, 4}, "int32")
    for name, want in pairs({neg = {3, 0, -4}, abs = {3, 0, 4}, square = {9, 0, 16}, relu = {0, 0, 4}}) do
      local y = lattice[name](i)
      assert.equal("int32", y.dtype)
      assert.same(want, flat(y))
    end
    local y = lattice.exp(i)
    assert.equal("float32", y.dtype)
    assert(close(flat(y)[3], math.exp(4), 2e-7))
    assert.equal("int64", lattice.abs(lattice.array({-5}, "int64")).dtype)
    -- fixed-width integers wrap, as in NumPy
    assert.same({251}, flat(lattice.neg(lattice.array({5}, "uint8"))))
  end)

  it("keeps float16 and bfloat16 within their precision", function()
    -- float16 has an 11-bit significand (rel. 4.9e-4 per rounding), bfloat16 8 bits (3.9e-3);
    -- the input is rounded once and the result once.
    for dtype, tol in pairs({float16 = 1.5e-3, bfloat16 = 1.2e-2}) do
      local xs = {-2, -0.5, 0.25, 1.5}
      local x = lattice.array(xs, dtype)
      for _, name in ipairs({"exp", "tanh", "sigmoid", "silu", "gelu", "relu", "square"}) do
        local y = lattice[name](x)
        assert.equal(dtype, y.dtype)
        for k, v in ipairs(flat(y)) do
          local want = reference[name](xs[k])
          assert(math.abs(v - want) <= tol * math.abs(want) + 1e-4, ("%s %s(%g) = %g"):format(dtype, name, xs[k], v))
        end
      end
    end
  end)

  it("works on strided views and empty tensors", function()
    local x = lattice.array({{-1, 2, -3}, {4, -5, 6}}):transpose()
    assert.same({{0, 4}, {2, 0}, {0, 6}}, lattice.relu(x):tolist())
    assert.same({0}, lattice.exp(lattice.zeros({0})).shape)
  end)

  it("rejects non-tensors and bad options", function()
    assert.has_error(function() lattice.exp("x") end, "bad argument #1 to 'exp' (lattice.Tensor expected, got string)")
    assert.has_error(function() lattice.gelu(lattice.zeros({2}), {approx = "tanh"}) end, "gelu: unknown option 'approx'")
    assert.has_error(function() lattice.gelu(lattice.zeros({2}), {approximate = "fast"}) end,
      "gelu: approximate must be 'none' or 'tanh', got 'fast'")
  end)

  it("refuses an argument past its operand instead of ignoring it", function()
    local x = lattice.zeros({2})
    assert.has_error(function() lattice.exp(x, 2) end, "exp: too many arguments (expected at most 1, got 2)")
    assert.has_error(function() x:relu(true) end, "relu: too many arguments (expected at most 1, got 2)")
    assert.has_error(function() lattice.leaky_relu(x, 0.1, 3) end,
      "leaky_relu: too many arguments (expected at most 2, got 3)")
    assert.has_error(function() lattice.gelu(x, {}, 3) end, "gelu: too many arguments (expected at most 2, got 3)")
    assert.same({1, 1}, lattice.exp(x, nil):tolist()) -- a trailing nil is no argument
    assert.same({0, 0}, (-x):tolist()) -- __unm receives its operand twice
  end)
end)

local function randn(n, lo, hi)
  local t = {}
  for i = 1, n do t[i] = lo + (hi - lo) * math.random() end
  return t
end

describe("unary gradients", function()
  -- Inputs avoid the kinks of relu, leaky_relu and abs (|x| >= 0.1 > eps = 1e-3).
  local away = {-1.7, -0.9, -0.2, 0.15, 0.6, 1.3}
  local domain = {log = {0.3, 0.8, 1.5, 2.2}, sqrt = {0.3, 0.8, 1.5, 2.2}, rsqrt = {0.3, 0.8, 1.5, 2.2}}
  for name in pairs(reference) do
    it(name .. " passes gradcheck", function()
      local x = lattice.array(domain[name] or away)
      local w = lattice.array(randn(x.size, -1, 1))
      gradcheck.each_dtype(function(a) return lattice.sum(lattice[name](a) * w) end, {x})
    end)
  end

  it("gelu_approx and leaky_relu with a slope pass gradcheck", function()
    local x = lattice.array(away)
    gradcheck.each_dtype(function(a) return lattice.sum(lattice.gelu(a, {approximate = "tanh"})) end, {x})
    gradcheck.each_dtype(function(a) return lattice.sum(lattice.leaky_relu(a, 0.3)) end, {x})
  end)

  it("softplus is linear past the threshold of 20, as in PyTorch", function()
    local g = lattice.grad(function(a) return lattice.sum(lattice.softplus(a)) end)(lattice.array({25, 0}))
    assert.same({1, 0.5}, flat(g))
  end)
end)

describe("binary ops", function()
  local a = lattice.array({{1}, {2}, {3}})       -- (3,1)
  local b = lattice.array({{10, 20, 30, 40}})    -- (1,4)

  it("broadcast (3,1) with (1,4) as NumPy does", function()
    local c = lattice.add(a, b)
    assert.same({3, 4}, c.shape)
    assert.same({{11, 21, 31, 41}, {12, 22, 32, 42}, {13, 23, 33, 43}}, c:tolist())
  end)

  it("broadcast (2,3) with (3) and with 0-d tensors", function()
    local m = lattice.array({{1, 2, 3}, {4, 5, 6}})
    assert.same({{0, 0, 0}, {3, 3, 3}}, lattice.subtract(m, lattice.array({1, 2, 3})):tolist())
    local s = lattice.array(2)
    assert.same({{2, 4, 6}, {8, 10, 12}}, lattice.multiply(s, m):tolist())
    assert.same({}, lattice.add(s, s).shape)
    assert.equal(4, lattice.add(s, s):item())
  end)

  it("compute every op against plain Lua", function()
    local xs, ys = {-2.5, -1, 0.5, 3}, {2, -3, 0.25, 3}
    local x, y = lattice.array(xs), lattice.array(ys)
    local ops = {
      add = function(p, q) return p + q end, subtract = function(p, q) return p - q end,
      multiply = function(p, q) return p * q end, divide = function(p, q) return p / q end,
      maximum = math.max, minimum = math.min,
    }
    for name, f in pairs(ops) do
      local got = flat(lattice[name](x, y))
      for i = 1, #xs do assert(close(got[i], f(xs[i], ys[i]), 1e-7), name) end
    end
    local p = flat(lattice.power(lattice.array({2, 9, 0.5}), lattice.array({3, 0.5, -2})))
    assert(close(p[1], 8, 1e-7) and close(p[2], 3, 1e-7) and close(p[3], 4, 1e-7))
    local cmp = {equal = {false, false, false, true}, not_equal = {true, true, true, false},
                 less = {true, false, false, false}, less_equal = {true, false, false, true},
                 greater = {false, true, true, false}, greater_equal = {false, true, true, true}}
    for name, want in pairs(cmp) do
      local got = lattice[name](x, y)
      assert.equal("bool", got.dtype)
      assert.same(want, flat(got), name)
    end
  end)

  it("take Lua numbers on either side, as operators too", function()
    local x = lattice.array({1, 2, 4})
    assert.same({3, 4, 6}, flat(x + 2))
    assert.same({3, 4, 6}, flat(2 + x))
    assert.same({1, 0, -2}, flat(2 - x))
    assert.same({-1, 0, 2}, flat(x - 2))
    assert.same({2, 1, 0.5}, flat(2 / x))
    assert.same({1, 4, 16}, flat(x ^ 2))
    assert.same({2, 4, 16}, flat(2 ^ x))
    assert.same({-1, -2, -4}, flat(-x))
    assert.same({2, 4, 8}, flat(x * 2))
    assert.same({5, 6, 8}, flat(lattice.add(4, x)))
    assert.same({true, false, false}, flat(lattice.less(x, 2)))
    assert.equal(3, lattice.add(1, 2):item())
  end)

  it("promote dtypes: a float wins, integers stay integers, comparisons give bool", function()
    local i = lattice.array({1, 2, 3}, "int32")
    local f = lattice.array({0.5, 0.5, 0.5})
    assert.equal("float32", (i + f).dtype)
    assert.equal("int32", (i + i).dtype)
    assert.equal("int32", (i * 2).dtype)
    assert.same({2, 4, 6}, flat(i * 2))
    assert.equal("float32", (i * 2.5).dtype)
    assert.same({2.5, 5, 7.5}, flat(i * 2.5))
    local h = lattice.array({1, 2}, "float16")
    assert.equal("float16", (h + h).dtype)
    assert.equal("float16", (h * 2).dtype)
    assert.equal("bool", lattice.greater(i, 1).dtype)
    assert.equal("int64", (lattice.array({1}, "int64") + i).dtype)
  end)

  it("give a Lua integer the integer tensor's dtype whatever its value, wrapped into it", function()
    local bools = lattice.array({true, false})
    assert.equal("int32", (bools + 2).dtype)
    assert.same({3, 2}, flat(bools + 2))
    assert.same({3, 2}, flat(2 + bools))
    assert.same({true, false}, flat(lattice.equal(bools, 1)))
    local u = lattice.array({5, 2}, "uint8")
    for _, n in ipairs({1, 250, 300, -1, 1 << 40}) do
      assert.equal("uint8", (u + n).dtype, n)
      assert.equal("uint8", (n * u).dtype, n)
    end
    assert.same({255, 252}, flat(u + 250))
    assert.same({49, 46}, flat(u + 300))  -- 300 is 44 in uint8, as in NumPy 2 and MLX
    assert.same({4, 1}, flat(u - 1))
    assert.same({251, 254}, flat(u * -1)) -- -1 is 255
    assert.same({3, 0}, flat(u + (-2)))
    assert.same({true, false}, flat(lattice.equal(u, 261)))
    local i = lattice.array({1, 2}, "int32")
    assert.equal("int32", (i + (1 << 40)).dtype)
    assert.same({1, 2}, flat(i + (1 << 40))) -- the low 32 bits of 2^40 are 0
    assert.same({-2147483648, -2147483647}, flat(i + 2147483647))
    assert.same({math.maxinteger}, flat(lattice.array({0}, "int64") + math.maxinteger))
    assert.same({math.mininteger}, flat(lattice.array({1}, "int64") + math.maxinteger))
    assert.equal("float32", (u + 0.5).dtype)
  end)

  it("raise integers to integer powers, wrapping like NumPy", function()
    local function ipow(x, y) local r = 1; for _ = 1, y do r = r * x end; return r end -- Lua integers wrap too
    local p = lattice.power(lattice.array({65536, 3, -2, 3}, "int64"), lattice.array({2, 39, 63, 41}, "int64"))
    assert.same({4294967296, ipow(3, 39), math.mininteger, ipow(3, 41)}, flat(p))
  end)

  it("wrap on integer overflow, as NumPy, PyTorch and MLX do", function()
    local function i32(v) return lattice.array(v, "int32") end
    local function low32(v) -- the int32 holding v's low 32 bits (v a Lua integer)
      v = v & 0xffffffff
      return v >= 1 << 31 and v - (1 << 32) or v
    end
    local function ipow(x, y) local r = 1; for _ = 1, y do r = r * x end; return r end -- Lua integers wrap too
    assert.same({-2147483648}, flat(i32({2147483647}) + i32({1})))
    assert.same({2147483647}, flat(i32({-2147483648}) - i32({1})))
    assert.same({low32(123456789 * 1000)}, flat(i32({123456789}) * i32({1000})))
    assert.same({-2147483648}, flat(i32({-2147483648}) * i32({-1})))
    assert.same({-2147483648}, flat(-i32({-2147483648})))
    assert.same({0, low32(ipow(3, 40))}, flat(lattice.power(i32({2, 3}), i32({40, 40}))))
    local u = lattice.array({250, 5}, "uint8")
    assert.same({4, 10}, flat(u + lattice.array({10, 5}, "uint8")))
    assert.same({251}, flat(lattice.array({0}, "uint8") - lattice.array({5}, "uint8")))
    assert.same({244}, flat(lattice.array({5}, "uint8") * lattice.array({100}, "uint8")))
    assert.same({math.mininteger}, flat(lattice.array({math.maxinteger}, "int64") + lattice.array({1}, "int64")))
    -- casts between integer dtypes keep the low bits, as NumPy's astype
    assert.same({5, -1, -1}, flat(lattice.array({(1 << 32) + 5, (1 << 32) - 1, -1}, "int64"):astype("int32")))
    assert.same({5, 255, 1}, flat(lattice.array({261, -1, 257}, "int64"):astype("uint8")))
  end)

  it("refuse a negative integer power of an integer, as NumPy does", function()
    local msg = "power: integers to negative integer powers are not allowed, got -1"
    assert.has_error(function() return lattice.array({5}, "int32") ^ -1 end, msg)
    assert.has_error(function() lattice.power(lattice.array({1, 2}, "int64"), lattice.array({2, -1}, "int64")) end, msg)
    assert.has_error(function() return lattice.array({true}) ^ lattice.array({-1}, "int32") end, msg)
    assert.same({f32(0.2)}, flat(lattice.array({5}, "int32") ^ -1.0)) -- a float exponent computes in float32
  end)

  it("divide integers in float32", function()
    local q = lattice.divide(lattice.array({7, -7}, "int32"), lattice.array({2, 2}, "int32"))
    assert.equal("float32", q.dtype)
    assert.same({3.5, -3.5}, flat(q))
  end)

  it("reject shapes that do not broadcast and non-tensors", function()
    local x, y = lattice.zeros({2, 3}), lattice.zeros({4})
    assert.has_error(function() lattice.add(x, y) end, "add: shapes {2,3} and {4} cannot be broadcast together")
    assert.has_error(function() return x + y end, "add: shapes {2,3} and {4} cannot be broadcast together")
    assert.has_error(function() lattice.multiply(x, lattice.zeros({3, 2})) end,
      "multiply: shapes {2,3} and {3,2} cannot be broadcast together")
    assert.has_error(function() lattice.add(x, "a") end, "bad argument #2 to 'add' (lattice.Tensor expected, got string)")
    assert.has_error(function() lattice.maximum({}, x) end,
      "bad argument #1 to 'maximum' (lattice.Tensor expected, got table)")
    assert.has_error(function() lattice.subtract(2, nil) end,
      "bad argument #2 to 'subtract' (lattice.Tensor expected, got nil)")
  end)

  it("refuse a third operand instead of ignoring it", function()
    local p, q, r = lattice.ones({2}), lattice.ones({2}), lattice.ones({2})
    assert.has_error(function() lattice.add(p, q, r) end, "add: too many arguments (expected at most 2, got 3)")
    assert.has_error(function() p:multiply(q, 2) end, "multiply: too many arguments (expected at most 2, got 3)")
    assert.has_error(function() lattice.greater_equal(p, q, r) end,
      "greater_equal: too many arguments (expected at most 2, got 3)")
    assert.same({2, 2}, (p + q):tolist())
  end)
end)

describe("floor_divide and remainder", function()
  -- Python's and NumPy's rules: the quotient rounds toward -inf and the
  -- remainder takes the divisor's sign, so a == b * (a // b) + a % b.
  local as, bs = {7, -7, 7, -7, 0, 6, -6}, {2, 2, -2, -2, 3, 3, -3}

  it("follow Python's sign rules for integers, as // and % and as functions", function()
    local a, b = lattice.array(as, "int32"), lattice.array(bs, "int32")
    local q, r = a // b, a % b
    assert.equal("int32", q.dtype)
    assert.equal("int32", r.dtype)
    for i = 1, #as do
      assert.equal(as[i] // bs[i], flat(q)[i]) -- Lua's integer // and % are Python's
      assert.equal(as[i] % bs[i], flat(r)[i])
    end
    assert.same(flat(q), flat(lattice.floor_divide(a, b)))
    assert.same(flat(r), flat(lattice.remainder(a, b)))
    assert.same(flat(q), flat(a:floor_divide(b)))
    assert.same({3, -4}, flat(lattice.array({7, -7}, "int64") // 2))
    assert.same({1, -1}, flat(7 % lattice.array({2, -2}, "int32")))
    assert.same({2, 1}, flat(lattice.array({5, 7}, "uint8") % 3))
  end)

  it("give 0 for an integer division by zero, and wrap the one overflowing quotient", function()
    local a = lattice.array({7, -7, 0}, "int32")
    assert.same({0, 0, 0}, flat(a // 0))
    assert.same({0, 0, 0}, flat(a % 0))
    local m = lattice.array({-2147483648}, "int32")
    assert.same({-2147483648}, flat(m // -1)) -- 2^31 wraps, as in NumPy
    assert.same({0}, flat(m % -1))
    local big = lattice.array({math.mininteger}, "int64")
    assert.same({math.mininteger}, flat(big // -1))
    assert.same({0}, flat(big % -1))
    assert.equal("int32", (lattice.array({true, false}) // lattice.array({true, true})).dtype)
  end)

  it("follow the same rules for floats, with inf and NaN for a zero divisor", function()
    local fa, fb = {7.5, -7.5, 7.5, -7.5, 0, 1, -1, 5, -5}, {2, 2, -2, -2, -3, 0, 0, -inf, inf}
    for _, dt in ipairs({"float32", "float64"}) do
      local a, b = lattice.array(fa, dt), lattice.array(fb, dt)
      local q, r = flat(a // b), flat(a % b)
      assert.equal(dt, (a // b).dtype)
      assert.same({3, -4, -4, 3}, {q[1], q[2], q[3], q[4]})
      assert.same({1.5, 0.5, -0.5, -1.5}, {r[1], r[2], r[3], r[4]})
      assert.equal(-inf, 1 / q[5]) -- -0, as Python's 0.0 // -3
      assert.equal(-inf, 1 / r[5]) -- the divisor's sign, zero included
      assert.equal(inf, q[6])
      assert.equal(-inf, q[7])
      assert(r[6] ~= r[6] and r[7] ~= r[7])
      assert.same({-1, -1}, {q[8], q[9]})   -- as NumPy: 5 // -inf is -1
      assert.same({-inf, inf}, {r[8], r[9]}) -- and 5 % -inf is -inf
    end
  end)

  it("have the gradients of PyTorch: 1 and -(a // b) for remainder, none for floor_divide", function()
    local a, b = lattice.array({7.5, -7.5, 2.25}), lattice.array({2, 2, -0.5})
    gradcheck.each_dtype(function(p, q) return lattice.sum(lattice.remainder(p, q) * lattice.array({1, 2, 3})) end,
      {a, b})
    local g = lattice.grad(function(p, q) return lattice.sum(p // q + p % q) end, {1, 2})(a, b)
    assert.same({1, 1, 1}, flat(g[1]))
    assert.same({-3, 4, 5}, flat(g[2]))
    local z = lattice.grad(function(p) return lattice.sum(lattice.floor_divide(p, 2) * p) end)(a)
    assert.same({3, -4, 1}, flat(z)) -- only through the second factor
  end)
end)

describe("binary gradients", function()
  local function rand(shape, lo, hi)
    local n = 1
    for _, d in ipairs(shape) do n = n * d end
    return lattice.array(randn(n, lo, hi)):reshape(shape)
  end

  for _, name in ipairs({"add", "subtract", "multiply", "divide", "maximum", "minimum"}) do
    it(name .. " passes gradcheck with broadcasting", function()
      -- divide keeps b away from 0; maximum/minimum draw a and b from disjoint
      -- ranges per element pair rarely tied (ties are measure-zero with random data).
      local a, b = rand({2, 3}, -2, 2), rand({3}, 0.5, 2)
      local w = rand({2, 3}, -1, 1)
      gradcheck.each_dtype(function(p, q) return lattice.sum(lattice[name](p, q) * w) end, {a, b})
      gradcheck.each_dtype(function(p, q) return lattice.sum(lattice[name](p, q) * w) end, {rand({2, 1}, 0.5, 2), a})
    end)
  end

  it("power passes gradcheck with broadcasting", function()
    local a, b = rand({2, 3}, 0.5, 2), rand({3}, -1.5, 1.5)
    gradcheck.each_dtype(function(p, q) return lattice.sum(lattice.power(p, q)) end, {a, b})
  end)

  it("maximum splits the gradient on ties, as PyTorch does", function()
    local g = lattice.grad(function(p, q) return lattice.sum(lattice.maximum(p, q)) end, {1, 2})(
      lattice.array({1, 2}), lattice.array({1, 3}))
    assert.same({0.5, 0}, flat(g[1]))
    assert.same({0.5, 1}, flat(g[2]))
  end)

  it("flow through the Lua operators", function()
    local x = lattice.array({0.5, -1, 2})
    gradcheck.each_dtype(function(p) return lattice.sum(p * p + 2 * p - p / 3 - (1 - p) ^ 2 + -p) end, {x})
  end)
end)

describe("where", function()
  it("selects with broadcasting of all three", function()
    local cond = lattice.array({{1}, {0}, {1}}, "int32") -- (3,1), nonzero is true
    local a = lattice.array({{1, 2, 3, 4}})                -- (1,4)
    local r = lattice.where(cond, a, -1)
    assert.same({3, 4}, r.shape)
    assert.same({{1, 2, 3, 4}, {-1, -1, -1, -1}, {1, 2, 3, 4}}, r:tolist())
    local f = lattice.where(lattice.array({0.5, 0, nan}), 1, lattice.array({7, 8, 9}))
    assert.same({1, 8, 1}, flat(f))
  end)

  it("gives the dtype a and b promote to", function()
    local c = lattice.array({true, false}, "bool")
    local i = lattice.array({1, 2}, "int32")
    assert.equal("int32", lattice.where(c, i, i).dtype)
    assert.equal("float32", lattice.where(c, i, lattice.array({0.5, 0.5})).dtype)
    assert.equal("float16", lattice.where(c, lattice.array({1, 2}, "float16"), 0.5).dtype)
    assert.same({1, 0.5}, flat(lattice.where(c, i, lattice.array({0.5, 0.5}))))
  end)

  it("passes gradcheck for a and b with broadcasting", function()
    local cond = lattice.array({{true, false, true}, {false, false, true}}, "bool")
    local a, b = lattice.array({{0.3, -1.2, 2}, {1, 0.7, -0.4}}), lattice.array({0.9, -0.6, 1.1})
    gradcheck.each_dtype(function(p, q) return lattice.sum(lattice.where(cond, p, q) * lattice.array({1, 2, 3})) end, {a, b})
  end)

  it("rejects shapes that do not broadcast and a non-tensor condition", function()
    assert.has_error(function() lattice.where(lattice.zeros({4}), lattice.zeros({3}), 0) end,
      "where: shapes {4} and {3} cannot be broadcast together")
    assert.has_error(function() lattice.where(lattice.zeros({2}), lattice.zeros({2}), lattice.zeros({3})) end,
      "where: shapes {2} and {3} cannot be broadcast together")
    assert.has_error(function() lattice.where(1, lattice.zeros({2}), 0) end,
      "bad argument #1 to 'where' (lattice.Tensor expected, got number)")
    assert.has_error(function() lattice.where(lattice.zeros({2}), 1, 0, 2) end,
      "where: too many arguments (expected at most 3, got 4)")
  end)
end)

describe("clip", function()
  local x = lattice.array({-3, -1, 0, 2, 5, nan})

  it("clips to [lo, hi], with nil meaning no bound, and keeps NaN", function()
    local function check(got, want)
      for i, v in ipairs(want) do
        if v ~= v then assert(got[i] ~= got[i]) else assert.equal(v, got[i]) end
      end
    end
    check(flat(lattice.clip(x, -1, 2)), {-1, -1, 0, 2, 2, nan})
    check(flat(lattice.clip(x, 0)), {0, 0, 0, 2, 5, nan})
    check(flat(lattice.clip(x, nil, 1)), {-3, -1, 0, 1, 1, nan})
  end)

  it("keeps integers with integral bounds and turns them to float32 otherwise", function()
    local i = lattice.array({-3, 1, 7}, "int32")
    local r = lattice.clip(i, 0, 5)
    assert.equal("int32", r.dtype)
    assert.same({0, 1, 5}, flat(r))
    local f = lattice.clip(i, 0.5, nil)
    assert.equal("float32", f.dtype)
    assert.same({0.5, 1, 7}, flat(f))
    assert.equal("float16", lattice.clip(lattice.array({1}, "float16"), 0, 0.5).dtype)
  end)

  it("clips integers to bounds past their range at the range's end, with exact int64 bounds", function()
    local u = lattice.clip(lattice.array({5, 250}, "uint8"), 300, nil)
    assert.equal("uint8", u.dtype)
    assert.same({255, 255}, flat(u))
    assert.same({-3, 7}, flat(lattice.clip(lattice.array({-3, 7}, "int32"), -1e12, 1e12)))
    assert.same({math.tointeger(9.21e18), -5}, flat(lattice.clip(lattice.array({math.maxinteger, -5}, "int64"), nil, 9.21e18)))
    assert.same({math.tointeger(-9.21e18)}, flat(lattice.clip(lattice.array({math.mininteger}, "int64"), -9.21e18, 0)))
  end)

  it("passes gradcheck away from the bounds and passes the gradient at them", function()
    local v = lattice.array({-2.5, -0.4, 0.3, 1.6, 3})
    gradcheck.each_dtype(function(p) return lattice.sum(lattice.clip(p, -1, 2) * lattice.array({1, 2, 3, 4, 5})) end, {v})
    local g = lattice.grad(function(p) return lattice.sum(lattice.clip(p, -1, 2)) end)(lattice.array({-1, 2, 2.5, -3}))
    assert.same({1, 1, 0, 0}, flat(g))
  end)

  it("needs at least one bound", function()
    assert.has_error(function() lattice.clip(x) end, "clip: at least one of lo and hi must be given")
    assert.has_error(function() lattice.clip(x, nil, nil) end, "clip: at least one of lo and hi must be given")
    assert.has_error(function() lattice.clip(x, "a") end,
      "bad argument #2 to 'clip' (number expected, got string)")
    assert.has_error(function() lattice.clip(x, 0, 1, 2) end, "clip: too many arguments (expected at most 3, got 4)")
  end)
end)

describe("float64", function()
  -- Inputs are exact doubles and the references plain Lua, so only lattice's
  -- double arithmetic is measured: libm's functions are within an ulp or two
  -- (2.2e-16 each); gelu's reference erf series loses up to 4 digits near
  -- |x| = 2.5, hence its 1e-11.
  local xs = {-30, -9.5, -5.5, -1, -0.3, -1e-4, 0.1, 1e-4, 0.3, 1, 2.5, 10, 30}
  local pos = {1e-6, 1e-3, 0.1, 1, 2, 100, 1e6}
  local domain = {log = pos, sqrt = pos, rsqrt = pos}
  local rel = {gelu = 1e-11}

  for name, ref in pairs(reference) do
    it(name .. " computes in double and matches plain Lua to 1e-12", function()
      local v = domain[name] or xs
      local y = lattice[name](lattice.array(v, "float64"))
      assert.equal("float64", y.dtype)
      for i, got in ipairs(flat(y)) do
        assert(close(got, ref(v[i]), rel[name] or 1e-12, 1e-300),
          ("%s(%.17g): got %.17g, want %.17g"):format(name, v[i], got, ref(v[i])))
      end
    end)
  end

  it("binary ops are IEEE double arithmetic", function()
    local a, b = {0.1, -2.5, 1e-300, 7, 3}, {0.2, 3, 1e300, -0.7, 0.5}
    local ops = {add = function(p, q) return p + q end, subtract = function(p, q) return p - q end,
                 multiply = function(p, q) return p * q end, divide = function(p, q) return p / q end,
                 power = function(p, q) return p ^ q end, maximum = math.max, minimum = math.min}
    for name, f in pairs(ops) do
      local y = lattice[name](lattice.array(a, "float64"), lattice.array(b, "float64"))
      assert.equal("float64", y.dtype)
      for i, got in ipairs(flat(y)) do
        if name ~= "power" or a[i] > 0 then assert.equal(f(a[i], b[i]), got, name) end
      end
    end
  end)

  it("wins over every other dtype, and a Lua number next to it stays a double", function()
    local d = lattice.array({1, 2}, "float64")
    for _, dt in ipairs({"float32", "float16", "bfloat16", "int32", "int64", "uint8", "bool"}) do
      assert.equal("float64", (d + lattice.array({1, 0}, dt)).dtype, dt)
      assert.equal("float64", (lattice.array({1, 0}, dt) * d).dtype, dt)
    end
    assert.same({1 + 0.1, 2 + 0.1}, flat(d + 0.1)) -- 0.1 is not rounded to float32
    assert.same({0.1 - 1, 0.1 - 2}, flat(0.1 - d))
    assert.equal("bool", lattice.less(d, 1.5).dtype)
  end)

  it("where and clip keep float64", function()
    local d = lattice.array({0.1, 0.7, 1.3}, "float64")
    local w = lattice.where(lattice.array({true, false, true}), d, lattice.array({0, 0, 0}))
    assert.equal("float64", w.dtype)
    assert.same({0.1, 0, 1.3}, flat(w))
    local c = lattice.clip(d, 0.25, 1.2)
    assert.equal("float64", c.dtype)
    assert.same({0.25, 0.7, 1.2}, flat(c))
  end)
end)
