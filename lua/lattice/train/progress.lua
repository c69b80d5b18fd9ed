-- The trainer's progress display. On a terminal, one bar redrawn in place
-- (carriage return, then clear to the end of the line); elsewhere (a file, a
-- pipe, a log collector) plain lines, one every log_every steps, so a log
-- holds no control characters. Messages (evaluations, checkpoints) are lines
-- in both; on a terminal the bar is drawn again under them.
--
-- The output is anything with :write(text) (io.stdout by default); mode
-- "auto" draws the bar when it is a terminal: a Lua file that
-- lattice.isatty says is one, or an object whose :isatty() returns true.
local lattice = require "lattice"

local M = {}

local Progress = {}
Progress.__index = Progress

local MODES = { auto = true, bar = true, lines = true, none = true }
M.MODES = MODES

local function is_terminal(output)
  if io.type(output) == "file" then return lattice.isatty(output) end
  local f = type(output) == "table" and output.isatty
  return type(f) == "function" and f(output) == true
end

--- new{output, mode = "auto", total, log_every = 10, min_interval = 0.1, width = 24, clock = lattice.now}
function M.new(opts)
  local mode = opts.mode or "auto"
  if mode == "auto" then mode = is_terminal(opts.output) and "bar" or "lines" end
  return setmetatable({
    output = opts.output, mode = mode, total = opts.total, log_every = opts.log_every or 10,
    min_interval = opts.min_interval or 0.1, width = opts.width or 24, clock = opts.clock or lattice.now,
    _last_draw = nil, _bar = nil,
  }, Progress)
end

-- 3725 s as "1h02m", 65 s as "1m05s", 7.4 s as "7s".
local function duration(s)
  if s ~= s or s == math.huge then return "?" end
  s = math.floor(s + 0.5)
  if s >= 3600 then return ("%dh%02dm"):format(s // 3600, s % 3600 // 60) end
  if s >= 60 then return ("%dm%02ds"):format(s // 60, s % 60) end
  return ("%ds"):format(s)
end
M.duration = duration

local function rate_text(rate, unit)
  if rate >= 100 then return ("%.0f %s/s"):format(rate, unit) end
  return ("%.3g %s/s"):format(rate, unit)
end

-- "loss 2.3456 | lr 1.00e-03 | 1234 tok/s | ETA 1m05s" for metrics m.
local function fields(m)
  local parts = { ("loss %.4f"):format(m.loss), ("lr %.2e"):format(m.learning_rate) }
  if m.items_per_sec then parts[#parts + 1] = rate_text(m.items_per_sec, m.unit) end
  if m.eta then parts[#parts + 1] = "ETA " .. duration(m.eta) end
  return table.concat(parts, " | ")
end

function Progress:_write(text)
  self.output:write(text)
  if self.output.flush then self.output:flush() end
end

function Progress:_draw(step, m)
  local frac = self.total > 0 and math.min(step / self.total, 1) or 1
  local filled = math.floor(frac * self.width + 0.5)
  local bar = ("[%s%s] %d/%d %3d%% | %s"):format(("="):rep(filled), (" "):rep(self.width - filled), step, self.total,
    math.floor(frac * 100 + 0.5), fields(m))
  self._bar = bar
  self:_write("\r" .. bar .. "\27[K")
end

--- p:step(step, metrics): after each optimizer step.
function Progress:step(step, m)
  if self.mode == "lines" then
    if step % self.log_every == 0 or step == self.total then
      self:_write(("step %d/%d | %s\n"):format(step, self.total, fields(m)))
    end
  elseif self.mode == "bar" then
    local now = self.clock()
    if self._last_draw == nil or now - self._last_draw >= self.min_interval or step == self.total then
      self._last_draw = now
      self:_draw(step, m)
    end
  end
end

--- p:message(line): a line of its own (the bar, if any, drawn again below it).
function Progress:message(line)
  if self.mode == "none" then return end
  if self.mode == "bar" and self._bar then
    self:_write("\r\27[K" .. line .. "\n" .. self._bar .. "\27[K")
  else
    self:_write(line .. "\n")
  end
end

--- p:close(): ends the bar's line.
function Progress:close()
  if self.mode == "bar" and self._bar then self:_write("\n") end
  self._bar = nil
end

return M
