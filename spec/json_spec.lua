-- lattice.json: the text it writes (compact and indented, as Python's
-- json.dumps writes them), what it reads back (integers stay integers,
-- floats round-trip to the bit), the strict reader's refusals and every bad
-- value with its message.
local lattice = require "lattice"
local json = lattice.json

describe("lattice.json.encode", function()
  it("writes objects with sorted keys, arrays, numbers, strings and booleans", function()
    assert.are.equal('{"a":1,"b":[1,2.5,"x"],"c":{"d":true,"e":false}}',
      json.encode({ c = { e = false, d = true }, b = { 1, 2.5, "x" }, a = 1 }))
    assert.are.equal("{}", json.encode({}))
    assert.are.equal('"\\"\\\\\\n\\t\\r\\u0001\\u001f\xc3\xa9"', json.encode("\"\\\n\t\r\1\31\xc3\xa9"))
  end)

  it("indents as json.dumps(indent=n) does", function()
    assert.are.equal('{\n  "a": [\n    1,\n    {}\n  ],\n  "b": "x"\n}', json.encode({ a = { 1, {} }, b = "x" }, { indent = 2 }))
    assert.are.equal("[\n1\n]", json.encode({ 1 }, { indent = 0 }))
  end)

  it("writes floats as the shortest text that reads back the same, with .0 on whole ones", function()
    -- pairs, not keys: a float key with an integer value becomes an integer key
    local cases = { { 1.0, "1.0" }, { 0.1, "0.1" }, { -0.0, "-0.0" }, { 1e300, "1e+300" }, { 1 / 3, "0.3333333333333333" },
      { 2 ^ 63, "9.223372036854776e+18" }, { 5e-324, "5e-324" }, { 123456.789, "123456.789" } }
    for _, case in ipairs(cases) do
      local v, text = case[1], case[2]
      assert.are.equal(text, json.encode(v))
      local back = json.decode(text)
      assert.are.equal(math.type(v), math.type(back))
      assert.are.equal(string.pack("d", v), string.pack("d", back))
    end
    assert.are.equal("-9223372036854775808", json.encode(math.mininteger))
  end)

  it("round-trips a random tree", function()
    math.randomseed(5)
    local function tree(depth)
      if depth == 0 or math.random() < 0.3 then
        local r = math.random(1, 4)
        if r == 1 then return math.random(-1000000, 1000000) end
        if r == 2 then return (math.random() - 0.5) * 10 ^ math.random(-30, 30) end
        if r == 3 then return math.random() < 0.5 end
        return utf8.char(math.random(1, 0x10ffff) % 0xd000, 0x20ac, 65)
      end
      local t = {}
      if math.random() < 0.5 then
        for i = 1, math.random(1, 4) do t[i] = tree(depth - 1) end
      else
        for i = 1, math.random(1, 4) do t["k" .. i] = tree(depth - 1) end
      end
      return t
    end
    for _ = 1, 50 do
      local t = tree(4)
      assert.are.same(t, json.decode(json.encode(t)))
      assert.are.same(t, json.decode(json.encode(t, { indent = 3 })))
    end
  end)

  it("names what JSON cannot hold", function()
    assert.has_error(function() json.encode({ 1, 2, x = 3 }) end,
      "json.encode: a table is neither an array (keys 1 .. n) nor an object (string keys)")
    assert.has_error(function() json.encode({ [1] = 1, [3] = 3 }) end,
      "json.encode: a table is neither an array (keys 1 .. n) nor an object (string keys)")
    assert.has_error(function() json.encode({ [true] = 1 }) end,
      "json.encode: a table key is a boolean; keys must be strings, or 1 .. n for an array")
    assert.has_error(function() json.encode(math.huge) end, "json.encode: cannot write inf (JSON has no such number)")
    assert.has_error(function() json.encode({ x = 0 / 0 }) end, "json.encode: cannot write -nan (JSON has no such number)")
    assert.has_error(function() json.encode("\255") end, "json.encode: string is not valid UTF-8")
    assert.has_error(function() json.encode(print) end, "json.encode: cannot write a function")
    local loop = {}
    loop.self = loop
    assert.has_error(function() json.encode(loop) end,
      "json.encode: tables nested deeper than 128 (a table that contains itself?)")
    assert.has_error(function() json.encode({}, { indent = -1 }) end,
      "json.encode: indent must be an integer in [0, 16], got -1")
    assert.has_error(function() json.encode({}, { pretty = true }) end, "json.encode: unknown option 'pretty'")
  end)
end)

describe("lattice.json.decode", function()
  it("reads integers as integers, other numbers as floats, null as an absent key", function()
    local t = json.decode(' {"a": [1, -0, 2.0, 1e2, 9223372036854775807, 9223372036854775808], "b": null, "c": "\\u00e9\\ud83d\\ude00"} ')
    assert.are.same({ "integer", "integer", "float", "float", "integer", "float" },
      { math.type(t.a[1]), math.type(t.a[2]), math.type(t.a[3]), math.type(t.a[4]), math.type(t.a[5]), math.type(t.a[6]) })
    assert.are.equal(math.maxinteger, t.a[5])
    assert.is_nil(t.b)
    assert.are.equal("\xc3\xa9\xf0\x9f\x98\x80", t.c)
    assert.are.equal("a\0b", json.decode('"a\\u0000b"'))
    assert.is_true(json.decode("true"))
    assert.is_nil(json.decode("null"))
  end)

  it("reads numbers of any length whole", function()
    -- JSON bounds no digits; these are longer than any buffer a number is copied to
    assert.are.equal(100000.0, json.decode("1." .. ("0"):rep(600) .. "e5"))
    assert.are.equal(1.0, json.decode("[0." .. ("0"):rep(520) .. "1e521]")[1])
    assert.are.equal(0.5, json.decode("0.5" .. ("0"):rep(100)))
    assert.are.equal(-12345678901234, json.decode("-12345678901234"))
    assert.are.equal(1e30, json.decode(("9"):rep(30))) -- past int64: the nearest double, 10^30's
  end)

  it("refuses what RFC 8259 does not allow, naming the byte", function()
    assert.has_error(function() json.decode('{"a": 01}') end, "json.decode: byte 8: a number has a leading zero")
    assert.has_error(function() json.decode("[1,]") end, "json.decode: byte 4: expected a value, found ']'")
    assert.has_error(function() json.decode('{"a": 1') end, "json.decode: the text ends inside a value")
    assert.has_error(function() json.decode("[1] [2]") end, "json.decode: byte 5: text after the value")
    assert.has_error(function() json.decode("[1, null]") end,
      "json.decode: null at byte 5 is an array element, which Lua cannot hold")
    assert.has_error(function() json.decode('"\255"') end, "json.decode: the text is not valid UTF-8 (byte 2)")
    assert.has_error(function() json.decode(("["):rep(200) .. ("]"):rep(200)) end,
      "json.decode: byte 129: nesting deeper than 128 levels")
  end)
end)
