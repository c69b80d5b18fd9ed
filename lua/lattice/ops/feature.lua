-- Feature ops, as mlx_lattice.ops.feature: each transforms the features of a
-- SparseTensor and returns a SparseTensor with the same coordinates (the same
-- coordinate identity and batch counts), or transforms a dense tensor and
-- returns one. They compose lattice's dense ops, so they are differentiable
-- and take every float dtype those take.
local lattice = require "lattice"
local sparse = require "lattice.sparse"
local args = require "lattice.ops.args"

local M = {}

-- fn(features) applied to x, sparse or dense. Tail-called by the ops, so its
-- error points at their caller.
local function apply(x, fname, fn)
  if sparse.is_sparse(x) then return x:with_feats(fn(x.feats)) end
  if lattice.is_tensor(x) then return fn(x) end
  error(("%s: x must be a SparseTensor or a lattice.Tensor, got %s"):format(fname, type(x)), 2)
end

-- The option checks below are called by the ops themselves: level 3 is the
-- ops' caller.
local function number(v, default, what, fname)
  if v == nil then return default end
  if type(v) ~= "number" then error(("%s: %s must be a number, got %s"):format(fname, what, type(v)), 3) end
  return v
end

local function positive_eps(v, fname)
  if v == nil then return 1e-5 end
  if type(v) ~= "number" or v ~= v or v <= 0 then
    error(("%s: eps must be a positive number, got %s"):format(fname, tostring(v)), 3)
  end
  return v
end

local function optional_tensor(v, what, fname)
  if v ~= nil and not lattice.is_tensor(v) then
    error(("%s: %s must be a lattice.Tensor, got %s"):format(fname, what, type(v)), 3)
  end
  return v
end

-- Each given tensor of `vectors` ({tensor, name} pairs) has shape {C}, C the channels of x.
local function check_channels(x, vectors, fname)
  local f = sparse.is_sparse(x) and x.feats or x
  if not lattice.is_tensor(f) then return end -- apply reports it
  local c = f.shape[f.ndim]
  for _, v in ipairs(vectors) do
    if v[1] and (v[1].ndim ~= 1 or v[1].shape[1] ~= c) then
      error(("%s: %s must have shape {%d}, got {%s}"):format(fname, v[2], c, table.concat(v[1].shape, ",")), 3)
    end
  end
end

--- linear(x, weight[, bias]): features @ weight^T + bias, weight (C_out, C_in), bias (C_out).
function M.linear(x, weight, bias)
  if not lattice.is_tensor(weight) then
    error(("linear: weight must be a lattice.Tensor, got %s"):format(type(weight)), 2)
  end
  optional_tensor(bias, "bias", "linear")
  return apply(x, "linear", function(f) return lattice.linear(f, weight, bias) end)
end

--- relu(x), sigmoid(x), silu(x), tanh(x)
function M.relu(x) return apply(x, "relu", lattice.relu) end
function M.sigmoid(x) return apply(x, "sigmoid", lattice.sigmoid) end
function M.silu(x) return apply(x, "silu", lattice.silu) end
function M.tanh(x) return apply(x, "tanh", lattice.tanh) end

--- leaky_relu(x[, {negative_slope = 0.01}])
function M.leaky_relu(x, opts)
  opts = args.options(opts, { negative_slope = true }, "leaky_relu")
  local slope = number(opts.negative_slope, 0.01, "negative_slope", "leaky_relu")
  return apply(x, "leaky_relu", function(f) return lattice.leaky_relu(f, slope) end)
end

local GELU = {
  none = lattice.gelu, -- the erf form; mlx_lattice's "precise" is the same
  precise = lattice.gelu,
  tanh = lattice.gelu_approx,
  fast = function(f) return lattice.multiply(f, lattice.sigmoid(lattice.multiply(f, 1.702))) end,
}

--- gelu(x[, {approximate = "none"}]): "none" and "precise" the erf form,
-- "tanh" the tanh approximation, "fast" x·sigmoid(1.702 x), as mlx_lattice.
function M.gelu(x, opts)
  opts = args.options(opts, { approximate = true }, "gelu")
  local fn = GELU[args.choice(opts.approximate or "none", GELU, "approximate", "gelu")]
  return apply(x, "gelu", fn)
end

--- softplus(x[, {beta = 1, threshold = 20}]): log(1 + exp(beta x)) / beta,
-- and x itself where beta x > threshold.
function M.softplus(x, opts)
  opts = args.options(opts, { beta = true, threshold = true }, "softplus")
  local beta = number(opts.beta, 1, "beta", "softplus")
  local threshold = number(opts.threshold, 20, "threshold", "softplus")
  if beta ~= beta or beta <= 0 then error(("softplus: beta must be positive, got %g"):format(beta), 2) end
  return apply(x, "softplus", function(f)
    local scaled = lattice.multiply(f, beta)
    return lattice.where(lattice.greater(scaled, threshold), f, lattice.divide(lattice.softplus(scaled), beta))
  end)
end

--- layer_norm(x[, {weight, bias, eps = 1e-5}]): each row normalised over its channels.
function M.layer_norm(x, opts)
  opts = args.options(opts, { weight = true, bias = true, eps = true }, "layer_norm")
  local w, b = optional_tensor(opts.weight, "weight", "layer_norm"), optional_tensor(opts.bias, "bias", "layer_norm")
  local eps = positive_eps(opts.eps, "layer_norm")
  return apply(x, "layer_norm", function(f) return lattice.layer_norm(f, w, b, eps) end)
end

--- rms_norm(x[, {weight, eps = 1e-5}])
function M.rms_norm(x, opts)
  opts = args.options(opts, { weight = true, eps = true }, "rms_norm")
  local w = optional_tensor(opts.weight, "weight", "rms_norm")
  local eps = positive_eps(opts.eps, "rms_norm")
  return apply(x, "rms_norm", function(f) return lattice.rms_norm(f, w, eps) end)
end

--- batch_norm(x[, {weight, bias, mean, var, eps = 1e-5}]): (f − mean) / sqrt(var + eps) · weight + bias
-- per channel; a mean or var not given is the (biased) statistic of the rows,
-- as mlx_lattice computes it. nn.BatchNorm is the fused module with running
-- statistics.
function M.batch_norm(x, opts)
  opts = args.options(opts, { weight = true, bias = true, mean = true, var = true, eps = true }, "batch_norm")
  local w, b = optional_tensor(opts.weight, "weight", "batch_norm"), optional_tensor(opts.bias, "bias", "batch_norm")
  local mean, var = optional_tensor(opts.mean, "mean", "batch_norm"), optional_tensor(opts.var, "var", "batch_norm")
  local eps = positive_eps(opts.eps, "batch_norm")
  check_channels(x, { { w, "weight" }, { b, "bias" }, { mean, "mean" }, { var, "var" } }, "batch_norm")
  return apply(x, "batch_norm", function(f)
    local m = mean or lattice.mean(f, 1)
    local y = lattice.multiply(lattice.subtract(f, m), lattice.rsqrt(lattice.add(var or lattice.var(f, 1), eps)))
    if w then y = lattice.multiply(y, w) end
    if b then y = lattice.add(y, b) end
    return y
  end)
end

--- dropout(x[, {p = 0.5, training = true}]): zeroes features with probability
-- p and scales the rest by 1 / (1 − p); x itself when not training or p = 0.
function M.dropout(x, opts)
  opts = args.options(opts, { p = true, training = true }, "dropout")
  local p = number(opts.p, 0.5, "p", "dropout")
  if not (p >= 0 and p < 1) then error(("dropout: p must be in [0, 1), got %g"):format(p), 2) end
  local training = opts.training
  if training == nil then training = true end
  if type(training) ~= "boolean" then
    error(("dropout: training must be a boolean, got %s"):format(type(training)), 2)
  end
  if not training or p == 0 then
    if not (sparse.is_sparse(x) or lattice.is_tensor(x)) then return apply(x, "dropout") end -- its error
    return x
  end
  return apply(x, "dropout", function(f) return lattice.dropout(f, p) end)
end

return M
