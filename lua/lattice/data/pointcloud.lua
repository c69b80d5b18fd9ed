-- Point clouds from files: PLY (ascii and binary_little_endian) and plain
-- XYZ text, read into a (N, 3) float32 tensor of points and, when the file
-- has them, a (N) int32 tensor of integer labels.
--
-- PLY: the vertex element's x, y, z (any scalar type) and an optional
-- `label` property; other properties are skipped, other elements (faces)
-- are skipped when they come after the vertices or hold no lists. XYZ: one
-- point a line, `x y z` or `x y z label` (the same count on every line),
-- separated by spaces, tabs or commas; blank lines and lines starting with
-- `#` or `//` are skipped.
local lattice = require "lattice"

local M = {}

local WHO = "read_point_cloud"

-- PLY scalar types: their string.unpack format (little endian) and size.
local PLY_TYPES = {
  char = "i1", uchar = "I1", short = "i2", ushort = "I2", int = "i4", uint = "I4", float = "f", double = "d",
  int8 = "i1", uint8 = "I1", int16 = "i2", uint16 = "I2", int32 = "i4", uint32 = "I4", float32 = "f",
  float64 = "d",
}
local INTEGER_TYPES = { char = true, uchar = true, short = true, ushort = true, int = true, uint = true, int8 = true,
  uint8 = true, int16 = true, uint16 = true, int32 = true, uint32 = true }

local function fail(path, fmt, ...) error(("%s: %s: " .. fmt):format(WHO, path, ...), 0) end

local function finite(v) return v == v and v ~= math.huge and v ~= -math.huge end

-- A label value: an integer in [0, 2^31).
local function check_label(path, v, where)
  if math.type(v) ~= "integer" and not (v == math.floor(v) and finite(v)) or v < 0 or v >= 2 ^ 31 then
    fail(path, "%s: label must be a non-negative integer, got %s", where, tostring(v))
  end
  return math.tointeger(v)
end

local function check_point(path, x, y, z, where)
  if not (finite(x) and finite(y) and finite(z)) then
    fail(path, "%s: coordinates must be finite numbers, got %g %g %g", where, x, y, z)
  end
end

-- ---- PLY header ----

-- header -> {format, elements = {{name, count, props = {{name, type, list = {count_type, item_type}}}}}}, body offset
local function parse_header(path, bytes)
  local stop = bytes:find("end_header\r?\n")
  if bytes:sub(1, 3) ~= "ply" or not bytes:sub(4, 4):match("[\r\n]") then fail(path, "not a PLY file (no 'ply' line)") end
  if not stop then fail(path, "the PLY header has no end_header line") end
  local body = bytes:find("\n", stop) + 1
  local h = { elements = {} }
  local n = 0
  for line in bytes:sub(1, stop - 1):gmatch("([^\n]*)\n") do
    n = n + 1
    line = line:gsub("\r$", "")
    local words = {}
    for w in line:gmatch("%S+") do words[#words + 1] = w end
    local kw = words[1]
    local el = h.elements[#h.elements]
    if n == 1 or kw == nil or kw == "comment" or kw == "obj_info" then -- luacheck: ignore 542
    elseif kw == "format" then
      if words[2] ~= "ascii" and words[2] ~= "binary_little_endian" then
        fail(path, "PLY format %s is not supported (ascii and binary_little_endian are)", tostring(words[2]))
      end
      h.format = words[2]
    elseif kw == "element" then
      local count = math.tointeger(tonumber(words[3]))
      if #words ~= 3 or not count or count < 0 then fail(path, "header line %d: bad element line '%s'", n, line) end
      h.elements[#h.elements + 1] = { name = words[2], count = count, props = {} }
    elseif kw == "property" then
      if not el then fail(path, "header line %d: a property before any element", n) end
      local p
      if words[2] == "list" and #words == 5 and PLY_TYPES[words[3]] and INTEGER_TYPES[words[3]]
        and PLY_TYPES[words[4]] then
        p = { name = words[5], list = { words[3], words[4] } }
      elseif #words == 3 and PLY_TYPES[words[2]] then
        p = { name = words[3], type = words[2] }
      else
        fail(path, "header line %d: bad property line '%s'", n, line)
      end
      el.props[#el.props + 1] = p
    else
      fail(path, "header line %d: unknown keyword '%s'", n, kw)
    end
  end
  if not h.format then fail(path, "the PLY header has no format line") end
  return h, body
end

-- The vertex element and the column of each of x, y, z, label.
local function vertex_columns(path, h)
  local vertex
  for _, el in ipairs(h.elements) do
    if el.name == "vertex" then vertex = el end
  end
  if not vertex then fail(path, "the PLY file has no vertex element") end
  local cols = {}
  for i, p in ipairs(vertex.props) do
    if p.name == "x" or p.name == "y" or p.name == "z" or p.name == "label" then
      if p.list then fail(path, "vertex property %s is a list", p.name) end
      if cols[p.name] then fail(path, "vertex property %s appears twice", p.name) end
      if p.name == "label" and not INTEGER_TYPES[p.type] then
        fail(path, "vertex property label must have an integer type, got %s", p.type)
      end
      cols[p.name] = i
    end
  end
  for _, a in ipairs({ "x", "y", "z" }) do
    if not cols[a] then fail(path, "the vertex element has no property %s", a) end
  end
  return vertex, cols
end

-- ---- PLY bodies ----

local function read_ascii(path, bytes, body, h, vertex, cols, out)
  local pos, line_no = body, 0
  local function next_line()
    local s, e = bytes:find("[^\r\n]*", pos)
    if s > #bytes then return nil end
    pos = e + 1
    local nl = bytes:find("\n", pos)
    pos = nl and nl + 1 or #bytes + 1
    line_no = line_no + 1
    return bytes:sub(s, e)
  end
  for _, el in ipairs(h.elements) do
    for i = 1, el.count do
      local line
      repeat line = next_line() until line == nil or line:find("%S")
      if not line then fail(path, "the body ends after %d of %d %s rows", i - 1, el.count, el.name) end
      if el == vertex then
        local vals = {}
        for w in line:gmatch("%S+") do
          local v = tonumber(w)
          if not v then fail(path, "vertex %d: '%s' is not a number", i, w) end
          vals[#vals + 1] = v
        end
        if #vals ~= #el.props then
          fail(path, "vertex %d has %d values, the header gives %d properties", i, #vals, #el.props)
        end
        local x, y, z = vals[cols.x], vals[cols.y], vals[cols.z]
        check_point(path, x, y, z, "vertex " .. i)
        out.points[#out.points + 1] = { x, y, z }
        if cols.label then out.labels[#out.labels + 1] = check_label(path, vals[cols.label], "vertex " .. i) end
      end
    end
    if el == vertex then return end -- what follows the vertices is not read
  end
end

-- The string.unpack format of one row of `el` when it has no lists, else nil.
local function row_format(el)
  local f = { "<" }
  for _, p in ipairs(el.props) do
    if p.list then return nil end
    f[#f + 1] = PLY_TYPES[p.type]
  end
  return table.concat(f)
end

local function read_binary(path, bytes, body, h, vertex, cols, out)
  local pos = body
  for _, el in ipairs(h.elements) do
    local fmt = row_format(el)
    if not fmt then
      fail(path, "element %s has list properties and comes before the vertices: not supported", el.name)
    end
    local size = string.packsize(fmt)
    if pos + el.count * size - 1 > #bytes then
      fail(path, "the body ends after %d of %d %s rows (%d bytes a row)", (#bytes - pos + 1) // size, el.count,
        el.name, size)
    end
    if el == vertex then
      for i = 1, el.count do
        local vals = { string.unpack(fmt, bytes, pos) }
        pos = vals[#vals]
        local x, y, z = vals[cols.x], vals[cols.y], vals[cols.z]
        check_point(path, x, y, z, "vertex " .. i)
        out.points[i] = { x, y, z }
        if cols.label then out.labels[i] = check_label(path, vals[cols.label], "vertex " .. i) end
      end
      return
    end
    pos = pos + el.count * size
  end
end

-- ---- XYZ ----

local function read_xyz(path, bytes, out)
  local width, line_no = nil, 0
  for line in (bytes .. "\n"):gmatch("([^\n]*)\n") do
    line_no = line_no + 1
    line = line:gsub("\r$", "")
    if line:find("%S") and not line:find("^%s*#") and not line:find("^%s*//") then
      local vals = {}
      for w in line:gmatch("[^%s,]+") do
        local v = tonumber(w)
        if not v then fail(path, "line %d: '%s' is not a number", line_no, w) end
        vals[#vals + 1] = v
      end
      if #vals ~= 3 and #vals ~= 4 then
        fail(path, "line %d has %d values; a line is x y z or x y z label", line_no, #vals)
      end
      width = width or #vals
      if #vals ~= width then
        fail(path, "line %d has %d values, the lines before it %d", line_no, #vals, width)
      end
      check_point(path, vals[1], vals[2], vals[3], "line " .. line_no)
      out.points[#out.points + 1] = { vals[1], vals[2], vals[3] }
      if width == 4 then out.labels[#out.labels + 1] = check_label(path, vals[4], "line " .. line_no) end
    end
  end
end

--- read_point_cloud(path) -> {points = (N, 3) float32, labels = (N) int32 or nil, format}
-- format "ply" or "xyz": a file beginning with the line `ply` is PLY.
function M.read_point_cloud(path)
  if type(path) ~= "string" then
    error(("bad argument #1 to '%s' (string expected, got %s)"):format(WHO, type(path)), 2)
  end
  local f, err = io.open(path, "rb")
  if not f then error(("%s: %s"):format(WHO, err), 2) end
  local bytes = f:read("a")
  f:close()
  local out = { points = {}, labels = {} }
  local has_labels
  local ok, e = pcall(function()
    if bytes:match("^ply[\r\n]") then
      out.format = "ply"
      local h, body = parse_header(path, bytes)
      local vertex, cols = vertex_columns(path, h)
      if h.format == "ascii" then
        read_ascii(path, bytes, body, h, vertex, cols, out)
      else
        read_binary(path, bytes, body, h, vertex, cols, out)
      end
      has_labels = cols.label ~= nil
    else
      out.format = "xyz"
      read_xyz(path, bytes, out)
      has_labels = #out.labels > 0
    end
  end)
  if not ok then error(e, 2) end
  if #out.points == 0 then error(("%s: %s: the file holds no points"):format(WHO, path), 2) end
  return {
    points = lattice.array(out.points, "float32"),
    labels = has_labels and lattice.array(out.labels, "int32") or nil,
    format = out.format,
  }
end

return M
