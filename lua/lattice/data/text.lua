-- TextDataset: the windows of a token sequence, as the seed's TextDataset and
-- TokenDataset: window i (0-based) is x = tokens[s .. s + seq_len) and y =
-- tokens[s + 1 .. s + seq_len] with s = i * stride, so the model learns to
-- predict each next token. Batches gather their windows with one take.
local lattice = require "lattice"
local module = require "lattice.nn.module"
local checks = require "lattice.checks"
local batches = require "lattice.data.batches"

local M = {}

local TextDataset = {}
TextDataset.__index = TextDataset
TextDataset.__name = "lattice.data.TextDataset"

local function positive_integer(v, what, who) return checks.integer(v, 1, what, who, 3) end -- a tail call

-- tokens as a 1-D integer tensor: a string is encoded by the tokenizer.
local function token_tensor(tokens, tokenizer, who)
  if type(tokens) == "string" then
    if tokenizer == nil then error(who .. ": a text needs a tokenizer (the tokenizer option)", 3) end
    tokens = tokenizer:encode(tokens)
  end
  if not lattice.is_tensor(tokens) then
    error(("%s: tokens must be a lattice.Tensor or a string, got %s"):format(who, type(tokens)), 3)
  end
  if tokens.ndim ~= 1 or tokens.dtype:find("float") or tokens.dtype == "bool" then
    error(("%s: tokens must be a 1-D tensor of integer ids, got %s %s"):format(who, tokens.dtype,
      module.shape_str(tokens)), 3)
  end
  return tokens
end

local function make(tokens, seq_len, stride, who)
  local n = tokens.shape[1]
  if n < seq_len + 1 then
    error(("%s: too few tokens (%d) for one window of seq_len %d (it needs %d)"):format(who, n, seq_len,
      seq_len + 1), 3)
  end
  return setmetatable({ tokens = tokens, seq_len = seq_len, stride = stride, size = (n - seq_len - 1) // stride + 1,
    _offsets = lattice.arange(seq_len, "int32"):reshape({ 1, seq_len }) }, TextDataset)
end

--- TextDataset(tokens, {seq_len, stride = 1, tokenizer}): tokens a 1-D
-- integer tensor, or a string with a tokenizer to encode it.
function M.TextDataset(tokens, opts)
  local who = "TextDataset"
  opts = module.check_options(opts, { seq_len = true, stride = true, tokenizer = true }, who)
  local seq_len = positive_integer(opts.seq_len, "seq_len", who)
  local stride = opts.stride == nil and 1 or positive_integer(opts.stride, "stride", who)
  local ds = make(token_tensor(tokens, opts.tokenizer, who), seq_len, stride, who)
  return ds
end

function TextDataset:__len() return self.size end

--- ds:collate(indices) -> x, y (B, seq_len): the windows at 0-based indices.
function TextDataset:collate(indices)
  local starts = (indices:astype("int32") * self.stride):reshape({ -1, 1 })
  local pos = starts + self._offsets
  return lattice.take(self.tokens, pos), lattice.take(self.tokens, pos + 1)
end

--- ds:get(i) -> x, y (seq_len): window i, counted from 1 as Lua counts.
function TextDataset:get(i)
  if math.type(i) ~= "integer" or i < 1 or i > self.size then
    error(("TextDataset:get: i must be an integer in [1, %d], got %s"):format(self.size, tostring(i)), 2)
  end
  local x, y = self:collate(lattice.array({ i - 1 }, "int32"))
  return x[1], y[1]
end

--- ds:split(val_fraction) -> train, val: the first tokens and the last
-- floor(n * val_fraction) of them, with this dataset's seq_len and stride;
-- their windows never share a token (overlapping windows would leak the
-- validation text into training).
function TextDataset:split(val_fraction)
  local who = "TextDataset:split"
  if type(val_fraction) ~= "number" or not (val_fraction > 0 and val_fraction < 1) then
    error(("%s: val_fraction must be a number in (0, 1), got %s"):format(who, tostring(val_fraction)), 2)
  end
  local n = self.tokens.shape[1]
  local n_val = math.floor(n * val_fraction)
  local train = lattice.slice(self.tokens, 1, 1, n - n_val)
  local val = n_val > 0 and lattice.slice(self.tokens, 1, n - n_val + 1, n) or lattice.zeros({ 0 }, self.tokens.dtype)
  return make(train, self.seq_len, self.stride, who), make(val, self.seq_len, self.stride, who)
end

--- ds:batches{batch_size, shuffle = true, seed = 0, drop_last = true, epochs}
-- -> a BatchIterator of (x, y) batches (B, seq_len).
function TextDataset:batches(opts)
  return (batches.new({ size = self.size, collate = function(idx) return self:collate(idx) end }, opts,
    "TextDataset:batches"))
end

function TextDataset:__tostring()
  return ("TextDataset(tokens=%d, seq_len=%d, stride=%d, windows=%d)"):format(self.tokens.shape[1], self.seq_len,
    self.stride, self.size)
end

return M
