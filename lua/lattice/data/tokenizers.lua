-- Tokenizers: ByteTokenizer, CharTokenizer and a byte-level BPETokenizer,
-- each with encode (string -> int32 ids), decode (ids -> the exact bytes),
-- vocab_size, piece(id) and save/load (a JSON file). The loops over the text
-- are C (core/data, lattice/data.h); this file holds the vocabularies.
local lattice = require "lattice"
local core = require "lattice.core"
local module = require "lattice.nn.module"

local M = {}

local FORMAT_VERSION = 1

-- ---- shared methods ----

local function check_text(text, who)
  if type(text) ~= "string" then error(("%s: text must be a string, got %s"):format(who, type(text)), 3) end
end

-- ids as a tensor: an integer tensor as it is, a Lua list of integers as int64.
local function ids_tensor(ids, who)
  if lattice.is_tensor(ids) then return ids end
  if type(ids) ~= "table" then
    error(("%s: ids must be a lattice.Tensor or a list of integers, got %s"):format(who, type(ids)), 3)
  end
  for i, v in ipairs(ids) do
    if math.type(v) ~= "integer" then
      error(("%s: ids[%d] must be an integer, got %s"):format(who, i, tostring(v)), 3)
    end
  end
  return lattice.array(ids, "int64")
end

-- Methods every tokenizer class gets; `kind` names it in messages.
local function tokenizer_class(kind)
  local cls = { kind = kind }
  cls.__index = cls
  cls.__name = "lattice.data." .. kind
  function cls:decode(ids)
    local who = kind .. ":decode"
    return self._pieces:decode(ids_tensor(ids, who), who)
  end
  --- tok:piece(id): the bytes of one (0-based) id.
  function cls:piece(id)
    if math.type(id) ~= "integer" or id < 0 or id >= #self._pieces then
      error(("%s:piece: id must be an integer in [0, %d), got %s"):format(kind, #self._pieces, tostring(id)), 2)
    end
    return self._pieces:get(id)
  end
  function cls:__tostring() return ("%s(vocab_size=%d)"):format(kind, self.vocab_size) end
  return cls
end

local function new(cls, fields, pieces)
  fields._pieces = core.pieces(pieces)
  fields.vocab_size = #pieces
  return setmetatable(fields, cls)
end

-- ---- files ----

local function read_file(path, who)
  if type(path) ~= "string" then error(("%s: path must be a string, got %s"):format(who, type(path)), 4) end
  local f, err = io.open(path, "rb")
  if not f then error(("%s: cannot open %s"):format(who, err), 4) end
  local text = f:read("a")
  f:close()
  return text
end

local function save(tok, path, fields)
  local who = tok.kind .. ":save"
  if type(path) ~= "string" then error(("%s: path must be a string, got %s"):format(who, type(path)), 3) end
  fields.type, fields.version = tok.kind, FORMAT_VERSION
  core.fs_write(path, lattice.json.encode(fields, { indent = 1 }) .. "\n", who)
  return tok
end

-- The file's table, checked to be a tokenizer of `kind`; nil kind accepts any.
local function load_table(path, kind, who)
  local text = read_file(path, who)
  local ok, t = pcall(lattice.json.decode, text)
  if not ok then error(("%s: %s: %s"):format(who, path, t), 3) end
  if type(t) ~= "table" or type(t.type) ~= "string" then
    error(("%s: %s is not a lattice tokenizer file"):format(who, path), 3)
  end
  if kind and t.type ~= kind then error(("%s: %s holds a %s, not a %s"):format(who, path, t.type, kind), 3) end
  if t.version ~= FORMAT_VERSION then
    error(("%s: %s has format version %s; this lattice reads %d"):format(who, path, tostring(t.version),
      FORMAT_VERSION), 3)
  end
  return t
end

-- A list of byte lists (how pieces are written: raw bytes are not JSON text).
local function byte_lists(pieces)
  local out = {}
  for i, p in ipairs(pieces) do out[i] = { p:byte(1, -1) } end
  return out
end

-- ---- ByteTokenizer ----

local ByteTokenizer = tokenizer_class("ByteTokenizer")
M.ByteTokenizer = setmetatable({}, {
  __index = ByteTokenizer,
  --- ByteTokenizer(): id = byte value, vocab_size 256.
  __call = function(_, opts)
    module.check_options(opts, {}, "ByteTokenizer")
    local pieces = {}
    for b = 0, 255 do pieces[b + 1] = string.char(b) end
    return new(ByteTokenizer, {}, pieces)
  end,
})

function ByteTokenizer.encode(_, text)
  check_text(text, "ByteTokenizer:encode")
  return core.tokens_bytes(text, "ByteTokenizer:encode")
end

function ByteTokenizer:save(path) return save(self, path, {}) end

function ByteTokenizer.load(path)
  load_table(path, "ByteTokenizer", "ByteTokenizer.load")
  return M.ByteTokenizer()
end

-- ---- CharTokenizer ----

-- The bytes of a character key (lattice/data.h): a code point, or a raw byte.
local RAW = 0x110000
local function key_bytes(k) return k >= RAW and string.char(k - RAW) or utf8.char(k) end

local CharTokenizer = tokenizer_class("CharTokenizer")

local function char_tokenizer(keys, who)
  local list, pieces = keys:tolist(), {}
  for i, k in ipairs(list) do pieces[i] = key_bytes(k) end
  if #pieces == 0 then error(who .. ": the vocabulary is empty (no characters in the text)", 3) end
  return new(CharTokenizer, { _keys = keys }, pieces)
end

M.CharTokenizer = setmetatable({}, {
  __index = CharTokenizer,
  --- CharTokenizer([text]): one id per distinct character of text (UTF-8; a
  -- byte outside any valid character is a character of its own): the valid
  -- characters by code point, then the raw bytes by value. Without text, the
  -- printable ASCII characters (32 .. 126), as the seed's default.
  __call = function(_, text)
    if text == nil then
      local ascii = {}
      for b = 32, 126 do ascii[#ascii + 1] = string.char(b) end
      text = table.concat(ascii)
    end
    check_text(text, "CharTokenizer")
    return char_tokenizer(core.tokens_char_vocab(text, "CharTokenizer"), "CharTokenizer")
  end,
})

function CharTokenizer:encode(text)
  check_text(text, "CharTokenizer:encode")
  return core.tokens_chars(text, self._keys, "CharTokenizer:encode")
end

--- tok:characters(): the characters by id (a list: [1] is id 0).
function CharTokenizer:characters()
  local out = {}
  for i = 1, self.vocab_size do out[i] = self._pieces:get(i - 1) end
  return out
end

function CharTokenizer:save(path) return save(self, path, { chars = byte_lists(self:characters()) }) end

-- A piece read back must be one character (or one raw byte) of the text it
-- splits into, and the pieces must be in key order: the file is then exactly
-- what CharTokenizer(text) makes.
function CharTokenizer.load(path)
  local who = "CharTokenizer.load"
  local t = load_table(path, "CharTokenizer", who)
  if type(t.chars) ~= "table" or #t.chars == 0 then error(("%s: %s: 'chars' must be a non-empty list"):format(who, path), 2) end
  local text = {}
  for i, bytes in ipairs(t.chars) do
    local ok, s = pcall(string.char, table.unpack(type(bytes) == "table" and bytes or {}))
    if not ok or type(bytes) ~= "table" or #bytes == 0 then
      error(("%s: %s: chars[%d] must be a list of byte values"):format(who, path, i), 2)
    end
    text[i] = s
  end
  local keys = core.tokens_char_vocab(table.concat(text), who)
  if keys.size ~= #text then error(("%s: %s: the characters are not distinct single characters"):format(who, path), 2) end
  local tok = char_tokenizer(keys, who)
  for i, s in ipairs(text) do
    if tok._pieces:get(i - 1) ~= s then
      error(("%s: %s: chars[%d] is out of order or not one character"):format(who, path, i), 2)
    end
  end
  return tok
end

-- ---- BPETokenizer ----

local BPETokenizer = tokenizer_class("BPETokenizer")

-- The pieces of a checked merges tensor: the bytes, then each merge's pair joined.
local function bpe_tokenizer(merges)
  local pieces = {}
  for b = 0, 255 do pieces[b + 1] = string.char(b) end
  for i, pair in ipairs(merges.size > 0 and merges:tolist() or {}) do
    pieces[256 + i] = pieces[pair[1] + 1] .. pieces[pair[2] + 1]
  end
  return new(BPETokenizer, { merges = merges }, pieces)
end

M.BPETokenizer = setmetatable({}, {
  __index = BPETokenizer,
  --- BPETokenizer(merges): from merges (M, 2), a tensor or a list of pairs.
  __call = function(_, merges)
    local who = "BPETokenizer"
    if type(merges) == "table" then
      merges = #merges > 0 and lattice.array(merges, "int64") or lattice.zeros({ 0, 2 }, "int32")
    end
    if not lattice.is_tensor(merges) then
      error(who .. ": merges must be a lattice.Tensor (M, 2) or a list of pairs, got " .. type(merges), 2)
    end
    core.bpe_check(merges, who)
    return bpe_tokenizer(merges:astype("int32"))
  end,
})

--- BPETokenizer.train(text, {vocab_size, min_frequency = 2}): the merges of
-- text (lattice/data.h's rule), up to vocab_size - 256 of them; fewer when no
-- pair occurs min_frequency times (vocab_size then says how many there are).
function BPETokenizer.train(text, opts)
  local who = "BPETokenizer.train"
  check_text(text, who)
  opts = module.check_options(opts, { vocab_size = true, min_frequency = true }, who)
  local v, f = opts.vocab_size, opts.min_frequency or 2
  if math.type(v) ~= "integer" or v < 256 then
    error(("%s: vocab_size must be an integer >= 256, got %s"):format(who, tostring(v)), 2)
  end
  if math.type(f) ~= "integer" or f < 1 then
    error(("%s: min_frequency must be an integer >= 1, got %s"):format(who, tostring(f)), 2)
  end
  return bpe_tokenizer(core.bpe_train(text, v - 256, f, who))
end

function BPETokenizer:encode(text)
  check_text(text, "BPETokenizer:encode")
  return core.bpe_encode(text, self.merges, "BPETokenizer:encode")
end

function BPETokenizer:save(path)
  return save(self, path, { merges = self.merges.size > 0 and self.merges:tolist() or {} })
end

function BPETokenizer.load(path)
  local who = "BPETokenizer.load"
  local t = load_table(path, "BPETokenizer", who)
  if type(t.merges) ~= "table" then error(("%s: %s: 'merges' must be a list of pairs"):format(who, path), 2) end
  local ok, merges = pcall(lattice.array, #t.merges > 0 and t.merges or lattice.zeros({ 0, 2 }, "int32"), "int64")
  if not ok then error(("%s: %s: 'merges' must be a list of pairs of integers"):format(who, path), 2) end
  local ok2, err = pcall(core.bpe_check, merges, who)
  if not ok2 then error((err:gsub("^" .. who .. ":", who .. ": " .. path .. ":")), 2) end
  return bpe_tokenizer(merges:astype("int32"))
end

--- load_tokenizer(path): whichever tokenizer the file holds.
function M.load_tokenizer(path)
  local t = load_table(path, nil, "load_tokenizer")
  local cls = M[t.type]
  if not cls or t.type:sub(-9) ~= "Tokenizer" then
    error(("load_tokenizer: %s holds an unknown tokenizer type '%s'"):format(path, t.type), 2)
  end
  return cls.load(path)
end

return M
