-- KV caches for incremental decoding, preallocated to their longest length
-- and written in place, one step's keys and values at a time (the seed
-- concatenates the whole history every step, copying O(T) per token).
--
--   KVCache(batch, n_kv_heads, max_len, head_dim[, {dtype = "float32"}])
--     one attention layer's keys and values, (batch, n_kv_heads, max_len,
--     head_dim) each; `offset` positions of them are filled.
--   Cache(layers, batch, max_len)
--     a model's: one entry per layer (a KVCache, or false for a layer that
--     keeps no state), and the model's own `offset`, the positions seen.
--
-- The buffers are the one mutable tensor state of lattice: a view of them
-- (cache:keys(), cache:values()) shows what was written later too. They are
-- for inference: a tracked key (a gradient being taken) is refused.
local lattice = require "lattice"
local core = require "lattice.core"
local check_options = require("lattice.nn.module").check_options

local M = {}

local function check_count(v, what, fname, min)
  if math.type(v) ~= "integer" or v < min then
    error(("%s: %s must be an integer of at least %d, got %s"):format(fname, what, min, tostring(v)), 3)
  end
end

local KVCache = {}
KVCache.__index = KVCache
KVCache.__name = "lattice.KVCache"

--- KVCache(batch, n_kv_heads, max_len, head_dim[, {dtype}]): an empty cache
-- (offset 0) with zeroed buffers; dtype float32 (default), float16 or
-- bfloat16 (keys and values are converted on the write; the attention kernel
-- reads them back in float32).
function M.KVCache(batch, n_kv_heads, max_len, head_dim, opts)
  local fname = "KVCache"
  opts = check_options(opts, { dtype = true }, fname)
  check_count(batch, "batch", fname, 1)
  check_count(n_kv_heads, "n_kv_heads", fname, 1)
  check_count(max_len, "max_len", fname, 1)
  check_count(head_dim, "head_dim", fname, 1)
  local dtype = opts.dtype or "float32"
  if dtype ~= "float32" and dtype ~= "float16" and dtype ~= "bfloat16" then
    error(("%s: dtype must be float32, float16 or bfloat16, got %s"):format(fname, tostring(dtype)), 2)
  end
  local shape = { batch, n_kv_heads, max_len, head_dim }
  return setmetatable({
    k = lattice.zeros(shape, dtype),
    v = lattice.zeros(shape, dtype),
    offset = 0,
    batch = batch,
    n_kv_heads = n_kv_heads,
    max_len = max_len,
    head_dim = head_dim,
    dtype = dtype,
  }, KVCache)
end

function M.is_kv_cache(v) return getmetatable(v) == KVCache end

-- The C write, its message raised without this file's position (a caller's
-- module prefixes its own name).
local function write(buf, pos, src)
  local ok, err = pcall(core.kv_cache_write, buf, pos, src)
  if not ok then error(err, 0) end
end

--- kv:append(k, v) -> keys, values: k and v (B, n_kv_heads, T, head_dim)
-- written at positions offset .. offset + T - 1, offset advanced by T; the
-- results are views of every position filled (B, n_kv_heads, offset, D).
-- Nothing changes when k or v does not fit.
function KVCache:append(k, v)
  local t = k.shape[3]
  if self.offset + t > self.max_len then
    error(("KVCache: %d new positions after %d do not fit in max_len %d"):format(t, self.offset, self.max_len), 2)
  end
  if v.shape[3] ~= t then error(("KVCache: k has %d positions, v %d"):format(t, v.shape[3]), 2) end
  write(self.k, self.offset, k)
  write(self.v, self.offset, v)
  self.offset = self.offset + t
  return self:keys(), self:values()
end

--- kv:keys(), kv:values(): views of the positions filled so far.
function KVCache:keys() return self.k:slice(3, 1, self.offset) end

function KVCache:values() return self.v:slice(3, 1, self.offset) end

--- kv:truncate(n): keeps the first n positions (rewinding a draft, a
-- rejected speculation); kv:reset() empties it. Nothing is freed.
function KVCache:truncate(n)
  if math.type(n) ~= "integer" or n < 0 or n > self.offset then
    error(("KVCache: truncate: n must be an integer in [0, %d], got %s"):format(self.offset, tostring(n)), 2)
  end
  self.offset = n
  return self
end

function KVCache:reset() return self:truncate(0) end

-- rows: an integer tensor of `batch` row indices (0-based, as stored in
-- tensors), checked once for a whole Cache.
local function check_rows(rows, batch, fname)
  if not lattice.is_tensor(rows) or rows.ndim ~= 1 or rows.shape[1] ~= batch or
      not (rows.dtype == "int32" or rows.dtype == "int64") then
    error(("%s: reorder: rows must be an int32 or int64 tensor of %d row indices"):format(fname, batch), 3)
  end
  local lo, hi = lattice.min(rows):item(), lattice.max(rows):item()
  if lo < 0 or hi >= batch then
    error(("%s: reorder: row indices must be in [0, %d), got %d .. %d"):format(fname, batch, lo, hi), 3)
  end
end

local function gather_rows(self, rows)
  if self.offset == 0 then return end
  local k, v = lattice.take(self:keys(), rows, 1), lattice.take(self:values(), rows, 1)
  write(self.k, 0, k)
  write(self.v, 0, v)
end

--- kv:reorder(rows): row b of the batch becomes old row rows[b] (0-based),
-- every filled position (a beam search keeping its best continuations);
-- rows may repeat. One copy of the filled positions.
function KVCache:reorder(rows)
  check_rows(rows, self.batch, "KVCache")
  gather_rows(self, rows)
  return self
end

function KVCache:__tostring()
  return ("KVCache(batch=%d, n_kv_heads=%d, max_len=%d, head_dim=%d, dtype=%s, offset=%d)"):format(self.batch,
    self.n_kv_heads, self.max_len, self.head_dim, self.dtype, self.offset)
end

-- ---- a model's cache ----

local Cache = {}
Cache.__index = Cache
Cache.__name = "lattice.Cache"

--- Cache(layers, batch, max_len): layers is a list with one entry per layer:
-- the state that layer's block keeps (a KVCache), or false.
function M.Cache(layers, batch, max_len)
  return setmetatable({ layers = layers, batch = batch, max_len = max_len, offset = 0 }, Cache)
end

function M.is_cache(v) return getmetatable(v) == Cache end

function Cache:__len() return #self.layers end

--- cache:truncate(n), cache:reset(): every layer rewound to n positions.
function Cache:truncate(n)
  if math.type(n) ~= "integer" or n < 0 or n > self.offset then
    error(("Cache: truncate: n must be an integer in [0, %d], got %s"):format(self.offset, tostring(n)), 2)
  end
  for _, layer in ipairs(self.layers) do
    if layer then layer:truncate(n) end
  end
  self.offset = n
  return self
end

function Cache:reset() return self:truncate(0) end

--- cache:reorder(rows): every layer's rows reordered (KVCache:reorder).
function Cache:reorder(rows)
  check_rows(rows, self.batch, "Cache")
  for _, layer in ipairs(self.layers) do
    if layer then gather_rows(layer, rows) end
  end
  return self
end

-- The offsets of every layer, and the model's: what a failed step restores.
function Cache:_offsets()
  local saved = { self.offset }
  for i, layer in ipairs(self.layers) do saved[i + 1] = layer and layer.offset or false end
  return saved
end

function Cache:_restore(saved)
  self.offset = saved[1]
  for i, layer in ipairs(self.layers) do
    if layer then layer.offset = saved[i + 1] end
  end
end

function Cache:__tostring()
  return ("Cache(%d layers, batch=%d, max_len=%d, offset=%d)"):format(#self.layers, self.batch, self.max_len,
    self.offset)
end

return M
