-- Random sparse supports and plain-Lua helpers for the sparse specs:
--   local sr = require "support.sparse_random"
--   local rows = sr.support(gen, {n = 40, batches = 3, lo = -4, hi = 4})
-- gen is a support.reference generator (values in [-1, 1)), so every spec's
-- data is the same on every run.
local lattice = require "lattice"

local M = {}

-- A key for a coordinate row {b, x, y, z}.
function M.key(r) return table.concat(r, ",", 1, 4) end

-- n distinct rows with batch in [0, batches) and x, y, z in [lo, hi], in the
-- order drawn (so batches are interleaved, not grouped). Some batches may be
-- left with few rows; `skip` (a batch index) is left empty on purpose.
function M.support(gen, opts)
  local n, batches, lo, hi = opts.n, opts.batches or 1, opts.lo or -3, opts.hi or 3
  local span, seen, rows = hi - lo + 1, {}, {}
  assert(n <= batches * span ^ 3, "sparse_random: support too small")
  while #rows < n do
    local r = { math.floor((gen() + 1) / 2 * batches), lo + math.floor((gen() + 1) / 2 * span),
      lo + math.floor((gen() + 1) / 2 * span), lo + math.floor((gen() + 1) / 2 * span) }
    if r[1] ~= opts.skip and not seen[M.key(r)] then
      seen[M.key(r)] = true
      rows[#rows + 1] = r
    end
  end
  return rows
end

-- A nested list (n, c) of generator values.
function M.values(gen, n, c)
  local t = {}
  for i = 1, n do
    t[i] = {}
    for j = 1, c do t[i][j] = gen() end
  end
  return t
end

-- Row counts per batch for `batches` batches.
function M.counts(rows, batches)
  local c = {}
  for b = 1, batches do c[b] = 0 end
  for _, r in ipairs(rows) do c[r[1] + 1] = c[r[1] + 1] + 1 end
  return c
end

-- A SparseTensor of rows and feature values (dtype default float32), with
-- batch counts for `batches` batches when given.
function M.tensor(rows, values, dtype, batches)
  local c = #values > 0 and #values[1] or 0
  local feats = #rows > 0 and lattice.array(values, dtype or "float32") or lattice.zeros({ 0, c }, dtype or "float32")
  local coords = #rows > 0 and lattice.array(rows, "int32") or lattice.zeros({ 0, 4 }, "int32")
  return lattice.SparseTensor(coords, feats, batches and { batch_counts = M.counts(rows, batches) } or nil)
end

-- floor(a / b) for integers, b > 0.
function M.floor_div(a, b) return (a - a % b) // b end

-- The offsets of one axis: an odd size r centred, an even one 0 .. r-1, times d.
function M.axis_offsets(r, d)
  local o = {}
  for i = 0, r - 1 do o[#o + 1] = (r % 2 == 1 and i - r // 2 or i) * d end
  return o
end

-- Every kernel offset {dx, dy, dz} in kernel-id order (x slowest).
function M.offsets(size, dilation)
  local ax, out = {}, {}
  for a = 1, 3 do ax[a] = M.axis_offsets(size[a], dilation[a]) end
  for _, dx in ipairs(ax[1]) do
    for _, dy in ipairs(ax[2]) do
      for _, dz in ipairs(ax[3]) do out[#out + 1] = { dx, dy, dz } end
    end
  end
  return out
end

-- Asserts that each one-line function raises an error positioned at its own
-- line (lattice's errors point at the caller's line, never inside lattice).
function M.assert_raised_here(fns)
  for _, f in ipairs(fns) do
    local ok, err = pcall(f)
    assert(not ok, "expected an error")
    local info = debug.getinfo(f, "S")
    local where = info.short_src .. ":" .. info.linedefined .. ":"
    assert(tostring(err):sub(1, #where) == where and not tostring(err):sub(#where + 1):match("^ [^ ]*%.lua:%d+:"),
      ("error not at the caller's line %s: %s"):format(where, tostring(err)))
  end
end

-- The tensor's rows as a Lua list (empty for no rows).
function M.rows_of(t) return t.shape[1] > 0 and t:tolist() or {} end

return M
