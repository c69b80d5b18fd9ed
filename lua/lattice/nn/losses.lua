-- nn.losses: the loss functions of mlx.nn.losses, with their names, defaults
-- and reductions ("none" | "mean" | "sum"); MLX's keyword arguments are one
-- options table. Axes count as Lua counts them (-1 is the last; MLX's axis=1
-- of cosine_similarity_loss is axis 2 here). cross_entropy and mse_loss are
-- the fused C ops; the others are compositions of differentiable ops.
-- Beyond MLX, from PyTorch: cross_entropy's ignore_index (default -100) and
-- smooth_l1_loss with beta = 0 (the L1 loss).
local lattice = require "lattice"
local module = require "lattice.nn.module"

local check_options = module.check_options
local shape_str = module.shape_str

local M = {}

local REDUCTIONS = { none = true, mean = true, sum = true }

-- opts.reduction or the loss's default, checked before any work is done.
local function reduction_of(opts, default, fname)
  local r = opts.reduction
  if r == nil then return default end
  if not REDUCTIONS[r] then
    error(("%s: reduction must be 'none', 'mean' or 'sum', got %s"):format(fname, tostring(r)), 3)
  end
  return r
end

local function reduce(loss, reduction)
  if reduction == "mean" then return lattice.mean(loss) end
  if reduction == "sum" then return lattice.sum(loss) end
  return loss
end

local function check_tensor(t, what, fname)
  if not lattice.is_tensor(t) then error(("%s: %s must be a lattice.Tensor, got %s"):format(fname, what, type(t)), 3) end
end

-- an, bn: the arguments' names, as the loss's signature calls them.
local function same_shape(a, b, fname, an, bn)
  if shape_str(a) ~= shape_str(b) then
    error(("%s: %s and %s must have the same shape, got %s and %s"):format(fname, an or "inputs", bn or "targets",
      shape_str(a), shape_str(b)), 3)
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

local function check_number(v, what, fname)
  if type(v) ~= "number" then error(("%s: %s must be a number, got %s"):format(fname, what, type(v)), 3) end
end

-- axis (1-based, negative from the end) checked against x; returns it positive.
local function check_axis(x, axis, fname)
  local nd = x.ndim
  if math.type(axis) ~= "integer" then
    error(("%s: axis must be an integer, got %s"):format(fname, tostring(axis)), 3)
  end
  local a = axis < 0 and axis + nd + 1 or axis
  if a < 1 or a > nd then error(("%s: axis %d is out of range for %d dimensions"):format(fname, axis, nd), 3) end
  return a
end

-- Class-index targets: integers of the inputs' shape without the class axis
-- `a` (given positive); the message names what a caller passed.
local function check_indices(inputs, targets, a, fname)
  local want = {}
  for i, d in ipairs(inputs.shape) do
    if i ~= a then want[#want + 1] = d end
  end
  local got = targets.shape
  local same = #got == #want
  for i = 1, #want do same = same and got[i] == want[i] end
  if not same then
    error(("%s: inputs have shape %s, so class-index targets must have shape {%s}, got %s"):format(fname,
      shape_str(inputs), table.concat(want, ","), shape_str(targets)), 3)
  end
  if not is_int(targets) then
    error(("%s: class-index targets must be integers, got %s"):format(fname, targets.dtype), 3)
  end
end

-- x with axis `a` (positive, checked) moved last (a view); the permutation's
-- inverse is not needed: class axes are reduced away.
local function axis_last(x, a)
  local nd = x.ndim
  if a == nd then return x end
  local perm = {}
  for i = 1, nd do
    if i ~= a then perm[#perm + 1] = i end
  end
  perm[#perm + 1] = a
  return x:transpose(perm)
end

--- cross_entropy(logits, targets[, {weights, axis = -1, label_smoothing = 0, ignore_index = -100, reduction = "none"}])
-- targets are class indices (integers, logits' shape without the class axis)
-- or probabilities (logits' shape), told apart by their rank as MLX does.
-- With probabilities the loss is MLX's logsumexp(z) - sum(z t), so
-- -sum(t log softmax(z)) when t sums to 1; label_smoothing ls mixes in the
-- uniform distribution: logsumexp(z) - (1 - ls) sum(z t) - ls mean(z).
-- ignore_index (class indices only): rows with that target give 0 and are
-- left out of the mean, weighted or not.
function M.cross_entropy(logits, targets, opts)
  opts = check_options(opts, { weights = true, axis = true, label_smoothing = true, ignore_index = true,
    reduction = true }, "cross_entropy")
  check_tensor(logits, "logits", "cross_entropy")
  check_tensor(targets, "targets", "cross_entropy")
  local ls, reduction = opts.label_smoothing or 0, reduction_of(opts, "none", "cross_entropy")
  check_number(ls, "label_smoothing", "cross_entropy")
  if not (ls >= 0 and ls <= 1) then
    error(("cross_entropy: label_smoothing must be in [0, 1], got %g"):format(ls), 2)
  end
  local a = check_axis(logits, opts.axis or -1, "cross_entropy")
  local z = axis_last(logits, a)
  if targets.ndim ~= logits.ndim then
    check_indices(logits, targets, a, "cross_entropy")
    local ignore = opts.ignore_index
    if ignore ~= nil and math.type(ignore) ~= "integer" then
      error(("cross_entropy: ignore_index must be an integer, got %s"):format(tostring(ignore)), 2)
    end
    if opts.weights == nil then
      return lattice.cross_entropy(z, targets, { label_smoothing = ls, reduction = reduction, ignore_index = ignore })
    end
    local loss = weigh(lattice.cross_entropy(z, targets, { label_smoothing = ls, reduction = "none",
      ignore_index = ignore }), opts.weights, "cross_entropy")
    if reduction ~= "mean" then return reduce(loss, reduction) end
    -- the mean over the rows that count, as without weights
    return lattice.sum(loss) / lattice.sum(lattice.not_equal(targets, ignore or -100))
  end
  if opts.ignore_index ~= nil then error("cross_entropy: ignore_index needs class-index targets", 2) end
  same_shape(logits, targets, "cross_entropy", "logits", "probability targets")
  local t = axis_last(targets, a)
  local score = lattice.sum(z * t, -1)
  local loss = lattice.logsumexp(z, -1) - score
  if ls > 0 then loss = loss + ls * score - ls * lattice.mean(z, -1) end
  return reduce(weigh(loss, opts.weights, "cross_entropy"), reduction)
end

-- log(p) clipped below at -100, as MLX and PyTorch clip it, with a finite
-- gradient where p is 0: clip(log(p)) would give 0 * inf = NaN there (a
-- sigmoid saturates to exactly 0 or 1 in float32 beyond |x| ~ 17), so the
-- clipped elements take log(1) and the constant instead.
local function clipped_log(p)
  local inside = lattice.greater(p, math.exp(-100))
  return lattice.where(inside, lattice.log(lattice.where(inside, p, 1)), -100)
end

--- binary_cross_entropy(inputs, targets[, {weights, with_logits = true, reduction = "mean"}])
-- With logits: softplus(x) - x t (stable for any x). Without: probabilities,
-- each log clipped at -100 as PyTorch and MLX do.
function M.binary_cross_entropy(inputs, targets, opts)
  opts = check_options(opts, { weights = true, with_logits = true, reduction = true }, "binary_cross_entropy")
  local reduction = reduction_of(opts, "mean", "binary_cross_entropy")
  check_tensor(inputs, "inputs", "binary_cross_entropy")
  check_tensor(targets, "targets", "binary_cross_entropy")
  same_shape(inputs, targets, "binary_cross_entropy")
  local with_logits = opts.with_logits
  if with_logits == nil then with_logits = true end
  if type(with_logits) ~= "boolean" then
    error("binary_cross_entropy: with_logits must be a boolean, got " .. type(with_logits), 2)
  end
  local loss
  if not with_logits then
    local log_p, log_q = clipped_log(inputs), clipped_log(1 - inputs)
    loss = -(targets * log_p + (1 - targets) * log_q)
  else
    loss = lattice.softplus(inputs) - inputs * targets
  end
  return reduce(weigh(loss, opts.weights, "binary_cross_entropy"), reduction)
end

--- nll_loss(inputs, targets[, {axis = -1, reduction = "none"}]): inputs are log-probabilities.
function M.nll_loss(inputs, targets, opts)
  opts = check_options(opts, { axis = true, reduction = true }, "nll_loss")
  local reduction = reduction_of(opts, "none", "nll_loss")
  check_tensor(inputs, "inputs", "nll_loss")
  check_tensor(targets, "targets", "nll_loss")
  local a = check_axis(inputs, opts.axis or -1, "nll_loss")
  check_indices(inputs, targets, a, "nll_loss")
  local classes = inputs.shape[a]
  for _, t in ipairs(targets.size > 0 and { lattice.min(targets):item(), lattice.max(targets):item() } or {}) do
    if t < 0 or t >= classes then
      error(("nll_loss: target %d is out of range for %d classes"):format(t, classes), 2)
    end
  end
  local z = axis_last(inputs, a)
  local picked = lattice.take_along_axis(z, lattice.expand_dims(targets, -1), -1)
  return reduce(-lattice.squeeze(picked, -1), reduction)
end

--- mse_loss(predictions, targets[, {reduction = "mean"}])
function M.mse_loss(predictions, targets, opts)
  opts = check_options(opts, { reduction = true }, "mse_loss")
  local reduction = reduction_of(opts, "mean", "mse_loss")
  check_tensor(predictions, "predictions", "mse_loss")
  check_tensor(targets, "targets", "mse_loss")
  same_shape(predictions, targets, "mse_loss", "predictions")
  return lattice.mse_loss(predictions, targets, { reduction = reduction })
end

--- l1_loss(predictions, targets[, {reduction = "mean"}])
function M.l1_loss(predictions, targets, opts)
  opts = check_options(opts, { reduction = true }, "l1_loss")
  local reduction = reduction_of(opts, "mean", "l1_loss")
  check_tensor(predictions, "predictions", "l1_loss")
  check_tensor(targets, "targets", "l1_loss")
  same_shape(predictions, targets, "l1_loss", "predictions")
  return reduce(lattice.abs(predictions - targets), reduction)
end

--- smooth_l1_loss(predictions, targets[, {beta = 1, reduction = "mean"}]):
-- 0.5 d^2 / beta where |d| < beta, |d| - 0.5 beta beyond; beta = 0 is the
-- L1 loss, as in PyTorch (computed as such: 0.5 d^2 / 0 would put NaN into
-- the gradient through the branch where does not take).
function M.smooth_l1_loss(predictions, targets, opts)
  opts = check_options(opts, { beta = true, reduction = true }, "smooth_l1_loss")
  local reduction = reduction_of(opts, "mean", "smooth_l1_loss")
  check_tensor(predictions, "predictions", "smooth_l1_loss")
  check_tensor(targets, "targets", "smooth_l1_loss")
  same_shape(predictions, targets, "smooth_l1_loss", "predictions")
  local beta = opts.beta or 1
  check_number(beta, "beta", "smooth_l1_loss")
  if beta ~= beta or beta < 0 then error(("smooth_l1_loss: beta must be non-negative, got %g"):format(beta), 2) end
  local d = lattice.abs(predictions - targets)
  local loss = beta == 0 and d or lattice.where(lattice.less(d, beta), 0.5 * d * d / beta, d - 0.5 * beta)
  return reduce(loss, reduction)
end

--- huber_loss(inputs, targets[, {delta = 1, reduction = "none"}]):
-- 0.5 d^2 where |d| <= delta, delta (|d| - 0.5 delta) beyond.
function M.huber_loss(inputs, targets, opts)
  opts = check_options(opts, { delta = true, reduction = true }, "huber_loss")
  local reduction = reduction_of(opts, "none", "huber_loss")
  check_tensor(inputs, "inputs", "huber_loss")
  check_tensor(targets, "targets", "huber_loss")
  same_shape(inputs, targets, "huber_loss")
  local delta = opts.delta or 1
  check_number(delta, "delta", "huber_loss")
  if delta ~= delta or delta <= 0 then error(("huber_loss: delta must be positive, got %g"):format(delta), 2) end
  local a = lattice.abs(inputs - targets)
  local quadratic = lattice.minimum(a, delta)
  local loss = 0.5 * quadratic * quadratic + delta * (a - quadratic)
  return reduce(loss, reduction)
end

--- kl_div_loss(inputs, targets[, {axis = -1, reduction = "none"}]): both are
-- log-probabilities; sum over the axis of exp(targets) (targets - inputs).
function M.kl_div_loss(inputs, targets, opts)
  opts = check_options(opts, { axis = true, reduction = true }, "kl_div_loss")
  local reduction = reduction_of(opts, "none", "kl_div_loss")
  check_tensor(inputs, "inputs", "kl_div_loss")
  check_tensor(targets, "targets", "kl_div_loss")
  same_shape(inputs, targets, "kl_div_loss")
  local a = check_axis(inputs, opts.axis or -1, "kl_div_loss")
  local loss = lattice.sum(lattice.exp(targets) * (targets - inputs), a)
  return reduce(loss, reduction)
end

--- cosine_similarity_loss(x1, x2[, {axis = 2, eps = 1e-8, reduction = "none"}]):
-- <x1, x2> / max(|x1| |x2|, eps) along the axis. Written as
-- <x1, x2> / sqrt(max(|x1|^2 |x2|^2, eps^2)), the same value, so that a zero
-- vector gets a zero gradient, not the NaN of sqrt's derivative at 0.
function M.cosine_similarity_loss(x1, x2, opts)
  opts = check_options(opts, { axis = true, eps = true, reduction = true }, "cosine_similarity_loss")
  local reduction = reduction_of(opts, "none", "cosine_similarity_loss")
  check_tensor(x1, "x1", "cosine_similarity_loss")
  check_tensor(x2, "x2", "cosine_similarity_loss")
  same_shape(x1, x2, "cosine_similarity_loss", "x1", "x2")
  local a = check_axis(x1, opts.axis or 2, "cosine_similarity_loss")
  local eps = opts.eps or 1e-8
  check_number(eps, "eps", "cosine_similarity_loss")
  if eps ~= eps or eps < 0 then error(("cosine_similarity_loss: eps must be non-negative, got %g"):format(eps), 2) end
  local sq = lattice.sum(x1 * x1, a) * lattice.sum(x2 * x2, a)
  local loss = lattice.sum(x1 * x2, a) / lattice.sqrt(lattice.maximum(sq, eps * eps))
  return reduce(loss, reduction)
end

return M
