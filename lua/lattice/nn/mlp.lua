-- nn.MLP(dim, activation[, opts]): the point-wise two-layer MLP of the
-- reference (seed 004), the channel-mixing branch of a residual block. It
-- acts on the last axis of a channels-last input (B, *spatial, C), every
-- position on its own:
--   relu, gelu, silu:  y = layer2(dropout(act(layer1(x))))       layer1: C -> H
--   glu:     [a, b] = layer1(x),  y = layer2(dropout(a * sigmoid(b)))   layer1: C -> 2H
--   swiglu:  [a, b] = layer1(x),  y = layer2(dropout(silu(a) * b))
-- with H = floor(expansion_factor * C) and layer2: H -> C. [a, b] splits at
-- the midpoint, as the reference's code does: torch.nn.functional.glu gates
-- with the second half, its SwiGLU with the first.
--
-- Options: dropout (a module, or a probability for nn.Dropout; default
-- nn.Identity()), expansion_factor = 2.0, bias = false, backend = "blas",
-- init_method_in, init_method_out (curried: init(out_features)(weight)
-- returns the new weight; biases are then zeroed).
-- backend "blas" runs nn.Linear, the activation and nn.Linear; "fused"
-- runs layer1 and the activation as one C op (lattice.linear_act: the
-- activation or gate applied to each block of the GEMM's output while it is
-- in cache), the same numbers within float32 rounding; the reference's
-- "quack" is a GPU kernel family and an error here.
local lattice = require "lattice"
local module = require "lattice.nn.module"
local layers = require "lattice.nn.layers"

local M = {}

local ACTIVATIONS = { relu = true, gelu = true, silu = true, glu = true, swiglu = true }
local GATED = { glu = true, swiglu = true }

local MLP = module.Module:extend("MLP")
M.MLP = MLP

-- Raised from the helpers MLP:init calls, at the line that made the MLP.
local function fail(msg, ...) error("MLP: " .. msg:format(...), 5) end

local function check_args(dim, activation, opts)
  if math.type(dim) ~= "integer" or dim < 1 then fail("dim must be a positive integer, got %s", tostring(dim)) end
  if not ACTIVATIONS[activation] then
    fail("activation must be one of 'relu', 'gelu', 'silu', 'glu', 'swiglu', got %s",
      type(activation) == "string" and ("'" .. activation .. "'") or type(activation))
  end
  local f = opts.expansion_factor
  if type(f) ~= "number" or f ~= f or f <= 0 or f == math.huge then
    fail("expansion_factor must be a positive number, got %s", tostring(f))
  end
  local hidden = math.floor(dim * f)
  if hidden < 1 then fail("hidden_dim = floor(expansion_factor * dim) is %d; it must be at least 1", hidden) end
  if type(opts.bias) ~= "boolean" then fail("bias must be a boolean, got %s", type(opts.bias)) end
  for _, k in ipairs({ "init_method_in", "init_method_out" }) do
    local v = opts[k]
    if v ~= nil and type(v) ~= "function" and not (getmetatable(v) or {}).__call then
      fail("%s must be a function (init(out_features) returning an initialiser), got %s", k, type(v))
    end
  end
end

-- The backend name, with the reference's "torch" read as "blas".
local function check_backend(backend)
  if backend == "quack" then
    fail("backend 'quack' (the reference's QuACK fused GEMM kernels for Hopper/Blackwell GPUs) is not available " ..
      "on the CPU; backend = 'fused' is lattice's fused GEMM + activation")
  end
  if backend == "torch" then return "blas" end
  if backend ~= "blas" and backend ~= "fused" then
    fail("backend must be 'blas' or 'fused', got %s", type(backend) == "string" and ("'" .. backend .. "'") or
      type(backend))
  end
  return backend
end

local function dropout_module(d)
  if d == nil then return layers.Identity() end
  if type(d) == "number" then return layers.Dropout({ p = d }) end
  if not module.is_module(d) then fail("dropout must be a module or a probability, got %s", type(d)) end
  return d
end

-- layer.weight = init(out_features)(layer.weight), the bias zeroed, as the
-- reference applies its curried initialisers.
local function initialise(layer, init, out_features, which)
  if init == nil then return end
  local fn = init(out_features)
  if type(fn) ~= "function" and not (getmetatable(fn) or {}).__call then
    fail("%s(%d) must return an initialiser function, got %s", which, out_features, type(fn))
  end
  local w = fn(layer.weight)
  if w ~= nil then
    if not lattice.is_tensor(w) then fail("%s(%d)(weight) must return a tensor or nil, got %s", which, out_features,
      type(w)) end
    layer.weight = w
  end
  if layer.bias ~= nil then layer.bias = lattice.zeros_like(layer.bias) end
end

local DEFAULTS = { dropout = true, expansion_factor = true, bias = true, backend = true, init_method_in = true,
  init_method_out = true }

function MLP:init(dim, activation, opts)
  opts = module.check_options(opts, DEFAULTS, "MLP")
  local o = { expansion_factor = 2.0, bias = false, backend = "blas" }
  for k, v in pairs(opts) do o[k] = v end
  check_args(dim, activation, o)
  local hidden = math.floor(dim * o.expansion_factor) -- the reference's int(dim * expansion_factor)
  self.hidden_dim = hidden
  self.activation = activation
  self.backend = check_backend(o.backend)
  self.is_glu_variant = GATED[activation] == true
  local glu_factor = self.is_glu_variant and 2 or 1
  self.layer1 = layers.Linear(dim, hidden * glu_factor, { bias = o.bias })
  initialise(self.layer1, o.init_method_in, hidden * glu_factor, "init_method_in")
  self.dropout = dropout_module(o.dropout)
  self.layer2 = layers.Linear(hidden, dim, { bias = o.bias })
  initialise(self.layer2, o.init_method_out, dim, "init_method_out")
  self._dim = dim
end

-- The activation (or gate product) on layer1's output h.
local function activate(activation, h)
  if activation == "glu" then
    local parts = lattice.split(h, 2, -1)
    return parts[1] * lattice.sigmoid(parts[2])
  elseif activation == "swiglu" then
    local parts = lattice.split(h, 2, -1)
    return lattice.silu(parts[1]) * parts[2]
  end
  return lattice[activation](h)
end

local function check_input(self, x)
  if not lattice.is_tensor(x) then error("MLP: x must be a tensor (B, *spatial, C), got " .. type(x), 0) end
  local c = x.ndim > 0 and x.shape[x.ndim] or nil
  if c ~= self._dim then
    error(("MLP: x must have %d channels on its last axis (channels last: (B, *spatial, C)), got %s"):format(
      self._dim, c and tostring(c) or "a 0-d tensor"), 0)
  end
end

function MLP:forward(x)
  check_input(self, x)
  local h
  local l1 = self.layer1
  if self.backend == "fused" and module.type_name(l1) == "Linear" then
    h = lattice.linear_act(x, l1.weight, l1.bias, self.activation)
  else -- "blas", or a layer1 that is no longer a plain Linear (a LoRA wrapper)
    h = activate(self.activation, l1(x))
  end
  return self.layer2(self.dropout(h))
end

--- mlp:flop_count(num_tokens): the reference's count. 2 FLOPs a MAC for
-- each linear layer (2 T in out), one FLOP per element of the activation,
-- T * hidden_dim, twice that for the gated ones (the gate and the product).
function MLP:flop_count(num_tokens)
  if math.type(num_tokens) ~= "integer" or num_tokens < 0 then
    error("MLP:flop_count: num_tokens must be a non-negative integer, got " .. tostring(num_tokens), 2)
  end
  local t, l1, l2 = num_tokens, self.layer1, self.layer2
  local flops = 2 * t * l1.weight.shape[2] * l1.weight.shape[1]
  flops = flops + (self.is_glu_variant and 2 * t * self.hidden_dim or t * self.hidden_dim)
  return flops + 2 * t * l2.weight.shape[2] * l2.weight.shape[1]
end

function MLP:_extra_repr()
  return ("dim=%d, hidden_dim=%d, activation=%q, backend=%q"):format(self._dim, self.hidden_dim, self.activation,
    self.backend)
end

return M
