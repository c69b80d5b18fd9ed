-- Feed-forward networks, as lmxlab's core/ffn.py builds them from a
-- BlockConfig; each is registered in lattice.registry.ffn under the seed's
-- name. Every projection is an nn.Linear with bias = cfg.bias; the names are
-- the seed's (up, down, gate), so its checkpoints load.
--   standard     down(gelu(up(x)))                    gelu exact (erf), as MLX's nn.gelu
--   gated        down(silu(gate(x)) * up(x))          SwiGLU (LLaMA, Mistral)
--   relu2        down(relu(up(x))^2)                  Primer
--   gated_relu2  down(relu(gate(x))^2 * up(x))
--   none         x, unchanged
--   gelu_tanh    down(gelu_approx(up(x)))             GPT-2's MLP (gelu_new); not in the seed
local lattice = require "lattice"
local nn = require "lattice.nn"
local registry = require("lattice.registry").registries
local check_config = require("lattice.transformer.common").check_config

local M = {}

-- A class whose init makes `layers` (d_model -> d_ff, or d_ff -> d_model
-- for down) from the config, and whose forward is `forward`.
local function ffn_class(name, layers, forward)
  local cls = nn.Module:extend(name)
  function cls:init(config)
    check_config(config, name)
    self.config = config
    for _, layer in ipairs(layers) do
      local down = layer == "down"
      local din, dout = down and config.d_ff or config.d_model, down and config.d_model or config.d_ff
      self[layer] = nn.Linear(din, dout, { bias = config.bias })
    end
  end
  cls.forward = forward
  return cls
end

M.StandardFFN = ffn_class("StandardFFN", { "up", "down" }, function(self, x)
  return self.down(lattice.gelu(self.up(x)))
end)

M.TanhGeluFFN = ffn_class("TanhGeluFFN", { "up", "down" }, function(self, x)
  return self.down(lattice.gelu_approx(self.up(x)))
end)

M.GatedFFN = ffn_class("GatedFFN", { "gate", "up", "down" }, function(self, x)
  return self.down(lattice.silu(self.gate(x)) * self.up(x))
end)

M.ReluSquaredFFN = ffn_class("ReluSquaredFFN", { "up", "down" }, function(self, x)
  local h = lattice.relu(self.up(x))
  return self.down(h * h)
end)

M.GatedReluSquaredFFN = ffn_class("GatedReluSquaredFFN", { "gate", "up", "down" }, function(self, x)
  local g = lattice.relu(self.gate(x))
  return self.down(g * g * self.up(x))
end)

--- NoneFFN(cfg): returns its input, as the seed's does. (In a residual block
-- that adds the normalised input; a block that wants no FFN skips it.)
M.NoneFFN = ffn_class("NoneFFN", {}, function(_, x) return x end)

registry.ffn:register("standard", M.StandardFFN)
registry.ffn:register("gated", M.GatedFFN)
registry.ffn:register("relu2", M.ReluSquaredFFN)
registry.ffn:register("gated_relu2", M.GatedReluSquaredFFN)
registry.ffn:register("none", M.NoneFFN)
registry.ffn:register("gelu_tanh", M.TanhGeluFFN)

return M
