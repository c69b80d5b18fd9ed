-- lattice quickstart: tensors, broadcasting, autograd, and a few steps of
-- gradient descent on a tiny linear regression.
local lattice = require "lattice"

lattice.random.seed(0)

-- Tensors print like NumPy arrays; Lua numbers broadcast as scalars.
local x = lattice.array({{1, 2, 3}, {4, 5, 6}})
print(x * 2 + 1)

-- Data: y = x @ w_true + b_true, plus a little noise.
local w_true, b_true = lattice.array({{2}, {-1}, {0.5}}), 0.5
local inputs = lattice.random.normal({64, 3})
local targets = lattice.matmul(inputs, w_true) + b_true + lattice.random.normal({64, 1}, {scale = 0.01})

-- The loss is a plain Lua function of a table of parameters.
local function loss_fn(params)
  local pred = lattice.matmul(inputs, params.w) + params.b
  return lattice.mse_loss(pred, targets)
end

local params = {w = lattice.zeros({3, 1}), b = lattice.zeros({1})}
local step = lattice.value_and_grad(loss_fn)
for i = 1, 100 do
  local loss, grads = step(params)
  params.w = params.w - 0.1 * grads.w
  params.b = params.b - 0.1 * grads.b
  if i % 25 == 0 then print(("step %3d  loss %.6f"):format(i, loss:item())) end
end

-- What it learned, beside the values that made the data.
local true_w, learned_w = w_true:reshape(-1):tolist(), params.w:reshape(-1):tolist()
local largest = 0
local function row(name, truth, learned)
  print(("%-6s %9.4f %9.4f"):format(name, truth, learned))
  largest = math.max(largest, math.abs(learned - truth))
end
print(("%-6s %9s %9s"):format("", "true", "learned"))
for i = 1, #true_w do row(("w[%d]"):format(i), true_w[i], learned_w[i]) end
row("b", b_true, params.b:item())
print(("largest difference: %.4f (the noise added has scale 0.01)"):format(largest))
