-- The module protocol, one implementation for built-in modules (userdata
-- types of the C binding) and modules written in Lua (tables of a class made
-- with Module:extend). A module's fields live in one table: the module itself
-- for a Lua module, its fields table for a built-in (lattice.core.nn.fields).
-- In that table a tensor is a parameter, a module is a child, and a plain Lua
-- table (no metatable) is a container of them: its list part is named by
-- 0-based indices (blocks.0.weight), as the reference projects name them, its
-- string keys by name. Keys starting with "_" are private, `training` is the
-- mode, anything else (numbers, strings, functions) is configuration.
local lattice = require "lattice"
local core = require "lattice.core"

local is_tensor = lattice.is_tensor
local fields_of_builtin = core.nn.fields

local M = {}

local function is_module(v)
  local mt = getmetatable(v)
  return type(mt) == "table" and rawget(mt, "__lattice_module") == true
end
M.is_module = is_module

-- The table holding m's fields.
local function fields(m)
  if type(m) == "userdata" then return fields_of_builtin(m) end
  return m
end
M.fields = fields

local function is_container(v) return type(v) == "table" and getmetatable(v) == nil end

local function type_name(m)
  local mt = getmetatable(m)
  return rawget(mt, "__type_name") or rawget(mt, "__name") or "Module"
end
M.type_name = type_name

-- The field names of m in order: those recorded in _order first (the order a
-- Lua module assigned them, a built-in's parameter order), then the rest sorted.
local function field_names(f)
  local names, seen = {}, {}
  for _, k in ipairs(rawget(f, "_order") or {}) do
    if not seen[k] and rawget(f, k) ~= nil then
      names[#names + 1], seen[k] = k, true
    end
  end
  local rest = {}
  for k in pairs(f) do
    if type(k) == "string" and not seen[k] and k:sub(1, 1) ~= "_" then rest[#rest + 1] = k end
  end
  table.sort(rest)
  for _, k in ipairs(rest) do names[#names + 1] = k end
  return names
end

-- The entries of a container: {key, name} for its list part (0-based names),
-- then its string keys sorted (private ones left out).
local function container_entries(t)
  local entries = {}
  for i = 1, #t do entries[#entries + 1] = {i, tostring(i - 1)} end
  local keys = {}
  for k in pairs(t) do
    if type(k) == "string" and k:sub(1, 1) ~= "_" then keys[#keys + 1] = k end
  end
  table.sort(keys)
  for _, k in ipairs(keys) do entries[#entries + 1] = {k, k} end
  return entries
end

local function join(prefix, name) return prefix == "" and name or prefix .. "." .. name end

-- ---- walking the tree ----

-- Marks v as on the path from the root; a module or table met again on its
-- own path is a cycle, an error here rather than a stack overflow later.
local function enter(path, v, name)
  if path[v] then
    if is_module(v) then error(("%s: a module contains itself (at '%s')"):format(type_name(v), name), 0) end
    error(("a table contains itself (at '%s')"):format(name), 0)
  end
  path[v] = true
end

-- visit(holder, key, value, name, owner, top) for every parameter under the
-- value, and on_module(module, name) for every module (pre-order); `top` is
-- the owner's field holding the parameter (for freezing by key).
local function walk_value(v, holder, key, name, owner, top, visit, on_module, path)
  if is_tensor(v) then
    if visit then visit(holder, key, v, name, owner, top) end
  elseif is_module(v) then
    enter(path, v, name)
    if on_module then on_module(v, name) end
    local f = fields(v)
    for _, k in ipairs(field_names(f)) do walk_value(rawget(f, k), f, k, join(name, k), v, k, visit, on_module, path) end
    path[v] = nil
  elseif is_container(v) then
    enter(path, v, name)
    for _, e in ipairs(container_entries(v)) do
      walk_value(v[e[1]], v, e[1], join(name, e[2]), owner, top, visit, on_module, path)
    end
    path[v] = nil
  end
end

local function walk(m, visit, on_module) walk_value(m, nil, nil, "", nil, nil, visit, on_module, {}) end
M.walk = walk

local function frozen(owner, top)
  local f = fields(owner)
  local set = rawget(f, "_frozen")
  return set ~= nil and set[top] == true
end

-- A nested table mirroring the module tree with the parameters that
-- keep(owner, top) selects (top: the owner's field holding the parameter).
-- List positions stay aligned: an entry with nothing selected is {}. A
-- table holding no tensor at all is configuration ({3, 3, 3}) and left out,
-- whatever keep selects, so every tree has the skeleton of parameters().
local function tree_of(m, keep)
  local path = {}
  local function place(v, owner, top, name)
    if is_tensor(v) then return keep(owner, top) and v or nil end
    local node = {}
    if is_module(v) then
      enter(path, v, name)
      local f = fields(v)
      for _, k in ipairs(field_names(f)) do node[k] = place(rawget(f, k), v, k, join(name, k)) end
    elseif is_container(v) then
      enter(path, v, name)
      local any = false
      for _, e in ipairs(container_entries(v)) do
        local sub = place(v[e[1]], owner, top, join(name, e[2]))
        any = any or sub ~= nil or is_tensor(v[e[1]])
        node[e[1]] = sub == nil and type(e[1]) == "number" and {} or sub
      end
      if not any then node = nil end -- configuration such as {3, 3, 3}: no parameters
    else
      return nil
    end
    path[v] = nil
    return node
  end
  return place(m, nil, nil, "")
end
M.tree_of = tree_of

-- An empty table where a tensor sits: the place a tree keeps in a list for
-- a parameter it leaves out (a frozen one in trainable_parameters).
local function is_placeholder(v) return is_container(v) and next(v) == nil end

-- ---- the protocol's methods ----

local Protocol = {}
M.Protocol = Protocol

local function check_options(opts, allowed, fname)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error(("%s: options must be a table, got %s"):format(fname, type(opts)), 3) end
  for k in pairs(opts) do
    if not allowed[k] then error(("%s: unknown option '%s'"):format(fname, tostring(k)), 3) end
  end
  return opts
end
M.check_options = check_options

-- opts[key] as a boolean, `default` when absent.
local function bool_option(opts, key, default, fname)
  local v = opts[key]
  if v == nil then return default end
  if type(v) ~= "boolean" then error(("%s: %s must be a boolean, got %s"):format(fname, key, type(v)), 3) end
  return v
end
M.bool_option = bool_option

local function check_function(fn, fname)
  if type(fn) ~= "function" then error(("%s: fn must be a function, got %s"):format(fname, type(fn)), 3) end
end

function Protocol:parameters() return tree_of(self, function() return true end) end

function Protocol:trainable_parameters()
  return tree_of(self, function(owner, k) return not frozen(owner, k) end)
end

function Protocol:named_parameters()
  local out = {}
  walk(self, function(_, _, v, name) out[name] = v end)
  return out
end

function Protocol:named_modules()
  local out = {}
  walk(self, nil, function(mod, name) out[name] = mod end)
  return out
end

--- m:num_parameters([{trainable = false}]): the number of elements of all
-- (or of the trainable) parameters.
function Protocol:num_parameters(opts)
  opts = check_options(opts, { trainable = true }, "num_parameters")
  local trainable = bool_option(opts, "trainable", false, "num_parameters")
  local n = 0
  walk(self, function(_, _, v, _, owner, top)
    if not (trainable and frozen(owner, top)) then n = n + v.size end
  end)
  return n
end

-- The direct children: modules, and containers holding them, by field name.
-- As in parameters(), a list position holding no module is {}.
function Protocol:children()
  local path = {}
  local function kids(v, name)
    if is_module(v) then return v end
    if not is_container(v) then return nil end
    enter(path, v, name)
    local node, any = {}, false
    for _, e in ipairs(container_entries(v)) do
      local k = kids(v[e[1]], join(name, e[2]))
      if k ~= nil then node[e[1]], any = k, true end
      if k == nil and type(e[1]) == "number" then node[e[1]] = {} end
    end
    path[v] = nil
    return any and node or nil
  end
  local out, f = {}, fields(self)
  for _, k in ipairs(field_names(f)) do out[k] = kids(rawget(f, k), k) end
  return out
end

--- m:apply_to_modules(fn): fn(name, module) for m ("") and every module
-- under it, parents before children.
function Protocol:apply_to_modules(fn)
  check_function(fn, "apply_to_modules")
  local mods = {}
  walk(self, nil, function(mod, name) mods[#mods + 1] = {name, mod} end)
  for _, nm in ipairs(mods) do fn(nm[1], nm[2]) end
  return self
end

function Protocol:train(mode)
  if mode == nil then mode = true end
  if type(mode) ~= "boolean" then error("train: mode must be a boolean, got " .. type(mode), 2) end
  self:apply_to_modules(function(_, mod) rawset(fields(mod), "training", mode) end)
  return self
end

function Protocol:eval() return self:train(false) end

-- ---- freezing ----

-- The names of m's own fields holding parameters: tensors, or containers of
-- tensors that m itself owns (not those of the modules in them).
local function own_parameter_keys(m)
  local keys = {}
  local f = fields(m)
  for _, k in ipairs(field_names(f)) do
    local v, has = rawget(f, k), false
    if not is_module(v) then
      walk_value(v, nil, nil, k, nil, nil, function(_, _, _, _, owner) has = has or owner == nil end, nil, {})
    end
    if has then keys[#keys + 1] = k end
  end
  return keys
end

-- opts.keys as a list of names, or nil (all of a module's parameters).
local function key_list(keys, fname)
  if keys == nil then return nil end
  if type(keys) == "string" then return { keys } end
  if not is_container(keys) then
    error(("%s: keys must be a string or a list of strings, got %s"):format(fname, type(keys)), 3)
  end
  for k, v in pairs(keys) do
    if math.type(k) ~= "integer" or type(v) ~= "string" then
      error(("%s: keys[%s] must be a string, got %s"):format(fname, tostring(k), type(v)), 3)
    end
  end
  return keys
end

-- Tensors a module keeps but never trains (BatchNorm's running statistics,
-- PyTorch's buffers) are named in its class's `_buffers`: they stay frozen
-- through unfreeze, as MLX's BatchNorm keeps them.
local function buffers(mod) return mod._buffers or {} end

-- Every module and key is checked before any changes, so a strict error
-- leaves the model as it was.
local function set_frozen(m, opts, fname, value)
  opts = check_options(opts, { recurse = true, keys = true, strict = true }, fname)
  local keys = key_list(opts.keys, fname)
  local recurse = bool_option(opts, "recurse", true, fname)
  local strict = bool_option(opts, "strict", false, fname)
  local mods = { m }
  if recurse then
    mods = {}
    walk(m, nil, function(mod) mods[#mods + 1] = mod end)
  end
  local lists = {}
  for i, mod in ipairs(mods) do
    local own = own_parameter_keys(mod)
    for _, k in ipairs(strict and keys or {}) do
      local found = false
      for _, o in ipairs(own) do found = found or o == k end
      if not found then error(("%s: %s has no parameter '%s'"):format(fname, type_name(mod), k), 2) end
    end
    lists[i] = keys or own
  end
  for i, mod in ipairs(mods) do
    local f = fields(mod)
    local set = rawget(f, "_frozen") or {}
    rawset(f, "_frozen", set)
    for _, k in ipairs(lists[i]) do set[k] = value or nil end
    for _, k in ipairs(buffers(mod)) do set[k] = true end
  end
  return m
end

--- m:freeze{recurse = true, keys = nil | name | {names}, strict = false}
function Protocol:freeze(opts) return set_frozen(self, opts, "freeze", true) end
function Protocol:unfreeze(opts) return set_frozen(self, opts, "unfreeze", false) end

-- ---- replacing parameters and children ----

local function shape_str(t) return "{" .. table.concat(t.shape, ",") .. "}" end
M.shape_str = shape_str

-- The dotted name of key k of `holder` under `name`: position k of a list
-- is named k - 1.
local function sub_name(name, holder, k)
  return join(name, is_container(holder) and math.type(k) == "integer" and tostring(k - 1) or tostring(k))
end

-- What a tree meets at key k of a module's fields or a container: nothing
-- for the protocol's private fields ("_frozen", "_order").
local function public_field(f, k)
  if type(k) == "string" and k:sub(1, 1) == "_" then return nil end
  return rawget(f, k)
end

local function kind(v)
  return is_tensor(v) and "a tensor" or is_module(v) and "a module" or type(v)
end

-- Whether `new` replaces the parameter `cur` (named `sub`): a tensor of its
-- shape and dtype does; {} leaves it (trainable_parameters() keeps {} for a
-- frozen parameter in a list); anything else is an error.
local function replaces(sub, cur, new)
  if is_placeholder(new) then return false end
  if not is_tensor(new) then error(("update: %s: expected a lattice.Tensor, got %s"):format(sub, type(new)), 0) end
  if shape_str(cur) ~= shape_str(new) then
    error(("update: %s has shape %s, got %s"):format(sub, shape_str(cur), shape_str(new)), 0)
  end
  if cur.dtype ~= new.dtype then error(("update: %s has dtype %s, got %s"):format(sub, cur.dtype, new.dtype), 0) end
  return true
end

-- Checks the tensors of `tree` against the module tree at `dst` (names,
-- shapes, dtypes) and adds {holder, key, tensor} to `writes` for each;
-- `name` is the dotted path so far.
local function plan_update(dst, tree, name, strict, writes)
  if not is_container(tree) then
    error(("update: %s: expected a table of parameters, got %s"):format(name == "" and "tree" or name, kind(tree)), 0)
  end
  local f = is_module(dst) and fields(dst) or dst
  for k, new in pairs(tree) do
    local sub, cur = sub_name(name, dst, k), public_field(f, k)
    if is_tensor(cur) then
      if replaces(sub, cur, new) then writes[#writes + 1] = { f, k, new } end
    elseif cur ~= nil and (is_module(cur) or is_container(cur)) then
      plan_update(cur, new, sub, strict, writes)
    elseif strict then
      error(("update: %s: no such parameter"):format(sub), 0)
    end
  end
end

local function write_all(writes)
  for _, w in ipairs(writes) do rawset(w[1], w[2], w[3]) end
end

--- m:update(tree[, {strict = true}]): replaces parameters by those in the
-- tree, all of them or (on an error) none.
function Protocol:update(tree, opts)
  opts = check_options(opts, { strict = true }, "update")
  local writes = {}
  plan_update(self, tree, "", bool_option(opts, "strict", true, "update"), writes)
  write_all(writes)
  return self
end

--- m:apply(fn): every parameter p becomes fn(p) (a tensor of any shape/dtype).
function Protocol:apply(fn)
  check_function(fn, "apply")
  local writes = {}
  walk(self, function(holder, key, v, name)
    local new = fn(v)
    if not is_tensor(new) then error(("apply: fn returned %s for %s"):format(type(new), name), 0) end
    writes[#writes + 1] = { holder, key, new }
  end)
  write_all(writes)
  return self
end

-- The holder, key and value at a dotted path in m.
local function resolve(m, path, fname)
  if type(path) ~= "string" or path == "" then error(fname .. ": path must be a non-empty string", 3) end
  local holder, cur, key = nil, m, nil
  for part in path:gmatch("[^.]+") do
    if is_module(cur) then
      holder, key = fields(cur), part
    elseif is_container(cur) then
      holder, key = cur, part:match("^%d+$") and tonumber(part) + 1 or part
    else
      error(("%s: '%s' is not a module path (at '%s')"):format(fname, path, part), 3)
    end
    cur = rawget(holder, key)
    if cur == nil then error(("%s: '%s' has no '%s'"):format(fname, path, part), 3) end
  end
  return holder, key, cur
end

--- m:set_child("blocks.0.attention.q_proj", new): replaces a child module in place.
function Protocol:set_child(path, new)
  local holder, key, cur = resolve(self, path, "set_child")
  if not is_module(new) then error("set_child: the new child must be a module, got " .. type(new), 2) end
  if not is_module(cur) then error(("set_child: '%s' is not a module"):format(path), 2) end
  rawset(holder, key, new)
  return self
end

--- m:get_child("blocks.0.attention"): the module at a dotted path.
function Protocol:get_child(path)
  local _, _, cur = resolve(self, path, "get_child")
  if not is_module(cur) then error(("get_child: '%s' is not a module"):format(path), 2) end
  return cur
end

-- Checks `tree` against the module tree at `dst` and adds {holder, key,
-- module} to `writes` for each module in it.
local function plan_modules(dst, tree, name, strict, writes)
  if not is_container(tree) then
    error(("update_modules: %s: expected a table of modules, got %s"):format(name == "" and "tree" or name,
      kind(tree)), 0)
  end
  local f = is_module(dst) and fields(dst) or dst
  for k, new in pairs(tree) do
    local sub, cur = sub_name(name, dst, k), public_field(f, k)
    if is_module(new) and is_module(cur) then
      writes[#writes + 1] = { f, k, new }
    elseif is_container(new) and (is_module(cur) or is_container(cur)) then
      plan_modules(cur, new, sub, strict, writes)
    elseif strict and not (is_placeholder(new) and cur ~= nil) then -- {}: what children() keeps for a non-module
      error(("update_modules: %s: no such module"):format(sub), 0)
    end
  end
end

--- m:update_modules(tree[, {strict = true}]): replaces child modules by
-- those in the tree (as children() gives it), all of them or none.
function Protocol:update_modules(tree, opts)
  opts = check_options(opts, { strict = true }, "update_modules")
  local writes = {}
  plan_modules(self, tree, "", bool_option(opts, "strict", true, "update_modules"), writes)
  write_all(writes)
  return self
end

-- ---- weights on disk ----

-- Calls a safetensors function; its errors name the method the user called.
local function io_call(fname, fn, ...)
  local ok, result = pcall(fn, ...)
  if not ok then error((tostring(result):gsub("^[%w_]+_safetensors:", fname .. ":", 1)), 3) end
  return result
end

local function check_path(path, fname)
  if type(path) ~= "string" then error(("%s: path must be a string, got %s"):format(fname, type(path)), 3) end
end

--- m:save_weights(path): the parameters under their dotted names.
function Protocol:save_weights(path)
  check_path(path, "save_weights")
  io_call("save_weights", lattice.save_safetensors, path, self:named_parameters())
  return self
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end
M.sorted_keys = sorted_keys

local function list_names(keys, limit)
  local shown = {}
  for i = 1, math.min(#keys, limit) do shown[i] = keys[i] end
  return table.concat(shown, ", ") .. (#keys > limit and (", ... (%d in all)"):format(#keys) or "")
end

-- "2 parameters missing: a, b; 1 unexpected parameter: c", or nil when
-- the names agree.
local function mismatch(slots, loaded)
  local missing, unexpected = {}, {}
  for _, name in ipairs(sorted_keys(slots)) do
    if loaded[name] == nil then missing[#missing + 1] = name end
  end
  for _, name in ipairs(sorted_keys(loaded)) do
    if slots[name] == nil then unexpected[#unexpected + 1] = name end
  end
  local parts = {}
  if #missing > 0 then
    parts[#parts + 1] = ("%d parameter%s missing: %s"):format(#missing, #missing == 1 and "" or "s",
      list_names(missing, 10))
  end
  if #unexpected > 0 then
    parts[#parts + 1] = ("%d unexpected parameter%s: %s"):format(#unexpected, #unexpected == 1 and "" or "s",
      list_names(unexpected, 10))
  end
  return #parts > 0 and table.concat(parts, "; ") or nil
end

--- m:load_weights(path[, {strict = true}]): parameters by their dotted names;
-- strict: the file must hold exactly the model's parameters. Shapes must
-- match; a different float dtype is converted to the parameter's. Nothing
-- changes unless every check passes.
function Protocol:load_weights(path, opts)
  opts = check_options(opts, { strict = true }, "load_weights")
  local strict = bool_option(opts, "strict", true, "load_weights")
  check_path(path, "load_weights")
  local loaded = io_call("load_weights", lattice.load_safetensors, path)
  local slots = {}
  walk(self, function(holder, key, v, name) slots[name] = {holder, key, v} end)
  local problem = strict and mismatch(slots, loaded)
  if problem then error(("load_weights: %s: %s"):format(path, problem), 2) end
  local writes = {}
  for _, name in ipairs(sorted_keys(loaded)) do
    local slot, t = slots[name], loaded[name]
    if slot and shape_str(slot[3]) ~= shape_str(t) then
      error(("load_weights: %s: %s has shape %s in the file, the model expects %s"):format(path, name, shape_str(t),
        shape_str(slot[3])), 2)
    end
    if slot then writes[#writes + 1] = { slot[1], slot[2], t.dtype == slot[3].dtype and t or t:astype(slot[3].dtype) } end
  end
  write_all(writes)
  return self
end

-- ---- calling, with errors named after the child that raised them ----

-- Per coroutine: how deep in module calls it is, and the error on its way
-- out with the modules it has left so far, innermost first.
local calls = setmetatable({}, { __mode = "k" })

local function state()
  local co = coroutine.running()
  local s = calls[co]
  if not s then
    s = { depth = 0 }
    calls[co] = s
  end
  return s
end

local function name_of(root, target)
  local found
  pcall(walk, root, nil, function(mod, name)
    if found == nil and mod == target then found = name end
  end)
  return found
end

-- The error prefixed with the dotted name, under root, of the innermost
-- module it left that root holds (a module made inside a forward has no
-- name there: the one that made it is named). Error objects that are not
-- strings pass unchanged.
local function labelled(root, through, err)
  if type(err) ~= "string" then return err end
  for _, mod in ipairs(through) do
    if mod == root then break end
    local name = name_of(root, mod)
    if name then return name .. ": " .. err end
  end
  return err
end

-- A call that returns normally clears what was recorded below it: that
-- error was caught by a pcall inside. A different error starts a new record.
-- (An error caught inside a forward and raised again as the same string by
-- that forward itself still names the child that raised it first.)
local function finish(m, s, ok, ...)
  s.depth = s.depth - 1
  if ok then
    s.err, s.through = nil, nil
    return ...
  end
  local err = ...
  if s.through == nil or not rawequal(s.err, err) then s.err, s.through = err, {} end
  s.through[#s.through + 1] = m
  if s.depth > 0 then error(err, 0) end
  local through = s.through
  s.err, s.through = nil, nil
  error(labelled(m, through, err), 0)
end

local function call(m, ...)
  local s = state()
  if s.depth == 0 then s.err, s.through = nil, nil end
  s.depth = s.depth + 1
  return finish(m, s, pcall(m.forward, m, ...))
end
M.call = call

-- ---- printing ----

-- The modules directly under m, as {dotted name, module}: its module fields
-- and the modules in its containers (not looking inside those modules).
local function direct_children(m, path)
  local out = {}
  local function scan(v, name)
    if is_module(v) then
      out[#out + 1] = { name, v }
    elseif is_container(v) then
      enter(path, v, name)
      for _, e in ipairs(container_entries(v)) do scan(v[e[1]], join(name, e[2])) end
      path[v] = nil
    end
  end
  local f = fields(m)
  for _, k in ipairs(field_names(f)) do scan(rawget(f, k), k) end
  return out
end

-- Type(extra) on one line for a leaf; children indented, one per line.
local function describe(m, indent, name, path)
  enter(path, m, name)
  local head = type_name(m) .. "(" .. (m._extra_repr and m:_extra_repr() or "")
  local kids = direct_children(m, path)
  local lines = { head }
  for _, kv in ipairs(kids) do
    local sub = join(name, kv[1])
    lines[#lines + 1] = indent .. "  (" .. kv[1] .. "): " .. describe(kv[2], indent .. "  ", sub, path)
  end
  path[m] = nil
  if #kids == 0 then return head .. ")" end
  lines[#lines + 1] = indent .. ")"
  return table.concat(lines, "\n")
end

function Protocol:__tostring() return describe(self, "", "", {}) end

-- ---- Lua modules: the Module class ----

-- Instance tables remember the order their fields were first assigned.
local function record_order(self, k, v)
  if type(k) == "string" and k:sub(1, 1) ~= "_" then
    local order = rawget(self, "_order")
    order[#order + 1] = k
  end
  rawset(self, k, v)
end

local function instantiate(cls, ...)
  local self = setmetatable({ _order = {}, _frozen = {}, training = true }, cls)
  local init = cls.init
  if init then init(self, ...) end
  return self
end

-- A class is the metatable of its instances: methods through __index (its
-- own, then its parent's), and the metamethods every module has.
local function class(name, parent)
  local cls = {}
  for k, v in pairs(parent or {}) do
    if type(k) == "string" and k:sub(1, 2) == "__" then cls[k] = v end
  end
  cls.__index = cls
  cls.__name = name
  cls.__type_name = name
  cls.__lattice_module = true
  cls.__newindex = record_order
  cls.__call = call
  cls.__tostring = Protocol.__tostring
  return setmetatable(cls, { __index = parent, __call = instantiate, __tostring = function() return "class " .. name end })
end

-- nn.Module() itself makes an empty module to hold children, as in MLX.
local Module = class("Module")
M.Module = Module
for k, v in pairs(Protocol) do Module[k] = v end

--- Module:extend(name): a new module class; define :init(...) and :forward(...).
function Module:extend(name)
  -- a class has its metamethods as its own keys; an instance has none
  if rawget(self, "__lattice_module") == nil then error("Module:extend: call it on a class, not on a module", 2) end
  if type(name) ~= "string" or name == "" then error("Module:extend: name must be a non-empty string", 2) end
  return class(name, self)
end

function Module:forward()
  error(type_name(self) .. ": forward is not defined", 2)
end

-- ---- built-in modules: the same protocol on their metatables ----

for name, methods in pairs(core.nn.methods) do
  for k, v in pairs(Protocol) do
    if k ~= "__tostring" then methods[k] = v end
  end
  local mt = core.nn.metatables[name]
  mt.__call = call
  mt.__tostring = Protocol.__tostring
end
-- BatchNorm's running statistics: saved with the weights, never trained
-- (layers.lua freezes them when it makes the module).
core.nn.methods.BatchNorm._buffers = { "running_mean", "running_var" }

return M
