-- lattice.transformer: the components a configurable block is built from,
-- by name from the registries (lattice.registry.attention, .ffn, .norm,
-- .position), the block, the language model and the KV caches. Requiring
-- it registers the built-ins.
local M = {}
for _, name in ipairs({ "position", "ffn", "norm", "attention", "cache", "block", "model" }) do
  for k, v in pairs(require("lattice.transformer." .. name)) do M[k] = v end
end
return M
