-- What the transformer components share: the check that a component is
-- built from a BlockConfig.
local lattice = require "lattice"

local M = {}

--- check_config(cfg, fname): raises "<fname>: config must be a
-- lattice.BlockConfig, got <type>" unless cfg is one.
function M.check_config(cfg, fname)
  if not lattice.is_block_config(cfg) then
    error(("%s: config must be a lattice.BlockConfig, got %s"):format(fname, type(cfg)), 3)
  end
end

return M
