-- lattice.data: tokenizers, a text dataset of token windows, batches of
-- sparse scenes, and the resumable batch iterator they share.
local tokenizers = require "lattice.data.tokenizers"
local text = require "lattice.data.text"
local scenes = require "lattice.data.scenes"
local batches = require "lattice.data.batches"

local data = {
  ByteTokenizer = tokenizers.ByteTokenizer,
  CharTokenizer = tokenizers.CharTokenizer,
  BPETokenizer = tokenizers.BPETokenizer,
  load_tokenizer = tokenizers.load_tokenizer,
  TextDataset = text.TextDataset,
  SceneBatches = scenes.SceneBatches,
  collate_scenes = scenes.collate_scenes,
  BatchIterator = batches.BatchIterator,
}

return data
