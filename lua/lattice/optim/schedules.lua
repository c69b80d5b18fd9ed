-- Learning-rate schedules, as mlx.optimizers makes them: each is a function
-- of the step count (0 at the first update) returning a number.
local M = {}

local function check_number(v, what, fname)
  if type(v) ~= "number" then error(("%s: %s must be a number, got %s"):format(fname, what, type(v)), 3) end
end

local function check_steps(v, what, fname)
  if math.type(v) ~= "integer" or v < 1 then
    error(("%s: %s must be a positive integer, got %s"):format(fname, what, tostring(v)), 3)
  end
end

--- exponential_decay(init, decay_rate): init * decay_rate^step
function M.exponential_decay(init, decay_rate)
  check_number(init, "init", "exponential_decay")
  check_number(decay_rate, "decay_rate", "exponential_decay")
  return function(step) return init * decay_rate ^ step end
end

--- step_decay(init, decay_rate, step_size): init * decay_rate^(step // step_size)
function M.step_decay(init, decay_rate, step_size)
  check_number(init, "init", "step_decay")
  check_number(decay_rate, "decay_rate", "step_decay")
  check_steps(step_size, "step_size", "step_decay")
  return function(step) return init * decay_rate ^ (step // step_size) end
end

--- cosine_decay(init, decay_steps[, minimum = 0]): from init down to minimum over
-- decay_steps steps along half a cosine, then constant.
function M.cosine_decay(init, decay_steps, minimum)
  minimum = minimum or 0
  check_number(init, "init", "cosine_decay")
  check_steps(decay_steps, "decay_steps", "cosine_decay")
  check_number(minimum, "minimum", "cosine_decay")
  return function(step)
    local s = math.min(step, decay_steps)
    return math.max(init * 0.5 * (1 + math.cos(math.pi / decay_steps * s)), minimum)
  end
end

--- linear_schedule(init, end_value, steps): from init to end_value over steps, then end_value.
function M.linear_schedule(init, end_value, steps)
  check_number(init, "init", "linear_schedule")
  check_number(end_value, "end", "linear_schedule")
  check_steps(steps, "steps", "linear_schedule")
  return function(step) return math.min(step, steps) * ((end_value - init) / steps) + init end
end

--- join_schedules({s1, s2, ...}, {b1, ...}): s1 until step b1, then s2 counting
-- from 0 at b1, and so on (a warmup, then a decay).
function M.join_schedules(schedules, boundaries)
  if type(schedules) ~= "table" or #schedules == 0 then
    error("join_schedules: schedules must be a non-empty list of functions", 2)
  end
  if type(boundaries) ~= "table" or #boundaries ~= #schedules - 1 then
    error(("join_schedules: %d schedules need %d boundaries, got %s"):format(#schedules, #schedules - 1,
      type(boundaries) == "table" and tostring(#boundaries) or type(boundaries)), 2)
  end
  for i, s in ipairs(schedules) do
    if type(s) ~= "function" then error(("join_schedules: schedule %d is not a function"):format(i), 2) end
  end
  for i, b in ipairs(boundaries) do
    if math.type(b) ~= "integer" or (i > 1 and b < boundaries[i - 1]) then
      error("join_schedules: boundaries must be increasing integers", 2)
    end
  end
  return function(step)
    local value = schedules[1](step)
    for i, b in ipairs(boundaries) do
      if step >= b then value = schedules[i + 1](step - b) end
    end
    return value
  end
end

return M
