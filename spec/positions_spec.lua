-- Positional encodings: lattice.rope (MLX's mx.fast.rope) and the RoPE,
-- Sinusoidal, ALiBi and NoPosition modules of the position registry, against
-- plain Lua references written from the formulas.
local lattice = require "lattice"
local gradcheck = require "support.gradcheck"
local ref = require "support.reference"

local T = lattice.transformer
local assert_close, weighted, generator, rand = ref.assert_close, ref.weighted, ref.generator, ref.rand

-- The rotation of one row (a Lua list of D values) at position p: pairs
-- (i, i + dims/2), or (2i, 2i + 1) when traditional, by p * base^(-2i/dims).
local function rope_row(row, p, dims, base, traditional)
  local out, half = {}, dims // 2
  for j = 1, #row do out[j] = row[j] end
  for i = 0, half - 1 do
    local theta = p * base ^ (-2 * i / dims)
    local ia, ib = traditional and 2 * i + 1 or i + 1, traditional and 2 * i + 2 or i + half + 1
    local a, b = row[ia], row[ib]
    out[ia] = a * math.cos(theta) - b * math.sin(theta)
    out[ib] = a * math.sin(theta) + b * math.cos(theta)
  end
  return out
end

-- x (B, H, T, D) as nested lists, rows at positions pos(t) (t from 1).
local function rope_ref(x, dims, base, traditional, pos)
  local out = {}
  for b, heads in ipairs(x) do
    out[b] = {}
    for h, rows in ipairs(heads) do
      out[b][h] = {}
      for t, row in ipairs(rows) do out[b][h][t] = rope_row(row, pos(t), dims, base, traditional) end
    end
  end
  return out
end

-- Inputs are O(1) float32 values; each output is two products and a sum,
-- with cos and sin rounded to float32: a few ulps.
local TOL = 1e-6

describe("lattice.rope", function()
  local gen = generator(5)
  local X = rand({ 2, 3, 6, 8 }, gen)
  local x = lattice.array(X)

  it("rotates pairs (i, i + dims/2) by p * base^(-2i/dims), from position 0", function()
    local y = lattice.rope(x, 8)
    assert_close(y:tolist(), rope_ref(x:tolist(), 8, 10000, false, function(t) return t - 1 end), TOL)
  end)

  it("counts positions from offset, as a cache of that length has them", function()
    local y = lattice.rope(x, 8, { offset = 7, base = 500 })
    assert_close(y:tolist(), rope_ref(x:tolist(), 8, 500, false, function(t) return t + 6 end), TOL)
  end)

  it("gives the last token at offset T - 1 what the whole sequence gives it", function()
    local full = lattice.rope(x, 8, { base = 10 })
    local last = lattice.rope(lattice.slice(x, 3, 6, 7), 8, { base = 10, offset = 5 })
    assert.are.same(lattice.slice(full, 3, 6, 7):tolist(), last:tolist())
  end)

  it("rotates only the first dims features and leaves the rest", function()
    local y = lattice.rope(x, 4, { offset = 2 })
    assert_close(y:tolist(), rope_ref(x:tolist(), 4, 10000, false, function(t) return t + 1 end), TOL)
    assert.are.same(lattice.slice(x, -1, 5, 9):tolist(), lattice.slice(y, -1, 5, 9):tolist())
  end)

  it("rotates consecutive pairs when traditional", function()
    local y = lattice.rope(x, 6, { traditional = true, offset = 1 })
    assert_close(y:tolist(), rope_ref(x:tolist(), 6, 10000, true, function(t) return t end), TOL)
  end)

  it("multiplies positions by scale", function()
    local y = lattice.rope(x, 8, { scale = 0.5, offset = 2 })
    assert_close(y:tolist(), rope_ref(x:tolist(), 8, 10000, false, function(t) return 0.5 * (t + 1) end), TOL)
  end)

  it("takes one position per row from an integer tensor", function()
    local pos = { 0, 1, 2, 0, 1, 2 } -- chunks of 3 restarting, as chunked attention counts them
    for _, dt in ipairs({ "int32", "int64" }) do
      local y = lattice.rope(x, 8, { positions = lattice.array(pos, dt) })
      assert_close(y:tolist(), rope_ref(x:tolist(), 8, 10000, false, function(t) return pos[t] end), TOL)
    end
  end)

  it("reads (B, T, H, D) with seq_axis = -3 as (B, H, T, D) with -2", function()
    local y = lattice.rope(x, 8, { offset = 3 })
    local bthd = x:transpose({ 1, 3, 2, 4 }):contiguous()
    local y2 = lattice.rope(bthd, 8, { offset = 3, seq_axis = -3 }):transpose({ 1, 3, 2, 4 })
    assert.are.same(y:tolist(), y2:tolist())
    assert.are.same(y:tolist(), lattice.rope(bthd, 8, { offset = 3, seq_axis = 2 }):transpose({ 1, 3, 2, 4 }):tolist())
  end)

  it("reads a 2-D (T, D) input and non-contiguous views", function()
    local x2 = lattice.array(rand({ 5, 4 }, gen))
    local want = {}
    for t, row in ipairs(x2:tolist()) do want[t] = rope_row(row, t - 1, 4, 10000, false) end
    assert_close(lattice.rope(x2, 4):tolist(), want, TOL)
    local xt = lattice.array(rand({ 4, 5 }, gen)):transpose()
    local wt = {}
    for t, row in ipairs(xt:tolist()) do wt[t] = rope_row(row, t - 1, 4, 10000, false) end
    assert_close(lattice.rope(xt, 4):tolist(), wt, TOL)
  end)

  it("keeps float16, bfloat16 and float64", function()
    local want = lattice.rope(x, 8, { offset = 4 })
    for dt, tol in pairs({ float16 = 2e-3, bfloat16 = 1.6e-2, float64 = 1e-6 }) do
      local y = lattice.rope(x:astype(dt), 8, { offset = 4 })
      assert.are.equal(dt, y.dtype)
      assert_close(y:astype("float32"):tolist(), want:tolist(), tol)
    end
    local y64 = lattice.rope(x:astype("float64"), 8, { offset = 4 })
    assert_close(y64:tolist(), rope_ref(x:tolist(), 8, 10000, false, function(t) return t + 3 end), 1e-14)
  end)

  it("is a tensor method", function()
    assert.are.same(lattice.rope(x, 8):tolist(), x:rope(8):tolist())
  end)

  describe("gradient", function()
    local small = lattice.array(rand({ 1, 2, 3, 6 }, generator(8)))

    it("passes gradcheck (rotate-half, partial dims, offset)", function()
      gradcheck.each_dtype(function(v) return weighted(lattice.rope(v, 4, { offset = 5, base = 100 })) end, { small })
    end)

    it("passes gradcheck (traditional, seq_axis -3, positions)", function()
      local pos = lattice.array({ 4, 0 }, "int64")
      gradcheck.each_dtype(function(v)
        return weighted(lattice.rope(v, 6, { traditional = true, seq_axis = -3, positions = pos }))
      end, { small })
    end)
  end)

  describe("refuses", function()
    local cases = {
      { function() lattice.rope(x, 7) end, "rope: dims must be even and in [2, 8] (x's last axis), got 7" },
      { function() lattice.rope(x, 10) end, "rope: dims must be even and in [2, 8] (x's last axis), got 10" },
      { function() lattice.rope(x, 0) end, "rope: dims must be even and in [2, 8] (x's last axis), got 0" },
      { function() lattice.rope(x, 8, { seq_axis = -1 }) end,
        "rope: seq_axis -1 is the feature axis; positions need another" },
      { function() lattice.rope(x, 8, { seq_axis = 5 }) end, "rope: seq_axis 5 is out of range for 4 dimensions" },
      { function() lattice.rope(x, 8, { base = 0 }) end, "rope: base must be a positive number, got 0" },
      { function() lattice.rope(x, 8, { offst = 1 }) end, "rope: unknown option 'offst'" },
      { function() lattice.rope(x, 8, { offset = 1.5 }) end, "option 'offset' must be an integer" },
      { function() lattice.rope(lattice.ones({ 4 }), 4) end,
        "rope: x must have at least 2 dimensions (positions and features), got 1" },
      { function() lattice.rope(lattice.ones({ 2, 4 }, "int32"), 4) end, "rope: x must be a float tensor, got int32" },
      { function() lattice.rope(x, 8, { positions = lattice.array({ 1, 2 }, "int64") }) end,
        "rope: positions has shape {2}, expected {6} (one per position of x)" },
      { function() lattice.rope(x, 8, { positions = lattice.zeros({ 6 }) }) end,
        "rope: positions must be an int32 or int64 tensor, got float32" },
      { function() lattice.rope(x, 8, { positions = { 1 } }) end, "rope: option 'positions' must be a tensor, got table" },
    }
    for _, case in ipairs(cases) do
      it(case[2], function() assert.has_error(case[1], case[2]) end)
    end
  end)
end)

describe("the RoPE module", function()
  local cfg = lattice.BlockConfig{ d_model = 32, n_heads = 4, n_kv_heads = 2, rope_theta = 5e5, position = "rope" }

  it("is nn.RoPE(head_dim, traditional = false, base = rope_theta)", function()
    local rope = lattice.registry.position:get("rope")(cfg)
    assert.are.same({ 8, false, 5e5, 1.0 }, { rope.dims, rope.traditional, rope.base, rope.scale })
    assert.are.equal("RoPE(8, traditional=false, base=500000)", tostring(rope))
    assert.are.same({}, rope:parameters())
  end)

  it("rotates q and k, which may have different head counts, from the offset", function()
    local rope = T.RoPE(cfg)
    local q, k = lattice.array(rand({ 1, 4, 3, 8 }, generator(3))), lattice.array(rand({ 1, 2, 3, 8 }, generator(4)))
    local rq, rk = rope(q, k, 6)
    local pos = function(t) return t + 5 end
    assert_close(rq:tolist(), rope_ref(q:tolist(), 8, 5e5, false, pos), TOL)
    assert_close(rk:tolist(), rope_ref(k:tolist(), 8, 5e5, false, pos), TOL)
    local q0 = rope(q, k) -- offset 0 by default
    assert_close(q0:tolist(), rope_ref(q:tolist(), 8, 5e5, false, function(t) return t - 1 end), TOL)
  end)

  it("applies itself to one tensor in either layout", function()
    local rope = T.RoPE(cfg)
    local q = lattice.array(rand({ 1, 3, 4, 8 }, generator(6))) -- (B, T, H, D)
    local want = lattice.rope(q:transpose({ 1, 3, 2, 4 }), 8, { base = 5e5, offset = 2 }):transpose({ 1, 3, 2, 4 })
    assert.are.same(want:tolist(), rope:apply(q, { offset = 2, seq_axis = -3 }):tolist())
  end)

  it("needs a BlockConfig", function()
    assert.has_error(function() T.RoPE({ d_model = 32 }) end, "RoPE: config must be a lattice.BlockConfig, got table")
  end)
end)

-- The ALiBi paper's slopes written plainly: for a power of two n, 2^(-8k/n),
-- k = 1..n; otherwise those of the power below, then the odd-numbered
-- slopes of twice that power.
local function paper_slopes(n)
  local function pow2(m)
    local s = {}
    for k = 1, m do s[k] = 2 ^ (-8 * k / m) end
    return s
  end
  local p = 1
  while p * 2 <= n do p = p * 2 end
  local s = pow2(p)
  if p == n then return s end
  local extra = pow2(2 * p)
  for k = 1, n - p do s[#s + 1] = extra[2 * k - 1] end
  return s
end

describe("ALiBi", function()
  it("has the paper's slopes for a power of two", function()
    assert.are.same({ 2 ^ -1, 2 ^ -2, 2 ^ -3, 2 ^ -4, 2 ^ -5, 2 ^ -6, 2 ^ -7, 2 ^ -8 }, T.alibi_slopes(8))
    assert.are.same({ 2 ^ -8 }, T.alibi_slopes(1))
  end)

  it("interleaves for other head counts as MLX computes them", function()
    assert.are.same({ 2 ^ -2, 2 ^ -4, 2 ^ -6, 2 ^ -8, 2 ^ -1, 2 ^ -3 }, T.alibi_slopes(6))
    for _, n in ipairs({ 3, 5, 6, 7, 12, 20 }) do
      assert_close(T.alibi_slopes(n), paper_slopes(n), 1e-15, "n = " .. n)
    end
  end)

  -- -|offset + i - j| * slope_h, in float32 as the product of an exact
  -- integer distance and the float32 slope.
  local function matrix_ref(tq, tk, h, offset)
    local slopes, out = paper_slopes(h), { {} }
    for hh = 1, h do
      out[1][hh] = {}
      for i = 1, tq do
        out[1][hh][i] = {}
        for j = 1, tk do out[1][hh][i][j] = -math.abs(offset + i - j) * ref.f32(slopes[hh]) end
      end
    end
    return out
  end

  it("builds -|i - j| times each head's slope, queries from offset", function()
    assert_close(T.alibi_matrix(3, 5, 6, 2):tolist(), matrix_ref(3, 5, 6, 2), 1e-7)
    assert_close(T.alibi_matrix(4, 4, 4):tolist(), matrix_ref(4, 4, 4, 0), 1e-7)
  end)

  describe("the module", function()
    local cfg = lattice.BlockConfig{ d_model = 48, n_heads = 6, position = "alibi" }
    local alibi = lattice.registry.position:get("alibi")(cfg)

    it("adds the biases to a mask, sized by the mask", function()
      local mask = lattice.array({ { 0, -1e9, -1e9 }, { 0, 0, -1e9 }, { 0, 0, 0 } })
      local out = alibi(mask)
      assert.are.same({ 1, 6, 3, 3 }, out.shape)
      local want = matrix_ref(3, 3, 6, 0)
      local m = mask:tolist()
      for h = 1, 6 do
        for i = 1, 3 do
          for j = 1, 3 do want[1][h][i][j] = want[1][h][i][j] + m[i][j] end
        end
      end
      assert_close(out:tolist(), want, 1e-7)
      assert.are.same(alibi.slopes, paper_slopes(6))
    end)

    it("without a mask is sized by seq_len and cache_len, queries after the cache", function()
      local out = alibi(nil, { seq_len = 2, cache_len = 3 })
      assert.are.same({ 1, 6, 2, 5 }, out.shape)
      assert_close(out:tolist(), matrix_ref(2, 5, 6, 3), 1e-7)
    end)

    it("refuses what it cannot read", function()
      assert.has_error(function() alibi(nil, { len = 2 }) end, "ALiBi: unknown option 'len'")
      assert.has_error(function() alibi(lattice.ones({ 3 })) end, "ALiBi: mask must be a tensor (..., T_q, T_k)")
    end)
  end)
end)

-- MLX's SinusoidalPositionalEncoding written from its formula in doubles.
local function sinusoidal_ref(positions, dims, o)
  o = o or {}
  local half, min_f, max_f = dims // 2, o.min_freq or 1e-4, o.max_freq or 1
  local scale = o.scale or math.sqrt(2 / dims)
  local out = {}
  for n, p in ipairs(positions) do
    local s, c = {}, {}
    for k = 0, half - 1 do
      local u = 1 - k / (half - 1)
      local sigma = math.exp(u * (math.log(max_f) - math.log(min_f)) + math.log(min_f))
      if o.full_turns then sigma = sigma * 2 * math.pi end
      s[k + 1], c[k + 1] = scale * math.sin(p * sigma), scale * math.cos(p * sigma)
    end
    local row = {}
    local first, second = s, c
    if o.cos_first then first, second = c, s end
    for k = 1, half do row[k], row[half + k] = first[k], second[k] end
    out[n] = row
  end
  return out
end

-- float32 frequencies and angles up to ~60 rad: ~1e-5 absolute in the angle.
local SIN_TOL = 2e-5

describe("sinusoidal encodings", function()
  it("SinusoidalPositionalEncoding is MLX's: frequencies from max_freq down to min_freq, sin then cos", function()
    local pos = { 0, 1, 2, 5, 9 }
    local enc = T.SinusoidalPositionalEncoding(8)
    assert_close(enc(lattice.array(pos)):tolist(), sinusoidal_ref(pos, 8), SIN_TOL)
    local turns = T.SinusoidalPositionalEncoding(10, { full_turns = true })
    assert_close(turns(lattice.array(pos)):tolist(), sinusoidal_ref(pos, 10, { full_turns = true }), SIN_TOL)
    local o = { min_freq = 0.01, max_freq = 2, scale = 1, cos_first = true }
    local custom = T.SinusoidalPositionalEncoding(6, o)
    assert_close(custom(lattice.array(pos)):tolist(), sinusoidal_ref(pos, 6, o), SIN_TOL)
    assert.are.same({ 5, 8 }, T.SinusoidalPositionalEncoding(9)(lattice.array(pos)).shape) -- 2 * (9 // 2)
    assert.are.same({}, enc:parameters())
  end)

  it("Sinusoidal adds the full-turn encoding of positions 0 .. T-1 to x (B, T, d_model)", function()
    local cfg = lattice.BlockConfig{ d_model = 16, n_heads = 4 }
    local s = lattice.registry.position:get("sinusoidal")(cfg)
    local x = lattice.array(rand({ 2, 4, 16 }, generator(9)))
    local pe = sinusoidal_ref({ 0, 1, 2, 3 }, 16, { full_turns = true })
    local want = x:tolist()
    for b = 1, 2 do
      for t = 1, 4 do
        for d = 1, 16 do want[b][t][d] = want[b][t][d] + pe[t][d] end
      end
    end
    assert_close(s(x):tolist(), want, SIN_TOL)
  end)

  it("Sinusoidal continues the positions from an offset", function()
    local s = T.Sinusoidal(lattice.BlockConfig{ d_model = 8, n_heads = 2 })
    local out = s(lattice.zeros({ 1, 2, 8 }), 3)
    assert_close(out:tolist()[1], sinusoidal_ref({ 3, 4 }, 8, { full_turns = true }), SIN_TOL)
  end)

  it("refuses dimensions it cannot encode", function()
    assert.has_error(function() T.Sinusoidal(lattice.BlockConfig{ d_model = 9, n_heads = 1 }) end,
      "Sinusoidal: d_model must be even and at least 4 (the encoding is added to x), got 9")
    assert.has_error(function() T.SinusoidalPositionalEncoding(3) end,
      "SinusoidalPositionalEncoding: dims must be an integer of at least 4, got 3")
    assert.has_error(function() T.SinusoidalPositionalEncoding(8, { min_freq = 0 }) end,
      "SinusoidalPositionalEncoding: min_freq must be a positive number, got 0")
  end)
end)

describe("the position registry", function()
  it("holds rope, sinusoidal, alibi, none, and learned (GPT-2's, kept in the model)", function()
    assert.are.same({ "rope", "sinusoidal", "alibi", "none", "learned" }, lattice.registry.position:keys())
  end)

  it("none is the identity", function()
    local none = lattice.registry.position:get("none")(lattice.BlockConfig())
    local x = lattice.ones({ 2, 3 })
    assert.are.equal(x, none(x))
  end)
end)
