-- lattice.SparseTensor: the constructor in front of the C type, and the
-- methods written in Lua (astype, tostring). The type itself is in
-- core/lua/sparse.c: coordinates (N, 4) as (batch, x, y, z) int32, features
-- (N, C), the tensor stride and optional batch counts.
local lattice = require "lattice"
local core = require "lattice.core"

local M = {}

local function check_options(opts, allowed, fname)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error(("%s: options must be a table, got %s"):format(fname, type(opts)), 3) end
  for k in pairs(opts) do
    if not allowed[k] then error(("%s: unknown option '%s'"):format(fname, tostring(k)), 3) end
  end
  return opts
end

local INT32_MAX = 2147483647

-- Coordinates as an int32 tensor: integers in range, whatever they came as.
local function int32_coords(coords, fname)
  if type(coords) == "table" then coords = lattice.array(coords, "float64") end
  if not lattice.is_tensor(coords) then
    error(("%s: coords must be a lattice.Tensor or a table, got %s"):format(fname, type(coords)), 3)
  end
  if coords.dtype == "int32" then return coords end
  if coords.dtype == "bool" then error(fname .. ": coords must be integers, got bool", 3) end
  if coords.size > 0 then
    if coords.dtype:find("float") then
      local frac = lattice.max(lattice.abs(lattice.remainder(coords, 1))):item()
      if frac ~= 0 then error(fname .. ": coords must be integers, got non-integer values", 3) end
    end
    local lo, hi = lattice.min(coords):item(), lattice.max(coords):item()
    if lo < -INT32_MAX - 1 or hi > INT32_MAX then error(fname .. ": coords must fit in int32", 3) end
  end
  return coords:astype("int32")
end

-- int32_coords(coords, fname): the conversion every coordinate argument shares
-- (lattice.ops uses it too); its errors point at the caller of its caller.
M.int32_coords = int32_coords

--- SparseTensor(coords, feats[, {batch_counts, stride = 1}])
function M.SparseTensor(coords, feats, opts)
  opts = check_options(opts, { batch_counts = true, stride = true }, "SparseTensor")
  if not lattice.is_tensor(feats) then
    error("SparseTensor: feats must be a lattice.Tensor, got " .. type(feats), 2)
  end
  local counts = opts.batch_counts
  if counts ~= nil and type(counts) ~= "table" then
    error("SparseTensor: batch_counts must be a list of integers, got " .. type(counts), 2)
  end
  if counts then counts = { table.unpack(counts) } end -- a copy of its own
  return core.SparseTensor(int32_coords(coords, "SparseTensor"), feats, counts, opts.stride)
end

local methods = core.SparseTensor_methods

--- x:astype(dtype): the same coordinates, features converted.
function methods.astype(x, dtype) return x:with_feats(x.feats:astype(dtype)) end

local probe = core.SparseTensor(lattice.zeros({ 0, 4 }, "int32"), lattice.zeros({ 0, 1 }))
local meta = getmetatable(probe)
meta.__tostring = function(x)
  local f = x.feats
  return ("SparseTensor(rows=%d, channels=%d, dtype=%s, stride={%s}%s)"):format(#x, f.shape[2], f.dtype,
    table.concat(x.stride, ", "), x.batch_counts and (", batch_counts={" .. table.concat(x.batch_counts, ", ") .. "}")
    or "")
end

function M.is_sparse(v) return getmetatable(v) == meta end

return M
