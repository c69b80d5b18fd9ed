-- Registries, as lmxlab's core/registry.py: a named map from string keys to
-- components (a module class, or any function of a BlockConfig that makes
-- one), filled by register and read by get. The built-in ones are
-- lattice.registry.attention, .ffn, .norm and .position; a user registers a
-- Lua module under a new name and a block built from a config naming it
-- gets it.
--
--   local reg = lattice.Registry("ffn")
--   reg:register("mine", MyFFN)            -- returns MyFFN
--   local Mine = reg:register("mine2")(MyFFN)  -- the decorator form
--   reg:get("mine")(cfg)
local M = {}

local Registry = {}
Registry.__index = Registry
Registry.__name = "lattice.Registry"

local function check_key(self, key, fname)
  if type(key) ~= "string" or key == "" then
    error(("Registry '%s': %s: key must be a non-empty string, got %s"):format(self.name, fname, type(key)), 3)
  end
end

local function add(self, key, value, level)
  if value == nil then error(("Registry '%s': register: no value given for key '%s'"):format(self.name, key), level) end
  if self._entries[key] ~= nil then
    error(("Registry '%s': key '%s' is already registered"):format(self.name, key), level)
  end
  self._entries[key] = value
  self._order[#self._order + 1] = key
  return value
end

--- reg:register(key, value) registers value under key and returns it;
-- reg:register(key) returns a function that registers its argument (the
-- seed's decorator form: reg:register("mine")(MyFFN)). A key registered
-- twice is an error.
function Registry:register(key, ...)
  check_key(self, key, "register")
  if select("#", ...) == 0 then
    return function(v) return add(self, key, v, 2) end
  end
  return add(self, key, (...), 2)
end

--- reg:get(key): the component registered under key; an unknown key is an
-- error listing the known ones.
function Registry:get(key)
  check_key(self, key, "get")
  local v = self._entries[key]
  if v == nil then
    local known = #self._order > 0 and table.concat(self:keys(), ", ") or "(none)"
    error(("Registry '%s': unknown key '%s'; known keys: %s"):format(self.name, key, known), 2)
  end
  return v
end

--- reg:has(key): whether key is registered (the seed's `key in reg`).
function Registry:has(key) return self._entries[key] ~= nil end

--- reg:keys(): the registered keys, in the order they were registered.
function Registry:keys() return table.move(self._order, 1, #self._order, 1, {}) end

function Registry:__len() return #self._order end

function Registry:__tostring()
  local quoted = {}
  for i, k in ipairs(self._order) do quoted[i] = ("'%s'"):format(k) end
  return ("Registry('%s', keys=[%s])"):format(self.name, table.concat(quoted, ", "))
end

-- Fields are read-only: a typo such as reg.regster(...) or reg.foo = 1 is
-- an error rather than a silent nil or a shadowed method.
function Registry:__newindex(k) error(("Registry '%s': cannot set field '%s'"):format(rawget(self, "name"), tostring(k)), 2) end

--- lattice.Registry(name): a new, empty registry.
function M.Registry(name)
  if type(name) ~= "string" or name == "" then
    error("Registry: name must be a non-empty string, got " .. type(name), 2)
  end
  return setmetatable({ name = name, _entries = {}, _order = {} }, Registry)
end

function M.is_registry(v) return getmetatable(v) == Registry end

-- The built-in registries; lattice.transformer fills ffn, norm and
-- position, the attention work fills attention.
M.registries = {
  attention = M.Registry("attention"),
  ffn = M.Registry("ffn"),
  norm = M.Registry("norm"),
  position = M.Registry("position"),
}

return M
