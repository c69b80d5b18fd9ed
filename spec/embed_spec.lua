-- The `lattice` command (core/host/main.c), the host built on the embedding
-- API: run as a child process through the shell. The C API itself is checked
-- by C hosts: examples/embed (ctest embed_two_threads), spec/c/embed_api.c
-- (every bad argument, c_embed_api) and spec/c/blas_states.c (four states,
-- c_blas_states). These specs need the command's path, which spec/run.lua
-- keeps in arg[-1] when the specs run inside it.
local lattice = require "lattice"

local exe = arg and arg[-1]
local inside_lattice = type(exe) == "string" and exe:match("lattice$") ~= nil

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function write_file(text)
  local name = os.tmpname()
  local f = assert(io.open(name, "w"))
  f:write(text)
  f:close()
  return name
end

local function read_file(name)
  local f = assert(io.open(name))
  local text = f:read("a")
  f:close()
  return text
end

-- Runs the command with `args` (already quoted) and optional stdin text;
-- returns stdout, stderr and the exit status.
local function run(args, stdin)
  local input = write_file(stdin or "")
  local errfile = os.tmpname()
  local p = io.popen(shell_quote(exe) .. " " .. args .. " <" .. input .. " 2>" .. errfile)
  local out = p:read("a")
  local _, _, code = p:close()
  local err = read_file(errfile)
  os.remove(input)
  os.remove(errfile)
  return out, err, code
end

local describe_command = inside_lattice and describe or pending

describe_command("the lattice command", function()
  it("runs a script with the arg table and ... as lua does", function()
    local script = write_file("print(arg[0] == ..., select('#', ...), arg[1], arg[2], ...)\n")
    local out, err, code = run(shell_quote(script) .. " a 'b c'")
    os.remove(script)
    assert.are.equal("", err)
    assert.are.equal(0, code)
    assert.are.equal("false\t2\ta\tb c\ta\tb c\n", out)
  end)

  it("opens lattice as a global and as a module", function()
    local out, _, code = run([[-e 'print(lattice == require("lattice"), lattice.array({1, 2}):tolist()[2])']])
    assert.are.equal(0, code)
    assert.are.equal("true\t2.0\n", out)
  end)

  it("runs -e codes in order, then the script", function()
    local script = write_file("print('script', x)\n")
    local out, _, code = run("-e 'x = 1' -e 'x = x + 1; print(x)' " .. shell_quote(script))
    os.remove(script)
    assert.are.equal(0, code)
    assert.are.equal("2\nscript\t2\n", out)
  end)

  it("runs standard input with -", function()
    local out, _, code = run("- one", "print(arg[0], ...)\n")
    assert.are.equal(0, code)
    assert.are.equal("-\tone\n", out)
  end)

  it("runs standard input when it is not a terminal and no script is given", function()
    local out, _, code = run("", "print(6 * 7)\n")
    assert.are.equal(0, code)
    assert.are.equal("42\n", out)
  end)

  it("exits 1 with the message and a traceback on stderr when the script fails", function()
    local script = write_file("local function inner() error('boom') end\ninner()\n")
    local out, err, code = run(shell_quote(script))
    os.remove(script)
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.truthy(err:find(":1: boom", 1, true), err)
    assert.truthy(err:find("stack traceback:", 1, true), err)
    assert.truthy(err:find("in local 'inner'", 1, true), err)
  end)

  it("exits 1 on a syntax error and on a missing script", function()
    local _, err, code = run("-e 'x = = 1'")
    assert.are.equal(1, code)
    assert.truthy(err:find("unexpected symbol near '='", 1, true), err)
    _, err, code = run("/nonexistent/script.lua")
    assert.are.equal(1, code)
    assert.truthy(err:find("cannot open /nonexistent/script.lua", 1, true), err)
  end)

  it("passes os.exit's status through", function()
    local _, _, code = run("-e 'os.exit(3)'")
    assert.are.equal(3, code)
  end)

  it("prints its version and its usage", function()
    local out, _, code = run("-v")
    assert.are.equal(0, code)
    assert.truthy(out:match("^lattice %d+%.%d+%.%d+ %(Lua 5%.4"), out)
    out, _, code = run("--help")
    assert.are.equal(0, code)
    assert.truthy(out:find("usage: lattice [options] [script [args]]", 1, true), out)
  end)

  it("rejects an unknown option with the usage", function()
    local _, err, code = run("--frobnicate")
    assert.are.equal(1, code)
    assert.truthy(err:find("unknown option '--frobnicate'", 1, true), err)
    assert.truthy(err:find("usage:", 1, true), err)
  end)
end)

describe_command("the lattice REPL", function()
  local session = table.concat({
    "x = lattice.array({{1, 2}, {3, 4}})",
    "x:tolist()[2][1], 'two'",
    "lattice.matmul(x, lattice.zeros({3, 3}))",
    "function double(v)",
    "  return v * 2",
    "end",
    "double(21)",
    "print(x.shape[1])",
  }, "\n") .. "\n"

  it("prints expressions, continues incomplete statements and survives errors", function()
    local out, err, code = run("-i", session)
    assert.are.equal(0, code)
    assert.truthy(out:find("3.0\ttwo\n", 1, true), out)
    assert.truthy(out:find("42\n", 1, true), out)
    assert.truthy(out:find("2\n", 1, true), out)
    assert.truthy(err:find("matmul: shapes {2,2} and {3,3} do not align", 1, true), err)
    assert.truthy(err:find("stack traceback:", 1, true), err)
  end)

  it("prints tensors with tostring", function()
    local out = run("-i", "lattice.array({1, 2})\n")
    assert.truthy(out:find(tostring(lattice.array({1, 2})), 1, true), out)
  end)
end)
