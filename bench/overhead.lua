-- The cost of calling lattice from Lua: one op on a tiny tensor, and one
-- value_and_grad step of a 10-op function on tiny tensors. Reference in the
-- same run: a plain Lua call of a C function (math.abs), the floor any
-- binding pays. Target: <= 2 us per op call.
package.path = arg[0]:gsub("[^/]*$", "") .. "?.lua;" .. package.path
local lattice = require "lattice"
local common = require "common"

local N = 200000
local a, b = lattice.array({1, 2, 3, 4}), lattice.array({5, 6, 7, 8})

-- Checked before timing: the ops compute what they should.
assert((a + b):tolist()[4] == 12 and lattice.exp(lattice.zeros({1})):item() == 1)

local function per_call(fn, n)
  return common.median_time(function()
    for _ = 1, n do fn() end
  end, 5) / n
end

local abs = math.abs
local base = per_call(function() return abs(-1) end, N)

local cases = {
  {name = "add", fn = function() return a + b end},
  {name = "add_scalar", fn = function() return a * 2 end},
  {name = "exp", fn = function() return lattice.exp(a) end},
  {name = "sum", fn = function() return lattice.sum(a) end},
  {name = "matmul_2x2", fn = function() return lattice.matmul(a:reshape(2, 2), b:reshape(2, 2)) end, calls = 3},
}
collectgarbage()
for _, c in ipairs(cases) do
  local t = per_call(c.fn, N) / (c.calls or 1)
  common.report({bench = "overhead", case = c.name, us_per_op = t * 1e6, lua_c_call_us = base * 1e6,
                 target_us = 2, within_target = t * 1e6 <= 2})
end

-- ten differentiable ops on tiny tensors, with the gradient of two inputs
local w, x = lattice.array({{0.1, 0.2}, {0.3, 0.4}}), lattice.array({{1, 2}, {3, 4}})
local step = lattice.value_and_grad(function(p, input)
  local h = lattice.matmul(input, p.w)            -- 1
  h = h + p.b                                     -- 2
  h = lattice.tanh(h)                             -- 3
  h = h * 2                                       -- 4
  h = lattice.exp(h * -1)                         -- 5, 6
  h = h - 0.5                                     -- 7
  h = lattice.relu(h)                             -- 8
  h = h * h                                       -- 9
  return lattice.sum(h)                           -- 10
end)
local params = {w = w, b = lattice.array({0.1, -0.1})}
local v = step(params, x)
assert(v.size == 1)
local t = per_call(function() return step(params, x) end, 20000)
common.report({bench = "overhead", case = "value_and_grad_10_ops", us_per_step = t * 1e6,
               us_per_op = t * 1e6 / 10, lua_c_call_us = base * 1e6, target_us = 2, within_target = t * 1e6 / 10 <= 2})

-- Modules: the time a call of a small nn.Linear adds to the lattice.linear op
-- it runs, and per layer for a 4-layer nn.Sequential of them (each call goes
-- through the protocol's __call, which names a failing child). Target: <= 1 us
-- of overhead per layer.
local lin = lattice.nn.Linear(4, 4)
local seq = lattice.nn.Sequential(lattice.nn.Linear(4, 4), lattice.nn.Linear(4, 4), lattice.nn.Linear(4, 4),
  lattice.nn.Linear(4, 4))
local xin = lattice.ones({2, 4})
assert(lin(xin).shape[2] == 4 and seq(xin).shape[2] == 4)
local w4, b4 = lin.weight, lin.bias
local t_op = per_call(function() return lattice.linear(xin, w4, b4) end, N)
local t_lin = per_call(function() return lin(xin) end, N)
local t_seq = per_call(function() return seq(xin) end, N // 4)
common.report({bench = "overhead", case = "nn_Linear_call", op_us = t_op * 1e6, module_us = t_lin * 1e6,
               overhead_us_per_layer = (t_lin - t_op) * 1e6, target_us = 1, within_target = (t_lin - t_op) * 1e6 <= 1})
local per_layer = (t_seq - 4 * t_op) / 4
common.report({bench = "overhead", case = "nn_Sequential_4_Linear_call", op_us = t_op * 1e6, module_us = t_seq * 1e6,
               overhead_us_per_layer = per_layer * 1e6, target_us = 1, within_target = per_layer * 1e6 <= 1})
