-- BatchIterator: batches of a source's items in epochs, shuffled by a seed,
-- with a position that a checkpoint saves and restores exactly.
--
-- A source is {size = n, collate = function(indices) ... end}: collate gets
-- the 0-based indices of one batch (an int32 tensor) and returns the batch
-- (any number of values). Epoch e's order is random.permutation(n) under a
-- seed made from the iterator's seed and e, so it depends on nothing else:
-- neither the global generator nor what ran before.
local lattice = require "lattice"
local module = require "lattice.nn.module"
local checks = require "lattice.checks"

local M = {}

local BatchIterator = {}
BatchIterator.__index = BatchIterator
BatchIterator.__name = "lattice.data.BatchIterator"
M.BatchIterator = BatchIterator

-- (tail calls: the check takes the wrapper's place, and its level)
local function positive_integer(v, what, who, level) return checks.integer(v, 1, what, who, level) end
local boolean = checks.boolean

--- batches(source, {batch_size, shuffle = true, seed = 0, drop_last = true, epochs}, who):
-- epochs = nil runs forever (each epoch a new order); a number stops after it.
function M.new(source, opts, who)
  opts = module.check_options(opts, { batch_size = true, shuffle = true, seed = true, drop_last = true, epochs = true },
    who)
  local b = positive_integer(opts.batch_size, "batch_size", who, 4)
  local seed = opts.seed or 0
  if math.type(seed) ~= "integer" then error(("%s: seed must be an integer, got %s"):format(who, tostring(seed)), 4) end
  if opts.epochs ~= nil then positive_integer(opts.epochs, "epochs", who, 4) end
  local drop_last = boolean(opts.drop_last, true, "drop_last", who, 4)
  local n = source.size
  local per_epoch = drop_last and n // b or (n + b - 1) // b
  if per_epoch == 0 then
    error(("%s: %d items make no batch of %d (drop_last = %s)"):format(who, n, b, tostring(drop_last)), 4)
  end
  return setmetatable({
    source = source, batch_size = b, shuffle = boolean(opts.shuffle, true, "shuffle", who, 4), seed = seed,
    drop_last = drop_last, epochs = opts.epochs, batches_per_epoch = per_epoch,
    epoch = 1, index = 0, _order = nil, _order_epoch = nil,
  }, BatchIterator)
end

-- Epoch e's seed: the iterator's seed and e mixed (golden-ratio step), so
-- neighbouring epochs and seeds give unrelated orders.
local function epoch_seed(seed, e) return seed ~ (e * 0x9E3779B97F4A7C15) end

function BatchIterator:_order_of(e)
  if self._order_epoch ~= e then
    local n = self.source.size
    self._order = self.shuffle and lattice.random.permutation(n, { seed = epoch_seed(self.seed, e) })
      or lattice.arange(n, "int32")
    self._order_epoch = e
  end
  return self._order
end

--- it:next() -> the next batch's values, or nothing once `epochs` are done.
function BatchIterator:next()
  if self.index == self.batches_per_epoch then
    if self.epochs and self.epoch >= self.epochs then return nil end
    self.epoch, self.index = self.epoch + 1, 0
  end
  local b, n = self.batch_size, self.source.size
  local first = self.index * b
  local last = math.min(first + b, n)
  self.index = self.index + 1
  local order = self:_order_of(self.epoch)
  return self.source.collate(lattice.slice(order, 1, first + 1, last))
end

--- for ... in it:iter() do: the batches until next() gives nothing.
function BatchIterator:iter()
  return function() return self:next() end
end

--- it:reset(): back to the first batch of epoch 1.
function BatchIterator:reset()
  self.epoch, self.index = 1, 0
  return self
end

--- it:state() -> {epoch, index, seed, size}: where it is, as JSON can hold it.
function BatchIterator:state()
  return { epoch = self.epoch, index = self.index, seed = self.seed, size = self.source.size,
    batch_size = self.batch_size }
end

--- it:set_state(s): a position state() gave, for an iterator made the same way.
function BatchIterator:set_state(s)
  local who = "BatchIterator:set_state"
  if type(s) ~= "table" then error(who .. ": state must be a table, got " .. type(s), 2) end
  local mine = { seed = self.seed, size = self.source.size, batch_size = self.batch_size }
  for _, k in ipairs({ "seed", "size", "batch_size" }) do
    if s[k] ~= mine[k] then
      error(("%s: the state is of an iterator with %s %s, this one has %s"):format(who, k, tostring(s[k]),
        tostring(mine[k])), 2)
    end
  end
  if math.type(s.epoch) ~= "integer" or s.epoch < 1 or math.type(s.index) ~= "integer" or s.index < 0
    or s.index > self.batches_per_epoch then
    error(("%s: epoch must be an integer >= 1 and index in [0, %d]"):format(who, self.batches_per_epoch), 2)
  end
  self.epoch, self.index = s.epoch, s.index
  return self
end

function BatchIterator:__tostring()
  return ("BatchIterator(batch_size=%d, batches_per_epoch=%d, epoch=%d, index=%d)"):format(self.batch_size,
    self.batches_per_epoch, self.epoch, self.index)
end

return M
