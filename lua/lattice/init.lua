-- lattice: the package entry. The C module (lattice.core) holds the tensor type
-- and the ops; this file arranges them as the Lua API and adds what is written
-- in Lua (autograd wrappers, printing).
local core = require "lattice.core"

local lattice = {}
for name, fn in pairs(core) do
  lattice[name] = fn
end

return lattice
