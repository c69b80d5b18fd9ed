-- lattice.train: the Trainer, checkpoints, callbacks, the progress display,
-- evaluation metrics and objectives, curriculum helpers.
local trainer = require "lattice.train.trainer"
local checkpoint = require "lattice.train.checkpoint"
local callbacks = require "lattice.train.callbacks"
local objectives = require "lattice.train.objectives"
local curriculum = require "lattice.train.curriculum"

local train = {
  Trainer = trainer.new,
  checkpoints = checkpoint.list,
  latest_checkpoint = checkpoint.latest,
}
for _, part in ipairs({ callbacks, objectives, curriculum }) do
  for k, v in pairs(part) do
    if k ~= "flatten" then train[k] = v end
  end
end

return train
