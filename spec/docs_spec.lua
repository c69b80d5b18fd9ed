-- The docs run and cover the API: every ```lua block of README.md and
-- docs/*.md runs (a page's blocks in order, as one script, so a later block
-- builds on an earlier one, in a fresh temporary directory so the files they
-- write go nowhere), and every public function of the documented namespaces
-- appears in a code span or block of some page.
local lattice = require "lattice"

local exe = arg and arg[-1]

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function pages()
  local list = { "README.md" }
  local p = assert(io.popen("ls docs/*.md | sort"))
  for line in p:lines() do list[#list + 1] = line end
  p:close()
  return list
end

-- The page's ```lua blocks, in order.
local function lua_blocks(text)
  local blocks = {}
  for block in text:gmatch("\n```lua\n(.-\n)```") do blocks[#blocks + 1] = block end
  return blocks
end

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- Runs script in a new temporary directory with the lattice command; returns
-- the exit status and what it printed on stderr.
local function run_script(script)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir " .. shell_quote(dir)))
  local f = assert(io.open(dir .. "/page.lua", "w"))
  f:write(script)
  f:close()
  local ok = os.execute(("cd %s && %s page.lua >out.txt 2>err.txt"):format(shell_quote(dir), shell_quote(exe)))
  local err = read(dir .. "/err.txt")
  os.execute("rm -rf " .. shell_quote(dir))
  return ok, err
end

describe("the docs' Lua blocks", function()
  for _, page in ipairs(pages()) do
    local blocks = lua_blocks("\n" .. read(page))
    if #blocks > 0 then
      it(("run: %s (%d block%s)"):format(page, #blocks, #blocks > 1 and "s" or ""), function()
        local ok, err = run_script(table.concat(blocks, "\n"))
        assert(ok, page .. "'s Lua blocks failed:\n" .. err)
      end)
    end
  end

  it("are found: the extraction sees a known block", function()
    local blocks = lua_blocks("\n" .. read("docs/autograd.md"))
    assert.is_true(#blocks >= 1)
    assert.truthy(blocks[1]:find("value_and_grad", 1, true))
  end)
end)

-- ---- coverage ----

-- Every code span and code block of every page, joined.
local function documented_code()
  local code = {}
  for _, page in ipairs(pages()) do
    local text = read(page)
    for block in text:gmatch("```%w*\n(.-)```") do code[#code + 1] = block end
    text = text:gsub("```%w*\n.-```", "")
    for span in text:gmatch("`([^`]+)`") do code[#code + 1] = span end -- a span may break a line
  end
  return table.concat(code, "\n")
end

local function is_callable(v)
  if type(v) == "function" then return true end
  local mt = (type(v) == "table" or type(v) == "userdata") and getmetatable(v)
  return type(mt) == "table" and mt.__call ~= nil
end

-- A plain table of functions (a namespace such as lattice.random), not a class.
local function is_namespace(v) return type(v) == "table" and not is_callable(v) and getmetatable(v) == nil end

-- "prefix.name" of every public function under t, and of its namespaces' one
-- level down (lattice.random.normal, lattice.nn.init.normal), each once.
local function public_functions(t, prefix, depth, out)
  for k, v in pairs(t) do
    if type(k) == "string" and not k:find("^_") and k ~= "core" then
      local full = prefix .. "." .. k
      if is_callable(v) and not out[full] then
        out[full] = true
        out[#out + 1] = { name = k, full = full }
      elseif depth > 0 and is_namespace(v) then
        public_functions(v, prefix .. "." .. k, depth - 1, out)
      end
    end
  end
  return out
end

local NAMESPACES = { "ops", "nn", "optim", "lora", "data", "train" }

describe("the docs' coverage", function()
  it("names every public function of lattice and its namespaces", function()
    local code = documented_code()
    local functions = {}
    for _, ns in ipairs(NAMESPACES) do public_functions(lattice[ns], "lattice." .. ns, 1, functions) end
    public_functions(lattice, "lattice", 1, functions)
    local missing = {}
    for _, f in ipairs(functions) do
      if not code:find("%f[%w_]" .. f.name:gsub("%p", "%%%0") .. "%f[^%w_]") then missing[#missing + 1] = f.full end
    end
    table.sort(missing)
    assert(#missing == 0, "documented nowhere in README.md or docs/*.md:\n  " .. table.concat(missing, "\n  "))
    assert.is_true(#functions > 300) -- the walk saw the API, not an empty table
  end)

  it("would notice a missing entry", function()
    local code = documented_code()
    assert.is_nil(code:find("%f[%w_]no_such_function_documented%f[^%w_]"))
    assert.truthy(code:find("%f[%w_]value_and_grad%f[^%w_]"))
  end)
end)
