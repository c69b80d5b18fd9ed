-- lattice.data: tokenizers, a text dataset of token windows, batches of
-- sparse scenes, point clouds from PLY and XYZ files, and the resumable
-- batch iterator they share.
local tokenizers = require "lattice.data.tokenizers"
local text = require "lattice.data.text"
local scenes = require "lattice.data.scenes"
local batches = require "lattice.data.batches"
local pointcloud = require "lattice.data.pointcloud"

local data = {
  ByteTokenizer = tokenizers.ByteTokenizer,
  CharTokenizer = tokenizers.CharTokenizer,
  BPETokenizer = tokenizers.BPETokenizer,
  load_tokenizer = tokenizers.load_tokenizer,
  TextDataset = text.TextDataset,
  SceneBatches = scenes.SceneBatches,
  collate_scenes = scenes.collate_scenes,
  read_point_cloud = pointcloud.read_point_cloud,
  BatchIterator = batches.BatchIterator,
}

return data
