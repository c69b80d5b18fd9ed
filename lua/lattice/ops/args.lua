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

local KERNEL_MAX = 7 -- per axis, as the relations take it

-- {size, stride, padding, dilation} of a pooling kernel from opts'
-- kernel_size, stride (defaults 2, as mlx_lattice pools), padding (0) and
-- dilation (1), each checked to its range. Errors point at the caller of the
-- function calling this one.
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
      error(("%s: kernel_size must be in 1..%d, got %d"):format(fname, KERNEL_MAX, k), 3)
    end
    if s < 1 then error(("%s: stride must be positive, got %d"):format(fname, s), 3) end
    if p < 0 then error(("%s: padding must be non-negative, got %d"):format(fname, p), 3) end
    if d < 1 then error(("%s: dilation must be positive, got %d"):format(fname, d), 3) end
  end
  return spec
end

-- One of the strings `choices` lists (a set), else an error naming them.
function args.choice(v, choices, what, fname)
  if choices[v] then return v end
  local names = {}
  for k in pairs(choices) do names[#names + 1] = "'" .. k .. "'" end
  table.sort(names)
  error(("%s: %s must be %s, got %s"):format(fname, what, table.concat(names, ", "), tostring(v)), 3)
end

function args.sparse(x, fname)
  if not sparse.is_sparse(x) then error(("%s: x must be a SparseTensor, got %s"):format(fname, type(x)), 3) end
end

return args
