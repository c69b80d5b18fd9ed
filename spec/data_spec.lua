-- lattice.data: the tokenizers against plain Lua references (a UTF-8 splitter
-- that decodes then range-checks, a BPE trainer that recounts every pair
-- after each merge), byte-exact round trips of arbitrary bytes, files; the
-- text dataset's windows, split and batches (each epoch a permutation, seeded,
-- resumable); sparse scenes collated into one batch; every bad input.
local lattice = require "lattice"
local data = lattice.data

local tmp = os.tmpname()
os.remove(tmp)
local function path(name) return tmp .. "-" .. name end

local function list(t) return t:reshape({ -1 }):tolist() end

-- Random byte strings: raw bytes, ASCII and valid characters of every length
-- mixed, so a splitter meets truncated and invalid sequences too.
local function random_bytes(n)
  local parts = {}
  for i = 1, n do
    local r = math.random()
    if r < 0.4 then
      parts[i] = string.char(math.random(0, 255))
    elseif r < 0.6 then
      parts[i] = string.char(math.random(32, 126))
    else
      local cp = ({ math.random(0x80, 0x7ff), math.random(0x800, 0xd7ff), math.random(0xe000, 0xffff),
        math.random(0x10000, 0x10ffff) })[math.random(1, 4)]
      parts[i] = utf8.char(cp)
    end
  end
  return table.concat(parts)
end

-- ---- references ----

-- The characters of s as keys (lattice/data.h: a code point, or 0x110000 + b
-- for a byte that begins no valid character), decoding first and checking
-- the ranges after: shortest form, no surrogates, at most U+10FFFF.
local RAW = 0x110000
local function ref_chars(s)
  local keys, pieces, i = {}, {}, 1
  while i <= #s do
    local b0, len, cp = s:byte(i), 1, nil
    if b0 < 0x80 then
      cp = b0
    else
      local need, min = nil, nil
      if b0 >= 0xc0 and b0 < 0xe0 then need, min, cp = 1, 0x80, b0 - 0xc0
      elseif b0 >= 0xe0 and b0 < 0xf0 then need, min, cp = 2, 0x800, b0 - 0xe0
      elseif b0 >= 0xf0 and b0 < 0xf8 then need, min, cp = 3, 0x10000, b0 - 0xf0 end
      local ok = need ~= nil and i + need <= #s
      for j = 1, ok and need or 0 do
        local c = s:byte(i + j)
        ok = ok and c >= 0x80 and c < 0xc0
        cp = ok and cp * 64 + (c - 0x80) or cp
      end
      ok = ok and cp >= min and cp <= 0x10ffff and not (cp >= 0xd800 and cp <= 0xdfff)
      if ok then len = need + 1 else cp = RAW + b0 end
    end
    keys[#keys + 1], pieces[#pieces + 1] = cp, s:sub(i, i + len - 1)
    i = i + len
  end
  return keys, pieces
end

-- BPE by the rule of lattice/data.h, recounting every pair from scratch.
local function ref_merge(ids, a, b, new)
  local out, i = {}, 1
  while i <= #ids do
    if i < #ids and ids[i] == a and ids[i + 1] == b then
      out[#out + 1], i = new, i + 2
    else
      out[#out + 1], i = ids[i], i + 1
    end
  end
  return out
end

local function ref_train(text, max_merges, min_frequency)
  local ids, merges = { text:byte(1, -1) }, {}
  while #merges < max_merges do
    local counts = {}
    for i = 1, #ids - 1 do
      local k = ids[i] * 100000 + ids[i + 1]
      counts[k] = (counts[k] or 0) + 1
    end
    local best, best_count = nil, 0
    for k, c in pairs(counts) do
      if c > best_count or (c == best_count and k < best) then best, best_count = k, c end
    end
    if best == nil or best_count < min_frequency then break end
    local a, b = best // 100000, best % 100000
    merges[#merges + 1] = { a, b }
    ids = ref_merge(ids, a, b, 255 + #merges)
  end
  return merges, ids
end

local function ref_encode(text, merges)
  local ids = { text:byte(1, -1) }
  for i, m in ipairs(merges) do ids = ref_merge(ids, m[1], m[2], 255 + i) end
  return ids
end

describe("lattice.data tokenizers", function()
  setup(function() math.randomseed(20240601) end)

  describe("ByteTokenizer", function()
    local tok = data.ByteTokenizer()

    it("maps each byte to its value and back, all 256 of them", function()
      local all = {}
      for b = 0, 255 do all[#all + 1] = string.char(b) end
      all = table.concat(all)
      local ids = tok:encode(all)
      assert.are.equal("int32", ids.dtype)
      for b = 0, 255 do assert.are.equal(b, list(ids)[b + 1]) end
      assert.are.equal(all, tok:decode(ids))
      assert.are.equal(256, tok.vocab_size)
    end)

    it("round-trips random byte strings exactly, from a tensor or a list", function()
      for _ = 1, 50 do
        local s = random_bytes(math.random(0, 200))
        local ids = tok:encode(s)
        assert.are.equal(#s, ids.size)
        assert.are.equal(s, tok:decode(ids))
        assert.are.equal(s, tok:decode(ids.size > 0 and list(ids) or {}))
      end
    end)

    it("saves and loads", function()
      tok:save(path("byte.json"))
      local back = data.ByteTokenizer.load(path("byte.json"))
      assert.are.equal(256, back.vocab_size)
      assert.are.equal("ByteTokenizer", getmetatable(data.load_tokenizer(path("byte.json"))).kind)
    end)

    it("names bad input", function()
      assert.has_error(function() tok:encode(3) end, "ByteTokenizer:encode: text must be a string, got number")
      assert.has_error(function() tok:decode(lattice.array({ 3, 256 }, "int32")) end,
        "ByteTokenizer:decode: ids[2] = 256 is out of range for a vocabulary of 256")
      assert.has_error(function() tok:decode({ 1, -1 }) end,
        "ByteTokenizer:decode: ids[2] = -1 is out of range for a vocabulary of 256")
      assert.has_error(function() tok:decode(lattice.array({ 1.5 })) end,
        "ByteTokenizer:decode: ids must be integers, got float32")
      assert.has_error(function() tok:decode({ 1, 2.5 }) end, "ByteTokenizer:decode: ids[2] must be an integer, got 2.5")
      assert.has_error(function() tok:decode("ab") end,
        "ByteTokenizer:decode: ids must be a lattice.Tensor or a list of integers, got string")
      assert.has_error(function() tok:piece(256) end, "ByteTokenizer:piece: id must be an integer in [0, 256), got 256")
      assert.has_error(function() data.ByteTokenizer({ x = 1 }) end, "ByteTokenizer: unknown option 'x'")
    end)
  end)

  describe("CharTokenizer", function()
    it("numbers the distinct characters by code point, raw bytes last, as the reference splits them", function()
      for _ = 1, 30 do
        local s = random_bytes(math.random(1, 300))
        local keys, pieces = ref_chars(s)
        local distinct, seen = {}, {}
        for _, k in ipairs(keys) do
          if not seen[k] then distinct[#distinct + 1], seen[k] = k, true end
        end
        table.sort(distinct)
        local id_of = {}
        for i, k in ipairs(distinct) do id_of[k] = i - 1 end
        local tok = data.CharTokenizer(s)
        assert.are.equal(#distinct, tok.vocab_size)
        local ids = list(tok:encode(s))
        assert.are.equal(#keys, #ids)
        for i, k in ipairs(keys) do
          assert.are.equal(id_of[k], ids[i])
          assert.are.equal(pieces[i], tok:piece(ids[i]))
        end
        assert.are.equal(s, tok:decode(tok:encode(s)))
      end
    end)

    it("takes a truncated or overlong sequence byte by byte", function()
      local tok = data.CharTokenizer("\xe2\x82\xac\xe2\x82\xc0\x80\xed\xa0\x80\xf4\x90\x80\x80\xc3")
      -- the euro sign; then e2 82 (truncated), c0 80 (overlong), a surrogate, past U+10FFFF, a lone c3
      assert.are.same({ "\xe2\x82\xac", "\x80", "\x82", "\x90", "\xa0", "\xc0", "\xc3", "\xe2", "\xed", "\xf4" },
        tok:characters())
    end)

    it("defaults to printable ASCII, as the seed does", function()
      local tok = data.CharTokenizer()
      assert.are.equal(95, tok.vocab_size)
      assert.are.same({ 0, 33, 94 }, list(tok:encode(" A~")))
    end)

    it("saves and loads raw bytes exactly, and refuses a file out of order", function()
      local s = "h\xc3\xa9llo\255\0"
      local tok = data.CharTokenizer(s)
      tok:save(path("char.json"))
      local back = data.load_tokenizer(path("char.json"))
      assert.are.same(tok:characters(), back:characters())
      assert.are.same(list(tok:encode(s)), list(back:encode(s)))
      local f = assert(io.open(path("char_bad.json"), "w"))
      f:write('{"type": "CharTokenizer", "version": 1, "chars": [[98], [97]]}')
      f:close()
      assert.has_error(function() data.CharTokenizer.load(path("char_bad.json")) end,
        ("CharTokenizer.load: %s: chars[1] is out of order or not one character"):format(path("char_bad.json")))
    end)

    it("names a character it does not know by code point and position", function()
      local tok = data.CharTokenizer("abc")
      assert.has_error(function() tok:encode("ab\xc3\xa9") end,
        "CharTokenizer:encode: the character U+00E9 at byte 3 is not in the vocabulary")
      assert.has_error(function() tok:encode("a\255") end,
        "CharTokenizer:encode: the raw byte 0xFF at byte 2 is not in the vocabulary")
      assert.has_error(function() tok:decode({ 3 }) end,
        "CharTokenizer:decode: ids[1] = 3 is out of range for a vocabulary of 3")
      assert.has_error(function() data.CharTokenizer("") end,
        "CharTokenizer: the vocabulary is empty (no characters in the text)")
      assert.has_error(function() data.CharTokenizer(5) end, "CharTokenizer: text must be a string, got number")
    end)
  end)

  describe("BPETokenizer", function()
    local texts = {
      "aaaaaaaaa", "abababababab", "aaabdaaabac", "the cat sat on the mat, the cat sat on the hat",
      ("low lower lowest newer wider "):rep(5),
    }
    local alphabet = {}
    for i = 1, 300 do alphabet[i] = ("abc"):sub(math.random(1, 3), math.random(1, 3)) end
    texts[#texts + 1] = table.concat(alphabet)
    texts[#texts + 1] = random_bytes(400) .. random_bytes(100):rep(3)

    it("learns the merges the plain reference learns, ties broken by the smaller pair", function()
      for _, text in ipairs(texts) do
        for _, v in ipairs({ 256, 260, 300, 400 }) do
          local want, ids = ref_train(text, v - 256, 2)
          local tok = data.BPETokenizer.train(text, { vocab_size = v })
          assert.are.same(want, tok.merges.size > 0 and tok.merges:tolist() or {})
          assert.are.equal(256 + #want, tok.vocab_size)
          assert.are.same(ids, list(tok:encode(text)))
        end
        local want = ref_train(text, 50, 1)
        assert.are.same(want, data.BPETokenizer.train(text, { vocab_size = 306, min_frequency = 1 }).merges:tolist())
      end
    end)

    it("encodes other text by applying the merges in order, and decodes every byte string exactly", function()
      local tok = data.BPETokenizer.train(texts[5] .. texts[6], { vocab_size = 330 })
      local merges = tok.merges:tolist()
      for _ = 1, 30 do
        local s = random_bytes(math.random(0, 100)) .. texts[5]:sub(1, math.random(0, 60))
        local ids = tok:encode(s)
        assert.are.same(ref_encode(s, merges), ids.size > 0 and list(ids) or {})
        assert.are.equal(s, tok:decode(ids))
      end
      local s = "lower"
      local pieces = {}
      for _, id in ipairs(list(tok:encode(s))) do pieces[#pieces + 1] = tok:piece(id) end
      assert.are.equal(s, table.concat(pieces))
    end)

    it("saves, loads and rebuilds from its merges", function()
      local tok = data.BPETokenizer.train(texts[4], { vocab_size = 280 })
      tok:save(path("bpe.json"))
      local back = data.load_tokenizer(path("bpe.json"))
      assert.are.same(tok.merges:tolist(), back.merges:tolist())
      local again = data.BPETokenizer(tok.merges:tolist())
      assert.are.same(list(tok:encode(texts[4])), list(again:encode(texts[4])))
      assert.are.equal(256, data.BPETokenizer({}).vocab_size)
    end)

    it("names bad merges, options and files", function()
      assert.has_error(function() data.BPETokenizer({ { 97, 98 }, { 256, 300 } }) end,
        "BPETokenizer: merges: row 2 uses id 300, which does not exist before it (ids below 257)")
      assert.has_error(function() data.BPETokenizer({ { 97, 98 }, { 97, 98 } }) end,
        "BPETokenizer: merges: row 2 repeats row 1 {97,98}")
      assert.has_error(function() data.BPETokenizer(lattice.zeros({ 2, 3 }, "int32")) end,
        "BPETokenizer: merges: must have shape {M,2}, got {2,3}")
      assert.has_error(function() data.BPETokenizer(lattice.zeros({ 2, 2 })) end,
        "BPETokenizer: merges: must be integers, got float32")
      assert.has_error(function() data.BPETokenizer.train("ab", { vocab_size = 100 }) end,
        "BPETokenizer.train: vocab_size must be an integer >= 256, got 100")
      assert.has_error(function() data.BPETokenizer.train("ab", { vocab_size = 300, min_frequency = 0 }) end,
        "BPETokenizer.train: min_frequency must be an integer >= 1, got 0")
      assert.has_error(function() data.BPETokenizer.train("ab", { size = 3 }) end,
        "BPETokenizer.train: unknown option 'size'")
      local missing = path("none.json")
      assert.has_error(function() data.BPETokenizer.load(missing) end,
        ("BPETokenizer.load: cannot open %s: No such file or directory"):format(missing))
      data.ByteTokenizer():save(path("byte2.json"))
      assert.has_error(function() data.BPETokenizer.load(path("byte2.json")) end,
        ("BPETokenizer.load: %s holds a ByteTokenizer, not a BPETokenizer"):format(path("byte2.json")))
      local f = assert(io.open(path("bpe_bad.json"), "w"))
      f:write('{"type": "BPETokenizer", "version": 1, "merges": [[97, 98], [300, 1]]}')
      f:close()
      assert.has_error(function() data.load_tokenizer(path("bpe_bad.json")) end,
        ("BPETokenizer.load: %s: merges: row 2 uses id 300, which does not exist before it (ids below 257)"):format(
          path("bpe_bad.json")))
      f = assert(io.open(path("junk.json"), "w"))
      f:write("{oops")
      f:close()
      assert.has_error(function() data.load_tokenizer(path("junk.json")) end,
        ("load_tokenizer: %s: json.decode: byte 2: expected a string key, found 'o'"):format(path("junk.json")))
    end)
  end)
end)

describe("lattice.data.TextDataset", function()
  local tokens = lattice.arange(100, "int32")

  it("gives the windows x = tokens[s, s + T) and y one further, s = (i - 1) * stride", function()
    local ds = data.TextDataset(tokens, { seq_len = 8, stride = 3 })
    assert.are.equal((100 - 8 - 1) // 3 + 1, #ds)
    for i = 1, #ds do
      local x, y = ds:get(i)
      local s = (i - 1) * 3
      for j = 1, 8 do
        assert.are.equal(s + j - 1, x:tolist()[j])
        assert.are.equal(s + j, y:tolist()[j])
      end
    end
    assert.are.equal(100 - 8, #data.TextDataset(tokens, { seq_len = 8 }))
  end)

  it("tokenizes a text with its tokenizer", function()
    local ds = data.TextDataset("hello world", { seq_len = 4, tokenizer = data.ByteTokenizer() })
    local x, y = ds:get(2)
    assert.are.same({ ("ello"):byte(1, -1) }, x:tolist())
    assert.are.same({ ("llo "):byte(1, -1) }, y:tolist())
  end)

  it("splits the tokens, not the windows: train and validation share no token", function()
    local train, val = data.TextDataset(tokens, { seq_len = 5 }):split(0.2)
    assert.are.equal(80, train.tokens.shape[1])
    assert.are.equal(20, val.tokens.shape[1])
    local _, y = train:get(#train)
    assert.are.equal(79, y:tolist()[5])
    local x = val:get(1)
    assert.are.equal(80, x:tolist()[1])
  end)

  it("batches every window once per epoch, in a seeded order that changes with the epoch", function()
    local ds = data.TextDataset(tokens, { seq_len = 4, stride = 4 }) -- 24 windows
    local it = ds:batches({ batch_size = 5, seed = 7, drop_last = false })
    assert.are.equal(5, it.batches_per_epoch)
    local orders = {}
    for e = 1, 2 do
      local seen, order = {}, {}
      for _ = 1, it.batches_per_epoch do
        local x, y = it:next()
        for r = 1, x.shape[1] do
          local row = x[r]:tolist()
          assert.are.equal(0, row[1] % 4)
          assert.are.equal(row[4] + 1, y[r]:tolist()[4])
          assert.is_nil(seen[row[1]])
          seen[row[1]], order[#order + 1] = true, row[1]
        end
      end
      assert.are.equal(24, #order)
      orders[e] = table.concat(order, ",")
    end
    assert.are_not.equal(orders[1], orders[2])
    local again = ds:batches({ batch_size = 5, seed = 7, drop_last = false })
    local first = {}
    for _ = 1, 5 do
      local x = again:next()
      for r = 1, x.shape[1] do first[#first + 1] = x[r]:tolist()[1] end
    end
    assert.are.equal(orders[1], table.concat(first, ","))
    local plain = ds:batches({ batch_size = 24, shuffle = false })
    assert.are.same(lattice.arange(0, 96, 4):tolist(), lattice.slice(plain:next(), 2, 1, 1):reshape({ -1 }):tolist())
  end)

  it("drops the last short batch by default and stops after `epochs`", function()
    local ds = data.TextDataset(tokens, { seq_len = 4, stride = 4 })
    local it = ds:batches({ batch_size = 5, epochs = 2 })
    assert.are.equal(4, it.batches_per_epoch)
    local n = 0
    while it:next() do n = n + 1 end
    assert.are.equal(8, n)
    it:reset()
    assert.are.equal(5, it:next().shape[1])
  end)

  it("resumes from state() exactly, across an epoch boundary", function()
    local ds = data.TextDataset(tokens, { seq_len = 3 })
    local a = ds:batches({ batch_size = 16, seed = 11 })
    for _ = 1, a.batches_per_epoch - 2 do a:next() end
    local saved = lattice.json.decode(lattice.json.encode(a:state()))
    local b = ds:batches({ batch_size = 16, seed = 11 })
    b:set_state(saved)
    for _ = 1, 6 do
      local xa, ya = a:next()
      local xb, yb = b:next()
      assert.are.same(xa:tolist(), xb:tolist())
      assert.are.same(ya:tolist(), yb:tolist())
    end
    assert.has_error(function() ds:batches({ batch_size = 16, seed = 12 }):set_state(saved) end,
      "BatchIterator:set_state: the state is of an iterator with seed 11, this one has 12")
  end)

  it("names bad input", function()
    assert.has_error(function() data.TextDataset(tokens, { seq_len = 0 }) end,
      "TextDataset: seq_len must be a positive integer, got 0")
    assert.has_error(function() data.TextDataset(tokens, { seq_len = 100 }) end,
      "TextDataset: too few tokens (100) for one window of seq_len 100 (it needs 101)")
    assert.has_error(function() data.TextDataset("abc", { seq_len = 2 }) end,
      "TextDataset: a text needs a tokenizer (the tokenizer option)")
    assert.has_error(function() data.TextDataset(lattice.zeros({ 3, 3 }), { seq_len = 2 }) end,
      "TextDataset: tokens must be a 1-D tensor of integer ids, got float32 {3,3}")
    assert.has_error(function() data.TextDataset(tokens, { seq_len = 2, window = 3 }) end,
      "TextDataset: unknown option 'window'")
    local ds = data.TextDataset(tokens, { seq_len = 4 })
    assert.has_error(function() ds:get(0) end, "TextDataset:get: i must be an integer in [1, 96], got 0")
    assert.has_error(function() ds:split(1) end, "TextDataset:split: val_fraction must be a number in (0, 1), got 1")
    assert.has_error(function() ds:split(0.01) end,
      "TextDataset:split: too few tokens (1) for one window of seq_len 4 (it needs 5)")
    assert.has_error(function() ds:batches({ batch_size = 0 }) end,
      "TextDataset:batches: batch_size must be a positive integer, got 0")
    assert.has_error(function() ds:batches({ batch_size = 200 }) end,
      "TextDataset:batches: 96 items make no batch of 200 (drop_last = true)")
    assert.has_error(function() ds:batches({ batch_size = 2, seed = 1.5 }) end,
      "TextDataset:batches: seed must be an integer, got 1.5")
  end)
end)

describe("lattice.data.SceneBatches", function()
  -- scene k: k + 1 rows at (anything, k, r, 0), features k * 10 + r, labels r
  local function scene(k)
    local coords, feats, labels = {}, {}, {}
    for r = 0, k do
      coords[#coords + 1] = { 5, k, r, 0 }
      feats[#feats + 1] = { k * 10 + r, -r }
      labels[#labels + 1] = r
    end
    return { x = lattice.SparseTensor(coords, lattice.array(feats)), labels = lattice.array(labels, "int32") }
  end
  local scenes = { scene(1), scene(2), scene(3) }

  it("collates scenes into one SparseTensor numbering them 0 .. B-1, with batch_counts and labels", function()
    local x, labels = data.collate_scenes({ scenes[3], scenes[1] })
    assert.are.same({ 4, 2 }, x.batch_counts)
    local coords, feats = x.coords:tolist(), x.feats:tolist()
    local want = { { 0, 3, 0, 0 }, { 0, 3, 1, 0 }, { 0, 3, 2, 0 }, { 0, 3, 3, 0 }, { 1, 1, 0, 0 }, { 1, 1, 1, 0 } }
    assert.are.same(want, coords)
    assert.are.same({ { 30, 0 }, { 31, -1 }, { 32, -2 }, { 33, -3 }, { 10, 0 }, { 11, -1 } }, feats)
    assert.are.same({ 0, 1, 2, 3, 0, 1 }, labels:tolist())
  end)

  it("batches scenes in a seeded order and resumes", function()
    local it = data.SceneBatches(scenes, { batch_size = 2, shuffle = false, drop_last = false })
    local x = it:next()
    assert.are.same({ 2, 3 }, x.batch_counts)
    local y = it:next()
    assert.are.same({ 4 }, y.batch_counts)
    local a = data.SceneBatches(scenes, { batch_size = 1, seed = 3 })
    a:next()
    local b = data.SceneBatches(scenes, { batch_size = 1, seed = 3 }):set_state(a:state())
    for _ = 1, 4 do assert.are.same(a:next().feats:tolist(), b:next().feats:tolist()) end
    local plain = data.SceneBatches({ scenes[1].x, scenes[2].x }, { batch_size = 2, shuffle = false })
    local only, none = plain:next()
    assert.are.same({ 2, 3 }, only.batch_counts)
    assert.is_nil(none)
  end)

  it("names scenes that do not go together", function()
    local other = lattice.SparseTensor({ { 0, 0, 0, 0 } }, lattice.ones({ 1, 3 }))
    assert.has_error(function() data.SceneBatches({ scenes[1].x, other }, { batch_size = 1 }) end,
      "SceneBatches: scene 2 has 3 float32 channels, scene 1 has 2 float32")
    assert.has_error(function() data.SceneBatches({ scenes[1], scenes[2].x }, { batch_size = 1 }) end,
      "SceneBatches: scene 2 has no labels, scene 1 has")
    assert.has_error(function() data.SceneBatches({ { x = scenes[1].x, labels = lattice.ones({ 5 }) } }, {
      batch_size = 1 }) end, "SceneBatches: scene 1 has 2 rows but labels {5}")
    assert.has_error(function() data.SceneBatches({ 3 }, { batch_size = 1 }) end,
      "SceneBatches: scene 1 must be a SparseTensor or {x = SparseTensor, labels = tensor}")
    assert.has_error(function() data.SceneBatches({}, { batch_size = 1 }) end, "SceneBatches: scenes must be a non-empty list")
  end)
end)
