-- Plain-Lua references for the quantization specs:
--   affine_group(ws, bits)   MLX's affine quantize of one group (mlx/backend/
--                            cpu/quantized.cpp `quantize`), transcribed
--                            operation by operation in float32 arithmetic
--   pack(codes, bits)        codes into uint32 words, low bits first
--   quantize_rows(rows, bits, group_size) -> words, scales, biases per row
--   e4m3, e2m1, e8m0_up      the formats' roundings, written from their
--                            definitions (not from MLX's bit tricks)
--   qdq_group(xs, mode)      mxfp8 / nvfp4 quantize-dequantize of one group
--   normal_rows(rows, cols, seed[, scale])  float32 test weights, rows of Lua numbers
--   int8_rows(xs, gs)        rows of x rounded to int8 per group, as the int8
--                            product does it (docs/quantization.md)
--   int8_linear(xs, qw)      that product: exact integer sums per group, the
--                            float epilogue, and each output's rounding bound
-- float32 arithmetic is emulated by rounding every double result to float32
-- (string.pack "f"): for + - * / of float32 operands that is the correctly
-- rounded float32 result, since a double holds more than 2 * 24 + 2 bits.
local ref = require "support.reference"

local M = {}

local function f32(v) return (string.unpack("f", string.pack("f", v))) end
M.f32 = f32

-- A (rows, cols) float32 weight of roughly normal values (a sum of three
-- uniforms) from a fixed generator, as rows of Lua numbers.
function M.normal_rows(rows, cols, seed, scale)
  local gen, out = ref.generator(seed), {}
  for r = 1, rows do
    out[r] = {}
    for c = 1, cols do out[r][c] = f32((gen() + gen() + gen()) * (scale or 1)) end
  end
  return out
end

-- Round half to even, as rintf in the default rounding mode.
local function rint(x)
  local f = math.floor(x)
  local d = x - f
  if d > 0.5 then return f + 1 end
  if d < 0.5 then return f end
  return f % 2 == 0 and f or f + 1
end
M.rint = rint

-- ---- affine ----

-- codes, scale, bias of one group (ws: float32 values), in MLX's order of
-- operations: std::max/std::min from +-inf, scale = max(range / n_bins,
-- 1e-7) negated unless |min| > |max|, the edge adjusted to an exact code.
function M.affine_group(ws, bits)
  local n_bins = 2 ^ bits - 1
  local w_min, w_max = math.huge, -math.huge
  for _, w in ipairs(ws) do
    if w_max < w then w_max = w end
    if w < w_min then w_min = w end
  end
  local mask = math.abs(w_min) > math.abs(w_max)
  local scale = f32(f32(w_max - w_min) / n_bins)
  local eps = f32(1e-7)
  if scale < eps then scale = eps end
  if not mask then scale = -scale end
  local edge = mask and w_min or w_max
  local q0 = rint(f32(edge / scale))
  local bias = 0.0
  if q0 ~= 0 then
    scale = f32(edge / q0)
    bias = edge
  end
  local codes = {}
  for i, w in ipairs(ws) do
    local q = rint(f32(f32(w - bias) / scale))
    codes[i] = math.tointeger(math.min(math.max(q, 0), n_bins))
  end
  return codes, scale, bias
end

function M.pack(codes, bits)
  local words, per = {}, 32 // bits
  for j = 1, #codes, per do
    local word = 0
    for i = 0, per - 1 do word = word | (codes[j + i] << (i * bits)) end
    words[#words + 1] = word
  end
  return words
end

-- rows: a list of rows of float32 values.
function M.quantize_rows(rows, bits, gs)
  local words, scales, biases = {}, {}, {}
  for r, row in ipairs(rows) do
    words[r], scales[r], biases[r] = {}, {}, {}
    for g = 1, #row // gs do
      local codes, s, b = M.affine_group(table.move(row, (g - 1) * gs + 1, g * gs, 1, {}), bits)
      for _, w in ipairs(M.pack(codes, bits)) do words[r][#words[r] + 1] = w end
      scales[r][g], biases[r][g] = s, b
    end
  end
  return words, scales, biases
end

-- ---- the fp formats ----

local function sign_of(v) return (v < 0 or 1 / v < 0) and -1 or 1 end

-- E4M3 (e4m3fn): 3 mantissa bits, normals from 2^-6, subnormals in steps of
-- 2^-9, round half to even, saturating at 448.
function M.e4m3(v)
  local s, a = sign_of(v), math.abs(v)
  if a >= 448 then return s * 448 end
  local step = 2 ^ -9
  if a >= 2 ^ -6 then
    local e = -6
    while 2 ^ (e + 1) <= a do e = e + 1 end
    step = 2 ^ (e - 3)
  end
  return s * rint(a / step) * step
end

local FP4 = { 0, 0.5, 1, 1.5, 2, 3, 4, 6 }
M.FP4 = FP4

-- E2M1: the nearest of the eight magnitudes, a tie to the even code.
function M.e2m1(v)
  local s, a = sign_of(v), math.abs(v)
  local best, bd = 1, math.huge
  for i, c in ipairs(FP4) do
    local d = math.abs(a - c)
    if d < bd or (d == bd and (i - 1) % 2 == 0) then best, bd = i, d end
  end
  return s * FP4[best]
end

-- E8M0 rounded up: the smallest power of two >= f, exponents in [-127, 127]; 1 for 0.
function M.e8m0_up(f)
  if f == 0 then return 1 end
  local e = -127
  while 2 ^ e < f and e < 127 do e = e + 1 end
  return 2 ^ e
end

-- One group through mxfp8 (32 values, E8M0 scale from max|x| / 448, E4M3
-- values) or nvfp4 (16 values, E4M3 scale from max|x| / 6, E2M1 values).
function M.qdq_group(xs, mode)
  local amax = 0
  for _, x in ipairs(xs) do amax = math.max(amax, math.abs(x)) end
  local scale
  if mode == "nvfp4" then
    scale = M.e4m3(f32(amax / 6))
  else
    scale = M.e8m0_up(f32(amax / 448))
  end
  local fmt = mode == "nvfp4" and M.e2m1 or M.e4m3
  local out = {}
  for i, x in ipairs(xs) do
    local v = scale == 0 and 0 or f32(x / scale)
    out[i] = f32(scale * fmt(v))
  end
  return out, scale
end

-- A flat list through qdq_group, group by group.
function M.qdq(flat, mode)
  local gs, out = mode == "nvfp4" and 16 or 32, {}
  for g = 0, #flat // gs - 1 do
    local o = M.qdq_group(table.move(flat, g * gs + 1, (g + 1) * gs, 1, {}), mode)
    table.move(o, 1, gs, g * gs + 1, out)
  end
  return out
end

-- ---- int8 activations ----

-- Each row's groups: amax = max |x|, inv = fl(127 / amax), xi = rint(fl(x *
-- inv)) (ties to even), d = fl(amax / 127), xs = fl(d * sum xi).
function M.int8_rows(xs, gs)
  local out = {}
  for i, row in ipairs(xs) do
    local q, d, sums = {}, {}, {}
    for g = 1, #row // gs do
      local amax = 0
      for k = (g - 1) * gs + 1, g * gs do amax = math.max(amax, math.abs(row[k])) end
      local inv = amax > 0 and f32(127 / amax) or 0
      local s = 0
      for k = (g - 1) * gs + 1, g * gs do
        q[k] = math.tointeger(math.max(-127, math.min(127, rint(f32(row[k] * inv)))))
        s = s + q[k]
      end
      d[g] = f32(amax / 127)
      sums[g] = f32(d[g] * s)
    end
    out[i] = { q = q, d = d, xs = sums }
  end
  return out
end

-- The codes of a QuantizedWeight's rows (affine), unpacked from its words.
function M.codes(qw)
  local per, mask, out = 32 // qw.bits, (1 << qw.bits) - 1, {}
  for r, words in ipairs(qw.weight:tolist()) do
    out[r] = {}
    for k = 0, #words * per - 1 do
      out[r][k + 1] = (math.tointeger(words[k // per + 1]) >> (k % per * qw.bits)) & mask
    end
  end
  return out
end

-- y[i][o] of the int8 product for x's rows xs: per group the exact integer
-- sum of codes times xi, then acc = fma(isum, fl(s d), acc) and acc = fma(b,
-- xs, acc) emulated in double (each fma's product is exact there; the double
-- sum rounded to float32 may differ from fma's one rounding by an ulp of the
-- step's result, at most 2^-23 of the magnitudes summed so far, so bound[i][o]
-- allows that for each of the 2 * groups steps).
function M.int8_linear(xs, qw)
  local codes, gs = M.codes(qw), qw.group_size
  local scales, biases = qw.scales:astype("float32"):tolist(), qw.biases:astype("float32"):tolist()
  local xq, y, bound = M.int8_rows(xs, gs), {}, {}
  for i, r in ipairs(xq) do
    y[i], bound[i] = {}, {}
    for o, c in ipairs(codes) do
      local acc, mag = 0, 0
      for g = 1, #r.d do
        local isum = 0
        for k = (g - 1) * gs + 1, g * gs do isum = isum + c[k] * r.q[k] end
        local sd = f32(scales[o][g] * r.d[g])
        acc = f32(isum * sd + acc)
        acc = f32(biases[o][g] * r.xs[g] + acc)
        mag = mag + math.abs(isum * sd) + math.abs(biases[o][g] * r.xs[g])
      end
      y[i][o], bound[i][o] = acc, 2 * #r.d * 2 ^ -23 * mag + 1e-30
    end
  end
  return y, bound, xq
end

return M
