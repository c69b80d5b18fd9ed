-- Feature ops, as mlx_lattice.ops.feature: each transforms the features of a
-- SparseTensor and returns a SparseTensor with the same coordinates (the same
-- coordinate identity and batch counts), or transforms a dense tensor and
-- returns one. They compose lattice's dense ops, so they are differentiable
-- and take every float dtype those take. Errors point at the caller's line
-- (lattice/ops/args.lua).
local lattice = require "lattice"
local sparse = require "lattice.sparse"
local args = require "lattice.ops.args"

local api, call, type_name = args.api, args.call, args.type_name
local M = {}

-- x itself checked: a SparseTensor or a tensor.
local function check_x(x, fname)
  if not (sparse.is_sparse(x) or lattice.is_tensor(x)) then
    error(("%s: x must be a SparseTensor or a lattice.Tensor, got %s"):format(fname, type_name(x)), 0)
  end
end

-- fn(features) applied to x, sparse or dense. fn calls lattice's C ops
-- through `call` (or is one), so their messages carry no position of ours.
local function apply(x, fname, fn)
  check_x(x, fname)
  if sparse.is_sparse(x) then return call(x.with_feats, x, fn(x.feats)) end
  return fn(x)
end

-- The C op f as a function of the features, called through `call`.
local function op(f, ...)
  local extra = table.pack(...)
  return function(feats) return call(f, feats, table.unpack(extra, 1, extra.n)) end
end

local function number(v, default, what, fname)
  if v == nil then return default end
  if type(v) ~= "number" then error(("%s: %s must be a number, got %s"):format(fname, what, type_name(v)), 0) end
  return v
end

local function positive_eps(v, fname)
  if v == nil then return 1e-5 end
  if type(v) ~= "number" or v ~= v or v <= 0 then
    error(("%s: eps must be a positive number, got %s"):format(fname, tostring(v)), 0)
  end
  return v
end

local function optional_tensor(v, what, fname)
  if v ~= nil and not lattice.is_tensor(v) then
    error(("%s: %s must be a lattice.Tensor, got %s"):format(fname, what, type_name(v)), 0)
  end
  return v
end

-- Each given tensor of `vectors` ({tensor, name} pairs) has shape {C}, C the channels of x.
local function check_channels(x, vectors, fname)
  local f = sparse.is_sparse(x) and x.feats or x
  local c = f.shape[f.ndim]
  for _, v in ipairs(vectors) do
    if v[1] and (v[1].ndim ~= 1 or v[1].shape[1] ~= c) then
      error(("%s: %s must have shape {%d}, got {%s}"):format(fname, v[2], c, table.concat(v[1].shape, ",")), 0)
    end
  end
end

--- linear(x, weight[, bias]): features @ weight^T + bias, weight (C_out, C_in)
-- a tensor or a QuantizedWeight (lattice.linear's quantized product), bias (C_out).
M.linear = api(function(x, weight, bias)
  if not (lattice.is_tensor(weight) or lattice.is_quantized_weight(weight)) then
    error(("linear: weight must be a lattice.Tensor or a QuantizedWeight, got %s"):format(type_name(weight)), 0)
  end
  optional_tensor(bias, "bias", "linear")
  return apply(x, "linear", op(lattice.linear, weight, bias))
end)

local function elementwise(name, fn)
  M[name] = api(function(x) return apply(x, name, op(fn)) end)
end

--- relu(x), sigmoid(x), silu(x), tanh(x)
elementwise("relu", lattice.relu)
elementwise("sigmoid", lattice.sigmoid)
elementwise("silu", lattice.silu)
elementwise("tanh", lattice.tanh)

--- leaky_relu(x[, {negative_slope = 0.01}])
M.leaky_relu = api(function(x, opts)
  opts = args.options(opts, { negative_slope = true }, "leaky_relu")
  local slope = number(opts.negative_slope, 0.01, "negative_slope", "leaky_relu")
  return apply(x, "leaky_relu", op(lattice.leaky_relu, slope))
end)

local GELU = {
  none = op(lattice.gelu), -- the erf form; mlx_lattice's "precise" is the same
  precise = op(lattice.gelu),
  tanh = op(lattice.gelu_approx),
  fast = function(f) return call(lattice.multiply, f, call(lattice.sigmoid, call(lattice.multiply, f, 1.702))) end,
}

--- gelu(x[, {approximate = "none"}]): "none" and "precise" the erf form,
-- "tanh" the tanh approximation, "fast" x·sigmoid(1.702 x), as mlx_lattice.
M.gelu = api(function(x, opts)
  opts = args.options(opts, { approximate = true }, "gelu")
  return apply(x, "gelu", GELU[args.choice(opts.approximate or "none", GELU, "approximate", "gelu")])
end)

--- softplus(x[, {beta = 1, threshold = 20}]): log(1 + exp(beta x)) / beta,
-- and x itself where beta x > threshold.
M.softplus = api(function(x, opts)
  opts = args.options(opts, { beta = true, threshold = true }, "softplus")
  local beta = number(opts.beta, 1, "beta", "softplus")
  local threshold = number(opts.threshold, 20, "threshold", "softplus")
  if beta ~= beta or beta <= 0 then error(("softplus: beta must be positive, got %g"):format(beta), 0) end
  return apply(x, "softplus", function(f)
    local scaled = call(lattice.multiply, f, beta)
    return call(lattice.where, call(lattice.greater, scaled, threshold), f,
      call(lattice.divide, call(lattice.softplus, scaled), beta))
  end)
end)

--- layer_norm(x[, {weight, bias, eps = 1e-5}]): each row normalised over its channels.
M.layer_norm = api(function(x, opts)
  opts = args.options(opts, { weight = true, bias = true, eps = true }, "layer_norm")
  local w, b = optional_tensor(opts.weight, "weight", "layer_norm"), optional_tensor(opts.bias, "bias", "layer_norm")
  local eps = positive_eps(opts.eps, "layer_norm")
  return apply(x, "layer_norm", op(lattice.layer_norm, w, b, eps))
end)

--- rms_norm(x[, {weight, eps = 1e-5}])
M.rms_norm = api(function(x, opts)
  opts = args.options(opts, { weight = true, eps = true }, "rms_norm")
  local w = optional_tensor(opts.weight, "weight", "rms_norm")
  local eps = positive_eps(opts.eps, "rms_norm")
  return apply(x, "rms_norm", op(lattice.rms_norm, w, eps))
end)

-- Every axis of f but the last (the channels): the rows of batch_norm's
-- statistics, as nn.BatchNorm takes them. A tensor of one axis has no rows.
local function row_axes(f)
  if f.ndim < 2 then
    error(("batch_norm: x must have a row axis and a channel axis, got %d dimension%s"):format(f.ndim,
      f.ndim == 1 and "" or "s"), 0)
  end
  local axes = {}
  for a = 1, f.ndim - 1 do axes[a] = a end
  return axes
end

-- float16/bfloat16 features are normalised in float32: statistics rounded to
-- half precision cost several of its ulps (2.5 at mean 0, 12 at mean 10 for
-- unit variance). The result has the dtype the half-precision composition
-- would give: x's own unless a vector given promotes it.
local HALF = { float16 = true, bfloat16 = true }

local function all_of_dtype(vectors, dtype)
  for k = 1, 4 do
    if vectors[k] and vectors[k].dtype ~= dtype then return false end
  end
  return true
end

--- batch_norm(x[, {weight, bias, mean, var, eps = 1e-5}]): (f − mean) / sqrt(var + eps) · weight + bias
-- per channel; a mean or var not given is the (biased) statistic of the rows
-- (of a dense x, every axis but the last), as mlx_lattice computes it.
-- nn.BatchNorm is the fused module with running statistics.
M.batch_norm = api(function(x, opts)
  opts = args.options(opts, { weight = true, bias = true, mean = true, var = true, eps = true }, "batch_norm")
  local w, b = optional_tensor(opts.weight, "weight", "batch_norm"), optional_tensor(opts.bias, "bias", "batch_norm")
  local mean, var = optional_tensor(opts.mean, "mean", "batch_norm"), optional_tensor(opts.var, "var", "batch_norm")
  local eps = positive_eps(opts.eps, "batch_norm")
  check_x(x, "batch_norm")
  local axes = row_axes(sparse.is_sparse(x) and x.feats or x)
  check_channels(x, { { w, "weight" }, { b, "bias" }, { mean, "mean" }, { var, "var" } }, "batch_norm")
  return apply(x, "batch_norm", function(f)
    local dtype = f.dtype
    if HALF[dtype] then f = call(lattice.astype, f, "float32") end
    local m, v = mean or call(lattice.mean, f, axes), var or call(lattice.var, f, axes)
    local y = call(lattice.multiply, call(lattice.subtract, f, m), call(lattice.rsqrt, call(lattice.add, v, eps)))
    if w then y = call(lattice.multiply, y, w) end
    if b then y = call(lattice.add, y, b) end
    if HALF[dtype] and all_of_dtype({ w, b, mean, var }, dtype) then y = call(lattice.astype, y, dtype) end
    return y
  end)
end)

--- dropout(x[, {p = 0.5, training = true}]): zeroes features with probability
-- p and scales the rest by 1 / (1 − p); x itself when not training or p = 0.
M.dropout = api(function(x, opts)
  opts = args.options(opts, { p = true, training = true }, "dropout")
  local p = number(opts.p, 0.5, "p", "dropout")
  if not (p >= 0 and p < 1) then error(("dropout: p must be in [0, 1), got %g"):format(p), 0) end
  local training = opts.training
  if training == nil then training = true end
  if type(training) ~= "boolean" then
    error(("dropout: training must be a boolean, got %s"):format(type_name(training)), 0)
  end
  check_x(x, "dropout")
  if not training or p == 0 then return x end
  return apply(x, "dropout", op(lattice.dropout, p))
end)

return M
