-- Quantized weights (core/quant, core/lua/quant.c): quantize_weight against a
-- plain-Lua transcription of MLX's affine quantize (codes, scales and biases
-- bit for bit), the packed layout on hand-made weights, the round-trip error
-- bound, lattice.linear with a QuantizedWeight against dequantize-then-matmul
-- for every ISA and every path (matrix-vector, tiles, blas), the int8-
-- activation product against its plain-Lua transcription (every ISA the same
-- bits) and against dequantize-then-matmul within its stated bound, the input
-- gradient tile by tile, mxfp8 / nvfp4 round trips on hand cases and against
-- a reference written from the formats' definitions, and every bad input.
local lattice = require "lattice"
local core = require "lattice.core" -- quant_linear_with_isa, quant_linear_grad_with_isa, quant_*_int8: test hooks
local gradcheck = require "support.gradcheck"
local ref = require "support.reference"
local qref = require "support.quant_reference"

local generator, flat, tensor, weighted = ref.generator, ref.flat, ref.tensor, ref.weighted
local f32 = qref.f32

local CONFIGS = {}
for _, bits in ipairs({ 2, 4, 8 }) do
  for _, gs in ipairs({ 32, 64, 128 }) do CONFIGS[#CONFIGS + 1] = { bits = bits, group_size = gs } end
end

local normal_rows = qref.normal_rows

local function from_rows(rows, dtype) return lattice.array(rows, dtype) end

local function rows_of(t) -- a 2-D tensor's rows as Lua lists
  return t:tolist()
end

describe("quantize_weight", function()
  it("gives MLX's affine codes, scales and biases for every bits and group_size", function()
    for _, c in ipairs(CONFIGS) do
      local rows = normal_rows(6, 256, 7 + c.bits + c.group_size)
      local qw = lattice.quantize_weight(from_rows(rows), c)
      local words, scales, biases = qref.quantize_rows(rows, c.bits, c.group_size)
      assert.are.same(words, rows_of(qw.weight))
      assert.are.same(scales, rows_of(qw.scales))
      assert.are.same(biases, rows_of(qw.biases))
      assert.equal("uint32", qw.weight.dtype)
      assert.are.same({ 6, 256 * c.bits // 32 }, qw.weight.shape)
      assert.are.same({ 6, 256 // c.group_size }, qw.scales.shape)
    end
  end)

  it("packs hand-made groups into known words, low bits first", function()
    -- w = (j mod 16) - 5: max 10 is the larger edge, scale -1, bias 10, code 10 - w
    local w = {}
    for j = 0, 31 do w[#w + 1] = (j % 16) - 5 end
    local qw = lattice.quantize_weight(lattice.array({ w }), { bits = 4, group_size = 32 })
    assert.are.same({ { 0x89ABCDEF, 0x01234567, 0x89ABCDEF, 0x01234567 } }, qw.weight:tolist())
    assert.are.same({ { -1 } }, qw.scales:tolist())
    assert.are.same({ { 10 } }, qw.biases:tolist())
    -- w = 5 - (j mod 16): min -10 is the larger edge, scale 1, bias -10, code w + 10 (the same codes)
    for j = 0, 31 do w[j + 1] = 5 - (j % 16) end
    qw = lattice.quantize_weight(lattice.array({ w }), { bits = 4, group_size = 32 })
    assert.are.same({ { 0x89ABCDEF, 0x01234567, 0x89ABCDEF, 0x01234567 } }, qw.weight:tolist())
    assert.are.same({ { 1 } }, qw.scales:tolist())
    assert.are.same({ { -10 } }, qw.biases:tolist())
    -- 2 bits: w = (j mod 4) - 1, scale -1, bias 2, codes 3, 2, 1, 0: bytes 0x1B
    for j = 0, 31 do w[j + 1] = (j % 4) - 1 end
    qw = lattice.quantize_weight(lattice.array({ w }), { bits = 2, group_size = 32 })
    assert.are.same({ { 0x1B1B1B1B, 0x1B1B1B1B } }, qw.weight:tolist())
    -- 8 bits: w = 0..31; code 255 for 0, 0 for the edge 31, bytes low first
    for j = 0, 31 do w[j + 1] = j end
    qw = lattice.quantize_weight(lattice.array({ w }), { bits = 8, group_size = 32 })
    local words = qw.weight:tolist()[1]
    assert.equal(255, words[1] & 0xff)
    assert.equal(0, words[8] >> 24)
    assert.equal(f32(31 / -255), qw.scales:item())
    assert.equal(31, qw.biases:item())
  end)

  it("keeps scales and biases in float16 and bfloat16, with codes from the float32 scale", function()
    for _, dt in ipairs({ "float16", "bfloat16" }) do
      local w = from_rows(normal_rows(4, 128, 3)):astype(dt)
      local rows = w:astype("float32"):tolist()
      local qw = lattice.quantize_weight(w, { bits = 4, group_size = 64 })
      local words, scales, biases = qref.quantize_rows(rows, 4, 64)
      assert.are.same(words, qw.weight:tolist())
      assert.equal(dt, qw.scales.dtype)
      assert.are.same(lattice.array(scales):astype(dt):tolist(), qw.scales:tolist())
      assert.are.same(lattice.array(biases):astype(dt):tolist(), qw.biases:tolist())
      assert.equal(dt, qw.dtype)
      assert.equal(dt, qw:dequantize().dtype)
    end
  end)

  it("has bits, group_size, mode, shape, dtype and nbytes, and prints them", function()
    local qw = lattice.quantize_weight(lattice.zeros({ 3, 4, 64 }), { bits = 8, group_size = 32 })
    assert.equal(8, qw.bits)
    assert.equal(32, qw.group_size)
    assert.equal("affine", qw.mode)
    assert.are.same({ 3, 4, 64 }, qw.shape)
    assert.equal("float32", qw.dtype)
    assert.equal(3 * 4 * 16 * 4 + 2 * (3 * 4 * 2 * 4), qw.nbytes)
    assert.equal("QuantizedWeight(shape={3,4,64}, bits=8, group_size=32, mode=affine, dtype=float32)", tostring(qw))
    assert.is_true(lattice.is_quantized_weight(qw))
    assert.is_false(lattice.is_quantized_weight(lattice.zeros({ 2 })))
    -- MLX's defaults: 4 bits in groups of 64
    local d = lattice.quantize_weight(lattice.zeros({ 2, 64 }))
    assert.equal(4, d.bits)
    assert.equal(64, d.group_size)
  end)
end)

describe("dequantize", function()
  it("is fl(fl(scale * q) + bias) of the codes", function()
    local rows = normal_rows(3, 128, 11)
    local qw = lattice.quantize_weight(from_rows(rows), { bits = 4, group_size = 32 })
    local got = qw:dequantize():tolist()
    local words, scales, biases = qref.quantize_rows(rows, 4, 32)
    for r = 1, 3 do
      for k = 1, 128 do
        local word = words[r][(k - 1) // 8 + 1]
        local q = (word >> (((k - 1) % 8) * 4)) & 15
        local g = (k - 1) // 32 + 1
        assert.equal(f32(f32(scales[r][g] * q) + biases[r][g]), got[r][k])
      end
    end
    assert.are.same(got, lattice.dequantize(qw):tolist())
  end)

  -- Per group, with the step D = max((max - min) / (2^bits - 1), 1e-7):
  -- every value is within D of the original (MLX's edge adjustment can leave
  -- the far edge up to D * (2^bits - 1) / 2^bits from its code), plus float32
  -- rounding of the arithmetic, below 2^-22 of the group's largest |w|.
  it("keeps every value within one step of the group's range", function()
    for _, c in ipairs(CONFIGS) do
      local rows = normal_rows(8, 256, 100 + c.bits * c.group_size, 0.3)
      local got = lattice.quantize_weight(from_rows(rows), c):dequantize():tolist()
      local worst = 0
      for r = 1, 8 do
        for g = 0, 256 // c.group_size - 1 do
          local lo, hi = math.huge, -math.huge
          for k = g * c.group_size + 1, (g + 1) * c.group_size do
            lo, hi = math.min(lo, rows[r][k]), math.max(hi, rows[r][k])
          end
          local step = math.max((hi - lo) / (2 ^ c.bits - 1), 1e-7)
          local bound = step + 2 ^ -22 * math.max(-lo, hi)
          for k = g * c.group_size + 1, (g + 1) * c.group_size do
            local e = math.abs(got[r][k] - rows[r][k])
            assert(e <= bound, ("bits %d group %d: error %g > bound %g"):format(c.bits, c.group_size, e, bound))
            worst = math.max(worst, e / step)
          end
        end
      end
      assert(worst > 0.4, "the bound is not loose: some error reaches 0.4 steps") -- rounding alone reaches 1/2
    end
  end)

  it("gives zero back to within a rounding of the group's edge", function()
    local rows = normal_rows(4, 128, 5)
    for r = 1, 4 do
      for k = 1, 128, 5 do rows[r][k] = 0 end
    end
    for _, c in ipairs(CONFIGS) do
      local got = lattice.quantize_weight(from_rows(rows), c):dequantize():tolist()
      for r = 1, 4 do
        for k = 1, 128, 5 do
          local g0 = (k - 1) // c.group_size * c.group_size
          local edge = 0
          for j = g0 + 1, g0 + c.group_size do edge = math.max(edge, math.abs(rows[r][j])) end
          assert(math.abs(got[r][k]) <= 2 ^ -23 * edge, ("zero came back as %g"):format(got[r][k]))
        end
      end
    end
  end)
end)

-- The bound on a float32 dot product of n terms in any order, FMA or not:
-- n * 2^-24 * sum |term|. With ws = s * q + b, |s q| + |b| <= |w| + 2 |b|
-- bounds every term the kernels form (s * (sum q x) + b * (sum x) included).
local function product_bound(n, sum_abs) return (n + 8) * 2 ^ -24 * sum_abs + 1e-30 end

-- W's values as the products use them: fl(fl(s * q) + b) in float32 (the
-- dequantize of a float16 or bfloat16 weight rounds them to its dtype).
local function float32_values(qw)
  if qw.mode ~= "affine" or qw.scales.dtype == "float32" then return qw:dequantize():astype("float32") end
  return lattice.QuantizedWeight(qw.weight, qw.scales:astype("float32"), qw.biases:astype("float32"),
    { bits = qw.bits, group_size = qw.group_size }):dequantize()
end

-- Plain-Lua x @ W^T (+ b) with the dequantized W, and each element's bound.
local function reference_linear(x, qw, b)
  local w, xs, bs = float32_values(qw):tolist(), x:tolist(), b and b:tolist()
  local biases = qw.biases and qw.biases:astype("float32"):tolist()
  local gs, y, bound = qw.group_size, {}, {}
  for i, xr in ipairs(xs) do
    y[i], bound[i] = {}, {}
    for j, wr in ipairs(w) do
      local s, a = bs and bs[j] or 0, 0
      for k, xv in ipairs(xr) do
        s = s + wr[k] * xv
        a = a + (math.abs(wr[k]) + 2 * math.abs(biases and biases[j][(k - 1) // gs + 1] or 0)) * math.abs(xv)
      end
      y[i][j], bound[i][j] = s, product_bound(#xr, a) + (bs and 2 ^ -24 * math.abs(s) or 0)
    end
  end
  return y, bound
end

local function assert_within(got, want, bound, what)
  for i = 1, #want do
    for j = 1, #want[i] do
      local e = math.abs(got[i][j] - want[i][j])
      assert(e <= bound[i][j], ("%s [%d][%d]: got %.9g, want %.9g (bound %.3g)"):format(what, i, j, got[i][j],
        want[i][j], bound[i][j]))
    end
  end
end

local ISAS = { "scalar", "avx2", "avx512" }
local PATHS = { "auto", "matvec", "tiles", "blas" }

describe("linear with a QuantizedWeight", function()
  -- M rows of x: 1 (the matrix-vector kernel), 2..17 (the register tiles'
  -- remainders, one-tile panels), 40 (48-row panels); N not a multiple of
  -- 3 or 4; K past one tile of 1024 columns.
  local shapes = { { 1, 53, 1088 }, { 3, 7, 256 }, { 9, 50, 128 }, { 17, 6, 192 }, { 40, 13, 64 } }

  it("equals dequantize-then-matmul within the float32 product bound, for every ISA and path", function()
    for si, sh in ipairs(shapes) do
      local m, n, k = sh[1], sh[2], sh[3]
      for _, c in ipairs({ { bits = 4, group_size = 64 }, { bits = 8, group_size = 32 }, { bits = 2, group_size = 32 },
        { bits = 2, group_size = 64 }, { mode = "mxfp8" }, { mode = "nvfp4" } }) do
        local qw = lattice.quantize_weight(tensor(flat(lattice.array(normal_rows(n, k, si))), { n, k }), c)
        local x = lattice.array(normal_rows(m, k, 50 + si))
        local b = lattice.array(normal_rows(1, n, 9)[1])
        local want, bound = reference_linear(x, qw, b)
        for _, isa in ipairs(ISAS) do
          for _, path in ipairs(PATHS) do
            local y = core.quant_linear_with_isa(x, qw, b, isa, path)
            assert_within(y:tolist(), want, bound, ("%s %s bits %d %s"):format(isa, path, qw.bits, qw.mode))
          end
        end
        assert_within(lattice.linear(x, qw, b):tolist(), want, bound, "lattice.linear")
      end
    end
  end)

  it("reads float16 and bfloat16 scales and biases in every kernel", function()
    for _, dt in ipairs({ "float16", "bfloat16" }) do
      for _, bits in ipairs({ 4, 8 }) do
        local qw = lattice.quantize_weight(lattice.array(normal_rows(11, 192, bits)):astype(dt), { bits = bits, group_size = 64 })
        for _, m in ipairs({ 1, 5, 20 }) do
          local x = lattice.array(normal_rows(m, 192, m))
          local want, bound = reference_linear(x, qw)
          for _, isa in ipairs(ISAS) do
            for _, path in ipairs(PATHS) do
              assert_within(core.quant_linear_with_isa(x, qw, nil, isa, path):tolist(), want, bound, dt .. " " .. isa .. " " .. path)
            end
          end
        end
      end
    end
  end)

  it("gives the scalar _ref kernels' results to within twice the bound on every ISA", function()
    local qw = lattice.quantize_weight(lattice.array(normal_rows(29, 512, 4)), { bits = 4, group_size = 64 })
    for _, m in ipairs({ 1, 5 }) do
      local x = lattice.array(normal_rows(m, 512, 8))
      local _, bound = reference_linear(x, qw)
      local base = core.quant_linear_with_isa(x, qw, nil, "scalar"):tolist()
      for _, isa in ipairs({ "avx2", "avx512" }) do
        local got = core.quant_linear_with_isa(x, qw, nil, isa):tolist()
        for i = 1, m do
          for j = 1, 29 do assert(math.abs(got[i][j] - base[i][j]) <= 2 * bound[i][j], isa) end
        end
      end
    end
  end)

  it("keeps the leading axes of x and its dtype when it is the weight's", function()
    local qw = lattice.quantize_weight(lattice.array(normal_rows(8, 64, 2)):astype("float16"), { bits = 8, group_size = 32 })
    local x = lattice.array(normal_rows(6, 64, 3)):reshape({ 2, 3, 64 })
    local y = lattice.linear(x:astype("float16"), qw)
    assert.are.same({ 2, 3, 8 }, y.shape)
    assert.equal("float16", y.dtype)
    assert.equal("float32", lattice.linear(x, qw).dtype)
  end)

  it("gives the same result on 1 and 2 threads", function()
    local qw = lattice.quantize_weight(lattice.array(normal_rows(512, 1024, 6)), { bits = 4, group_size = 64 })
    for _, m in ipairs({ 1, 8 }) do
      local x = lattice.array(normal_rows(m, 1024, 1))
      local before = lattice.num_threads()
      lattice.set_num_threads(1)
      local one = lattice.linear(x, qw):tolist()
      lattice.set_num_threads(2)
      local two = lattice.linear(x, qw):tolist()
      lattice.set_num_threads(before)
      assert.are.same(one, two)
    end
  end)
end)

describe("the input gradient through a QuantizedWeight", function()
  it("is g @ W within the product bound, tile by tile, for every ISA", function()
    for _, sh in ipairs({ { 1, 50, 1088 }, { 9, 13, 256 }, { 20, 97, 64 } }) do
      local m, n, k = sh[1], sh[2], sh[3]
      local qw = lattice.quantize_weight(lattice.array(normal_rows(n, k, n)), { bits = 4, group_size = 32 })
      local g = lattice.array(normal_rows(m, n, m))
      local w, gs = qw:dequantize():tolist(), g:tolist()
      local biases = qw.biases:tolist()
      local want, bound = {}, {}
      for i = 1, m do
        want[i], bound[i] = {}, {}
        for kk = 1, k do
          local s, a = 0, 0
          for j = 1, n do
            s = s + gs[i][j] * w[j][kk]
            a = a + math.abs(gs[i][j]) * (math.abs(w[j][kk]) + 2 * math.abs(biases[j][(kk - 1) // 32 + 1]))
          end
          want[i][kk], bound[i][kk] = s, product_bound(n, a)
        end
      end
      for _, isa in ipairs(ISAS) do
        for _, path in ipairs({ "auto", "tiles", "blas" }) do
          assert_within(core.quant_linear_grad_with_isa(g, qw, isa, path):tolist(), want, bound, isa .. " " .. path)
        end
      end
    end
  end)

  it("passes a float64 gradient check in x and the bias", function()
    local qw = lattice.quantize_weight(lattice.array(normal_rows(5, 64, 3)), { bits = 4, group_size = 32 })
    local x = lattice.array(normal_rows(3, 64, 4)):astype("float64")
    local b = lattice.array(normal_rows(1, 5, 5)[1]):astype("float64")
    gradcheck(function(x_, b_) return weighted(lattice.linear(x_, qw, b_)) end, { x, b })
  end)

  it("matches lattice.grad of the float32 forward to the dense product with the dequantized weight", function()
    local qw = lattice.quantize_weight(lattice.array(normal_rows(7, 128, 3)), { bits = 8, group_size = 64 })
    local w = qw:dequantize()
    local x = lattice.array(normal_rows(4, 128, 9))
    local gq = lattice.grad(function(x_) return weighted(lattice.linear(x_, qw)) end)(x)
    local gd = lattice.grad(function(x_) return weighted(lattice.linear(x_, w)) end)(x)
    ref.assert_close(gq:tolist(), gd:tolist(), 1e-5)
  end)
end)

describe("linear with int8 activations", function()
  -- M rows: 1, 3, 9 and 17 (the 8-row register tiles and their remainders);
  -- N not a multiple of the pack's 16 outputs; every group size.
  local shapes = { { 1, 53, 256 }, { 3, 7, 256 }, { 9, 50, 128 }, { 17, 33, 384 } }
  local configs = { { bits = 4, group_size = 32 }, { bits = 4, group_size = 64 }, { bits = 4, group_size = 128 },
    { bits = 8, group_size = 32 }, { bits = 8, group_size = 64 }, { bits = 8, group_size = 128 } }

  it("is the plain-Lua int8 product on every ISA, the same bits on all of them", function()
    for si, sh in ipairs(shapes) do
      local m, n, k = sh[1], sh[2], sh[3]
      for ci, c in ipairs(configs) do
        local qw = lattice.quantize_weight(lattice.array(normal_rows(n, k, si * 10 + ci)), c)
        local x = lattice.array(normal_rows(m, k, 70 + si))
        local want, bound = qref.int8_linear(x:tolist(), qw)
        local base = core.quant_linear_with_isa(x, qw, nil, "scalar", "int8"):tolist()
        assert_within(base, want, bound, ("scalar bits %d group %d"):format(c.bits, c.group_size))
        for _, isa in ipairs({ "avx2", "avx512" }) do
          assert.are.same(base, core.quant_linear_with_isa(x, qw, nil, isa, "int8"):tolist())
        end
      end
    end
  end)

  it("reads float16 and bfloat16 scales and biases", function()
    for _, dt in ipairs({ "float16", "bfloat16" }) do
      local qw = lattice.quantize_weight(lattice.array(normal_rows(21, 192, 5)):astype(dt), { bits = 4, group_size = 64 })
      local x = lattice.array(normal_rows(10, 192, 6))
      local want, bound = qref.int8_linear(x:tolist(), qw)
      for _, isa in ipairs(ISAS) do
        assert_within(core.quant_linear_with_isa(x, qw, nil, isa, "int8"):tolist(), want, bound, dt .. " " .. isa)
      end
    end
  end)

  -- |x_k - d xi_k| <= d (1/2 + 3 * 127 * 2^-24) < 0.50003 d: the rounding to
  -- the nearest code, and the three float32 roundings in inv, x * inv and d
  -- (docs/quantization.md). So each output is within sum over groups of
  -- 0.50003 d sum |w_k| of the float product, plus the roundings of both.
  it("is dequantize-then-matmul within the int8 rounding's bound", function()
    for si, sh in ipairs(shapes) do
      local m, n, k = sh[1], sh[2], sh[3]
      for ci, c in ipairs(configs) do
        local qw = lattice.quantize_weight(lattice.array(normal_rows(n, k, si * 10 + ci)), c)
        local x = lattice.array(normal_rows(m, k, 70 + si))
        local b = lattice.array(normal_rows(1, n, 9)[1])
        local w, xs, bs = float32_values(qw):tolist(), x:tolist(), b:tolist()
        local _, eps, xq = qref.int8_linear(xs, qw)
        local got = core.quant_linear_int8(x, qw, nil, b):tolist()
        local gs = c.group_size
        for i = 1, m do
          for j = 1, n do
            local want, bound, mag = bs[j], eps[i][j], 0
            for kk = 1, k do
              local g = (kk - 1) // gs + 1
              want = want + w[j][kk] * xs[i][kk]
              bound = bound + 0.50003 * xq[i].d[g] * math.abs(w[j][kk])
              mag = mag + math.abs(w[j][kk] * xs[i][kk])
            end
            bound = bound + product_bound(k, mag) + 2 ^ -24 * math.abs(want)
            local e = math.abs(got[i][j] - want)
            assert(e <= bound, ("[%d][%d]: got %.9g, want %.9g (bound %.3g)"):format(i, j, got[i][j], want, bound))
          end
        end
      end
    end
  end)

  it("keeps one row on the matrix-vector kernel, and mxfp8, nvfp4 and 2 bits on the float product", function()
    local qw = lattice.quantize_weight(lattice.array(normal_rows(40, 256, 3)), { bits = 4, group_size = 64 })
    local x1 = lattice.array(normal_rows(1, 256, 4))
    assert.are.same(lattice.linear(x1, qw):tolist(), core.quant_linear_int8(x1, qw):tolist())
    local x = lattice.array(normal_rows(5, 256, 4))
    assert.are.same(core.quant_linear_with_isa(x, qw, nil, "avx512", "int8"):tolist(), core.quant_linear_int8(x, qw):tolist())
    for _, c in ipairs({ { bits = 2, group_size = 64 }, { mode = "mxfp8" }, { mode = "nvfp4" } }) do
      local q = lattice.quantize_weight(lattice.array(normal_rows(40, 256, 3)), c)
      assert.are.same(lattice.linear(x, q):tolist(), core.quant_linear_with_isa(x, q, nil, "avx512", "int8"):tolist())
    end
  end)

  it("uses a pack made once as a pack made for the call", function()
    local qw = lattice.quantize_weight(lattice.array(normal_rows(70, 128, 8)), { bits = 8, group_size = 32 })
    local pack = core.quant_pack_int8(qw)
    -- 5 tiles of 16 outputs, 4 groups of (16 x 32 codes + 16 scales + 16 biases)
    assert.are.same({ 5 * 4 * (16 * 32 + 128) }, pack.shape)
    assert.equal("uint8", pack.dtype)
    local x = lattice.array(normal_rows(6, 128, 9))
    assert.are.same(core.quant_linear_int8(x, qw):tolist(), core.quant_linear_int8(x, qw, pack):tolist())
  end)

  it("gives NaN for a group holding NaN or an infinity, zeros for a zero group", function()
    local qw = lattice.quantize_weight(lattice.array(normal_rows(16, 64, 1)), { bits = 4, group_size = 32 })
    local rows = normal_rows(3, 64, 2)
    rows[1][5], rows[2][40] = 0 / 0, math.huge
    for k = 1, 64 do rows[3][k] = 0 end
    local y = core.quant_linear_int8(lattice.array(rows), qw):tolist()
    for j = 1, 16 do
      assert(y[1][j] ~= y[1][j] and y[2][j] ~= y[2][j], "NaN")
      assert.equal(0, y[3][j])
    end
  end)

  it("gives the same result on 1 and 2 threads", function()
    local qw = lattice.quantize_weight(lattice.array(normal_rows(512, 1024, 6)), { bits = 4, group_size = 64 })
    local x = lattice.array(normal_rows(8, 1024, 1))
    local before = lattice.num_threads()
    lattice.set_num_threads(1)
    local one = core.quant_linear_int8(x, qw):tolist()
    lattice.set_num_threads(2)
    local two = core.quant_linear_int8(x, qw):tolist()
    lattice.set_num_threads(before)
    assert.are.same(one, two)
  end)

  it("takes the float product's gradient: the rounding passes straight through", function()
    local qw = lattice.quantize_weight(lattice.array(normal_rows(7, 128, 3)), { bits = 8, group_size = 64 })
    local x = lattice.array(normal_rows(4, 128, 9))
    local gi = lattice.grad(function(x_) return weighted(core.quant_linear_int8(x_, qw)) end)(x)
    local gf = lattice.grad(function(x_) return weighted(lattice.linear(x_, qw)) end)(x)
    assert.are.same(gf:tolist(), gi:tolist())
  end)

  it("rejects weights it cannot take and packs that do not fit", function()
    local q2 = lattice.quantize_weight(lattice.zeros({ 4, 64 }), { bits = 2, group_size = 32 })
    assert.has_error(function() core.quant_pack_int8(q2) end,
      "pack_int8: int8 activations need an affine 4- or 8-bit weight, got affine with 2 bits")
    local fp = lattice.quantize_weight(lattice.zeros({ 4, 64 }), { mode = "mxfp8" })
    assert.has_error(function() core.quant_linear_int8(lattice.zeros({ 2, 64 }), fp) end,
      "linear: int8 activations need an affine 4- or 8-bit weight, got mxfp8 with 8 bits")
    local qw = lattice.quantize_weight(lattice.zeros({ 4, 64 }), { bits = 4, group_size = 32 })
    local other = core.quant_pack_int8(lattice.quantize_weight(lattice.zeros({ 40, 64 }), { bits = 4, group_size = 32 }))
    for _, bad in ipairs({ other, lattice.zeros({ 2, 16 }, "uint8"), lattice.zeros({ core.quant_pack_int8(qw).shape[1] }) }) do
      assert.has_error(function() core.quant_linear_int8(lattice.zeros({ 2, 64 }), qw, bad) end,
        "linear: the int8 pack does not fit the weight (make it with pack_int8)")
    end
    assert.has_error(function() core.quant_linear_int8(lattice.zeros({ 2, 32 }), qw) end,
      "linear: weight has 64 input features, x has 32")
  end)
end)

describe("mxfp8 and nvfp4", function()
  it("round mxfp8 hand cases: E8M0 scale rounded up, E4M3 values to nearest even", function()
    local x = { 448, 1, 0.3, -0.3, 2 ^ -7, 3 * 2 ^ -8, 1000 }
    for i = #x + 1, 32 do x[i] = 0 end
    -- max 1000: 1000 / 448 = 2.23 -> scale 4; 448 / 4 = 112 exact; 1 / 4 = 0.25;
    -- 0.3 / 4 = 0.075 -> 0.078125 (1.25 * 2^-4); 2^-7 / 4 = 2^-9, the least
    -- subnormal; 3 * 2^-10 is a tie between 1 and 2 units of 2^-9: 2 (even);
    -- 1000 / 4 = 250 -> 256 (240 is further)
    local got = lattice.quantize_dequantize(lattice.array({ x }), { mode = "mxfp8" }):tolist()[1]
    assert.are.same({ 448, 1, 0.3125, -0.3125, 2 ^ -7, 2 ^ -6, 1024 }, { table.unpack(got, 1, 7) })
    local qw = lattice.quantize_weight(lattice.array({ x }), { mode = "mxfp8" })
    assert.equal(127 + 2, qw.scales:item()) -- 2^2
    -- codes (exponent field << 3 | mantissa): 112 = 1.75 * 2^6: 0x6e; 0.25: 0x28; 0.078125: 0x1a; its negative 0x9a
    assert.equal(0x6e | (0x28 << 8) | (0x1a << 16) | (0x9a << 24), qw.weight:tolist()[1][1])
  end)

  it("round nvfp4 hand cases: E4M3 scale, E2M1 values with ties to the even code", function()
    local x = { 6, 2.5, 5, 0.25, 0.75, 1.25, 1.75, -0.1, 3.5, -6, 0, 0, 0, 0, 0, 0 }
    -- max 6: scale 1; 2.5 -> 2, 5 -> 4, 0.25 -> 0, 0.75 -> 1, 1.25 -> 1, 1.75 -> 2, -0.1 -> -0, 3.5 -> 4
    local got = lattice.quantize_dequantize(lattice.array({ x }), { mode = "nvfp4" }):tolist()[1]
    assert.are.same({ 6, 2, 4, 0, 1, 1, 2, 0, 4, -6 }, { table.unpack(got, 1, 10) })
    -- max 7: 7 / 6 = 1.1667 -> scale 1.125 (E4M3); 7 / 1.125 = 6.2 saturates at 6: 6.75
    local y = { 7, 1 }
    for i = 3, 16 do y[i] = 0 end
    local qw = lattice.quantize_weight(lattice.array({ y }), { mode = "nvfp4" })
    assert.equal(0x39, qw.scales:item()) -- exponent 7 (2^0), mantissa 1
    assert.equal(6.75, qw:dequantize():tolist()[1][1])
    assert.equal(1.125, qw:dequantize():tolist()[1][2]) -- 1 / 1.125 = 0.889 -> 1
    assert.equal(0x7 | (0x2 << 4), qw.weight:tolist()[1][1] & 0xff)
  end)

  it("equal the formats' definitions on random groups, activations and weights alike", function()
    local gen = generator(21)
    local xs = {}
    for i = 1, 64 * 32 do xs[i] = f32(gen() * 2 ^ math.floor(gen() * 12 - 6)) end
    for _, mode in ipairs({ "mxfp8", "nvfp4" }) do
      local x = lattice.array(xs):reshape({ 64, 32 })
      local want = qref.qdq(xs, mode)
      assert.are.same(want, flat(lattice.quantize_dequantize(x, { mode = mode })))
      assert.are.same(want, flat(lattice.quantize_weight(x, { mode = mode }):dequantize()))
      -- the stated bounds: mxfp8 max(|x| / 16, scale 2^-10), nvfp4 max(|x|, scale) / 4
      for g = 0, #xs // (mode == "mxfp8" and 32 or 16) - 1 do
        local gs = mode == "mxfp8" and 32 or 16
        local _, scale = qref.qdq_group(table.move(xs, g * gs + 1, (g + 1) * gs, 1, {}), mode)
        for i = g * gs + 1, (g + 1) * gs do
          local e, a = math.abs(want[i] - xs[i]), math.abs(xs[i])
          local bound = mode == "mxfp8" and math.max(a / 16, scale * 2 ^ -10) or math.max(a, scale) / 4
          assert(e <= bound * (1 + 1e-6), ("%s: |%g - %g| > %g"):format(mode, want[i], xs[i], bound))
        end
      end
    end
  end)

  it("pass the gradient straight through", function()
    local x = lattice.array(normal_rows(2, 32, 1))
    local g = lattice.grad(function(x_) return weighted(lattice.quantize_dequantize(x_, { mode = "mxfp8" })) end)(x)
    local want = lattice.grad(function(x_) return weighted(x_) end)(x)
    assert.are.same(want:tolist(), g:tolist())
  end)
end)

describe("QuantizedWeight from parts", function()
  it("shares a checkpoint's weight, scales and biases", function()
    local qw = lattice.quantize_weight(lattice.array(normal_rows(4, 64, 1)), { bits = 4, group_size = 32 })
    local again = lattice.QuantizedWeight(qw.weight, qw.scales, qw.biases, { bits = 4, group_size = 32 })
    assert.are.same(qw:dequantize():tolist(), again:dequantize():tolist())
    assert.is_true(again.weight:shares_storage(qw.weight))
  end)
end)

describe("rejects", function()
  local w = lattice.zeros({ 4, 64 })
  it("bad configurations", function()
    assert.has_error(function() lattice.quantize_weight(w, { bits = 3 }) end,
      "quantize_weight: bits must be 2, 4 or 8 for mode 'affine', got 3")
    assert.has_error(function() lattice.quantize_weight(w, { group_size = 16 }) end,
      "quantize_weight: group_size must be 32, 64 or 128 for mode 'affine', got 16")
    assert.has_error(function() lattice.quantize_weight(w, { mode = "mxfp8", bits = 4 }) end,
      "quantize_weight: mode 'mxfp8' takes bits 8 and group_size 32, got bits 4 and group_size 32")
    assert.has_error(function() lattice.quantize_weight(w, { mode = "int4" }) end,
      "quantize_weight: mode must be 'affine', 'mxfp8' or 'nvfp4', got 'int4'")
    assert.has_error(function() lattice.quantize_weight(w, { bits = 4.5 }) end,
      "quantize_weight: bits must be an integer, got 4.5")
    assert.has_error(function() lattice.quantize_weight(w, { bit = 4 }) end, "quantize_weight: unknown option 'bit'")
  end)

  it("weights it cannot quantize", function()
    assert.has_error(function() lattice.quantize_weight(lattice.zeros({ 4, 100 }), { group_size = 64 }) end,
      "quantize_weight: the input dimension (the last axis, 100) is not divisible by group_size 64")
    assert.has_error(function() lattice.quantize_weight(lattice.zeros({ 64 })) end,
      "quantize_weight: w must have at least 2 dimensions, got shape {64}")
    assert.has_error(function() lattice.quantize_weight(lattice.zeros({ 2, 64 }, "int32")) end,
      "quantize_weight: w must be a float tensor, got int32")
    local bad = lattice.zeros({ 2, 64 }):tolist()
    bad[2][3] = 0 / 0
    assert.has_error(function() lattice.quantize_weight(lattice.array(bad)) end,
      "quantize_weight: w holds nan at flat index 66")
    assert.has_error(function() lattice.quantize_weight("w") end,
      "bad argument #1 to 'quantize_weight' (lattice.Tensor expected, got string)")
  end)

  it("parts that do not agree", function()
    local qw = lattice.quantize_weight(w, { bits = 4, group_size = 32 })
    assert.has_error(function() lattice.QuantizedWeight(qw.weight, qw.scales, qw.biases, { bits = 8, group_size = 32 }) end,
      "QuantizedWeight: scales have shape {4,2}, expected {4,1}")
    assert.has_error(function() lattice.QuantizedWeight(qw.weight, qw.scales, nil, { bits = 4, group_size = 32 }) end,
      "QuantizedWeight: mode 'affine' needs biases")
    assert.has_error(function()
      lattice.QuantizedWeight(qw.weight:astype("int32"), qw.scales, qw.biases, { bits = 4, group_size = 32 })
    end, "QuantizedWeight: the packed weight must be uint32 with at least 2 dimensions, got int32 {4,8}")
    assert.has_error(function()
      lattice.QuantizedWeight(qw.weight, qw.scales, qw.biases:astype("float16"), { bits = 4, group_size = 32 })
    end, "QuantizedWeight: biases are float16, scales float32")
    assert.has_error(function() lattice.QuantizedWeight(qw.weight, qw.scales, qw.biases, { mode = "nvfp4" }) end,
      "QuantizedWeight: mode 'nvfp4' keeps its scales as uint8, got float32")
  end)

  it("products that do not fit", function()
    local qw = lattice.quantize_weight(w, { bits = 4, group_size = 32 })
    assert.has_error(function() lattice.linear(lattice.zeros({ 2, 32 }), qw) end,
      "linear: weight has 64 input features, x has 32")
    assert.has_error(function() lattice.linear(lattice.zeros({ 2, 64 }), qw, lattice.zeros({ 3 })) end,
      "linear: bias has shape {3}, expected {4}")
    assert.has_error(function() lattice.linear(lattice.zeros({ 2, 64 }, "int32"), qw) end,
      "linear: x must be a float tensor, got int32")
    local q3 = lattice.quantize_weight(lattice.zeros({ 2, 4, 64 }), { bits = 4, group_size = 32 })
    assert.has_error(function() lattice.linear(lattice.zeros({ 2, 64 }), q3) end,
      "linear: a quantized weight must be 2-D (output, input), got shape {2,4,64}")
    assert.has_error(function()
      lattice.grad(function(s)
        local q = lattice.QuantizedWeight(qw.weight, s, qw.biases, { bits = 4, group_size = 32 })
        return lattice.linear(lattice.ones({ 1, 64 }), q):sum()
      end)(qw.scales)
    end, "linear: a quantized weight takes no gradient (its weight, scales and biases must be frozen)")
  end)

  it("activation formats it does not have", function()
    assert.has_error(function() lattice.quantize_dequantize(lattice.zeros({ 2, 32 }), { mode = "affine" }) end,
      "quantize_dequantize: mode must be 'mxfp8' or 'nvfp4', got 'affine'")
    assert.has_error(function() lattice.quantize_dequantize(lattice.zeros({ 2, 24 }), { mode = "nvfp4" }) end,
      "quantize_dequantize: the last axis (24) must be divisible by nvfp4's group size 16")
    assert.has_error(function() lattice.quantize_dequantize(lattice.zeros({ 2, 32 })) end,
      "quantize_dequantize: mode must be 'affine', 'mxfp8' or 'nvfp4', got nil")
  end)
end)
