-- A brute-force sparse convolution in plain Lua, written from the conventions
-- of issue 13 (and mlx_lattice) rather than from lattice's C code:
--   local sref = require "support.sparse_reference"
--
-- Coordinates are Lua lists {b, x, y, z}; features lists of rows; a weight is
-- the flat row-major list of a (C_out, Kx, Ky, Kz, C_in) tensor. Every kind
-- reduces to a list of edges {i, o, k} (1-based input row, output row, kernel
-- id), found by looking coordinates up in a Lua table:
--   conv3d                 output support: (b, x // s, ...) of the input rows,
--                          first seen first, duplicates merged; output o reads
--                          the input at o*s + d_k - padding
--   subm_conv3d            output support: the input's; o reads o + d_k
--   conv_transpose3d       input p writes p*s + d_k - padding (support: those,
--                          first seen first, duplicates merged)
--   generative_conv_t.3d   input p writes p*s + d_k (support: every one reached)
-- conv and subm gather (output by output), transposed and generative scatter
-- (input by input); the edges are then ordered by output row and kernel id,
-- the order lattice's relations list them in. Kernel offsets: per axis an odd
-- size r is -(r//2) .. r//2, an even one 0 .. r-1, times the dilation; kernel
-- id (ix * Ky + iy) * Kz + iz, x slowest.
local M = {}

local function key(c) return c[1] .. "," .. c[2] .. "," .. c[3] .. "," .. c[4] end

-- The row (1-based) of each coordinate of a list, by key.
local function index_of(coords)
  local at = {}
  for i, c in ipairs(coords) do at[key(c)] = i end
  return at
end

--- offsets(size, dilation) -> list of {dx, dy, dz} in kernel-id order.
function M.offsets(size, dilation)
  local axes = {}
  for a = 1, 3 do
    axes[a] = {}
    for i = 0, size[a] - 1 do
      local d = size[a] % 2 == 1 and i - size[a] // 2 or i
      axes[a][i + 1] = d * dilation[a]
    end
  end
  local out = {}
  for _, dx in ipairs(axes[1]) do
    for _, dy in ipairs(axes[2]) do
      for _, dz in ipairs(axes[3]) do out[#out + 1] = { dx, dy, dz } end
    end
  end
  return out
end

-- A spec with every field a list of 3 (missing ones: stride 1, padding 0,
-- dilation 1), from numbers or lists.
function M.spec(s)
  local function t3(v, d)
    v = v == nil and d or v
    return type(v) == "table" and v or { v, v, v }
  end
  return { size = t3(s.size, 3), stride = t3(s.stride, 1), padding = t3(s.padding, 0), dilation = t3(s.dilation, 1) }
end

-- The coordinate input row p writes at offset d (transposed, generative).
local function scatter_target(kind, p, d, s)
  local pad = kind == "transposed" and s.padding or { 0, 0, 0 }
  return { p[1], p[2] * s.stride[1] + d[1] - pad[1], p[3] * s.stride[2] + d[2] - pad[2],
    p[4] * s.stride[3] + d[3] - pad[3] }
end

--- support(kind, coords, spec) -> the output coordinates the kind makes.
function M.support(kind, coords, spec)
  local s = M.spec(spec)
  if kind == "subm" then return coords end
  local out, seen = {}, {}
  local function add(c)
    if not seen[key(c)] then
      seen[key(c)] = true
      out[#out + 1] = c
    end
  end
  local offsets = M.offsets(s.size, kind == "generative" and { 1, 1, 1 } or s.dilation)
  for _, p in ipairs(coords) do
    if kind == "conv" then
      add({ p[1], p[2] // s.stride[1], p[3] // s.stride[2], p[4] // s.stride[3] }) -- // floors, also below 0
    else
      for _, d in ipairs(offsets) do add(scatter_target(kind, p, d, s)) end
    end
  end
  return out
end

--- edges(kind, in_coords, out_coords, spec) -> list of {i, o, k}, by o then k.
function M.edges(kind, in_coords, out_coords, spec)
  local s = M.spec(spec)
  local offsets = M.offsets(s.size, kind == "generative" and { 1, 1, 1 } or s.dilation)
  local edges = {}
  if kind == "conv" or kind == "subm" then
    local at = index_of(in_coords)
    local st = kind == "subm" and { 1, 1, 1 } or s.stride
    local pad = kind == "subm" and { 0, 0, 0 } or s.padding
    for o, q in ipairs(out_coords) do
      for k, d in ipairs(offsets) do
        local i = at[key({ q[1], q[2] * st[1] + d[1] - pad[1], q[3] * st[2] + d[2] - pad[2],
          q[4] * st[3] + d[3] - pad[3] })]
        if i then edges[#edges + 1] = { i, o, k } end
      end
    end
  else
    local at = index_of(out_coords)
    for i, p in ipairs(in_coords) do
      for k, d in ipairs(offsets) do
        local o = at[key(scatter_target(kind, p, d, s))]
        if o then edges[#edges + 1] = { i, o, k } end
      end
    end
    table.sort(edges, function(a, b) return a[2] < b[2] or (a[2] == b[2] and a[3] < b[3]) end)
  end
  return edges, #offsets
end

-- A fresh list of n zeros, and an n x m table of them.
local function list(n)
  local t = {}
  for i = 1, n do t[i] = 0 end
  return t
end

local function zeros(n, m)
  local t = {}
  for i = 1, n do t[i] = list(m) end
  return t
end

--- conv(problem) -> results: the forward and, for a cotangent, every gradient,
-- each with the sum of the absolute values of its terms and their number (to
-- bound the rounding error of a float32 accumulation).
-- problem: {edges, K, n_in, n_out, c_in, c_out, x (n_in rows), w (flat), b (list or nil), g (n_out rows or nil)}
-- results: {y, y_abs, y_terms, dx, dx_abs, dx_terms, dw, dw_abs, dw_terms, db, db_abs, db_terms}
function M.conv(p)
  local K, ci, co = p.K, p.c_in, p.c_out
  local function widx(j, k, c) return ((j - 1) * K + (k - 1)) * ci + c end
  local r = { y = zeros(p.n_out, co), y_abs = zeros(p.n_out, co), y_terms = zeros(p.n_out, co) }
  for o = 1, p.n_out do
    for j = 1, co do
      local b = p.b and p.b[j] or 0
      r.y[o][j], r.y_abs[o][j], r.y_terms[o][j] = b, math.abs(b), 1
    end
  end
  for _, e in ipairs(p.edges) do
    local i, o, k = e[1], e[2], e[3]
    for j = 1, co do
      for c = 1, ci do
        local t = p.x[i][c] * p.w[widx(j, k, c)]
        r.y[o][j] = r.y[o][j] + t
        r.y_abs[o][j] = r.y_abs[o][j] + math.abs(t)
        r.y_terms[o][j] = r.y_terms[o][j] + 1
      end
    end
  end
  if not p.g then return r end
  r.dx, r.dx_abs, r.dx_terms = zeros(p.n_in, ci), zeros(p.n_in, ci), zeros(p.n_in, ci)
  r.dw, r.dw_abs, r.dw_terms = list(co * K * ci), list(co * K * ci), list(co * K * ci)
  r.db, r.db_abs, r.db_terms = list(co), list(co), list(co)
  for _, e in ipairs(p.edges) do
    local i, o, k = e[1], e[2], e[3]
    for j = 1, co do
      for c = 1, ci do
        local w = widx(j, k, c)
        local tx, tw = p.g[o][j] * p.w[w], p.g[o][j] * p.x[i][c]
        r.dx[i][c], r.dx_abs[i][c], r.dx_terms[i][c] = r.dx[i][c] + tx, r.dx_abs[i][c] + math.abs(tx), r.dx_terms[i][c] + 1
        r.dw[w], r.dw_abs[w], r.dw_terms[w] = r.dw[w] + tw, r.dw_abs[w] + math.abs(tw), r.dw_terms[w] + 1
      end
    end
  end
  for o = 1, p.n_out do
    for j = 1, co do
      r.db[j], r.db_abs[j], r.db_terms[j] = r.db[j] + p.g[o][j], r.db_abs[j] + math.abs(p.g[o][j]), r.db_terms[j] + 1
    end
  end
  return r
end

--- random_support(gen, n, opts) -> n distinct coordinates {b, x, y, z} with
-- batch in 0 .. opts.batches - 1 and x, y, z in opts.lo .. opts.hi, from gen
-- (a generator of values in [-1, 1), support.reference's).
function M.random_support(gen, n, opts)
  local lo, hi, batches = opts.lo or -4, opts.hi or 4, opts.batches or 1
  local function pick(a, b) return a + math.floor((gen() + 1) / 2 * (b - a + 1)) end
  local out, seen = {}, {}
  assert(n <= batches * (hi - lo + 1) ^ 3, "random_support: more points than the box holds")
  while #out < n do
    local c = { pick(0, batches - 1), pick(lo, hi), pick(lo, hi), pick(lo, hi) }
    if not seen[key(c)] then
      seen[key(c)] = true
      out[#out + 1] = c
    end
  end
  return out
end

return M
