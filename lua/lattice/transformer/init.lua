-- lattice.transformer: the components a configurable block is built from,
-- by name from the registries (lattice.registry.ffn, .norm, .position; the
-- attention registry is filled by the attention modules). Requiring it
-- registers the built-ins.
local M = {}
for _, name in ipairs({ "position", "ffn", "norm" }) do
  for k, v in pairs(require("lattice.transformer." .. name)) do M[k] = v end
end
return M
