-- Byte-level BPE (core/data/bpe.c): training and encoding a text of about
-- 1 MB of words drawn from a Zipf-like law, against a one-thread memcpy of
-- the text's bytes in the same run (BPE is pointer chasing, not bandwidth: the ratio
-- says how far from a pass over memory each byte's work is). Before timing,
-- the merges of the text's first 4 KB are checked against a plain Lua
-- trainer that recounts every pair after each merge, and the whole text must
-- decode back to itself.
-- Usage: lattice bench/bpe.lua [MB, default 1]
package.path = arg[0]:gsub("[^/]*$", "") .. "?.lua;" .. package.path
local lattice = require "lattice"
local core = require "lattice.core"
local common = require "common"

local data = lattice.data
local MB = tonumber(arg and arg[1]) or 1
local SAMPLES = 5

-- The text: 2000 random words of 2 to 9 letters, word k drawn with weight ~ 1/k.
local function make_text(bytes)
  local s = 12345
  local function rand(n)
    s = (s * 1103515245 + 12345) % 2147483648
    return s % n
  end
  local words = {}
  for i = 1, 2000 do
    local w = {}
    for j = 1, 2 + rand(8) do w[j] = string.char(97 + rand(26)) end
    words[i] = table.concat(w)
  end
  local parts, n = {}, 0
  while n < bytes do
    local w = words[1 + math.floor(2000 * (rand(1000000) / 1000000) ^ 3)]
    parts[#parts + 1], n = w, n + #w + 1
  end
  return table.concat(parts, " "):sub(1, bytes)
end

-- The rule of lattice/data.h, recounting every pair after each merge.
local function reference_merges(text, max_merges)
  local ids, merges = { text:byte(1, -1) }, {}
  while #merges < max_merges do
    local counts, best, best_count = {}, nil, 0
    for i = 1, #ids - 1 do
      local k = ids[i] * 100000 + ids[i + 1]
      counts[k] = (counts[k] or 0) + 1
    end
    for k, c in pairs(counts) do
      if c > best_count or (c == best_count and k < best) then best, best_count = k, c end
    end
    if not best or best_count < 2 then break end -- min_frequency 2, the default
    local a, b, out, i = best // 100000, best % 100000, {}, 1
    merges[#merges + 1] = { a, b }
    while i <= #ids do
      if i < #ids and ids[i] == a and ids[i + 1] == b then out[#out + 1], i = 255 + #merges, i + 2
      else out[#out + 1], i = ids[i], i + 1 end
    end
    ids = out
  end
  return merges
end

local text = make_text(math.floor(MB * 1024 * 1024))
local head = text:sub(1, 4096)
local want = reference_merges(head, 64)
local got = data.BPETokenizer.train(head, { vocab_size = 256 + 64 }).merges:tolist()
assert(#got == #want, "bpe check: merge counts differ")
for i = 1, #want do
  assert(got[i][1] == want[i][1] and got[i][2] == want[i][2], "bpe check: merge " .. i .. " differs")
end

-- BPE runs on one thread, so the copy it is held against does too.
local function single_thread_memcpy(bytes)
  local threads = lattice.num_threads()
  lattice.set_num_threads(1)
  local t = core.bench_memcpy(bytes, 5)
  lattice.set_num_threads(threads)
  return t
end

local median = common.median

for _, vocab in ipairs({ 512, 1024, 4096 }) do
  local tok = data.BPETokenizer.train(text, { vocab_size = vocab })
  local ids = tok:encode(text)
  assert(tok:decode(ids) == text, "bpe check: the text does not decode to itself")
  local train_t, encode_t, copy_t = {}, {}, {}
  for i = 1, SAMPLES do
    local t0 = lattice.now()
    data.BPETokenizer.train(text, { vocab_size = vocab })
    train_t[i] = lattice.now() - t0
    t0 = lattice.now()
    tok:encode(text)
    encode_t[i] = lattice.now() - t0
    copy_t[i] = single_thread_memcpy(#text)
  end
  local tt, te, tc = median(train_t), median(encode_t), median(copy_t)
  common.report({
    bench = "bpe", vocab_size = tok.vocab_size, bytes = #text, tokens = ids.size,
    train_ms = tt * 1e3, train_mbps = #text / tt * 1e-6, encode_ms = te * 1e3, encode_mbps = #text / te * 1e-6,
    memcpy_mbps = #text / tc * 1e-6, train_ratio = tc / tt, encode_ratio = tc / te,
  })
end
