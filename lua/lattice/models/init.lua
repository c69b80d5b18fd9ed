-- lattice.models: the seed's model presets (lattice.models.gpt_tiny(), ...),
-- parameter counts from a config (count_parameters), and the reader of
-- Hugging Face checkpoint directories (lattice.models.convert).
local presets = require "lattice.models.presets"
local count = require "lattice.models.count"

local M = {}
for k, v in pairs(presets) do M[k] = v end
M.convert = require "lattice.models.convert"
for _, k in ipairs({ "config_from_hf", "convert_weights", "load_hf", "from_hf" }) do M[k] = M.convert[k] end
M.count_parameters = count.count_parameters
M.block_parameters = count.block_parameters

--- architecture(name): the {full, tiny} config functions the `lattice
-- models` command knows by that name, or nil.
function M.architecture(name)
  for _, a in ipairs(presets.architectures) do
    if a[1] == name then return { full = a[2], tiny = a[3] } end
  end
  return nil
end

--- names(): the architecture names, in the order `lattice models list` shows them.
function M.names()
  local out = {}
  for i, a in ipairs(presets.architectures) do out[i] = a[1] end
  return out
end

M.architectures = nil -- the list stays behind architecture() and names()

return M
