-- Containers written in Lua: Sequential.
local module = require "lattice.nn.module"

local M = {}

--- Sequential(m1, m2, ...): calls the modules in order, each on the output of
-- the previous one. Its children are `layers` (layers.0, layers.1, ...), as
-- MLX names them; s.layers[1] is the first in Lua.
local Sequential = module.Module:extend("Sequential")
M.Sequential = Sequential

function Sequential:init(...)
  local layers = table.pack(...)
  for i = 1, layers.n do
    local m = layers[i]
    if not module.is_module(m) and type(m) ~= "function" then
      error(("Sequential: argument %d must be a module or a function, got %s"):format(i, type(m)), 3)
    end
  end
  layers.n = nil
  self.layers = layers
end

function Sequential:forward(x)
  for _, layer in ipairs(self.layers) do x = layer(x) end
  return x
end

return M
