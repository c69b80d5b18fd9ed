local lattice = require "lattice"
local core = require "lattice.core" -- attention_with_isa, attention_grad_with_isa, gemm_tile_with_isa: test hooks
local gradcheck = require "support.gradcheck"
local ref = require "support.reference"

-- Inputs come from Lua's generator; expected values from a textbook attention
-- written plainly in Lua doubles: softmax(q k^T * scale + bias) v over the
-- keys each query sees.
math.randomseed(271828)

local numel, randn, tensor = ref.numel, ref.randn, ref.tensor
local SDPA = "scaled_dot_product_attention"

local function randt(shape, dtype, scale) return tensor(randn(numel(shape), scale), shape, dtype) end

-- The keys query position p sees: all of them, or 0 .. p when causal (window
-- and chunk are causal too), limited to the last `window` positions and to p's
-- chunk.
local function visible(o, p, j)
  if (o.causal or o.window or o.chunk) and j > p then return false end
  if o.window and j < p - o.window + 1 then return false end
  if o.chunk and j < (p // o.chunk) * o.chunk then return false end
  return true
end

-- o: the options in Lua values: scale, causal, window, chunk, q_offset,
-- alibi (a list of slopes), mask(b, h, t, j) (1-based, an additive term).
local function textbook(q, k, v, o)
  local B, Hq, T, D = #q, #q[1], #q[1][1], #q[1][1][1]
  local Hkv, S, Dv = #k[1], #k[1][1], #v[1][1][1]
  local scale, off = o.scale or 1 / math.sqrt(D), o.q_offset or S - T
  local out = {}
  for b = 1, B do
    out[b] = {}
    for h = 1, Hq do
      out[b][h] = {}
      local hk = (h - 1) // (Hq // Hkv) + 1
      for t = 1, T do
        local p, xs, m = off + t - 1, {}, -math.huge
        for j = 1, S do
          if visible(o, p, j - 1) then
            local x = 0
            for d = 1, D do x = x + q[b][h][t][d] * k[b][hk][j][d] end
            x = x * scale
            if o.alibi then x = x - o.alibi[h] * math.abs(p - (j - 1)) end
            if o.mask then x = x + o.mask(b, h, t, j) end
            xs[j] = x
            m = math.max(m, x)
          end
        end
        local row, sum = {}, 0
        for e = 1, Dv do row[e] = 0 end
        for j, x in pairs(xs) do
          local w = x == -math.huge and 0 or math.exp(x - m)
          sum = sum + w
          for e = 1, Dv do row[e] = row[e] + w * v[b][hk][j][e] end
        end
        for e = 1, Dv do row[e] = sum > 0 and row[e] / sum or 0 end -- a query that sees no key: zeros
        out[b][h][t] = row
      end
    end
  end
  return out
end

-- A problem: sizes and options, with its inputs drawn once.
local function problem(c)
  local p = { opts = c.opts or {}, lua = c.lua or {} }
  p.q = randt({ c.B, c.Hq, c.T, c.D }, c.dtype)
  p.k = randt({ c.B, c.Hkv, c.S, c.D }, c.dtype)
  p.v = randt({ c.B, c.Hkv, c.S, c.Dv or c.D }, c.dtype)
  return p
end

-- The Lua options of the textbook for lattice options o, with the mask and
-- alibi tensors read back into Lua.
local function lua_options(o)
  local l = { scale = o.scale, causal = o.causal or o.mask == "causal", window = o.window, chunk = o.chunk,
    q_offset = o.q_offset }
  if o.alibi then l.alibi = o.alibi:astype("float64"):tolist() end
  if lattice.is_tensor(o.mask) then
    local m = o.mask.dtype == "bool" and lattice.where(o.mask, 0, -math.huge) or o.mask:astype("float64")
    local nd, vals = m.ndim, m:tolist()
    l.mask = function(b, h, t, j)
      local idx, x = { b, h, t, j }, vals
      for a = 5 - nd, 4 do x = x[m.shape[a - 4 + nd] == 1 and 1 or idx[a]] end
      return x
    end
  end
  return l
end

local function expect(p) return textbook(p.q:tolist(), p.k:tolist(), p.v:tolist(), lua_options(p.opts)) end

local function run(p) return lattice.scaled_dot_product_attention(p.q, p.k, p.v, p.opts) end

-- Cases against the textbook: every mask kind, GQA and MQA, T ~= S, D ~= Dv,
-- odd and tiny sizes. Sizes past one tile (65, 130) cross the kernels' tile
-- edges.
local cases = {
  { "no mask", { B = 2, Hq = 2, Hkv = 2, T = 5, S = 7, D = 8 } },
  { "causal, T = S", { B = 1, Hq = 3, Hkv = 3, T = 9, S = 9, D = 8, opts = { causal = true } } },
  { "mask = 'causal' (MLX's spelling), keys after the queries' positions", { B = 1, Hq = 2, Hkv = 2, T = 4, S = 11,
    D = 8, opts = { mask = "causal" } } },
  { "causal with q_offset (decoding with a cache)", { B = 2, Hq = 2, Hkv = 1, T = 3, S = 12, D = 8,
    opts = { causal = true, q_offset = 5 } } },
  { "a window shorter than T", { B = 1, Hq = 2, Hkv = 2, T = 13, S = 13, D = 8, opts = { window = 4 } } },
  { "a window longer than T", { B = 1, Hq = 2, Hkv = 2, T = 7, S = 7, D = 8, opts = { window = 20 } } },
  { "a window with a cache", { B = 1, Hq = 2, Hkv = 1, T = 3, S = 30, D = 8, opts = { window = 5 } } },
  { "chunks of 4", { B = 1, Hq = 2, Hkv = 2, T = 13, S = 13, D = 8, opts = { chunk = 4 } } },
  { "chunks counted from the absolute position", { B = 1, Hq = 2, Hkv = 2, T = 5, S = 14, D = 8,
    opts = { chunk = 4, q_offset = 9 } } },
  { "a window inside chunks", { B = 1, Hq = 1, Hkv = 1, T = 20, S = 20, D = 4, opts = { chunk = 8, window = 3 } } },
  { "ALiBi slopes per head", { B = 1, Hq = 4, Hkv = 2, T = 9, S = 9, D = 8,
    opts = { causal = true, alibi = lattice.array({ 0.5, 0.25, 0.125, 0.0625 }) } } },
  { "ALiBi without a causal mask", { B = 1, Hq = 2, Hkv = 2, T = 6, S = 8, D = 8,
    opts = { alibi = lattice.array({ 0.7, 0.1 }) } } },
  { "an additive mask as the seed builds it (-1e9 above the diagonal)", { B = 2, Hq = 2, Hkv = 2, T = 7, S = 7, D = 8,
    opts = { mask = lattice.where(lattice.greater(lattice.arange(7):reshape({ 7, 1 }), lattice.arange(7)), -1e9, 0)
      :astype("float32") } } },
  { "an additive mask per batch and head", { B = 2, Hq = 3, Hkv = 1, T = 5, S = 6, D = 8,
    opts = { mask = randt({ 2, 3, 5, 6 }) } } },
  { "a mask broadcast over the batch and the queries", { B = 2, Hq = 2, Hkv = 2, T = 5, S = 6, D = 8,
    opts = { mask = randt({ 2, 1, 6 }) } } },
  { "a boolean mask (true keeps)", { B = 1, Hq = 2, Hkv = 2, T = 6, S = 6, D = 8,
    opts = { mask = lattice.greater(randt({ 6, 6 }), -0.5) } } },
  { "GQA: 6 query heads on 2 kv heads", { B = 2, Hq = 6, Hkv = 2, T = 5, S = 5, D = 8, opts = { causal = true } } },
  { "MQA: one kv head", { B = 1, Hq = 4, Hkv = 1, T = 6, S = 9, D = 8, opts = { causal = true } } },
  { "D ~= Dv", { B = 1, Hq = 2, Hkv = 1, T = 5, S = 6, D = 12, Dv = 5, opts = { causal = true } } },
  { "T = 1", { B = 2, Hq = 2, Hkv = 2, T = 1, S = 1, D = 8 } },
  { "T = 1 against a cache of 70 keys", { B = 1, Hq = 4, Hkv = 2, T = 1, S = 70, D = 16, opts = { causal = true } } },
  { "T = 3", { B = 1, Hq = 2, Hkv = 2, T = 3, S = 3, D = 5, opts = { causal = true } } },
  { "T = 65", { B = 1, Hq = 2, Hkv = 1, T = 65, S = 65, D = 16, Dv = 24, opts = { causal = true } } },
  { "T = 130, S = 140, odd D", { B = 1, Hq = 1, Hkv = 1, T = 130, S = 140, D = 17, Dv = 9,
    opts = { causal = true, window = 50 } } },
  { "T = 130 without a mask", { B = 1, Hq = 2, Hkv = 2, T = 130, S = 67, D = 16 } },
  { "an explicit scale (muP's 1/D)", { B = 1, Hq = 2, Hkv = 2, T = 6, S = 6, D = 8, opts = { scale = 1 / 8, causal = true } } },
  { "everything at once", { B = 2, Hq = 4, Hkv = 2, T = 11, S = 19, D = 8, Dv = 6,
    opts = { window = 6, alibi = lattice.array({ 0.3, 0.2, 0.1, 0.05 }), mask = randt({ 4, 1, 19 }), q_offset = 7 } } },
}

describe("scaled_dot_product_attention", function()
  for _, c in ipairs(cases) do
    it("matches a textbook attention: " .. c[1], function()
      local p = problem(c[2])
      local o = run(p)
      assert.are.same({ c[2].B, c[2].Hq, c[2].T, c[2].Dv or c[2].D }, o.shape)
      assert.equal("float32", o.dtype)
      ref.assert_close(o:tolist(), expect(p), 2e-6)
    end)
  end

  it("gives zeros to a query that sees no key", function()
    local p = problem({ B = 1, Hq = 1, Hkv = 1, T = 4, S = 3, D = 4, opts = { causal = true, q_offset = -2 } })
    local o = run(p):tolist()
    assert.are.same({ 0, 0, 0, 0 }, o[1][1][1])
    assert.are.same({ 0, 0, 0, 0 }, o[1][1][2])
    ref.assert_close(o, expect(p), 2e-6)
  end)

  it("gives zeros and zero gradients without keys, and empty results for empty sizes", function()
    for _, c in ipairs({
      { B = 1, Hq = 2, Hkv = 1, T = 3, S = 0, D = 4 },
      { B = 1, Hq = 2, Hkv = 1, T = 0, S = 5, D = 4, opts = { causal = true } },
      { B = 1, Hq = 2, Hkv = 2, T = 3, S = 5, D = 4, Dv = 0 },
      { B = 0, Hq = 2, Hkv = 2, T = 3, S = 5, D = 4 },
    }) do
      local p = problem(c)
      local o = run(p)
      assert.are.same({ c.B, c.Hq, c.T, c.Dv or c.D }, o.shape)
      assert.equal(0, o:abs():sum():item())
      local grads = lattice.grad(function(q, k, v)
        return lattice.scaled_dot_product_attention(q, k, v, p.opts):sum()
      end, { 1, 2, 3 })(p.q, p.k, p.v)
      for i, x in ipairs({ p.q, p.k, p.v }) do
        assert.are.same(x.shape, grads[i].shape)
        assert.equal(0, grads[i]:abs():sum():item())
      end
    end
  end)

  it("takes 1/sqrt(D) as the default scale", function()
    local p = problem({ B = 1, Hq = 1, Hkv = 1, T = 3, S = 4, D = 9 })
    local explicit = lattice.scaled_dot_product_attention(p.q, p.k, p.v, { scale = 1 / 3 })
    assert.are.same(explicit:tolist(), run(p):tolist())
  end)

  it("returns a view whose transpose back to (B, T, H, Dv) is contiguous, so merging the heads copies nothing", function()
    local p = problem({ B = 2, Hq = 3, Hkv = 3, T = 4, S = 4, D = 8 })
    local o = run(p)
    local merged = o:transpose({ 1, 3, 2, 4 }):reshape({ 2, 4, 24 })
    assert.is_true(merged:shares_storage(o))
    ref.assert_close(merged:tolist(), o:transpose({ 1, 3, 2, 4 }):contiguous():reshape({ 2, 4, 24 }):tolist(), 0)
  end)

  it("reads q, k and v through strided views without copying them first", function()
    local p = problem({ B = 1, Hq = 2, Hkv = 2, T = 5, S = 5, D = 8, opts = { causal = true } })
    local qt = p.q:transpose({ 1, 3, 2, 4 }):contiguous():transpose({ 1, 3, 2, 4 }) -- a (B, T, H, D) buffer
    local o = lattice.scaled_dot_product_attention(qt, p.k, p.v, p.opts)
    assert.are.same(run(p):tolist(), o:tolist())
  end)

  describe("dtypes", function()
    for _, dt in ipairs({ "float16", "bfloat16" }) do
      it("computes " .. dt .. " inputs in float32 and returns " .. dt, function()
        local p = problem({ B = 1, Hq = 2, Hkv = 1, T = 9, S = 9, D = 8, dtype = dt, opts = { causal = true } })
        local o = run(p)
        assert.equal(dt, o.dtype)
        -- the inputs as stored, then one rounding of the result
        ref.assert_close(o:astype("float64"):tolist(), expect(p), dt == "float16" and 2e-3 or 1e-2)
      end)
    end

    it("computes float64 in double", function()
      local p = problem({ B = 1, Hq = 2, Hkv = 1, T = 9, S = 13, D = 8, dtype = "float64",
        opts = { window = 4, alibi = lattice.array({ 0.5, 0.25 }, "float64") } })
      local o = run(p)
      assert.equal("float64", o.dtype)
      ref.assert_close(o:tolist(), expect(p), 1e-13)
    end)

    it("promotes mixed dtypes as binary ops do", function()
      local p = problem({ B = 1, Hq = 1, Hkv = 1, T = 2, S = 2, D = 4 })
      assert.equal("float32", lattice.scaled_dot_product_attention(p.q:astype("float16"), p.k, p.v).dtype)
      assert.equal("float64", lattice.scaled_dot_product_attention(p.q, p.k:astype("float64"), p.v).dtype)
    end)
  end)

  describe("gradients", function()
    -- float64 throughout, so the central differences are exact to ~1e-10.
    local kinds = {
      { "no mask", {} },
      { "causal with a cache", { causal = true, q_offset = 1 } },
      { "a window", { window = 2 } },
      { "chunks", { chunk = 2 } },
      { "ALiBi", { causal = true, alibi = lattice.array({ 0.5, 0.25 }, "float64") } },
      { "an additive mask", { mask = randt({ 4, 5 }) } },
      { "a boolean mask", { mask = lattice.greater(randt({ 2, 1, 5 }), -0.7) } },
    }
    for _, kind in ipairs(kinds) do
      it("match central differences in float64 for q, k and v with " .. kind[1], function()
        local p = problem({ B = 1, Hq = 2, Hkv = 1, T = 4, S = 5, D = 3, Dv = 2, dtype = "float64", opts = kind[2] })
        gradcheck(function(q, k, v)
          return ref.weighted(lattice.scaled_dot_product_attention(q, k, v, p.opts))
        end, { p.q, p.k, p.v })
      end)
    end

    it("match central differences through the float32 kernels (GQA, causal, past one tile)", function()
      local p = problem({ B = 1, Hq = 2, Hkv = 1, T = 70, S = 70, D = 3, Dv = 2, opts = { causal = true } })
      local f = function(q, k, v) return ref.weighted(lattice.scaled_dot_product_attention(q, k, v, p.opts)) end
      local grads = lattice.grad(f, { 1, 2, 3 })(p.q, p.k, p.v)
      local grads64 = lattice.grad(f, { 1, 2, 3 })(p.q:astype("float64"), p.k:astype("float64"), p.v:astype("float64"))
      for i = 1, 3 do ref.assert_close(grads[i]:tolist(), grads64[i]:tolist(), 2e-5) end
    end)

    it("refuse a mask or slopes that would need a gradient", function()
      local p = problem({ B = 1, Hq = 1, Hkv = 1, T = 2, S = 2, D = 2 })
      local f = function(m) return lattice.scaled_dot_product_attention(p.q, p.k, p.v, { mask = m }):sum() end
      assert.has_error(function() lattice.grad(f)(lattice.zeros({ 2, 2 })) end,
        SDPA .. ": the mask takes no gradient; pass it through stop_gradient")
      local g = function(s) return lattice.scaled_dot_product_attention(p.q, p.k, p.v, { alibi = s }):sum() end
      assert.has_error(function() lattice.grad(g)(lattice.ones({ 1 })) end,
        SDPA .. ": the alibi slopes take no gradient; pass them through stop_gradient")
    end)
  end)
end)

-- Every ISA's kernels against the plain _ref ("scalar"), in one process. An
-- ISA this CPU (or LATTICE_ISA) lacks runs lowered and is reported pending.
describe("attention kernels of each ISA", function()
  local isas = { "avx2", "avx512" }

  local function max_diff(a, b)
    local x, y, m = a:reshape({ -1 }):tolist(), b:reshape({ -1 }):tolist(), 0
    assert.equal(#y, #x)
    for i = 1, #x do
      if x[i] ~= y[i] then m = math.max(m, math.abs(x[i] - y[i]) / (1 + math.abs(y[i]))) end
    end
    return m
  end

  -- Shapes that cross tile edges (16/32 query lanes, 64 keys, 32/64 backward
  -- keys), odd head dimensions, every mask kind, and the decode sizes.
  local shapes = {
    { B = 2, Hq = 4, Hkv = 2, T = 37, S = 37, D = 16, opts = { causal = true } },
    { B = 1, Hq = 2, Hkv = 1, T = 70, S = 133, D = 33, Dv = 17, opts = { causal = true, q_offset = 60 } },
    { B = 1, Hq = 3, Hkv = 3, T = 65, S = 65, D = 8, opts = { window = 20, alibi = lattice.array({ 0.1, 0.2, 0.3 }) } },
    { B = 1, Hq = 2, Hkv = 2, T = 100, S = 100, D = 24, opts = { chunk = 48 } },
    { B = 2, Hq = 2, Hkv = 1, T = 40, S = 50, D = 16, opts = { mask = randt({ 2, 1, 40, 50 }) } },
    { B = 1, Hq = 2, Hkv = 2, T = 30, S = 30, D = 16, opts = { mask = lattice.greater(randt({ 30, 30 }), -1) } },
    { B = 1, Hq = 6, Hkv = 2, T = 1, S = 600, D = 64, opts = { causal = true } },
    { B = 2, Hq = 4, Hkv = 1, T = 4, S = 300, D = 40, Dv = 24, opts = { window = 100, alibi = lattice.array({ 1, 0.5, 0.25, 0.125 }) } },
    { B = 1, Hq = 1, Hkv = 1, T = 3, S = 5, D = 3, opts = { causal = true, q_offset = -1 } },
  }

  for _, isa in ipairs(isas) do
    for n, c in ipairs(shapes) do
      it(("%s forward (tiles and decode) and backward match the _ref, case %d"):format(isa, n), function()
        local p = problem(c)
        local ro, rl = core.attention_with_isa(p.q, p.k, p.v, p.opts, "scalar")
        for _, path in ipairs({ "tiled", "decode" }) do
          local o, l, used = core.attention_with_isa(p.q, p.k, p.v, p.opts, isa, path)
          if used ~= isa then pending(isa .. " is not available here") return end
          assert(max_diff(o, ro) < 2e-6, path .. " output " .. max_diff(o, ro))
          assert(max_diff(l, rl) < 2e-6, path .. " log-sum-exp " .. max_diff(l, rl))
        end
        local g = randt({ c.B, c.Hq, c.T, c.Dv or c.D })
        local want = { core.attention_grad_with_isa(p.q, p.k, p.v, g, p.opts, "scalar") }
        local got = { core.attention_grad_with_isa(p.q, p.k, p.v, g, p.opts, isa) }
        for i, name in ipairs({ "dq", "dk", "dv" }) do
          assert(max_diff(got[i], want[i]) < 1e-5, name .. " " .. max_diff(got[i], want[i]))
        end
      end)
    end

    it(isa .. " tile product gives the bits of the _ref", function()
      for _, at in ipairs({ false, true }) do
        local a = randt(at and { 7, 13 } or { 13, 7 })
        local b, c = randt({ 7, 21 }), randt({ 13, 21 })
        local want = core.gemm_tile_with_isa(a, b, "scalar", { a_trans = at })
        local got, used = core.gemm_tile_with_isa(a, b, isa, { a_trans = at })
        if used ~= isa then pending(isa .. " is not available here") return end
        assert.are.same(want:tolist(), got:tolist())
        assert.are.same(core.gemm_tile_with_isa(a, b, "scalar", { a_trans = at, c = c }):tolist(),
          core.gemm_tile_with_isa(a, b, isa, { a_trans = at, c = c }):tolist())
        ref.assert_close(want:tolist(), (at and a:transpose() or a):matmul(b):tolist(), 1e-6)
      end
    end)
  end
end)

describe("attention and threads", function()
  after_each(function() lattice.set_num_threads(2) end)

  it("gives the same bits on 1 and 2 threads, forward, decode and backward", function()
    for _, c in ipairs({
      { B = 2, Hq = 4, Hkv = 2, T = 96, S = 96, D = 32, opts = { causal = true } },
      { B = 1, Hq = 4, Hkv = 2, T = 1, S = 1500, D = 64, opts = { causal = true } },
    }) do
      local p = problem(c)
      local g = randt({ c.B, c.Hq, c.T, c.D })
      local f = function(q, k, v) return (lattice.scaled_dot_product_attention(q, k, v, p.opts) * g):sum() end
      local results = {}
      for threads = 1, 2 do
        lattice.set_num_threads(threads)
        local grads = lattice.grad(f, { 1, 2, 3 })(p.q, p.k, p.v)
        results[threads] = { run(p):tolist(), grads[1]:tolist(), grads[2]:tolist(), grads[3]:tolist() }
      end
      assert.are.same(results[1], results[2])
    end
  end)
end)

describe("attention memory", function()
  -- Peak bytes of the op alone (forward, then forward and backward) at a
  -- sequence length, in a new process so that the peak starts from its inputs.
  local function peak(T, backward)
    local code = ([[
      local lattice = require "lattice"
      local q = lattice.random.normal({1, 2, %d, 64})
      local k, v, g = lattice.random.normal({1, 2, %d, 64}), lattice.random.normal({1, 2, %d, 64}), lattice.random.normal({1, 2, %d, 64})
      collectgarbage()
      local base = lattice.memory_stats().in_use
      if %s then
        local gr = lattice.grad(function(a, b, c)
          return (lattice.scaled_dot_product_attention(a, b, c, {causal = true}) * g):sum() end, {1, 2, 3})(q, k, v)
      else
        local o = lattice.scaled_dot_product_attention(q, k, v, {causal = true})
      end
      io.write(lattice.memory_stats().peak - base)
    ]]):format(T, T, T, T, backward and "true" or "false")
    local exe = arg and arg[-1] or "lua5.4"
    local cmd = ("%q -e %q"):format(exe, ("package.path = %q; package.cpath = %q; "):format(package.path, package.cpath)
      .. code:gsub("\n%s*", " "))
    local pipe = assert(io.popen(cmd .. " 2>&1"))
    local out = pipe:read("a")
    pipe:close()
    return assert(math.tointeger(tonumber(out)), out)
  end

  for _, backward in ipairs({ false, true }) do
    it(("grows linearly in T (%s): T = 2048 needs about 8x T = 256, far from the 64x of a score matrix"):format(
      backward and "forward and backward" or "forward"), function()
      local small, big = peak(256, backward), peak(2048, backward)
      local scores = 2 * 2048 * 2048 * 4 -- one float32 score matrix per head at T = 2048
      assert(big / small < 10, ("peak %d at T = 2048 against %d at T = 256"):format(big, small))
      assert(big < scores / 4, ("peak %d at T = 2048, a score matrix is %d"):format(big, scores))
    end)
  end
end)

describe("scaled_dot_product_attention arguments", function()
  local q, k, v = randt({ 1, 4, 3, 8 }), randt({ 1, 2, 5, 8 }), randt({ 1, 2, 5, 6 })
  local function err(msg, ...)
    local args = table.pack(...)
    assert.has_error(function() lattice.scaled_dot_product_attention(table.unpack(args, 1, args.n)) end, SDPA .. ": " .. msg)
  end

  it("names a missing or non-tensor argument as Lua does", function()
    assert.has_error(function() lattice.scaled_dot_product_attention(q, k) end,
      "bad argument #3 to '" .. SDPA .. "' (lattice.Tensor expected, got no value)")
    assert.has_error(function() lattice.scaled_dot_product_attention(q, "k", v) end,
      "bad argument #2 to '" .. SDPA .. "' (lattice.Tensor expected, got string)")
    err("too many arguments (expected at most 4, got 5)", q, k, v, {}, 1)
  end)

  it("checks ranks, dtypes and shapes", function()
    err("q must have 4 dimensions (B, H, T, D), got shape {4,3,8}", randt({ 4, 3, 8 }), k, v)
    err("k must be a float tensor, got int32", q, lattice.zeros({ 1, 2, 5, 8 }, "int32"), v)
    err("q, k and v must have the same batch size, got 1, 2 and 1", q, randt({ 2, 2, 5, 8 }), v)
    err("k has 2 heads, v has 1", q, k, randt({ 1, 1, 5, 6 }))
    err("q has 4 heads, not a multiple of the 3 heads of k and v", q, randt({ 1, 3, 5, 8 }), randt({ 1, 3, 5, 6 }))
    err("k and v must have at least one head, got 0", randt({ 1, 0, 3, 8 }), randt({ 1, 0, 5, 8 }), randt({ 1, 0, 5, 6 }))
    err("k has 5 positions, v has 4", q, k, randt({ 1, 2, 4, 6 }))
    err("q has head dimension 8, k has 7", q, randt({ 1, 2, 5, 7 }), v)
    err("the head dimension must be at least 1, got 0", randt({ 1, 4, 3, 0 }), randt({ 1, 2, 5, 0 }), v)
  end)

  it("checks every option", function()
    err("unknown option 'causl'", q, k, v, { causl = true })
    err("options must be a table, got string", q, k, v, "causal")
    err("option 'scale' must be a number, got string", q, k, v, { scale = "1" })
    err("scale must be finite, got inf", q, k, v, { scale = math.huge })
    err("option 'causal' must be a boolean, got number", q, k, v, { causal = 1 })
    err("option 'window' must be at least 1, got 0", q, k, v, { window = 0 })
    err("option 'chunk' must be an integer, got 2.5", q, k, v, { chunk = 2.5 })
    err("option 'q_offset' must be an integer, got string", q, k, v, { q_offset = "2" })
    err("causal = false contradicts window, which is always causal", q, k, v, { causal = false, window = 2 })
    err("causal = false contradicts mask = 'causal', which is causal", q, k, v, { causal = false, mask = "causal" })
    err("mask must be a lattice.Tensor or 'causal', got 'upper'", q, k, v, { mask = "upper" })
    err("mask must be a lattice.Tensor or 'causal', got number", q, k, v, { mask = 1 })
    err("mask must be a boolean or float tensor, got int64", q, k, v, { mask = lattice.zeros({ 3, 5 }, "int64") })
    err("mask of shape {3,4} does not broadcast to {1,4,3,5}", q, k, v, { mask = randt({ 3, 4 }) })
    err("mask of shape {1,1,1,3,5} does not broadcast to {1,4,3,5}", q, k, v, { mask = randt({ 1, 1, 1, 3, 5 }) })
    err("option 'alibi' must be a lattice.Tensor, got table", q, k, v, { alibi = { 1, 2, 3, 4 } })
    err("alibi must be a float tensor, got int32", q, k, v, { alibi = lattice.zeros({ 4 }, "int32") })
    err("alibi must have shape {4} (one slope per query head), got {2}", q, k, v, { alibi = randt({ 2 }) })
    err("positions must stay below 16777216, got q_offset 16777214, T 3, S 5", q, k, v, { q_offset = (1 << 24) - 2 })
    err("positions must stay below 16777216, got q_offset -9223372036854775808, T 3, S 5", q, k, v,
      { q_offset = math.mininteger })
  end)
end)
