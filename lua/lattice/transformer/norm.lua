-- Normalisations, as lmxlab's core/norm.py builds them from a BlockConfig:
-- nn.LayerNorm(d_model, {eps = norm_eps}) (affine, with bias, as MLX's) and
-- nn.RMSNorm(d_model, {eps = norm_eps}), registered in lattice.registry.norm
-- as layer_norm and rms_norm.
local nn = require "lattice.nn"
local registry = require("lattice.registry").registries
local check_config = require("lattice.transformer.common").check_config

local M = {}

function M.layer_norm(config)
  check_config(config, "layer_norm")
  return nn.LayerNorm(config.d_model, { eps = config.norm_eps })
end

function M.rms_norm(config)
  check_config(config, "rms_norm")
  return nn.RMSNorm(config.d_model, { eps = config.norm_eps })
end

registry.norm:register("rms_norm", M.rms_norm)
registry.norm:register("layer_norm", M.layer_norm)

return M
