-- tostring(tensor) in NumPy's style: aligned columns, "..." past 1000
-- elements (three at each edge), 8 significant digits for floats.
local core = require "lattice.core"

local format = {}

local THRESHOLD, EDGE, LINEWIDTH = 1000, 3, 75

-- The corners of t from `axis` on: EDGE entries at each end of every axis
-- longer than 2 * EDGE. The axes are cut down through views first and only
-- the small corner blocks are copied, so a view of any size (a broadcast of
-- 2^40 elements) prints without allocating like it.
local function corners(t, axis)
  if axis > t.ndim then return t end
  local n = t.shape[axis]
  if n <= 2 * EDGE then return corners(t, axis + 1) end
  local head = corners(core.slice(t, axis, 1, EDGE), axis + 1)
  local tail = corners(core.slice(t, axis, n - EDGE + 1, n), axis + 1)
  return core.concatenate({ head, tail }, axis)
end

-- The tensor of the values to print, and whether long axes are elided.
local function summarise(t)
  if t.size <= THRESHOLD then return t, false end
  return corners(t, 1), true
end

local function flatten(list, out)
  if type(list) ~= "table" then
    out[#out + 1] = list
  else
    for _, v in ipairs(list) do flatten(v, out) end
  end
  return out
end

-- True when the decimal string s reads back as v at the dtype's precision:
-- float64 exactly, float32 by rounding through string.pack, the 16-bit floats
-- within half an ulp.
local function reads_back(s, v, dtype)
  local r = tonumber(s)
  if dtype == "float64" then return r == v end
  if dtype == "float32" then return string.unpack("f", string.pack("f", r)) == v end
  local bits = dtype == "float16" and 11 or 8
  return math.abs(r - v) <= math.abs(v) * 2.0 ^ -bits
end

-- The fewest digits (0..8) that format v so it reads back.
local function digits_needed(v, pattern, dtype)
  for d = 0, 8 do
    if reads_back(pattern:format(d):format(v), v, dtype) then return d end
  end
  return 8
end

-- Formats every value alike, as NumPy does: integral floats as "1.", others
-- fixed or scientific with the fewest digits (at most 8) that read back.
local function float_formatter(values, dtype)
  local finite, maxabs, minabs, integral = {}, 0, math.huge, true
  for _, v in ipairs(values) do
    if v == v and v ~= math.huge and v ~= -math.huge then
      finite[#finite + 1] = v
      local a = math.abs(v)
      maxabs = math.max(maxabs, a)
      if a > 0 then minabs = math.min(minabs, a) end
      if v ~= math.floor(v) then integral = false end
    end
  end
  local sci = maxabs >= 1e16 or (minabs < 1e-4 and not integral) or (maxabs / minabs > 1e3 and not integral)
  local function special(v)
    if v ~= v then return "nan" end
    if v == math.huge then return "inf" end
    if v == -math.huge then return "-inf" end
  end
  local digits = 0
  local pattern = sci and "%%.%de" or "%%.%df"
  if not integral or sci then
    for _, v in ipairs(finite) do
      digits = math.max(digits, digits_needed(v, pattern, dtype))
    end
  end
  if sci then return function(v) return special(v) or ("%." .. digits .. "e"):format(v) end end
  if integral then return function(v) return special(v) or ("%d."):format(v) end end
  return function(v)
    if special(v) then return special(v) end
    -- each value with its own fewest digits, padded on the right as NumPy does
    local d = digits_needed(v, pattern, dtype)
    local s = ("%." .. d .. "f"):format(v)
    return (d == 0 and s .. "." or s) .. (" "):rep(digits - d)
  end
end

local function element_formatter(dtype, values)
  if dtype == "bool" then return tostring end
  if dtype:find("float") then return float_formatter(values, dtype) end
  return function(v) return ("%d"):format(v) end
end

-- Renders the nested list with rows on lines, NumPy's indentation and wrapping.
local function render(list, depth, ndim, fmt, width, indent, elided_shape)
  if depth == ndim then
    local s = fmt(list)
    return (" "):rep(width - #s) .. s
  end
  local items = {}
  local n = #list
  for i, v in ipairs(list) do
    items[#items + 1] = render(v, depth + 1, ndim, fmt, width, indent .. " ", elided_shape)
    if elided_shape[depth + 1] and i == EDGE and n == 2 * EDGE then items[#items + 1] = "..." end
  end
  if depth + 1 == ndim then
    local lines, line = {}, ""
    for i, item in ipairs(items) do
      local piece = item .. (i < #items and "," or "")
      if #line > 0 and #indent + #line + #piece + 1 > LINEWIDTH then
        lines[#lines + 1] = line
        line = piece
      else
        line = #line > 0 and (line .. " " .. piece) or piece
      end
    end
    lines[#lines + 1] = line
    return "[" .. table.concat(lines, "\n" .. indent .. " ") .. "]"
  end
  local sep = ",\n" .. ("\n"):rep(ndim - depth - 2) .. indent .. " "
  return "[" .. table.concat(items, sep) .. "]"
end

function format.tostring(t)
  -- only tensors reach here (it is their __tostring); one that is not live was closed
  if not core.is_tensor(t) then return "lattice.Tensor (closed)" end
  -- Zero-size: nothing but the shape to show, which NumPy and MLX write out
  -- unless it is a plain empty vector.
  if t.size == 0 and t.ndim > 1 then
    return "array([], shape={" .. table.concat(t.shape, ", ") .. "}, dtype=" .. t.dtype .. ")"
  end
  local shown, elided = summarise(t)
  local list = core.tolist(shown)
  local values = flatten(list, {})
  local fmt = element_formatter(t.dtype, values)
  local width = 0
  for _, v in ipairs(values) do width = math.max(width, #fmt(v)) end
  local elided_shape = {}
  for axis = 1, t.ndim do elided_shape[axis] = elided and t.shape[axis] > 2 * EDGE end
  local body
  if t.ndim == 0 then
    body = fmt(list)
  else
    body = render(list, 0, t.ndim, fmt, width, "      ", elided_shape)
  end
  return "array(" .. body .. ", dtype=" .. t.dtype .. ")"
end

return format
