-- What the `lattice` REPL (core/host/repl.c) asks of Lua: results shown as a
-- Python REPL shows them, and the names Tab completes.
--
-- Both run on the user's live state between two inputs, so neither may raise
-- or run the user's code behind their back: tables are read with rawget, next
-- and rawlen (never pairs, ipairs or #, which call metamethods), metatables
-- with debug.getmetatable (which ignores __metatable), and the only user code
-- ever called is a value's own __tostring, under pcall, as print would.
local core = require "lattice.core"

local repl = {}

-- How much of a table is shown: deeper levels print as {...}, entries past
-- MAX_ITEMS in one table or MAX_TOTAL in the whole value as "...".
local MAX_DEPTH, MAX_ITEMS, MAX_TOTAL = 8, 100, 1000

local rawmetatable = debug.getmetatable

local KEYWORDS = {}
for word in ([[and break do else elseif end false for function goto if in local nil not or repeat return then
  true until while]]):gmatch("%a+") do
  KEYWORDS[word] = true
end

local function is_name(s) return type(s) == "string" and s:match("^[%a_][%w_]*$") ~= nil and not KEYWORDS[s] end

-- ---- showing values ----

local ESCAPES = { ["\n"] = "\\n", ["\t"] = "\\t", ["\r"] = "\\r", ['"'] = '\\"', ["\\"] = "\\\\" }

-- A string as Lua source would write it, one line whatever it holds.
local function quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c) return ESCAPES[c] or ("\\%03d"):format(c:byte()) end) .. '"'
end

-- tostring that never raises: a failing __tostring is reported in place.
local function safe_tostring(v)
  local ok, s = pcall(tostring, v)
  if ok then return s end
  return ("%s: %p (__tostring failed: %s)"):format(type(v), v, type(s) == "string" and s or type(s))
end

local function has_tostring(v)
  local mt = rawmetatable(v)
  return mt ~= nil and rawget(mt, "__tostring") ~= nil
end

-- Keys past the sequence part sort by type, then by value, so a table always
-- prints the same way.
local TYPE_ORDER = { number = 1, string = 2, boolean = 3 }
local function key_before(a, b)
  local ta, tb = TYPE_ORDER[type(a)] or 4, TYPE_ORDER[type(b)] or 4
  if ta ~= tb then return ta < tb end
  if ta == 3 then return not a and b end
  if ta == 4 then return ("%p"):format(a) < ("%p"):format(b) end
  return a < b
end

local show

-- The length of t's sequence part, counted without __len.
local function sequence_length(t)
  local n = 0
  while rawget(t, n + 1) ~= nil do n = n + 1 end
  return n
end

local function other_keys(t, n)
  local keys = {}
  local k = next(t)
  while k ~= nil do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then keys[#keys + 1] = k end
    k = next(t, k)
  end
  table.sort(keys, key_before)
  return keys
end

-- Adds one entry to items unless a limit is reached; returns false once it is.
local function add_item(items, state, text)
  if #items >= MAX_ITEMS or state.total >= MAX_TOTAL then
    items[#items + 1] = "..."
    return false
  end
  state.total = state.total + 1
  items[#items + 1] = text()
  return true
end

local function show_table(t, state, depth)
  if state.path[t] then return "<cycle>" end
  if depth >= MAX_DEPTH then return "{...}" end
  state.path[t] = true
  local items = {}
  local n = sequence_length(t)
  local open = true
  for i = 1, n do
    open = add_item(items, state, function() return show(rawget(t, i), state, depth + 1) end)
    if not open then break end
  end
  if open then
    for _, k in ipairs(other_keys(t, n)) do
      local function entry()
        local key = is_name(k) and k or "[" .. show(k, state, depth + 1) .. "]"
        return key .. " = " .. show(rawget(t, k), state, depth + 1)
      end
      if not add_item(items, state, entry) then break end
    end
  end
  state.path[t] = nil
  return "{" .. table.concat(items, ", ") .. "}"
end

-- One value inside a printed result: strings quoted, tables by their
-- contents (unless they have their own __tostring), the rest as tostring.
function show(v, state, depth)
  if type(v) == "string" then return quote(v) end
  if type(v) == "table" and not has_tostring(v) then return show_table(v, state, depth) end
  return safe_tostring(v)
end

-- repl.format(v): v as the REPL shows it. Tensors use their own tostring
-- (NumPy's style); tables show their contents, as {2, 3}, {{1, 2}, {3, 4}} or
-- {a = 1, b = "x"}, with a table met again inside itself shown as <cycle>.
function repl.format(v) return show(v, { path = {}, total = 0 }, 0) end

-- repl.format_results(...): one line of the values an input returned,
-- separated by tabs as print separates them; strings are shown as they are.
function repl.format_results(...)
  local parts = {}
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    parts[i] = type(v) == "string" and v or repl.format(v)
  end
  return table.concat(parts, "\t")
end

-- ---- completing names ----

-- Fields a tensor computes in its C __index (core/lua/tensor.c), which
-- completion cannot see without calling it.
local TENSOR_FIELDS = { shape = true, dtype = true, ndim = true, size = true, T = true }

-- Userdata whose __index is a function: where their names are known instead.
local KNOWN_TYPES = {
  ["lattice.Tensor"] = { methods = core.Tensor, fields = TENSOR_FIELDS },
}

-- The tables whose keys are v's fields, in lookup order: a table itself, then
-- the __index tables of its metatables (a bounded chain); for other values,
-- their metatable's __index table or their known methods and fields.
local function sources(v)
  local list = {}
  if type(v) == "table" then list[1] = v end
  local mt = rawmetatable(v)
  local index = mt and rawget(mt, "__index")
  if type(index) ~= "table" and mt then
    local known = KNOWN_TYPES[rawget(mt, "__name")]
    if known then return { known.methods, known.fields } end
  end
  while type(index) == "table" and #list < 16 do
    list[#list + 1] = index
    mt = rawmetatable(index)
    index = mt and rawget(mt, "__index")
  end
  return list
end

-- The modules a table loads on first use (lattice's __lazy: name -> module).
local function lazy_modules(v)
  local mt = type(v) == "table" and rawmetatable(v)
  local lazy = mt and rawget(mt, "__lazy")
  return type(lazy) == "table" and lazy or {}
end

-- v[key] as far as tables answer it without running code other than
-- requiring one of lattice's lazily loaded modules; nil otherwise.
local function field(v, key)
  for _, t in ipairs(sources(v)) do
    local value = rawget(t, key)
    if value ~= nil then return value end
  end
  local module = lazy_modules(v)[key]
  if module then return require(module) end
end

local function is_callable(v)
  if type(v) == "function" then return true end
  local mt = rawmetatable(v)
  return mt ~= nil and rawget(mt, "__call") ~= nil
end

-- The value a dotted path of names leads to from env, or nil.
local function resolve(path, env)
  local v = env
  for name in (path .. "."):gmatch("(.-)%.") do
    if not is_name(name) then return nil end
    v = field(v, name)
    if v == nil then return nil end
  end
  return v
end

-- Names of v's fields that start with prefix, mapped to their values
-- (true for the tensor fields, whose values are not looked up).
local function names_of(v, prefix)
  local found, seen = {}, {}
  for _, t in ipairs(sources(v)) do
    local k, value = next(t)
    while k ~= nil do
      if is_name(k) and k:sub(1, #prefix) == prefix and not seen[k] then found[k], seen[k] = value, true end
      k, value = next(t, k)
    end
  end
  for k in pairs(lazy_modules(v)) do
    if k:sub(1, #prefix) == prefix and not seen[k] then found[k], seen[k] = {}, true end
  end
  return found
end

-- repl.complete(text, env): the completions of the word text, sorted, each
-- the whole word: globals and keywords ("pri" -> "print("), fields of a path
-- ("lattice.ze" -> "lattice.zeros("), methods of a value ("x:re" ->
-- "x:reshape("). Functions end in "(" as in Python's REPL. env is the
-- globals table; nothing is found in a value that is not a table or a known
-- type, or behind a field only a function __index could compute.
function repl.complete(text, env)
  local base, sep, prefix = text:match("^(.-)([.:])([%w_]*)$")
  local v, out = env, {}
  if base then
    v = resolve(base, env)
    if v == nil then return out end
  else
    prefix = text
    if not prefix:match("^[%a_][%w_]*$") then return out end
    for word in pairs(KEYWORDS) do
      if word:sub(1, #prefix) == prefix then out[#out + 1] = word end
    end
  end
  local lead = base and base .. sep or ""
  for name, value in pairs(names_of(v, prefix)) do
    local callable = is_callable(value)
    if sep ~= ":" or callable then out[#out + 1] = lead .. name .. (callable and "(" or "") end
  end
  table.sort(out)
  return out
end

return repl
