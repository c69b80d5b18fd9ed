-- Argument checks shared by the lattice.ops families: one options table per
-- call, sizes as a number or a list of 3 (x, y, z). Errors are raised at the
-- caller of the public op (levels count from the op's own frame).
local sparse = require "lattice.sparse"

local args = {}

-- opts, or {} when nil; any key not in `allowed` is an error.
function args.options(opts, allowed, fname)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error(("%s: options must be a table, got %s"):format(fname, type(opts)), 3) end
  for k in pairs(opts) do
    if not allowed[k] then error(("%s: unknown option '%s'"):format(fname, tostring(k)), 3) end
  end
  return opts
end

-- A number or a list of 3 integers, as a list of 3.
function args.triple(v, default, what, fname)
  if v == nil then v = default end
  if math.type(v) == "integer" then return { v, v, v } end
  if type(v) == "table" and #v == 3 and math.type(v[1]) == "integer" and math.type(v[2]) == "integer"
    and math.type(v[3]) == "integer" then
    return { v[1], v[2], v[3] }
  end
  error(("%s: %s must be an integer or a list of 3 integers, got %s"):format(fname, what, tostring(v)), 4)
end

function args.sparse(x, fname)
  if not sparse.is_sparse(x) then error(("%s: x must be a SparseTensor, got %s"):format(fname, type(x)), 3) end
end

return args
