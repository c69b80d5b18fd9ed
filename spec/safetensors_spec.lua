-- safetensors: round trips of every dtype, files written by other programs
-- (spec/fixtures, made by make_fixtures.py from the published format), every
-- kind of corrupt file with its exact message, and the atomic save.
local lattice = require "lattice"
local ref = require "support.reference"

local here = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "spec/"
local FIX = here .. "fixtures/"

local f32 = ref.f32

local function read_bytes(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function write_bytes(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

-- A fresh empty directory per test, removed afterwards.
local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute("mkdir '" .. d .. "'"))
  return d
end
local function rmdir(d) os.execute("rm -rf '" .. d .. "'") end
local function listing(d)
  local p = assert(io.popen("ls -A '" .. d .. "'"))
  local names = {}
  for line in p:lines() do names[#names + 1] = line end
  p:close()
  return names
end

-- Splits a file into its header text and its data buffer, independently of lattice.
local function parts(bytes)
  local n = string.unpack("<I8", bytes)
  return bytes:sub(9, 8 + n), bytes:sub(9 + n)
end

local function save_load(tensors, metadata)
  local d = tmpdir()
  local path = d .. "/t.safetensors"
  lattice.save_safetensors(path, tensors, metadata)
  local bytes = read_bytes(path)
  local t, m = lattice.load_safetensors(path)
  rmdir(d)
  return t, m, bytes
end

describe("save_safetensors and load_safetensors", function()
  it("round-trip every dtype with exact values and the bytes the format prescribes", function()
    local cases = {
      {"float32", {1.5, -0.0, 3.4028234663852886e38, 1.401298464324817e-45, 0.1},
       function(v) return string.pack("<f", v) end},
      -- float16 and bfloat16 values that the format holds exactly, with their bit patterns
      {"float16", {1, -2, 0.5, 65504, 2 ^ -24, math.huge},
       nil, string.pack("<I2I2I2I2I2I2", 0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x7c00)},
      {"bfloat16", {1, -2, 3.140625, -math.huge, 2 ^ -133},
       nil, string.pack("<I2I2I2I2I2", 0x3f80, 0xc000, 0x4049, 0xff80, 0x0001)},
      {"int32", {-2147483648, 2147483647, 0, -7}, function(v) return string.pack("<i4", v) end},
      {"int64", {math.mininteger, math.maxinteger, (1 << 53) + 1, -1}, function(v) return string.pack("<i8", v) end},
      {"uint8", {0, 1, 127, 255}, function(v) return string.pack("<B", v) end},
      {"bool", {true, false, false, true}, function(v) return v and "\1" or "\0" end},
    }
    for _, c in ipairs(cases) do
      local dtype, values, pack, expected = c[1], c[2], c[3], c[4]
      local x = lattice.array(values, dtype)
      local t, m, bytes = save_load({x = x})
      assert.are.equal(dtype, t.x.dtype)
      assert.are.same({#values}, t.x.shape)
      assert.are.same(x:tolist(), t.x:tolist())
      if dtype ~= "float32" and dtype ~= "float16" and dtype ~= "bfloat16" then
        assert.are.same(values, t.x:tolist())
      end
      if pack then
        expected = {}
        for i, v in ipairs(values) do expected[i] = pack(dtype == "float32" and f32(v) or v) end
        expected = table.concat(expected)
      end
      local _, data = parts(bytes)
      assert.are.equal(expected, data)
      assert.are.same({}, m)
    end
  end)

  it("keeps 0-d and zero-size shapes", function()
    local t, _, bytes = save_load({
      scalar = lattice.array(3.5),
      empty = lattice.zeros({0, 3}),
      hollow = lattice.zeros({2, 0, 4}, "int64"),
    })
    assert.are.same({}, t.scalar.shape)
    assert.are.equal(3.5, t.scalar:item())
    assert.are.same({0, 3}, t.empty.shape)
    assert.are.same({2, 0, 4}, t.hollow.shape)
    assert.are.equal("int64", t.hollow.dtype)
    local header = parts(bytes)
    assert.are.equal('{"empty":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]},'
      .. '"hollow":{"dtype":"I64","shape":[2,0,4],"data_offsets":[0,0]},'
      .. '"scalar":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}', header:match("^(.-)%s*$"))
  end)

  it("writes views as their row-major contents", function()
    local x = lattice.arange(12):reshape({3, 4})
    local h = lattice.arange(6, "float16"):reshape({2, 3})
    local t = save_load({
      transposed = x:transpose(),
      strided = x:slice(2, 1, 4, 2),       -- columns 1 and 3
      row = x:slice(1, 2, 2),              -- a view with an offset
      broadcast = lattice.broadcast_to(lattice.array({1, 2, 3}), {2, 3}), -- stride 0
      half_t = h:transpose(),
    })
    assert.are.same({{0, 4, 8}, {1, 5, 9}, {2, 6, 10}, {3, 7, 11}}, t.transposed:tolist())
    assert.are.same({{0, 2}, {4, 6}, {8, 10}}, t.strided:tolist())
    assert.are.same({{4, 5, 6, 7}}, t.row:tolist())
    assert.are.same({{1, 2, 3}, {1, 2, 3}}, t.broadcast:tolist())
    assert.are.same({{0, 3}, {1, 4}, {2, 5}}, t.half_t:tolist())
    assert.are.equal("float16", t.half_t.dtype)
  end)

  it("round-trips metadata strings and returns an empty table when there is none", function()
    local meta = {format = "pt", note = 'ünï "quoted" \\ back\nslash', empty = ""}
    local t, m, bytes = save_load({w = lattice.ones({2})}, meta)
    assert.are.same(meta, m)
    assert.are.same({1, 1}, t.w:tolist())
    assert.truthy(parts(bytes):find('^{"__metadata__":{"empty":"","format":"pt",'))
    local _, m2, bytes2 = save_load({w = lattice.ones({2})})
    assert.are.same({}, m2)
    assert.falsy(parts(bytes2):find("__metadata__", 1, true))
  end)

  it("writes names in sorted order with 8-byte padding, so a table always gives the same file", function()
    local tensors = {b = lattice.ones({3}), a = lattice.zeros({2}, "int32"), ["c.d"] = lattice.array(true)}
    local _, _, one = save_load(tensors, {z = "1", y = "2"})
    local _, _, two = save_load(tensors, {y = "2", z = "1"})
    assert.are.equal(one, two)
    local header, data = parts(one)
    assert.are.equal(0, #header % 8)
    assert.are.equal('{"__metadata__":{"y":"2","z":"1"},'
      .. '"a":{"dtype":"I32","shape":[2],"data_offsets":[0,8]},'
      .. '"b":{"dtype":"F32","shape":[3],"data_offsets":[8,20]},'
      .. '"c.d":{"dtype":"BOOL","shape":[],"data_offsets":[20,21]}}', header:match("^(.-) *$"))
    assert.are.equal(21, #data)
  end)

  it("writes byte for byte what the reference implementation writes", function()
    local d = tmpdir()
    lattice.save_safetensors(d .. "/empty", {})
    assert.are.equal(read_bytes(FIX .. "reference_empty.safetensors"), read_bytes(d .. "/empty"))
    lattice.save_safetensors(d .. "/meta", {}, {framework = "pt"})
    assert.are.equal(read_bytes(FIX .. "reference_metadata_only.safetensors"), read_bytes(d .. "/meta"))
    lattice.save_safetensors(d .. "/attn", {["attn.0"] = lattice.arange(6):reshape({1, 2, 3})})
    assert.are.equal(read_bytes(FIX .. "reference_attn.safetensors"), read_bytes(d .. "/attn"))
    rmdir(d)
  end)

  it("saves over an existing file and leaves no temporary file", function()
    local d = tmpdir()
    local path = d .. "/w.safetensors"
    lattice.save_safetensors(path, {w = lattice.ones({4})})
    lattice.save_safetensors(path, {v = lattice.zeros({2})})
    local t = lattice.load_safetensors(path)
    assert.is_nil(t.w)
    assert.are.same({0, 0}, t.v:tolist())
    assert.are.same({"w.safetensors"}, listing(d))
    rmdir(d)
  end)
end)

describe("load_safetensors on files written elsewhere", function()
  it("reads a file laid out as the reference writer lays it out (by dtype, then name)", function()
    local t, m = lattice.load_safetensors(FIX .. "reference_all_dtypes.safetensors")
    assert.are.same({format = "pt"}, m)
    assert.are.equal("int64", t.ids.dtype)
    assert.are.same({math.mininteger, math.maxinteger, 9007199254740993, -1}, t.ids:tolist())
    assert.are.equal("float32", t["embed.weight"].dtype)
    assert.are.same({{1.5, -0.0, 3.4028234663852886e38}, {1.401298464324817e-45, f32(math.pi), -7.25}},
      t["embed.weight"]:tolist())
    assert.are.same({{-2147483648, 2147483647}, {0, -7}}, t.count:tolist())
    assert.are.equal("bfloat16", t.brain.dtype)
    assert.are.same({{1, -2}, {3.140625, 3.3895313892515355e38}, {2 ^ -133, -math.huge}}, t.brain:tolist())
    assert.are.equal("float16", t.half.dtype)
    assert.are.same({1, -2, 0.5, 65504, 2 ^ -24, math.huge}, t.half:tolist())
    assert.are.same({{0, 1}, {127, 255}}, t.pixels:tolist())
    assert.are.equal("uint8", t.pixels.dtype)
    assert.are.same({{{true}, {false}}, {{false}, {true}}}, t.mask:tolist())
  end)

  it("re-saves a loaded file with every value intact", function()
    local t, m = lattice.load_safetensors(FIX .. "reference_all_dtypes.safetensors")
    local t2, m2 = save_load(t, m)
    assert.are.same(m, m2)
    for name, x in pairs(t) do
      assert.are.equal(x.dtype, t2[name].dtype)
      assert.are.same(x:tolist(), t2[name]:tolist())
    end
  end)

  it("reads keys in any order, pretty-printed JSON, escapes, padding and an unaligned data buffer", function()
    local t, m = lattice.load_safetensors(FIX .. "foreign_order.safetensors")
    assert.are.same({source = "hand-made", quote = 'say "hi"\\ok\n', ["ünïcode"] = "façade €"}, m)
    assert.are.same({3, -2, 1}, t.zeta:tolist())
    assert.are.equal("int32", t.zeta.dtype)
    assert.are.same({{0.25, -0.5}, {1, 2}}, t["voxel.权重"]:tolist())
    assert.are.same({}, t.scalar.shape)
    assert.are.equal(42.5, t.scalar:item())
    assert.are.same({2, 0}, t.empty.shape)
    assert.are.equal("float16", t.empty.dtype)
    -- BOOL bytes 2 and 255 are true, as NumPy reads them
    assert.are.same({false, true, true, true}, t.alpha:tolist())
  end)

  it("reads a file with no tensors", function()
    local t, m = lattice.load_safetensors(FIX .. "reference_empty.safetensors")
    assert.are.same({}, t)
    assert.are.same({}, m)
  end)
end)

describe("load_safetensors on corrupt files", function()
  local d, path
  before_each(function()
    d = tmpdir()
    path = d .. "/bad.safetensors"
  end)
  after_each(function() rmdir(d) end)

  local function rejects(bytes, msg)
    write_bytes(path, bytes)
    assert.has_error(function() lattice.load_safetensors(path) end, "load_safetensors: " .. path .. ": " .. msg)
  end
  -- a file with this header text and data buffer
  local function file(header, data) return string.pack("<I8", #header) .. header .. (data or "") end
  local function one(entry, data) return file('{"w":' .. entry .. '}', data) end

  it("rejects a missing file and a directory", function()
    assert.has_error(function() lattice.load_safetensors(d .. "/none") end,
      "load_safetensors: " .. d .. "/none: cannot open: No such file or directory")
    assert.has_error(function() lattice.load_safetensors(d) end, "load_safetensors: " .. d .. ": not a regular file")
  end)

  it("rejects a file too short for the header length", function()
    rejects("", "file is 0 bytes, too short for the 8-byte header length")
    rejects("\8\0\0\0\0\0\0", "file is 7 bytes, too short for the 8-byte header length")
  end)

  it("rejects absurd or oversized header lengths", function()
    rejects(string.pack("<I8", 100000001) .. "{}", "header length 100000001 exceeds the limit of 100000000 bytes")
    rejects(string.pack("<i8", -1) .. "{}", "header length 18446744073709551615 exceeds the limit of 100000000 bytes")
    rejects(string.pack("<I8", 100) .. "{}        ", "header length 100 is larger than the 10 bytes that follow it")
    -- a truncated header
    rejects(file('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', "\0\0\0\0"):sub(1, 30),
      "header length 54 is larger than the 22 bytes that follow it")
  end)

  it("rejects headers that are not UTF-8 JSON objects", function()
    rejects(file('{"a\255":1}'), "header is not valid UTF-8 (byte 3)")
    rejects(file('{"\237\160\128":1}'), "header is not valid UTF-8 (byte 2)") -- an encoded surrogate
    rejects(file('{"w": }'), "header is not valid JSON (byte 6 of 7: expected a value, found '}')")
    rejects(file('{"w":{"dtype":"F32"'),
      "header is not valid JSON (byte 19 of 19: expected ',' or '}', found the end of the header)")
    rejects(file(''), "header is not valid JSON (byte 0 of 0: expected a value, found the end of the header)")
    rejects(file('{}x'), "header has unexpected bytes after the JSON value (byte 2)")
    rejects(file('{}\0\0\0\0\0\0'), "header has unexpected bytes after the JSON value (byte 2)")
    rejects(file('[1,2]'), "header is not a JSON object")
    rejects(file('"w"     '), "header is not a JSON object")
  end)

  it("rejects entries with missing or mistyped fields", function()
    rejects(one('3'), "tensor 'w' is not an object")
    rejects(one('{"shape":[1],"data_offsets":[0,4]}', "1234"), "tensor 'w' has no dtype")
    rejects(one('{"dtype":"F32","data_offsets":[0,4]}', "1234"), "tensor 'w' has no shape")
    rejects(one('{"dtype":"F32","shape":[1]}', "1234"), "tensor 'w' has no data_offsets")
    rejects(one('{"dtype":5,"shape":[1],"data_offsets":[0,4]}', "1234"), "tensor 'w' has a dtype that is not a string")
    rejects(one('{"dtype":"F32","shape":"1","data_offsets":[0,4]}', "1234"),
      "tensor 'w' has a shape that is a string, not an array")
    rejects(one('{"dtype":"F32","shape":{},"data_offsets":[0,4]}', "1234"),
      "tensor 'w' has a shape that is an object, not an array")
    rejects(one('{"dtype":"F32","shape":[1],"data_offsets":[4]}', "1234"),
      "tensor 'w' has data_offsets that are not [begin, end]")
    rejects(one('{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}', "1234"),
      "tensor 'w' has data_offsets that are not [begin, end]")
    rejects(one('{"dtype":"F32","shape":[1],"data_offsets":"0,4"}', "1234"),
      "tensor 'w' has data_offsets that are not [begin, end]")
  end)

  it("rejects dtypes lattice does not read", function()
    rejects(one('{"dtype":"I16","shape":[1],"data_offsets":[0,2]}', "12"),
      "tensor 'w' has dtype 'I16', which lattice does not read (F32 F16 BF16 I32 I64 U8 BOOL F64 U32)")
    rejects(one('{"dtype":"f32","shape":[1],"data_offsets":[0,4]}', "1234"),
      "tensor 'w' has dtype 'f32', which lattice does not read (F32 F16 BF16 I32 I64 U8 BOOL F64 U32)")
  end)

  it("rejects dimensions that are not non-negative integers below 2^53", function()
    local function shape(s) return one('{"dtype":"U8","shape":' .. s .. ',"data_offsets":[0,1]}', "x") end
    local function entry(v) return "tensor 'w' has shape entry " .. v .. ", not a non-negative integer below 2^53" end
    rejects(shape("[-1]"), entry("-1"))
    rejects(shape("[2.5]"), entry("2.5"))
    rejects(shape('["1"]'), entry("a string"))
    rejects(shape("[null]"), entry("null"))
    rejects(shape("[true]"), entry("a boolean"))
    rejects(shape("[[1]]"), entry("an array"))
    rejects(shape('[{"n":1}]'), entry("an object"))
    -- past 2^53 a double no longer holds every integer: JSON readers would disagree
    rejects(shape("[9007199254740994]"), entry("9007199254740994"))
    rejects(shape("[1e400]"), entry("1e400"))
    rejects(shape("[1,1,1,1,1,1,1,1,1]"), "tensor 'w' has 9 dimensions (lattice supports at most 8)")
    rejects(shape("[4503599627370496,4503599627370496]"),
      "tensor 'w' has shape {4503599627370496,4503599627370496}, too large to address")
  end)

  it("rejects data_offsets that disagree with the shape or the buffer", function()
    rejects(one('{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}', "1234"),
      "tensor 'w' has data_offsets entry -4, not a non-negative integer below 2^53")
    rejects(one('{"dtype":"F32","shape":[1],"data_offsets":[0,4.5]}', "1234"),
      "tensor 'w' has data_offsets entry 4.5, not a non-negative integer below 2^53")
    rejects(one('{"dtype":"F32","shape":[0],"data_offsets":[8,4]}', "12345678"),
      "tensor 'w' has data_offsets [8,4] that end before they begin")
    rejects(one('{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}', ("\0"):rep(20)),
      "tensor 'w' has data_offsets [0,20] but shape {2,3} float32 needs 24 bytes")
    rejects(one('{"dtype":"F32","shape":[2],"data_offsets":[0,8]}', "1234"),
      "tensor 'w' has data_offsets [0,8] beyond the 4-byte data buffer")
  end)

  it("rejects regions that overlap, leave holes or leave bytes after the last tensor", function()
    -- tensors 'b' then 'a' (key order differs from offset order), uint8 so bytes = elements
    local function entry(r)
      return string.format('{"dtype":"U8","shape":[%d],"data_offsets":[%d,%d]}', r[2] - r[1], r[1], r[2])
    end
    local function two(a, b, data) return file('{"b":' .. entry(b) .. ',"a":' .. entry(a) .. '}', data) end
    rejects(two({0, 8}, {4, 12}, ("x"):rep(12)), "tensors 'a' [0,8] and 'b' [4,12] overlap")
    rejects(two({0, 8}, {0, 8}, ("x"):rep(8)), "tensors 'b' [0,8] and 'a' [0,8] overlap")
    rejects(two({0, 4}, {8, 12}, ("x"):rep(12)), "data bytes [4,8) belong to no tensor")
    rejects(two({4, 8}, {8, 12}, ("x"):rep(12)), "data bytes [0,4) belong to no tensor")
    rejects(two({0, 4}, {4, 8}, ("x"):rep(9)), "data bytes [8,9) belong to no tensor")
    rejects(file('{}', "x"), "data bytes [0,1) belong to no tensor")
    -- a zero-size region inside another is an overlap too, as the reference rules
    rejects(two({0, 8}, {4, 4}, ("x"):rep(8)), "tensors 'a' [0,8] and 'b' [4,4] overlap")
  end)

  it("rejects duplicate names and bad __metadata__", function()
    local e = '{"dtype":"U8","shape":[1],"data_offsets":[0,1]}'
    rejects(file('{"a":' .. e .. ',"a":' .. e .. '}', "x"), "tensor 'a' appears twice in the header")
    rejects(file('{"__metadata__":{"k":1}}'), "__metadata__ value for 'k' is not a string")
    rejects(file('{"__metadata__":["k"]}'), "__metadata__ is not an object")
    rejects(file('{"__metadata__":{},"__metadata__":{}}'), "header has __metadata__ twice")
    rejects(file('{"__metadata__":{"k":"1","k":"2"}}'), "__metadata__ key 'k' appears twice")
  end)

  it("loads or rejects cleanly every random corruption of a valid file", function()
    -- Deterministic mutations (overwritten, inserted and deleted bytes, truncation)
    -- of a real file: each must load or fail with a load_safetensors message,
    -- never crash or read out of bounds (the specs also run under valgrind).
    local good = read_bytes(FIX .. "reference_all_dtypes.safetensors")
    math.randomseed(8)
    local loaded, rejected = 0, 0
    for _ = 1, 400 do
      local b, kind, at = good, math.random(4), math.random(#good)
      local c = string.char(math.random(0, 255))
      if kind == 1 then b = b:sub(1, at - 1) .. c .. b:sub(at + 1)
      elseif kind == 2 then b = b:sub(1, at - 1) .. c .. b:sub(at)
      elseif kind == 3 then b = b:sub(1, at - 1) .. b:sub(at + 1)
      else b = b:sub(1, at - 1) end
      write_bytes(path, b)
      local ok, err = pcall(lattice.load_safetensors, path)
      if ok then loaded = loaded + 1
      else
        rejected = rejected + 1
        assert.are.equal("load_safetensors: " .. path .. ": ", err:sub(1, #path + 20))
      end
    end
    assert.is_true(loaded > 0 and rejected > 0)
  end)

  it("accepts a null __metadata__, unknown entry fields and trailing whitespace", function()
    write_bytes(path, file('{"__metadata__":null,"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":1}}\n\t ', "A"))
    local t, m = lattice.load_safetensors(path)
    assert.are.same({}, m)
    assert.are.same({65}, t.w:tolist())
  end)
end)

describe("save_safetensors errors", function()
  local d
  before_each(function() d = tmpdir() end)
  after_each(function() rmdir(d) end)

  it("checks its arguments before touching the disk", function()
    local p, x = d .. "/x.safetensors", lattice.ones({2})
    assert.has_error(function() lattice.save_safetensors(p, "w") end,
      "bad argument #2 to 'save_safetensors' (table expected, got string)")
    assert.has_error(function() lattice.save_safetensors(p, {w = x}, "pt") end,
      "bad argument #3 to 'save_safetensors' (table expected, got string)")
    assert.has_error(function() lattice.save_safetensors(p, {w = x, v = 3}) end,
      "save_safetensors: tensor 'v' is a number, not a lattice.Tensor")
    assert.has_error(function() lattice.save_safetensors(p, {x}) end,
      "save_safetensors: tensor name 1 is a number, not a string")
    assert.has_error(function() lattice.save_safetensors(p, {["a\0b"] = x}) end,
      "save_safetensors: tensor name 'a\\0b' contains a NUL byte")
    assert.has_error(function() lattice.save_safetensors(p, {["\255"] = x}) end,
      "save_safetensors: tensor name '\255' is not valid UTF-8")
    assert.has_error(function() lattice.save_safetensors(p, {__metadata__ = x}) end,
      "save_safetensors: '__metadata__' cannot name a tensor")
    assert.has_error(function() lattice.save_safetensors(p, {w = x}, {k = 1}) end,
      "save_safetensors: metadata value for 'k' is a number, not a string")
    assert.has_error(function() lattice.save_safetensors(p, {w = x}, {[true] = "v"}) end,
      "save_safetensors: metadata key true is a boolean, not a string")
    local closed = lattice.ones({1})
    closed:close()
    assert.has_error(function() lattice.save_safetensors(p, {c = closed}) end, "save_safetensors: tensor 'c' is closed")
    assert.are.same({}, listing(d))
  end)

  it("fails inside a missing directory and leaves nothing", function()
    local p = d .. "/missing/x.safetensors"
    assert.has_error(function() lattice.save_safetensors(p, {w = lattice.ones({2})}) end,
      "save_safetensors: " .. p .. ": cannot create a temporary file next to it: No such file or directory")
    assert.are.same({}, listing(d))
  end)

  it("leaves an existing file intact when the tensor table is invalid", function()
    local p = d .. "/x.safetensors"
    lattice.save_safetensors(p, {w = lattice.ones({3})})
    local before = read_bytes(p)
    assert.has_error(function() lattice.save_safetensors(p, {w = lattice.zeros({3}), bad = "x"}) end,
      "save_safetensors: tensor 'bad' is a string, not a lattice.Tensor")
    assert.are.equal(before, read_bytes(p))
    assert.are.same({"x.safetensors"}, listing(d))
  end)

  it("removes its temporary file when the final rename fails", function()
    local p = d .. "/taken"
    assert(os.execute("mkdir '" .. p .. "'"))
    assert.has_error(function() lattice.save_safetensors(p, {w = lattice.ones({3})}) end,
      "save_safetensors: " .. p .. ": cannot rename the temporary file onto it: Is a directory")
    assert.are.same({"taken"}, listing(d))
    assert.are.same({}, listing(p))
  end)
end)

describe("load_safetensors on the malformed fixtures", function()
  -- spec/fixtures/malformed.lua: each case's bytes (written to
  -- spec/fixtures/malformed/ by make_malformed.lua) and its message.
  local cases = require "fixtures.malformed"

  it("finds the committed files as malformed.lua describes them", function()
    assert.is_true(#cases >= 70)
    for _, c in ipairs(cases) do
      assert.are.equal(c[2], read_bytes(FIX .. "malformed/" .. c[1] .. ".safetensors"), c[1])
    end
  end)

  it("rejects each with its exact message", function()
    for _, c in ipairs(cases) do
      local path = FIX .. "malformed/" .. c[1] .. ".safetensors"
      local ok, err = pcall(lattice.load_safetensors, path)
      assert.is_false(ok, c[1])
      assert.are.equal("load_safetensors: " .. path .. ": " .. c[3], err)
    end
  end)
end)

describe("load_safetensors reads strict JSON", function()
  local d, path
  before_each(function()
    d = tmpdir()
    path = d .. "/ok.safetensors"
  end)
  after_each(function() rmdir(d) end)
  local function file(header, data) return string.pack("<I8", #header) .. header .. (data or "") end
  local function load(bytes)
    write_bytes(path, bytes)
    return lattice.load_safetensors(path)
  end

  it("decodes every escape in names, metadata, dtypes and field names", function()
    local t, m = load(file('{"__metadata__":{"k\\"\\\\\\/":"\\b\\f\\n\\r\\t","\\u00e9":"\\ud83d\\ude00\\u20AC"},'
      .. '"a\\/b\\u0041":{"\\u0064type":"\\u0055\\u0038","sha\\u0070e":[1],"data_offsets":[0,1]}}', "x"))
    assert.are.same({['k"\\/'] = "\b\f\n\r\t", ["é"] = "😀€"}, m)
    assert.are.same({120}, t["a/bA"]:tolist())
    assert.are.equal("uint8", t["a/bA"].dtype)
  end)

  it("accepts \\u0000 in a field lattice ignores, and every JSON whitespace byte", function()
    local t = load(file(' \t\r\n{ "w" :\n{"x":"\\u0000","dtype":"U8","shape":[ 1 ],"data_offsets":[0 , 1]\r} }\t\n ', "x"))
    assert.are.same({120}, t.w:tolist())
  end)

  it("reads counts up to 2^53 - 1 exactly", function()
    assert.has_error(function() load(file('{"w":{"dtype":"U8","shape":[1,9007199254740991],"data_offsets":[0,0]}}')) end,
      "load_safetensors: " .. path .. ": tensor 'w' has data_offsets [0,0] but shape {1,9007199254740991} uint8 needs "
      .. "9007199254740991 bytes")
    assert.has_error(function() load(file('{"w":{"dtype":"U8","shape":[0],"data_offsets":[9007199254740991,0]}}')) end,
      "load_safetensors: " .. path .. ": tensor 'w' has data_offsets [9007199254740991,0] that end before they begin")
  end)
end)

describe("load_safetensors bounds its work per entry", function()
  local d
  before_each(function() d = tmpdir() end)
  after_each(function() rmdir(d) end)
  -- n zero-size tensors, all at offset 0 (which the format allows)
  local function many(n)
    local items = {}
    for i = 1, n do items[i] = string.format('"t%d":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}', i) end
    local h = "{" .. table.concat(items, ",") .. "}"
    return string.pack("<I8", #h) .. h
  end

  it("reads 2^17 tensors and refuses one more before creating any", function()
    local path = d .. "/many.safetensors"
    write_bytes(path, many(131072))
    local t = lattice.load_safetensors(path)
    local n = 0
    for _ in pairs(t) do n = n + 1 end
    assert.are.equal(131072, n)
    assert.are.same({0}, t.t131072.shape)
    t = nil -- luacheck: ignore 311
    collectgarbage()
    write_bytes(path, many(131073))
    assert.has_error(function() lattice.load_safetensors(path) end, "load_safetensors: " .. path
      .. ": header has more than 131072 tensors, the most lattice reads from one file")
  end)

  it("refuses more than 2^17 metadata entries", function()
    local path = d .. "/meta.safetensors"
    local items = {}
    for i = 1, 131073 do items[i] = string.format('"k%d":""', i) end
    local h = '{"__metadata__":{' .. table.concat(items, ",") .. "}}"
    write_bytes(path, string.pack("<I8", #h) .. h)
    assert.has_error(function() lattice.load_safetensors(path) end,
      "load_safetensors: " .. path .. ": __metadata__ has more than 131072 entries, the most lattice reads")
  end)
end)

-- Shell helpers for the file-system specs: the output of a command, and
-- whether one succeeds.
local function sh(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  return (out:gsub("\n$", ""))
end
local function sh_ok(cmd) return os.execute(cmd) == true end
local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
local function sorted(t)
  table.sort(t)
  return t
end
local function exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

describe("save_safetensors over an existing file", function()
  local d
  before_each(function() d = tmpdir() end)
  after_each(function() rmdir(d) end)
  local x = lattice.arange(3)
  local function saved(path) return lattice.load_safetensors(path).x:tolist() end

  it("keeps the file's mode", function()
    for _, mode in ipairs({"600", "640", "444", "755"}) do
      local p = d .. "/m" .. mode
      lattice.save_safetensors(p, {x = lattice.zeros({1})})
      assert(sh_ok("chmod " .. mode .. " " .. q(p)))
      lattice.save_safetensors(p, {x = x})
      assert.are.equal(mode, sh("stat -c %a " .. q(p)))
      assert.are.same({0, 1, 2}, saved(p))
    end
    -- a new file gets the mode the umask gives, as any new file does
    assert(sh_ok("touch " .. q(d .. "/touched")))
    lattice.save_safetensors(d .. "/new", {x = x})
    assert.are.equal(sh("stat -c %a " .. q(d .. "/touched")), sh("stat -c %a " .. q(d .. "/new")))
  end)

  it("keeps the file's owner where the system permits it", function()
    local p = d .. "/owned"
    lattice.save_safetensors(p, {x = x})
    if sh("id -u") == "0" then
      assert(sh_ok("chown 65534:65534 " .. q(p) .. " && chmod 600 " .. q(p)))
      lattice.save_safetensors(p, {x = x})
      assert.are.equal("65534:65534 600", sh("stat -c '%u:%g %a' " .. q(p)))
    else -- only root may give a file away: ours stays ours
      lattice.save_safetensors(p, {x = x})
      assert.are.equal(sh("id -u") .. ":" .. sh("id -g"), sh("stat -c %u:%g " .. q(p)))
    end
    assert.are.same({0, 1, 2}, saved(p))
  end)

  it("writes through a symbolic link to its target and keeps the link", function()
    lattice.save_safetensors(d .. "/target", {x = lattice.zeros({1})})
    assert(sh_ok("chmod 600 " .. q(d .. "/target") .. " && ln -s target " .. q(d .. "/link")))
    lattice.save_safetensors(d .. "/link", {x = x})
    assert.is_true(sh_ok("test -L " .. q(d .. "/link")))
    assert.are.equal("target", sh("readlink " .. q(d .. "/link")))
    assert.are.same({0, 1, 2}, saved(d .. "/target"))
    assert.are.equal("600", sh("stat -c %a " .. q(d .. "/target")))
    assert.are.same({"link", "target"}, sorted(listing(d)))
  end)

  it("follows relative links from the link's directory, absolute links and chains of links", function()
    assert(sh_ok("mkdir " .. q(d .. "/sub") .. " " .. q(d .. "/other")))
    lattice.save_safetensors(d .. "/sub/w", {x = lattice.zeros({1})})
    assert(sh_ok("ln -s sub/w " .. q(d .. "/rel") .. " && ln -s " .. q(d .. "/rel") .. " " .. q(d .. "/other/abs")
      .. " && ln -s ../other/abs " .. q(d .. "/sub/chain")))
    for _, via in ipairs({"/rel", "/other/abs", "/sub/chain"}) do
      lattice.save_safetensors(d .. via, {x = x + #via})
      assert.are.same({#via, 1 + #via, 2 + #via}, saved(d .. "/sub/w"))
    end
    -- the temporary file went beside the target each time, and is gone
    assert.are.same({"chain", "w"}, sorted(listing(d .. "/sub")))
    assert.are.same({"abs"}, listing(d .. "/other"))
    assert.are.same({"other", "rel", "sub"}, sorted(listing(d)))
  end)

  it("creates the file a dangling link names", function()
    assert(sh_ok("ln -s made " .. q(d .. "/link")))
    lattice.save_safetensors(d .. "/link", {x = x})
    assert.is_true(sh_ok("test -L " .. q(d .. "/link")))
    assert.are.same({0, 1, 2}, saved(d .. "/made"))
  end)

  it("refuses a loop of links and leaves it as it was", function()
    assert(sh_ok("ln -s b " .. q(d .. "/a") .. " && ln -s a " .. q(d .. "/b")))
    assert.has_error(function() lattice.save_safetensors(d .. "/a", {x = x}) end, "save_safetensors: " .. d
      .. "/a: cannot follow its symbolic links: Too many levels of symbolic links")
    assert.are.equal("b", sh("readlink " .. q(d .. "/a")))
    assert.are.same({"a", "b"}, sorted(listing(d)))
  end)
end)

describe("save_safetensors temporary files", function()
  local d
  before_each(function() d = tmpdir() end)
  after_each(function() rmdir(d) end)

  -- The documented name: ".lt-" .. FNV-1a of the target's name (16 hex
  -- digits) .. "-" .. 12 hex digits (the writer's pid, then a counter) .. ".tmp".
  local function temp_name(target, id)
    local h = 0xcbf29ce484222325
    for i = 1, #target do h = (h ~ target:byte(i)) * 0x100000001b3 end
    return string.format(".lt-%016x-%s.tmp", h, id)
  end

  it("have a short fixed-length name, so a name of 255 bytes saves", function()
    local name = ("n"):rep(243) .. ".safetensors"
    assert.are.equal(255, #name)
    lattice.save_safetensors(d .. "/" .. name, {w = lattice.ones({2})})
    assert.are.same({1, 1}, lattice.load_safetensors(d .. "/" .. name).w:tolist())
    assert.are.same({name}, listing(d))
  end)

  it("left by a writer that died are removed by the next save of that file, and nothing else", function()
    local path = d .. "/w.safetensors"
    local stale, other = temp_name("w.safetensors", "7ffffffe0000"), temp_name("v.safetensors", "7ffffffe0000")
    for _, name in ipairs({stale, other, ".lt-notes.tmp", "w.safetensors.tmp.123.0"}) do
      write_bytes(d .. "/" .. name, "half a file")
    end
    lattice.save_safetensors(path, {w = lattice.ones({2})})
    assert.are.same(sorted({other, ".lt-notes.tmp", "w.safetensors", "w.safetensors.tmp.123.0"}), sorted(listing(d)))
    assert.are.same({1, 1}, lattice.load_safetensors(path).w:tolist())
  end)

  it("of a writer still at work are left alone (it holds a lock on its file)", function()
    if not sh_ok("command -v flock >/dev/null") then
      pending("needs flock(1) from util-linux")
      return
    end
    local path, live = d .. "/w.safetensors", d .. "/" .. temp_name("w.safetensors", "7ffffffe0001")
    write_bytes(live, "being written")
    -- flock(1) takes the lock a writer would hold, until we create `done`
    assert(sh_ok("flock -x " .. q(live) .. " sh -c " .. q("touch " .. q(d .. "/ready")
      .. "; while [ ! -e " .. q(d .. "/done") .. " ]; do sleep 0.02; done") .. " >/dev/null 2>&1 &"))
    while not exists(d .. "/ready") do os.execute("sleep 0.02") end
    lattice.save_safetensors(path, {w = lattice.ones({2})})
    assert.is_true(exists(live))
    write_bytes(d .. "/done", "")
    assert(sh_ok("flock -x " .. q(live) .. " true")) -- waits for the holder to go
    lattice.save_safetensors(path, {w = lattice.ones({2})})
    assert.is_false(exists(live))
  end)
end)

describe("save_safetensors and load_safetensors on NUL bytes", function()
  local d
  before_each(function() d = tmpdir() end)
  after_each(function() rmdir(d) end)
  local x = lattice.ones({2})

  it("refuse a path with a NUL byte instead of cutting it short", function()
    local p = d .. "/x.safetensors"
    assert.has_error(function() lattice.save_safetensors(p .. "\0.bak", {w = x}) end,
      "save_safetensors: " .. p .. "\\0.bak: path contains a NUL byte")
    assert.are.same({}, listing(d))
    lattice.save_safetensors(p, {w = x})
    assert.has_error(function() lattice.load_safetensors(p .. "\0.bak") end,
      "load_safetensors: " .. p .. "\\0.bak: path contains a NUL byte")
  end)

  it("refuse NUL bytes in names and metadata, showing where they are", function()
    local p = d .. "/x.safetensors"
    assert.has_error(function() lattice.save_safetensors(p, {["a\0"] = x, a = x}) end,
      "save_safetensors: tensor name 'a\\0' contains a NUL byte")
    assert.has_error(function() lattice.save_safetensors(p, {w = x}, {["k\0x"] = "v"}) end,
      "save_safetensors: metadata key 'k\\0x' contains a NUL byte")
    assert.has_error(function() lattice.save_safetensors(p, {w = x}, {k = "v\0w"}) end,
      "save_safetensors: metadata value 'v\\0w' for 'k' contains a NUL byte")
    assert.are.same({}, listing(d))
  end)
end)
