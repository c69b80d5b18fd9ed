-- Curriculum learning (the seed's training/curriculum.py): batches of
-- windows at random starts, growing longer stage by stage, or mixing easy
-- and hard text with more hard windows as training goes on. Starts are drawn
-- from lattice.random (a checkpoint keeps the generator), and each iterator
-- counts its batches (state/set_state), so a resumed run draws the same.
local lattice = require "lattice"
local module = require "lattice.nn.module"
local checks = require "lattice.checks"

local check_options = module.check_options

local M = {}

local Curriculum = {}
Curriculum.__index = Curriculum

local function integer_at_least(v, default, min, what, who) return checks.integer(v, min, what, who, 3, default) end -- a tail call

local function check_ids(t, what, who)
  if not lattice.is_tensor(t) or t.ndim ~= 1 or t.dtype:find("float") or t.dtype == "bool" then
    error(("%s: %s must be a 1-D tensor of token ids"):format(who, what), 3)
  end
end

-- x, y (count, seq_len): windows of tokens at `count` random starts in
-- [0, n - seq_len - 1), as the seed draws them.
local function windows(tokens, count, seq_len)
  local n = tokens.shape[1]
  local starts = lattice.random.randint(0, n - seq_len - 1, { count, 1 })
  local pos = starts + lattice.arange(seq_len, "int32"):reshape({ 1, seq_len })
  return lattice.take(tokens, pos), lattice.take(tokens, pos + 1)
end

local function new(total, batch) return setmetatable({ total = total, index = 0, _batch = batch }, Curriculum) end

--- it:next() -> x, y, or nothing once every batch has been given.
function Curriculum:next()
  if self.index >= self.total then return nil end
  self.index = self.index + 1
  return self._batch(self.index - 1)
end

function Curriculum:reset()
  self.index = 0
  return self
end

function Curriculum:state() return { index = self.index, total = self.total } end

function Curriculum:set_state(s)
  if type(s) ~= "table" or s.total ~= self.total or math.type(s.index) ~= "integer" or s.index < 0
    or s.index > self.total then
    error(("Curriculum:set_state: the state is not of this curriculum (%d batches)"):format(self.total), 2)
  end
  self.index = s.index
  return self
end

--- length_curriculum(tokens, {batch_size, min_seq_len = 32, max_seq_len = 512, n_stages = 4, batches_per_stage = 100}):
-- stage s (0-based) has seq_len = floor(min + s / (n_stages - 1) · (max - min));
-- a stage whose text holds fewer than batch_size sequences of its length is skipped.
function M.length_curriculum(tokens, opts)
  local who = "length_curriculum"
  check_ids(tokens, "tokens", who)
  opts = check_options(opts, { batch_size = true, min_seq_len = true, max_seq_len = true, n_stages = true,
    batches_per_stage = true }, who)
  local b = integer_at_least(opts.batch_size, nil, 1, "batch_size", who)
  local lo = integer_at_least(opts.min_seq_len, 32, 1, "min_seq_len", who)
  local hi = integer_at_least(opts.max_seq_len, 512, lo, "max_seq_len", who)
  local stages = integer_at_least(opts.n_stages, 4, 1, "n_stages", who)
  local per = integer_at_least(opts.batches_per_stage, 100, 1, "batches_per_stage", who)
  local n, lens = tokens.shape[1], {}
  for s = 0, stages - 1 do
    local len = math.floor(lo + s / math.max(stages - 1, 1) * (hi - lo))
    if (n - 1) // len >= b and n - len - 1 > 0 then lens[#lens + 1] = len end
  end
  local it = new(#lens * per, function(i) return windows(tokens, b, lens[i // per + 1]) end)
  it.seq_lens = lens
  return it
end

--- difficulty_curriculum(easy, hard, {batch_size, seq_len, n_batches = 200, warmup_fraction = 0.5}):
-- batch i (0-based) takes floor(batch_size · min(p / warmup_fraction, 1))
-- windows of hard, p = i / (n_batches - 1), the rest of easy (easy rows first).
function M.difficulty_curriculum(easy, hard, opts)
  local who = "difficulty_curriculum"
  check_ids(easy, "easy", who)
  check_ids(hard, "hard", who)
  opts = check_options(opts, { batch_size = true, seq_len = true, n_batches = true, warmup_fraction = true }, who)
  local b = integer_at_least(opts.batch_size, nil, 1, "batch_size", who)
  local len = integer_at_least(opts.seq_len, nil, 1, "seq_len", who)
  local total = integer_at_least(opts.n_batches, 200, 1, "n_batches", who)
  local warm = opts.warmup_fraction or 0.5
  if type(warm) ~= "number" or not (warm > 0 and warm <= 1) then
    error(who .. ": warmup_fraction must be a number in (0, 1], got " .. tostring(warm), 2)
  end
  for _, t in ipairs({ { easy, "easy" }, { hard, "hard" } }) do
    if t[1].shape[1] - len - 1 < 1 then
      error(("%s: %s has %d tokens, too few for windows of %d"):format(who, t[2], t[1].shape[1], len), 2)
    end
  end
  return new(total, function(i)
    local frac = math.min(i / math.max(total - 1, 1) / warm, 1)
    local n_hard = math.floor(b * frac)
    local xs, ys = {}, {}
    if b - n_hard > 0 then xs[#xs + 1], ys[#ys + 1] = windows(easy, b - n_hard, len) end
    if n_hard > 0 then xs[#xs + 1], ys[#ys + 1] = windows(hard, n_hard, len) end
    return lattice.concatenate(xs, 1), lattice.concatenate(ys, 1)
  end)
end

return M
