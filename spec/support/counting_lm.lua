-- A language model written plainly in Lua for the generation specs, with
-- nn.LanguageModel's calling protocol and a cache that holds real per-row
-- state: the logits after token t of a row are W[t] + U[s % S], s the sum of
-- the row's tokens up to t. So a decode that feeds a wrong token, loses a
-- position, or keeps a beam's row in the wrong place gives other logits than
-- the full forward over the same sequence.
--
--   local lm = CountingLM(V, seed)    -- logits (B, T, V) of ids (B, T)
--   local cache = lm:make_cache(B, max_len)
--   local logits, cache = lm(tokens, {cache = cache})
local lattice = require "lattice"

local M = {}

local S = 7

local function table_of(rows, cols, seed)
  local s, t = seed, {}
  for i = 1, rows do
    t[i] = {}
    for j = 1, cols do
      s = (s * 1103515245 + 12345) % 2147483648
      t[i][j] = (s / 2147483648 * 2 - 1) * 2
    end
  end
  return t
end

local Cache = {}
Cache.__index = Cache

function Cache:truncate(n)
  assert(math.type(n) == "integer" and n >= 0 and n <= self.offset, "truncate out of range")
  for _, row in ipairs(self.rows) do
    for i = #row, n + 1, -1 do row[i] = nil end
  end
  self.offset = n
  return self
end

-- rows: an int64 tensor of 0-based rows to take the state of.
function Cache:reorder(rows)
  local src, new = rows:tolist(), {}
  for b, r in ipairs(src) do new[b] = table.move(self.rows[r + 1], 1, #self.rows[r + 1], 1, {}) end
  self.rows = new
  self.reorders = self.reorders + 1
  return self
end

local LM = {}
LM.__index = LM

function M.CountingLM(V, seed) return setmetatable({ V = V, W = table_of(V, V, seed), U = table_of(S, V, seed + 1), calls = 0 }, LM) end

function LM.make_cache(_, batch, max_len)
  local rows = {}
  for b = 1, batch do rows[b] = {} end
  return setmetatable({ rows = rows, offset = 0, batch = batch, max_len = max_len, reorders = 0 }, Cache)
end

-- The logits of row `history` (a list of ids, 0-based) at each of its last T positions.
function LM:_row_logits(history, T)
  local out, sum = {}, 0
  for i, t in ipairs(history) do
    sum = sum + t
    if i > #history - T then
      local l = {}
      for j = 1, self.V do l[j] = self.W[t + 1][j] + self.U[sum % S + 1][j] end
      out[#out + 1] = l
    end
  end
  return out
end

function LM:__call(tokens, opts)
  self.calls = self.calls + 1
  local cache = opts and opts.cache
  local rows, B, T = tokens:tolist(), tokens.shape[1], tokens.shape[2]
  local logits = {}
  for b = 1, B do
    local history = rows[b]
    if cache then
      assert(cache.batch == B, "cache batch")
      assert(cache.offset + T <= cache.max_len, "cache overflow")
      for _, t in ipairs(rows[b]) do cache.rows[b][#cache.rows[b] + 1] = t end
      history = cache.rows[b]
    end
    logits[b] = self:_row_logits(history, T)
  end
  if cache then cache.offset = cache.offset + T end
  return lattice.array(logits), cache
end

return M
