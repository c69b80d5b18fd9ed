-- nn.losses: the loss functions of mlx.nn.losses, with their names, defaults
-- and reductions ("none" | "mean" | "sum"); MLX's keyword arguments are one
-- options table. Axes count as Lua counts them (-1 is the last; MLX's axis=1
-- of cosine_similarity_loss is axis 2 here). cross_entropy and mse_loss are
-- the fused C ops; the others are compositions of differentiable ops.
local lattice = require "lattice"
local module = require "lattice.nn.module"

local check_options = module.check_options
local shape_str = module.shape_str

local M = {}

local function reduce(loss, reduction, fname)
  if reduction == "none" then return loss end
  if reduction == "mean" then return lattice.mean(loss) end
  if reduction == "sum" then return lattice.sum(loss) end
  error(("%s: reduction must be 'none', 'mean' or 'sum', got %s"):format(fname, tostring(reduction)), 3)
end

local function check_tensor(t, what, fname)
  if not lattice.is_tensor(t) then error(("%s: %s must be a lattice.Tensor, got %s"):format(fname, what, type(t)), 3) end
end

local function same_shape(a, b, fname)
  if shape_str(a) ~= shape_str(b) then
    error(("%s: inputs have shape %s, targets have shape %s"):format(fname, shape_str(a), shape_str(b)), 3)
  end
end

-- Multiplies in the optional elementwise weights (same shape as the loss).
local function weigh(loss, weights, fname)
  if weights == nil then return loss end
  check_tensor(weights, "weights", fname)
  if shape_str(weights) ~= shape_str(loss) then
    error(("%s: weights have shape %s, the loss has shape %s"):format(fname, shape_str(weights), shape_str(loss)), 3)
  end
  return loss * weights
end

local function is_int(t) return t.dtype == "int32" or t.dtype == "int64" or t.dtype == "uint8" end

-- x with `axis` moved last (a view), and the permutation's inverse is not needed:
-- class axes are reduced away.
local function axis_last(x, axis)
  local nd = x.ndim
  local a = axis < 0 and axis + nd + 1 or axis
  if a == nd then return x end
  local perm = {}
  for i = 1, nd do
    if i ~= a then perm[#perm + 1] = i end
  end
  perm[#perm + 1] = a
  return x:transpose(perm)
end

--- cross_entropy(logits, targets[, {weights, axis = -1, label_smoothing = 0, ignore_index, reduction = "none"}])
-- targets are class indices (integers, logits' shape without the class axis)
-- or probabilities (logits' shape). ignore_index (class indices only): rows
-- with that target give 0 and are left out of the mean.
function M.cross_entropy(logits, targets, opts)
  opts = check_options(opts, { weights = true, axis = true, label_smoothing = true, ignore_index = true,
    reduction = true }, "cross_entropy")
  check_tensor(logits, "logits", "cross_entropy")
  check_tensor(targets, "targets", "cross_entropy")
  local ls, axis, reduction = opts.label_smoothing or 0, opts.axis or -1, opts.reduction or "none"
  local z = axis_last(logits, axis)
  if is_int(targets) then
    local red = opts.weights == nil and reduction or "none"
    local loss = lattice.cross_entropy(z, targets, { label_smoothing = ls, reduction = red,
      ignore_index = opts.ignore_index })
    if opts.weights == nil then return loss end
    return reduce(weigh(loss, opts.weights, "cross_entropy"), reduction, "cross_entropy")
  end
  if opts.ignore_index ~= nil then error("cross_entropy: ignore_index needs class-index targets", 2) end
  same_shape(logits, targets, "cross_entropy")
  local t = axis_last(targets, axis)
  if ls > 0 then t = t * (1 - ls) + ls / z.shape[z.ndim] end
  local loss = -lattice.sum(t * lattice.log_softmax(z, -1), -1)
  return reduce(weigh(loss, opts.weights, "cross_entropy"), reduction, "cross_entropy")
end

--- binary_cross_entropy(inputs, targets[, {weights, with_logits = true, reduction = "mean"}])
-- With logits: softplus(x) - x t (stable for any x). Without: probabilities,
-- each log clipped at -100 as PyTorch and MLX do.
function M.binary_cross_entropy(inputs, targets, opts)
  opts = check_options(opts, { weights = true, with_logits = true, reduction = true }, "binary_cross_entropy")
  check_tensor(inputs, "inputs", "binary_cross_entropy")
  check_tensor(targets, "targets", "binary_cross_entropy")
  same_shape(inputs, targets, "binary_cross_entropy")
  local loss
  if opts.with_logits == false then
    local log_p = lattice.clip(lattice.log(inputs), -100, nil)
    local log_q = lattice.clip(lattice.log(1 - inputs), -100, nil)
    loss = -(targets * log_p + (1 - targets) * log_q)
  else
    loss = lattice.softplus(inputs) - inputs * targets
  end
  return reduce(weigh(loss, opts.weights, "binary_cross_entropy"), opts.reduction or "mean", "binary_cross_entropy")
end

--- nll_loss(inputs, targets[, {axis = -1, reduction = "none"}]): inputs are log-probabilities.
function M.nll_loss(inputs, targets, opts)
  opts = check_options(opts, { axis = true, reduction = true }, "nll_loss")
  check_tensor(inputs, "inputs", "nll_loss")
  check_tensor(targets, "targets", "nll_loss")
  if not is_int(targets) then error("nll_loss: targets must be integer class indices, got " .. targets.dtype, 2) end
  local z = axis_last(inputs, opts.axis or -1)
  local picked = lattice.take_along_axis(z, lattice.expand_dims(targets, -1), -1)
  return reduce(-lattice.squeeze(picked, -1), opts.reduction or "none", "nll_loss")
end

--- mse_loss(predictions, targets[, {reduction = "mean"}])
function M.mse_loss(predictions, targets, opts)
  opts = check_options(opts, { reduction = true }, "mse_loss")
  check_tensor(predictions, "predictions", "mse_loss")
  check_tensor(targets, "targets", "mse_loss")
  return lattice.mse_loss(predictions, targets, { reduction = opts.reduction or "mean" })
end

--- l1_loss(predictions, targets[, {reduction = "mean"}])
function M.l1_loss(predictions, targets, opts)
  opts = check_options(opts, { reduction = true }, "l1_loss")
  check_tensor(predictions, "predictions", "l1_loss")
  check_tensor(targets, "targets", "l1_loss")
  same_shape(predictions, targets, "l1_loss")
  return reduce(lattice.abs(predictions - targets), opts.reduction or "mean", "l1_loss")
end

--- smooth_l1_loss(predictions, targets[, {beta = 1, reduction = "mean"}]):
-- 0.5 d^2 / beta where |d| < beta, |d| - 0.5 beta beyond.
function M.smooth_l1_loss(predictions, targets, opts)
  opts = check_options(opts, { beta = true, reduction = true }, "smooth_l1_loss")
  check_tensor(predictions, "predictions", "smooth_l1_loss")
  check_tensor(targets, "targets", "smooth_l1_loss")
  same_shape(predictions, targets, "smooth_l1_loss")
  local beta = opts.beta or 1
  if not (type(beta) == "number" and beta > 0) then error("smooth_l1_loss: beta must be a positive number", 2) end
  local d = lattice.abs(predictions - targets)
  local loss = lattice.where(lattice.less(d, beta), 0.5 * d * d / beta, d - 0.5 * beta)
  return reduce(loss, opts.reduction or "mean", "smooth_l1_loss")
end

--- huber_loss(inputs, targets[, {delta = 1, reduction = "none"}]):
-- 0.5 d^2 where |d| <= delta, delta (|d| - 0.5 delta) beyond.
function M.huber_loss(inputs, targets, opts)
  opts = check_options(opts, { delta = true, reduction = true }, "huber_loss")
  check_tensor(inputs, "inputs", "huber_loss")
  check_tensor(targets, "targets", "huber_loss")
  same_shape(inputs, targets, "huber_loss")
  local delta = opts.delta or 1
  if not (type(delta) == "number" and delta > 0) then error("huber_loss: delta must be a positive number", 2) end
  local a = lattice.abs(inputs - targets)
  local quadratic = lattice.minimum(a, delta)
  local loss = 0.5 * quadratic * quadratic + delta * (a - quadratic)
  return reduce(loss, opts.reduction or "none", "huber_loss")
end

--- kl_div_loss(inputs, targets[, {axis = -1, reduction = "none"}]): both are
-- log-probabilities; sum over the axis of exp(targets) (targets - inputs).
function M.kl_div_loss(inputs, targets, opts)
  opts = check_options(opts, { axis = true, reduction = true }, "kl_div_loss")
  check_tensor(inputs, "inputs", "kl_div_loss")
  check_tensor(targets, "targets", "kl_div_loss")
  same_shape(inputs, targets, "kl_div_loss")
  local loss = lattice.sum(lattice.exp(targets) * (targets - inputs), opts.axis or -1)
  return reduce(loss, opts.reduction or "none", "kl_div_loss")
end

--- cosine_similarity_loss(x1, x2[, {axis = 2, eps = 1e-8, reduction = "none"}]):
-- <x1, x2> / max(|x1| |x2|, eps) along the axis.
function M.cosine_similarity_loss(x1, x2, opts)
  opts = check_options(opts, { axis = true, eps = true, reduction = true }, "cosine_similarity_loss")
  check_tensor(x1, "x1", "cosine_similarity_loss")
  check_tensor(x2, "x2", "cosine_similarity_loss")
  same_shape(x1, x2, "cosine_similarity_loss")
  local axis, eps = opts.axis or 2, opts.eps or 1e-8
  local n1 = lattice.sqrt(lattice.sum(x1 * x1, axis))
  local n2 = lattice.sqrt(lattice.sum(x2 * x2, axis))
  local loss = lattice.sum(x1 * x2, axis) / lattice.maximum(n1 * n2, eps)
  return reduce(loss, opts.reduction or "none", "cosine_similarity_loss")
end

return M
