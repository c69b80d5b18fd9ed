-- Argument checks shared by the lattice.ops families: one options table per
-- call, sizes as a number or a list of 3 (x, y, z).
--
-- Errors: every check raises with no position (level 0), and each public op
-- is wrapped in args.api, which raises the error again at the line of the
-- user's call, however deep inside the op the check ran; C functions go
-- through args.call so that their messages carry no position of ours either
-- (see lattice.sparse, where these helpers live: the constructor needs them).
local sparse = require "lattice.sparse"

local args = {}

args.api, args.call, args.type_name = sparse.api, sparse.call, sparse.type_name

-- opts, or {} when nil; any key not in `allowed` is an error.
args.options = sparse.check_options

-- How an option's value reads in a message: a list as {1,2}, a number as itself.
function args.show(v)
  if type(v) == "table" then
    local parts = {}
    for i = 1, #v do parts[i] = tostring(v[i]) end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  return type(v) == "number" and tostring(v) or args.type_name(v)
end

local INT32_MIN, INT32_MAX = -2147483648, 2147483647

-- A number or a list of 3 integers, as a list of 3. The C core checks the
-- ranges each option has; int32 is checked here, before the values become C ints.
function args.triple(v, default, what, fname)
  if v == nil then v = default end
  local t = math.type(v) == "integer" and { v, v, v } or v
  local ok = type(t) == "table" and #t == 3
  for a = 1, 3 do ok = ok and math.type(t[a]) == "integer" end
  if not ok then
    error(("%s: %s must be an integer or a list of 3 integers, got %s"):format(fname, what, args.show(v)), 0)
  end
  for a = 1, 3 do
    if t[a] < INT32_MIN or t[a] > INT32_MAX then
      error(("%s: %s must fit in int32, got %d"):format(fname, what, t[a]), 0)
    end
  end
  return { t[1], t[2], t[3] }
end

function args.sparse(x, fname)
  if not sparse.is_sparse(x) then error(("%s: x must be a SparseTensor, got %s"):format(fname, args.type_name(x)), 0) end
end

return args
