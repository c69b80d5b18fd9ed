-- Argument checks shared by lattice.data, lattice.train and lattice.lora.
-- `level` is error()'s, counted from the check itself: 2 blames the function
-- that called it, 3 that function's caller, and so on.
local checks = {}

--- checks.integer(v, min, what, who, level[, default]): v, an integer >= min;
-- nil gives default when one is given.
function checks.integer(v, min, what, who, level, default)
  if v == nil and default ~= nil then return default end
  if math.type(v) ~= "integer" or v < min then
    local bound = min == 1 and "a positive integer" or ("an integer >= %d"):format(min)
    error(("%s: %s must be %s, got %s"):format(who, what, bound, tostring(v)), level)
  end
  return v
end

--- checks.boolean(v, default, what, who, level)
function checks.boolean(v, default, what, who, level)
  if v == nil then return default end
  if type(v) ~= "boolean" then error(("%s: %s must be a boolean, got %s"):format(who, what, type(v)), level) end
  return v
end

--- checks.finite(v, what, who, level): a number that is neither NaN nor infinite.
function checks.finite(v, what, who, level)
  if type(v) ~= "number" or v ~= v or v == math.huge or v == -math.huge then
    error(("%s: %s must be a finite number, got %s"):format(who, what, tostring(v)), level)
  end
  return v
end

return checks
