-- lattice.SparseTensor: the constructor in front of the C type, and the
-- methods written in Lua (astype, tostring). The type itself is in
-- core/lua/sparse.c: coordinates (N, 4) as (batch, x, y, z) int32, features
-- (N, C), the tensor stride and optional batch counts.
--
-- The helpers below (options, coordinates, errors) are shared with
-- lua/lattice/ops.lua through this module's table.
local lattice = require "lattice"
local core = require "lattice.core"

local M = {}

-- What a value is called in messages: its type's __name ("lattice.Tensor"), else its Lua type.
local function type_name(v)
  local mt = getmetatable(v)
  return type(mt) == "table" and type(mt.__name) == "string" and mt.__name or type(v)
end
M.type_name = type_name

-- Errors point at the line of the user's call, as a C function's do. The
-- checks raise with no position (level 0); `api` catches them and raises again
-- at its caller's line. C functions are called through `call`, so that their
-- messages carry no position inside this library either (luaL_error names the
-- Lua function calling it; under pcall, that is pcall itself, which has none).
-- (Every result is passed on: some ops return several.)
local function rethrow_at_caller(ok, ...)
  if not ok then error((...), 2) end -- tail-called by the wrapper: level 2 is its caller
  return ...
end

function M.api(impl)
  return function(...) return rethrow_at_caller(pcall(impl, ...)) end
end

local function rethrow(ok, ...)
  if not ok then error((...), 0) end
  return ...
end

function M.call(f, ...) return rethrow(pcall(f, ...)) end

function M.check_options(opts, allowed, fname)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error(("%s: options must be a table, got %s"):format(fname, type_name(opts)), 0) end
  for k in pairs(opts) do
    if not allowed[k] then error(("%s: unknown option '%s'"):format(fname, tostring(k)), 0) end
  end
  return opts
end

local INT32_MAX = 2147483647

-- Coordinates as an int32 tensor: integers in range, whatever they came as.
function M.int32_coords(coords, fname)
  if type(coords) == "table" then
    local ok, t = pcall(lattice.array, coords, "float64")
    if not ok then error(("%s: coords: %s"):format(fname, tostring(t):gsub("^array: ", "")), 0) end
    coords = t
  end
  if not lattice.is_tensor(coords) then
    error(("%s: coords must be a lattice.Tensor or a table, got %s"):format(fname, type_name(coords)), 0)
  end
  if coords.dtype == "int32" then return coords end
  if coords.dtype == "bool" then error(fname .. ": coords must be integers, got bool", 0) end
  if coords.size > 0 then
    if coords.dtype:find("float") then
      local frac = lattice.max(lattice.abs(lattice.remainder(coords, 1))):item()
      if frac ~= 0 then error(fname .. ": coords must be integers, got non-integer values", 0) end
    end
    local lo, hi = lattice.min(coords):item(), lattice.max(coords):item()
    if lo < -INT32_MAX - 1 or hi > INT32_MAX then error(fname .. ": coords must fit in int32", 0) end
  end
  return coords:astype("int32")
end

--- SparseTensor(coords, feats[, {batch_counts, stride = 1}])
M.SparseTensor = M.api(function(coords, feats, opts)
  opts = M.check_options(opts, { batch_counts = true, stride = true }, "SparseTensor")
  if not lattice.is_tensor(feats) then
    error("SparseTensor: feats must be a lattice.Tensor, got " .. type_name(feats), 0)
  end
  local counts = opts.batch_counts
  if counts ~= nil and type(counts) ~= "table" then
    error("SparseTensor: batch_counts must be a list of integers, got " .. type_name(counts), 0)
  end
  if counts then counts = { table.unpack(counts) } end -- a copy of its own
  return M.call(core.SparseTensor, M.int32_coords(coords, "SparseTensor"), feats, counts, opts.stride)
end)

local methods = core.SparseTensor_methods

local float_dtypes = { float16 = true, bfloat16 = true, float32 = true, float64 = true }

--- x:astype(dtype): the same coordinates, features converted.
methods.astype = M.api(function(x, dtype)
  if not float_dtypes[dtype] then
    error("astype: a SparseTensor's features must be a float dtype, got " .. tostring(dtype), 0)
  end
  return M.call(x.with_feats, x, M.call(lattice.astype, x.feats, dtype))
end)

local probe = core.SparseTensor(lattice.zeros({ 0, 4 }, "int32"), lattice.zeros({ 0, 1 }))
local meta = getmetatable(probe)
meta.__tostring = function(x)
  local f = x.feats
  return ("SparseTensor(rows=%d, channels=%d, dtype=%s, stride={%s}%s)"):format(#x, f.shape[2], f.dtype,
    table.concat(x.stride, ", "), x.batch_counts and (", batch_counts={" .. table.concat(x.batch_counts, ", ") .. "}")
    or "")
end

function M.is_sparse(v) return getmetatable(v) == meta end

local function is_key(v)
  local mt = getmetatable(v)
  return mt ~= nil and mt.__name == "lattice.CoordinateMapKey"
end

--- coordinate_map(v, fname): a map argument of the coordinate ops: a
-- SparseTensor or a CoordinateMapKey as it is, else int32 (N, 4) coordinates.
function M.coordinate_map(v, fname)
  if M.is_sparse(v) or is_key(v) then return v end
  return M.int32_coords(v, fname)
end

return M
