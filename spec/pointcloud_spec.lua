-- lattice.data.read_point_cloud: PLY (ascii, binary_little_endian) and XYZ
-- files written here byte by byte, read back to the values written; every
-- malformed file an error naming the file and the problem.
local lattice = require "lattice"
local data = lattice.data

local tmp = os.tmpname()
os.remove(tmp)
local function path(name) return tmp .. "-" .. name end

local function write(name, bytes)
  local p = path(name)
  local f = assert(io.open(p, "wb"))
  f:write(bytes)
  f:close()
  return p
end

local function close_to(want, got, tol)
  assert.are.equal(#want, #got)
  for i = 1, #want do
    for j = 1, #want[i] do
      assert(math.abs(want[i][j] - got[i][j]) <= tol, ("point %d axis %d: %g ~= %g"):format(i, j, want[i][j], got[i][j]))
    end
  end
end

local POINTS = { { 0.5, -1.25, 2 }, { 3.75, 0, -0.125 }, { -2, 0.0625, 100.5 } }
local LABELS = { 0, 3, 1 }

-- A binary little-endian PLY: vertex (x, y, z float, nx double, label uchar
-- or none), then a face element of lists the reader must skip.
local function binary_ply(points, labels, opts)
  opts = opts or {}
  local head = { "ply", "format binary_little_endian 1.0", "comment written by the spec",
    "element vertex " .. (opts.count or #points), "property float x", "property float y", "property float z",
    "property double nx" }
  if labels then head[#head + 1] = "property uchar label" end
  head[#head + 1] = "element face 1"
  head[#head + 1] = "property list uchar int vertex_indices"
  head[#head + 1] = "end_header"
  local body = {}
  for i, p in ipairs(points) do
    body[#body + 1] = string.pack("<fffd", p[1], p[2], p[3], 0.5)
    if labels then body[#body + 1] = string.pack("<B", labels[i]) end
  end
  if not opts.truncate then body[#body + 1] = string.pack("<Biii", 3, 0, 1, 2) end
  local b = table.concat(body)
  if opts.truncate then b = b:sub(1, #b - opts.truncate) end
  return table.concat(head, "\n") .. "\n" .. b
end

local function ascii_ply(lines, props, count)
  local head = { "ply", "format ascii 1.0", "element vertex " .. count }
  for _, p in ipairs(props) do head[#head + 1] = "property " .. p end
  head[#head + 1] = "end_header"
  return table.concat(head, "\n") .. "\n" .. table.concat(lines, "\n") .. "\n"
end

describe("read_point_cloud", function()
  it("reads an ascii PLY with labels, skipping other properties", function()
    local lines = {}
    for i, p in ipairs(POINTS) do lines[i] = ("%g %g 7 %g %d"):format(p[1], p[2], p[3], LABELS[i]) end
    local c = data.read_point_cloud(write("a.ply", ascii_ply(lines, { "float x", "float y", "uchar red", "float z",
      "int label" }, #POINTS)))
    assert.are.equal("ply", c.format)
    assert.are.same({ 3, 3 }, c.points.shape)
    assert.are.equal("float32", c.points.dtype)
    close_to(POINTS, c.points:tolist(), 0)
    assert.are.same(LABELS, c.labels:tolist())
    assert.are.equal("int32", c.labels.dtype)
  end)

  it("reads an ascii PLY without labels, with CRLF lines and an element after the vertices", function()
    local text = "ply\r\nformat ascii 1.0\r\nelement vertex 2\r\nproperty double x\r\nproperty double y\r\n"
      .. "property double z\r\nelement face 1\r\nproperty list uchar int vertex_indices\r\nend_header\r\n"
      .. "1 2 3\r\n-4 5.5 6\r\n3 0 1 2\r\n"
    local c = data.read_point_cloud(write("crlf.ply", text))
    close_to({ { 1, 2, 3 }, { -4, 5.5, 6 } }, c.points:tolist(), 0)
    assert.is_nil(c.labels)
  end)

  it("reads a binary little-endian PLY, with and without labels", function()
    local c = data.read_point_cloud(write("b.ply", binary_ply(POINTS, LABELS)))
    close_to(POINTS, c.points:tolist(), 0) -- every value written is exact in float32
    assert.are.same(LABELS, c.labels:tolist())
    local d = data.read_point_cloud(write("b2.ply", binary_ply(POINTS)))
    close_to(POINTS, d.points:tolist(), 0)
    assert.is_nil(d.labels)
  end)

  it("reads XYZ text with and without labels, skipping comments and blank lines", function()
    local c = data.read_point_cloud(write("a.xyz", "# x y z label\n\n0.5 -1.25 2 0\n3.75,0,-0.125,3\n"
      .. "  // another comment\n-2\t0.0625   100.5 1\n"))
    assert.are.equal("xyz", c.format)
    close_to(POINTS, c.points:tolist(), 1e-6)
    assert.are.same(LABELS, c.labels:tolist())
    local d = data.read_point_cloud(write("b.xyz", "1 2 3\n4 5 6")) -- no final newline
    close_to({ { 1, 2, 3 }, { 4, 5, 6 } }, d.points:tolist(), 0)
    assert.is_nil(d.labels)
  end)

  describe("refuses", function()
    local function fails(name, bytes, msg)
      local p = write(name, bytes)
      assert.has_error(function() data.read_point_cloud(p) end, ("read_point_cloud: %s: %s"):format(p, msg))
    end

    it("a path that is not a string or a file that does not exist", function()
      assert.has_error(function() data.read_point_cloud(3) end,
        "bad argument #1 to 'read_point_cloud' (string expected, got number)")
      local p = path("missing.ply")
      assert.has_error(function() data.read_point_cloud(p) end,
        ("read_point_cloud: %s: No such file or directory"):format(p))
    end)

    it("malformed PLY headers", function()
      fails("h1.ply", "ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\n", "the PLY header has no end_header line")
      fails("h2.ply", "ply\nformat binary_big_endian 1.0\nelement vertex 0\nend_header\n",
        "PLY format binary_big_endian is not supported (ascii and binary_little_endian are)")
      fails("h3.ply", "ply\nelement vertex 1\nproperty float x\nend_header\n1\n", "the PLY header has no format line")
      fails("h4.ply", "ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nend_header\n1 2\n",
        "the vertex element has no property z")
      fails("h5.ply", "ply\nformat ascii 1.0\nelement vertex two\nend_header\n",
        "header line 3: bad element line 'element vertex two'")
      fails("h6.ply", "ply\nformat ascii 1.0\nelement vertex 1\nproperty float128 x\nend_header\n",
        "header line 4: bad property line 'property float128 x'")
      fails("h7.ply", "ply\nformat ascii 1.0\nelement face 0\nend_header\n", "the PLY file has no vertex element")
      fails("h8.ply", "ply\nformat ascii 1.0\nproperty float x\nend_header\n", "header line 3: a property before any element")
      fails("h9.ply", "ply\nformat ascii 1.0\nelement vertex 1\nproperty list uchar float x\nproperty float y\n"
        .. "property float z\nend_header\n", "vertex property x is a list")
      fails("h10.ply", "ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\n"
        .. "property float z\nproperty float label\nend_header\n", "vertex property label must have an integer type, got float")
      fails("h11.ply", "ply\nformat ascii 1.0\nvertices 3\nend_header\n", "header line 3: unknown keyword 'vertices'")
    end)

    it("PLY bodies that end early or disagree with the header", function()
      fails("t1.ply", binary_ply(POINTS, LABELS, { truncate = 1 }), "the body ends after 2 of 3 vertex rows (21 bytes a row)")
      fails("t2.ply", binary_ply(POINTS, nil, { count = 4 }), "the body ends after 3 of 4 vertex rows (20 bytes a row)")
      local props = { "float x", "float y", "float z" }
      fails("t3.ply", ascii_ply({ "1 2 3" }, props, 2), "the body ends after 1 of 2 vertex rows")
      fails("t4.ply", ascii_ply({ "1 2 3", "4 5" }, props, 2), "vertex 2 has 2 values, the header gives 3 properties")
      fails("t5.ply", ascii_ply({ "1 2 x" }, props, 1), "vertex 1: 'x' is not a number")
      fails("t6.ply", ascii_ply({ "1 2 1e999" }, props, 1), "vertex 1: coordinates must be finite numbers, got 1 2 inf")
      local p = write("t6b.ply", binary_ply({ { 1, 0 / 0, 3 } }))
      assert.has_error(function() data.read_point_cloud(p) end) -- the message shows the platform's NaN
      local ok, err = pcall(data.read_point_cloud, p)
      assert.is_false(ok)
      assert.truthy(err:find(p .. ": vertex 1: coordinates must be finite numbers, got 1 ", 1, true))
      fails("t7.ply", ascii_ply({ "1 2 3 -1" }, { "float x", "float y", "float z", "int label" }, 1),
        "vertex 1: label must be a non-negative integer, got -1")
      fails("t8.ply", ascii_ply({}, props, 0), "the file holds no points")
      local lists_first = "ply\nformat binary_little_endian 1.0\nelement face 1\nproperty list uchar int vertex_indices\n"
        .. "element vertex 1\nproperty float x\nproperty float y\nproperty float z\nend_header\n"
      fails("t9.ply", lists_first, "element face has list properties and comes before the vertices: not supported")
    end)

    it("malformed XYZ text", function()
      fails("x1.xyz", "1 2 3\n1 2\n", "line 2 has 2 values; a line is x y z or x y z label")
      fails("x2.xyz", "1 2 3\n1 2 3 4\n", "line 2 has 4 values, the lines before it 3")
      fails("x3.xyz", "1 2 3 0\n1 2 three 0\n", "line 2: 'three' is not a number")
      fails("x4.xyz", "1 2 3 0.5\n", "line 1: label must be a non-negative integer, got 0.5")
      fails("x5.xyz", "1 -1e999 3\n", "line 1: coordinates must be finite numbers, got 1 -inf 3")
      fails("x6.xyz", "# only a comment\n\n", "the file holds no points")
      fails("x7.xyz", "", "the file holds no points")
    end)
  end)
end)
