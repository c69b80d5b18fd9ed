local lattice = require "lattice"
local repl = require "lattice.repl"

-- A table whose metamethods fail loudly: the REPL must read it without them.
local function booby_trapped(t)
  local function trap() error("metamethod called") end
  return setmetatable(t, { __index = trap, __pairs = trap, __len = trap, __newindex = trap })
end

describe("lattice.repl.format", function()
  it("shows a shape as a sequence", function()
    assert.are.equal("{2, 3}", repl.format(lattice.zeros({2, 3}).shape))
  end)

  it("shows a tolist() result as nested sequences", function()
    assert.are.equal("{{1, 2}, {3, 4}}", repl.format(lattice.array({{1, 2}, {3, 4}}, "int32"):tolist()))
    assert.are.equal("{{1.0, 2.5}}", repl.format(lattice.array({{1, 2.5}}):tolist()))
  end)

  it("shows string keys as names, sorted, after the sequence, with strings quoted", function()
    assert.are.equal('{10, 20, a = 1, b = "x"}', repl.format({ b = "x", a = 1, 10, 20 }))
  end)

  it("brackets keys that are not names: numbers past the sequence, keywords, other strings, booleans", function()
    local t = { 1, [3] = 3, [2.5] = "h", ["end"] = 0, ["a b"] = 0, [true] = 1, [false] = 0 }
    assert.are.equal('{1, [2.5] = "h", [3] = 3, ["a b"] = 0, ["end"] = 0, [false] = 0, [true] = 1}', repl.format(t))
  end)

  it("escapes newlines, quotes, backslashes and control bytes inside strings", function()
    assert.are.equal([[{"a\nb\t\"q\"\\\000\127"}]], repl.format({ 'a\nb\t"q"\\\0\127' }))
  end)

  it("shows an empty table as {}", function() assert.are.equal("{}", repl.format({})) end)

  it("shows tensors with their own tostring, inside tables too", function()
    local x = lattice.array({1, 2})
    assert.are.equal(tostring(x), repl.format(x))
    assert.are.equal("{w = " .. tostring(x) .. "}", repl.format({ w = x }))
  end)

  it("shows a zero-size tensor's shape, as NumPy does", function()
    assert.are.equal("array([], shape={0, 0}, dtype=float32)", repl.format(lattice.zeros({0, 0})))
    assert.are.equal("array([], shape={2, 0, 3}, dtype=int32)", repl.format(lattice.zeros({2, 0, 3}, "int32")))
    assert.are.equal("array([], dtype=float32)", repl.format(lattice.zeros({0})))
  end)

  it("shows a table met again inside itself as <cycle>, and a table shared twice in full", function()
    local t = { 1 }
    t.self = t
    assert.are.equal("{1, self = <cycle>}", repl.format(t))
    local shared = { 1 }
    assert.are.equal("{{1}, {1}}", repl.format({ shared, shared }))
  end)

  it("stops at depth 8 with {...}", function()
    local t = {}
    for _ = 1, 10 do t = { t } end
    assert.are.equal(("{"):rep(8) .. "{...}" .. ("}"):rep(8), repl.format(t))
  end)

  it("shows at most 100 entries of one table and 1000 in all, then ...", function()
    local long = {}
    for i = 1, 150 do long[i] = i end
    local shown = repl.format(long)
    assert.truthy(shown:find("99, 100, ...}$"), shown)
    local wide = {}
    for i = 1, 20 do wide[i] = long end
    shown = repl.format(wide)
    local _, numbers = shown:gsub("%d+", "")
    local _, inner_tables = shown:gsub("{%d", "")
    assert.are.equal(1000, numbers + inner_tables)
    assert.truthy(shown:find(", ...}, ...}$"), shown)
  end)

  it("uses a table's own __tostring", function()
    local t = setmetatable({}, { __tostring = function() return "<model>" end })
    assert.are.equal("{<model>}", repl.format({ t }))
  end)

  it("reports a failing __tostring in place instead of raising", function()
    local t = setmetatable({}, { __tostring = function() error("no way", 0) end })
    assert.truthy(repl.format(t):match("^table: 0x%x+ %(__tostring failed: no way%)$"), repl.format(t))
  end)

  it("reads a table without calling its __index, __pairs or __len", function()
    assert.are.equal("{1, a = 2}", repl.format(booby_trapped({ 1, a = 2 })))
  end)
end)

describe("lattice.repl.format_results", function()
  it("separates values with tabs, as print does, and shows strings as they are", function()
    assert.are.equal("{1}\tsome text\tnil\t2", repl.format_results({ 1 }, "some text", nil, 2))
  end)

  it("gives an empty line for no values", function() assert.are.equal("", repl.format_results()) end)
end)

describe("lattice.repl.complete", function()
  local x = lattice.ones({2, 3})
  local env = { lattice = lattice, x = x, s = "text", print = print, count = 3 }

  it("completes globals and keywords, functions ending in (", function()
    assert.are.same({ "print(" }, repl.complete("pri", env))
    assert.are.same({ "count" }, repl.complete("co", env))
    assert.are.same({ "false", "for", "function" }, repl.complete("f", env))
    assert.are.same({ "lattice", "local" }, repl.complete("l", env))
  end)

  it("completes the fields of a path", function()
    assert.are.same({ "lattice.zeros(", "lattice.zeros_like(" }, repl.complete("lattice.ze", env))
    assert.are.same({ "lattice.random.get_state(", "lattice.random.normal(", "lattice.random.permutation(",
      "lattice.random.randint(", "lattice.random.seed(", "lattice.random.set_state(", "lattice.random.uniform(" },
      repl.complete("lattice.random.", env))
  end)

  it("lists lattice's lazily loaded modules and completes inside them", function()
    local lib = setmetatable({}, { __lazy = { checks = "lattice.checks" }, __index = function() error("ran __index") end })
    local lazy_env = { lib = lib }
    assert.are.same({ "lib.checks" }, repl.complete("lib.ch", lazy_env))
    local inside = repl.complete("lib.checks.", lazy_env)
    assert.is_true(#inside > 0)
    for _, word in ipairs(inside) do assert.truthy(word:find("^lib%.checks%.")) end
    local tr = repl.complete("lattice.tr", env)
    assert.truthy(table.concat(tr, " "):find("lattice.train", 1, true))
    assert.are.same({ "lattice.lora.apply_lora(", "lattice.lora.apply_qlora(" }, repl.complete("lattice.lora.apply_", env))
  end)

  it("completes a tensor's methods after : and its fields and methods after .", function()
    assert.are.same({ "x:relu(", "x:remainder(", "x:reshape(" }, repl.complete("x:re", env))
    assert.are.same({ "x.shape", "x.shares_storage(" }, repl.complete("x.sha", env))
    assert.are.same({ "x.T" }, repl.complete("x.T", env))
  end)

  it("offers only tensor fields that tensors have", function()
    for _, word in ipairs(repl.complete("x.", env)) do
      local name = word:match("^x%.([%w_]+)%(?$")
      assert.is_not_nil(x[name], word)
    end
  end)

  it("completes methods from a table's metatable __index chain", function()
    local Base = { area = function() end }
    local Square = setmetatable({ side = function() end }, { __index = Base })
    Square.__index = Square
    local sq = setmetatable({ size = 2 }, Square)
    assert.are.same({ "sq:area(" }, repl.complete("sq:a", { sq = sq }))
    assert.are.same({ "sq.side(", "sq.size" }, repl.complete("sq.si", { sq = sq }))
    assert.are.same({ "sq:side(" }, repl.complete("sq:si", { sq = sq }))
  end)

  it("completes string methods", function()
    assert.are.same({ "s:upper(" }, repl.complete("s:up", env))
  end)

  it("looks through a protected metatable without calling anything", function()
    local obj = setmetatable({}, { __index = { hello = function() end }, __metatable = false })
    assert.are.same({ "obj:hello(" }, repl.complete("obj:he", { obj = obj }))
  end)

  it("never calls an __index, __pairs or __len metamethod", function()
    local trapped = booby_trapped({ alpha = 1 })
    assert.are.same({ "t.alpha" }, repl.complete("t.al", { t = trapped }))
    assert.are.same({}, repl.complete("t.missing.x", { t = trapped }))
    assert.are.same({}, repl.complete("nothing.x", booby_trapped({})))
  end)

  it("finds nothing behind a field only a function __index computes", function()
    assert.are.same({}, repl.complete("x.shape.", env))
  end)

  it("finds nothing for words that are not a path of names", function()
    for _, text in ipairs({ "1ab", "x:re.sh", ".x", "lattice..ze", "x[1].", "count.x", "", "-" }) do
      assert.are.same({}, repl.complete(text, env), text)
    end
  end)
end)
