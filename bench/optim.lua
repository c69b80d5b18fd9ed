-- One optimizer step over a 10M-parameter model: GB/s of the bytes the step
-- must touch against a memcpy moving as many bytes, measured in the same run.
-- AdamW reads the parameter, the gradient and two moments and writes the
-- parameter and the moments: 7 floats (28 bytes) per parameter. SGD with
-- momentum: 5 floats; Lion: 5. Target: AdamW ratio >= 0.5 with 2 threads.
-- Usage: lattice bench/optim.lua [M parameters, default 10] [threads]
package.path = arg[0]:gsub("[^/]*$", "") .. "?.lua;" .. package.path
local lattice = require "lattice"
local core = require "lattice.core"
local common = require "common"

local nn, optim = lattice.nn, lattice.optim
local P = math.tointeger((tonumber(arg and arg[1]) or 10) * 1000 * 1000) or error("optim: bad size")
if arg and arg[2] then lattice.set_num_threads(math.tointeger(tonumber(arg[2])) or error("optim: bad threads")) end
local SAMPLES = 9

-- Four weight matrices and their biases, ~P parameters in all.
local D = math.floor(math.sqrt(P / 4))
local Model = nn.Module:extend("BenchModel")
function Model:init()
  self.layers = {}
  for i = 1, 4 do self.layers[i] = nn.Linear(D, D) end
end
local model = Model()
local n = model:num_parameters()
local grads = model:parameters() -- the same tree shape, filled with gradients below
for _, layer in ipairs(grads.layers) do
  layer.weight = lattice.random.normal(layer.weight.shape, { scale = 0.01 })
  layer.bias = lattice.random.normal(layer.bias.shape, { scale = 0.01 })
end

local function median(xs)
  local s = { table.unpack(xs) }
  table.sort(s)
  return s[(#s + 1) // 2]
end

-- Element (1, 1) of a tensor; the views it goes through are closed, so that
-- the parameter does not stay shared (a shared one is updated as a copy).
local function first(t)
  local row = t[1]
  local e = row[1]
  local v = e:item()
  e:close()
  row:close()
  return v
end

-- AdamW's first step on element 1 of the first weight, by hand, before timing.
local function check_adamw(opt)
  local w0, g = first(model.layers[1].weight), first(grads.layers[1].weight)
  opt:update(model, grads)
  local m, v = 0.1 * g, 0.001 * g * g
  local want = w0 * (1 - 1e-3 * 0.01) - 1e-3 * m / (math.sqrt(v) + 1e-8)
  local got = first(model.layers[1].weight)
  assert(math.abs(got - want) <= 1e-6 * math.abs(want) + 1e-9, ("AdamW check: got %.9g, want %.9g"):format(got, want))
end

local cases = {
  { name = "AdamW", make = function() return optim.AdamW { learning_rate = 1e-3 } end, floats = 7, check = check_adamw },
  { name = "SGD_momentum", make = function() return optim.SGD { learning_rate = 1e-3, momentum = 0.9 } end, floats = 5 },
  { name = "Lion", make = function() return optim.Lion { learning_rate = 1e-4 } end, floats = 5 },
}

for _, case in ipairs(cases) do
  local opt = case.make()
  if case.check then case.check(opt) else opt:update(model, grads) end -- the state exists from here
  local bytes = case.floats * 4 * n
  local before = lattice.memory_stats().in_use
  local step_times, cp_times, ratios = {}, {}, {}
  for i = 1, SAMPLES do
    local t0 = lattice.now()
    opt:update(model, grads)
    step_times[i] = lattice.now() - t0
    cp_times[i] = core.bench_memcpy(bytes // 2, 1)
    ratios[i] = cp_times[i] / step_times[i]
  end
  local t = median(step_times)
  common.report({
    bench = "optim", case = case.name, parameters = n, bytes = bytes, ms = t * 1e3, gbps = bytes / t * 1e-9,
    memcpy_gbps = bytes / median(cp_times) * 1e-9, ratio = median(ratios), target_ratio = 0.5,
    steady_state_bytes_allocated = lattice.memory_stats().in_use - before,
  })
end
