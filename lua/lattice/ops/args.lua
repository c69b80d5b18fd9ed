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

local KERNEL_MAX = 7 -- per axis, as the relations take it

-- {size, stride, padding, dilation} of a pooling kernel from opts'
-- kernel_size, stride (defaults 2, as mlx_lattice pools), padding (0) and
-- dilation (1), each checked to its range (before a module keeps them; the C
-- core checks them again for the ops).
function args.pool_spec(opts, fname)
  local spec = {
    size = args.triple(opts.kernel_size, 2, "kernel_size", fname),
    stride = args.triple(opts.stride, 2, "stride", fname),
    padding = args.triple(opts.padding, 0, "padding", fname),
    dilation = args.triple(opts.dilation, 1, "dilation", fname),
  }
  for a = 1, 3 do
    local k, s, p, d = spec.size[a], spec.stride[a], spec.padding[a], spec.dilation[a]
    if k < 1 or k > KERNEL_MAX then
      error(("%s: kernel_size must be in 1..%d, got %d"):format(fname, KERNEL_MAX, k), 0)
    end
    if s < 1 then error(("%s: stride must be positive, got %d"):format(fname, s), 0) end
    if p < 0 then error(("%s: padding must be non-negative, got %d"):format(fname, p), 0) end
    if d < 1 then error(("%s: dilation must be positive, got %d"):format(fname, d), 0) end
  end
  return spec
end

-- One of the strings `choices` lists (a set), else an error naming them.
function args.choice(v, choices, what, fname)
  if choices[v] then return v end
  local names = {}
  for k in pairs(choices) do names[#names + 1] = "'" .. k .. "'" end
  table.sort(names)
  error(("%s: %s must be %s, got %s"):format(fname, what, table.concat(names, ", "),
    type(v) == "string" and v or args.show(v)), 0)
end

function args.sparse(x, fname)
  if not sparse.is_sparse(x) then error(("%s: x must be a SparseTensor, got %s"):format(fname, args.type_name(x)), 0) end
end

return args
