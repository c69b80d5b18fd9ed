-- Small models and data for the training specs (train, checkpoint, lora,
-- objectives): a byte-level language model of an embedding, dropout and two
-- linear layers, a hand-built tree with the seed's attention and FFN
-- projection names, and a text with enough structure to learn from.
local lattice = require "lattice"
local nn = lattice.nn

local M = {}

--- TinyLM(vocab, dims[, p]): ids (B, T) -> logits (B, T, vocab).
local TinyLM = nn.Module:extend("TinyLM")
M.TinyLM = TinyLM
function TinyLM:init(vocab, dims, p)
  self.embed = nn.Embedding(vocab, dims)
  self.drop = nn.Dropout({ p = p or 0 })
  self.hidden = nn.Linear(dims, dims)
  self.out = nn.Linear(dims, vocab)
end
function TinyLM:forward(x) return self.out(lattice.gelu(self.hidden(self.drop(self.embed(x))))) end

--- lm_loss(model, x, y): the mean next-token cross-entropy.
function M.lm_loss(model, x, y) return nn.losses.cross_entropy(model(x), y, { reduction = "mean" }) end

-- lmxlab's names: a block holds `attention` (q_proj, k_proj, v_proj, o_proj)
-- and `ffn` (gate, up, down), as src/lmxlab/core/attention.py and ffn.py.
local Attention = nn.Module:extend("Attention")
function Attention:init(d)
  self.q_proj, self.k_proj, self.v_proj, self.o_proj = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
end
function Attention:forward(x)
  return self.o_proj(lattice.tanh(self.q_proj(x)) * self.k_proj(x) + self.v_proj(x))
end

local FFN = nn.Module:extend("GatedFFN")
function FFN:init(d, f) self.gate, self.up, self.down = nn.Linear(d, f), nn.Linear(d, f), nn.Linear(f, d) end
function FFN:forward(x) return self.down(lattice.silu(self.gate(x)) * self.up(x)) end

local Block = nn.Module:extend("Block")
function Block:init(d, f)
  self.attention, self.ffn = Attention(d), FFN(d, f)
  self.attn_norm = nn.RMSNorm(d)
end
function Block:forward(x)
  x = x + self.attention(self.attn_norm(x))
  return x + self.ffn(x)
end

--- Stack(vocab, d, f, n): ids -> logits through n blocks; blocks.0.attention.q_proj, ...
local Stack = nn.Module:extend("Stack")
M.Stack = Stack
function Stack:init(vocab, d, f, n)
  self.embed = nn.Embedding(vocab, d)
  self.blocks = {}
  for i = 1, n do self.blocks[i] = Block(d, f) end
  self.head = nn.Linear(d, vocab)
end
function Stack:forward(x)
  x = self.embed(x)
  for _, b in ipairs(self.blocks) do x = b(x) end
  return self.head(x)
end

--- text(n): n bytes of a few sentences in a seeded random order, so the
-- next byte is predictable from the current one far better than by chance.
function M.text(n, seed)
  local sentences = { "the cat sat on the mat. ", "a dog ran in the park. ", "we like to read books. ",
    "birds sing at dawn. " }
  local s, parts, len = seed or 1, {}, 0
  while len < n do
    s = (s * 1103515245 + 12345) % 2147483648
    local p = sentences[s // 65536 % #sentences + 1]
    parts[#parts + 1], len = p, len + #p
  end
  return table.concat(parts):sub(1, n)
end

--- unigram_entropy(s): the entropy of s's byte frequencies, in nats.
function M.unigram_entropy(s)
  local counts, h = {}, 0
  for i = 1, #s do
    local b = s:byte(i)
    counts[b] = (counts[b] or 0) + 1
  end
  for _, c in pairs(counts) do h = h - c / #s * math.log(c / #s) end
  return h
end

--- Writer(): an output that keeps what is written (text) and says whether it
-- is a terminal (isatty), as the progress display asks.
function M.Writer(tty)
  local w = { parts = {} }
  function w:write(...)
    for _, s in ipairs({ ... }) do self.parts[#self.parts + 1] = s end
    return self
  end
  function w:text() return table.concat(self.parts) end
  if tty ~= nil then function w.isatty() return tty end end
  return w
end

return M
