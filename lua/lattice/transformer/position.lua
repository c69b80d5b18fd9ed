-- Positional encodings, as lmxlab's core/position.py wraps MLX's layers, with
-- MLX's semantics (python/mlx/nn/layers/positional_encoding.py):
--   rope        RoPE(cfg): nn.RoPE(head_dim, traditional = false, base = rope_theta)
--               on q and k, the fused C op lattice.rope;
--   sinusoidal  Sinusoidal(cfg): nn.SinusoidalPositionalEncoding(d_model,
--               full_turns = true), added to the embeddings;
--   alibi       ALiBi(cfg): nn.ALiBi's head slopes times -|i - j|, added to
--               the attention mask;
--   none        NoPosition(cfg): the identity.
-- Each is registered in lattice.registry.position under that name.
local lattice = require "lattice"
local nn = require "lattice.nn"
local registry = require("lattice.registry").registries
local common = require "lattice.transformer.common"
local check_options = require("lattice.nn.module").check_options

local check_config = common.check_config

local M = {}

-- ---- MLX's pieces ----

--- alibi_slopes(num_heads): the ALiBi paper's head slopes as MLX's
-- ALiBi.alibi_get_slopes computes them (in doubles): for a power of two
-- 2^(-8/n) * 2^(-8/n)^i, i = 0..n-1; otherwise those of the power of two
-- below, then every other slope of twice that power, as many as are missing.
local function alibi_slopes(num_heads)
  local function power_of_2(n)
    local start = 2 ^ (-(2 ^ -(math.log(n, 2) - 3)))
    local slopes = {}
    for i = 0, n - 1 do slopes[i + 1] = start * start ^ i end
    return slopes
  end
  local l2 = math.log(num_heads, 2)
  if l2 == math.floor(l2) then return power_of_2(num_heads) end
  local closest = 2 ^ math.floor(l2)
  local slopes, extra = power_of_2(math.tointeger(closest)), alibi_slopes(math.tointeger(2 * closest))
  for i = 1, num_heads - closest do slopes[#slopes + 1] = extra[2 * i - 1] end
  return slopes
end

function M.alibi_slopes(num_heads)
  if math.type(num_heads) ~= "integer" or num_heads < 1 then
    error("alibi_slopes: num_heads must be a positive integer, got " .. tostring(num_heads), 2)
  end
  return alibi_slopes(num_heads)
end

--- alibi_matrix(t_q, t_k, num_heads[, offset = 0]): MLX's
-- ALiBi.create_alibi_matrix, (1, num_heads, t_q, t_k) float32, entry
-- (h, i, j) = -|offset + i - j| * slope_h: queries at positions offset ..
-- offset + t_q - 1, keys at 0 .. t_k - 1. (MLX's q_sequence_length is
-- t_q + offset.) The same products in float32 as MLX takes them.
function M.alibi_matrix(t_q, t_k, num_heads, offset)
  offset = offset or 0
  for _, v in ipairs({ { t_q, "t_q" }, { t_k, "t_k" }, { offset, "offset" } }) do
    if math.type(v[1]) ~= "integer" or v[1] < 0 then
      error(("alibi_matrix: %s must be a non-negative integer, got %s"):format(v[2], tostring(v[1])), 2)
    end
  end
  local slopes = lattice.array(M.alibi_slopes(num_heads)):reshape({ num_heads, 1, 1 })
  local qpos = lattice.arange(offset, offset + t_q):reshape({ t_q, 1 })
  local kpos = lattice.arange(0, t_k):reshape({ 1, t_k })
  local distance = -lattice.abs(qpos - kpos)
  return (distance * slopes):reshape({ 1, num_heads, t_q, t_k })
end

--- SinusoidalPositionalEncoding(dims[, {min_freq = 1e-4, max_freq = 1,
-- scale = sqrt(2 / dims), cos_first = false, full_turns = false}]): MLX's
-- layer. pe(p) = scale * [sin(p sigma), cos(p sigma)] (cos first when
-- cos_first), sigma_k = exp(u_k (log max_freq - log min_freq) + log min_freq)
-- (times 2 pi with full_turns), u_k = 1 - k / (dims/2 - 1), k = 0 .. dims/2 - 1:
-- the frequencies fall from max_freq to min_freq. Computed in float32 as MLX
-- does. Called on positions (...) it gives (..., 2 * (dims // 2)).
local SinusoidalPositionalEncoding = nn.Module:extend("SinusoidalPositionalEncoding")
M.SinusoidalPositionalEncoding = SinusoidalPositionalEncoding

function SinusoidalPositionalEncoding:init(dims, opts)
  local fname = "SinusoidalPositionalEncoding"
  opts = check_options(opts, { min_freq = true, max_freq = true, scale = true, cos_first = true, full_turns = true },
    fname)
  if math.type(dims) ~= "integer" or dims < 4 then
    -- MLX divides by dims // 2 - 1: fewer than 4 dims give NaN frequencies
    error(("%s: dims must be an integer of at least 4, got %s"):format(fname, tostring(dims)), 3)
  end
  local min_freq, max_freq = opts.min_freq or 1e-4, opts.max_freq or 1
  for _, v in ipairs({ { min_freq, "min_freq" }, { max_freq, "max_freq" } }) do
    if type(v[1]) ~= "number" or v[1] ~= v[1] or v[1] <= 0 then
      error(("%s: %s must be a positive number, got %s"):format(fname, v[2], tostring(v[1])), 3)
    end
  end
  local half = dims // 2
  local one_zero = 1 - lattice.arange(0, half) / (half - 1)
  local lmin, lmax = math.log(min_freq), math.log(max_freq)
  local sigmas = lattice.exp(one_zero * (lmax - lmin) + lmin)
  if opts.full_turns then sigmas = sigmas * (2 * math.pi) end
  self._sigmas = sigmas -- private: not a parameter
  self.dims, self.min_freq, self.max_freq = dims, min_freq, max_freq
  self.scale = opts.scale or math.sqrt(2 / dims)
  self.cos_first, self.full_turns = opts.cos_first or false, opts.full_turns or false
end

function SinusoidalPositionalEncoding:forward(positions)
  local shape = positions.shape
  shape[#shape + 1] = 1
  local y = positions:astype("float32"):reshape(shape) * self._sigmas
  local s, c = lattice.sin(y), lattice.cos(y)
  y = self.cos_first and lattice.concatenate({ c, s }, -1) or lattice.concatenate({ s, c }, -1)
  if self.scale ~= 1 then y = y * self.scale end
  return y
end

function SinusoidalPositionalEncoding:_extra_repr()
  return ("%d, full_turns=%s"):format(self.dims, tostring(self.full_turns))
end

-- ---- lmxlab's wrappers, registered by name ----

--- RoPE(cfg): rotary embeddings with dims = head_dim, the rotate-half
-- convention and base = rope_theta. rope(q, k[, offset = 0]) -> q, k rotated,
-- both (B, heads, T, head_dim), positions from offset (the cache length).
local RoPE = nn.Module:extend("RoPE")
M.RoPE = RoPE

function RoPE:init(config)
  check_config(config, "RoPE")
  self.dims, self.traditional, self.base, self.scale = config.head_dim, false, config.rope_theta, 1.0
end

--- rope:apply(x[, {offset = 0, seq_axis = -2, positions = nil}]): one tensor
-- rotated with this module's settings (seq_axis = -3 for (B, T, H, D)).
function RoPE:apply(x, opts)
  opts = check_options(opts, { offset = true, seq_axis = true, positions = true }, "RoPE:apply")
  return lattice.rope(x, self.dims, { traditional = self.traditional, base = self.base, scale = self.scale,
    offset = opts.offset, seq_axis = opts.seq_axis, positions = opts.positions })
end

function RoPE:forward(q, k, offset)
  local o = { offset = offset or 0 }
  return self:apply(q, o), self:apply(k, o)
end

function RoPE:_extra_repr() return ("%d, traditional=%s, base=%g"):format(self.dims, tostring(self.traditional), self.base) end

--- Sinusoidal(cfg): x (B, T, d_model) + pe(offset .. offset + T - 1), pe from
-- SinusoidalPositionalEncoding(d_model, {full_turns = true}). The seed always
-- starts at position 0; `offset` lets a cached decode continue the positions.
local Sinusoidal = nn.Module:extend("Sinusoidal")
M.Sinusoidal = Sinusoidal

function Sinusoidal:init(config)
  check_config(config, "Sinusoidal")
  if config.d_model % 2 ~= 0 or config.d_model < 4 then
    error(("Sinusoidal: d_model must be even and at least 4 (the encoding is added to x), got %d"):format(
      config.d_model), 3)
  end
  self._embed = SinusoidalPositionalEncoding(config.d_model, { full_turns = true })
end

function Sinusoidal:forward(x, offset)
  offset = offset or 0
  if not lattice.is_tensor(x) or x.ndim < 2 then error("Sinusoidal: x must be a tensor (B, T, d_model)", 2) end
  local t = x.shape[x.ndim - 1]
  return x + self._embed(lattice.arange(offset, offset + t))
end

--- ALiBi(cfg): alibi(mask[, {seq_len = 0, cache_len = 0}]) -> the ALiBi
-- biases plus mask, (1, n_heads, T_q, T_k) float32: T_q and T_k are the
-- mask's last two axes (without a mask: seq_len and seq_len + cache_len), the
-- queries at positions cache_len onwards. No encoding is added to x.
-- alibi.slopes lists the head slopes, for kernels that add them themselves.
local ALiBi = nn.Module:extend("ALiBi")
M.ALiBi = ALiBi

function ALiBi:init(config)
  check_config(config, "ALiBi")
  self.n_heads = config.n_heads
  self.slopes = M.alibi_slopes(config.n_heads)
end

function ALiBi:forward(mask, opts)
  opts = check_options(opts, { seq_len = true, cache_len = true }, "ALiBi")
  local seq_len, cache_len = opts.seq_len or 0, opts.cache_len or 0
  local t_q, t_k = seq_len, seq_len + cache_len
  if mask ~= nil then
    if not lattice.is_tensor(mask) or mask.ndim < 2 then error("ALiBi: mask must be a tensor (..., T_q, T_k)", 2) end
    t_q, t_k = mask.shape[mask.ndim - 1], mask.shape[mask.ndim]
  end
  local bias = M.alibi_matrix(t_q, t_k, self.n_heads, cache_len)
  return mask ~= nil and bias + mask or bias
end

function ALiBi:_extra_repr() return ("n_heads=%d"):format(self.n_heads) end

--- NoPosition(cfg): the identity, for blocks that get positions elsewhere.
local NoPosition = nn.Module:extend("NoPosition")
M.NoPosition = NoPosition

function NoPosition.init(_, config) check_config(config, "NoPosition") end

function NoPosition.forward(_, x) return x end

registry.position:register("rope", RoPE)
registry.position:register("sinusoidal", Sinusoidal)
registry.position:register("alibi", ALiBi)
registry.position:register("none", NoPosition)
-- learned absolute positions live in the model (LanguageModel's pos_embed):
-- a block gets nothing to do (not in the seed; GPT-2's)
registry.position:register("learned", NoPosition)

return M
