-- A textbook attention module written plainly in Lua doubles, from a lattice
-- attention module's own weights: the reference the attention, block and
-- language-model specs compare with.
--
--   forward(attn, x, o) -> out: x a nested Lua table (B, S, d_model); out the
--   same shape, every position's output. o:
--     causal, window, chunk   the structural masks (window and chunk causal)
--     mask(b, h, t, j)        an additive term (t, j 1-based), or nil
--     alibi                   a list of n_heads slopes, or nil
--     rope                    {base = ...} to rotate q and k (rotate-half),
--                             positions t - 1, or (t - 1) mod chunk with chunk
--     qk_norm                 per-head RMSNorm of q and k (eps 1e-5)
--     scale                   the scores' factor
--   project(attn, xb, o) -> q, k, v: one sequence's (xb: S rows) projections
--   as [t][head] rows of head_dim, normalised and rotated as above.
local M = {}

local function linear(lin, x)
  local w = lin.weight:astype("float64"):tolist()
  local b = lin.bias and lin.bias:astype("float64"):tolist()
  local y = {}
  for o = 1, #w do
    local s = b and b[o] or 0
    for i = 1, #x do s = s + w[o][i] * x[i] end
    y[o] = s
  end
  return y
end
M.linear = linear

-- rows[h][d] of one position's projection split into heads of D features.
local function heads(v, n, D)
  local out = {}
  for h = 1, n do
    out[h] = {}
    for d = 1, D do out[h][d] = v[(h - 1) * D + d] end
  end
  return out
end

local function rms_norm(row, w, eps)
  local ss = 0
  for _, x in ipairs(row) do ss = ss + x * x end
  local r = 1 / math.sqrt(ss / #row + eps)
  local out = {}
  for i, x in ipairs(row) do out[i] = x * r * w[i] end
  return out
end
M.rms_norm = rms_norm

local function rope(row, p, base)
  local D, out = #row, {}
  local half = D // 2
  for i = 1, D do out[i] = row[i] end
  for i = 0, half - 1 do
    local theta = p * base ^ (-2 * i / D)
    local a, b = row[i + 1], row[i + half + 1]
    out[i + 1] = a * math.cos(theta) - b * math.sin(theta)
    out[i + half + 1] = a * math.sin(theta) + b * math.cos(theta)
  end
  return out
end

local function visible(o, p, j)
  if (o.causal or o.window or o.chunk) and j > p then return false end
  if o.window and j < p - o.window + 1 then return false end
  if o.chunk and j < (p // o.chunk) * o.chunk then return false end
  return true
end

-- q, k, v per position: [t][h] rows of D, normalised and rotated.
local function project(attn, xb, o)
  local H, Hkv, D = attn.n_heads, attn.n_kv_heads, attn.head_dim
  local qn = o.qk_norm and attn.q_norm.weight:astype("float64"):tolist()
  local kn = o.qk_norm and attn.k_norm.weight:astype("float64"):tolist()
  local q, k, v = {}, {}, {}
  for t, x in ipairs(xb) do
    q[t], k[t], v[t] = heads(linear(attn.q_proj, x), H, D), heads(linear(attn.k_proj, x), Hkv, D),
        heads(linear(attn.v_proj, x), Hkv, D)
    local pos = o.chunk and (t - 1) % o.chunk or t - 1
    for h = 1, H do
      if qn then q[t][h] = rms_norm(q[t][h], qn, 1e-5) end
      if o.rope then q[t][h] = rope(q[t][h], pos, o.rope.base) end
    end
    for h = 1, Hkv do
      if kn then k[t][h] = rms_norm(k[t][h], kn, 1e-5) end
      if o.rope then k[t][h] = rope(k[t][h], pos, o.rope.base) end
    end
  end
  return q, k, v
end
M.project = project

-- softmax over the visible keys of query t, head h, then the weighted values.
local function attend(q, k, v, o, b, h, hk, t)
  local p, xs, m = t - 1, {}, -math.huge
  for j = 1, #k do
    if visible(o, p, j - 1) then
      local s = 0
      for d = 1, #q[t][h] do s = s + q[t][h][d] * k[j][hk][d] end
      s = s * o.scale
      if o.alibi then s = s - o.alibi[h] * math.abs(p - (j - 1)) end
      if o.mask then s = s + o.mask(b, h, t, j) end
      xs[j], m = s, math.max(m, s)
    end
  end
  local row, sum = {}, 0
  for e = 1, #v[1][hk] do row[e] = 0 end
  for j, s in pairs(xs) do
    local w = math.exp(s - m)
    sum = sum + w
    for e = 1, #row do row[e] = row[e] + w * v[j][hk][e] end
  end
  for e = 1, #row do row[e] = row[e] / sum end
  return row
end

function M.forward(attn, x, o)
  local H, Hkv = attn.n_heads, attn.n_kv_heads
  local out = {}
  for b, xb in ipairs(x) do
    local q, k, v = project(attn, xb, o)
    out[b] = {}
    for t = 1, #xb do
      local cat = {}
      for h = 1, H do
        for _, e in ipairs(attend(q, k, v, o, b, h, (h - 1) // (H // Hkv) + 1, t)) do cat[#cat + 1] = e end
      end
      out[b][t] = linear(attn.o_proj, cat)
    end
  end
  return out
end

return M
