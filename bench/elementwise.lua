-- GB/s of large elementwise ops (bytes read + written) against a memcpy that
-- moves the same number of bytes, measured in the same run: unary (neg, relu,
-- exp, silu), binary (add, mul), a broadcast add of a (R, C) and a (C) row, and
-- a reduction (sum over the last axis). Target: ratio >= 0.5 with 2 threads.
-- Usage: lattice bench/elementwise.lua [M floats, default 32] [threads]
package.path = arg[0]:gsub("[^/]*$", "") .. "?.lua;" .. package.path
local lattice = require "lattice"
local core = require "lattice.core" -- the measuring hooks stay out of the public namespace
local common = require "common"

local N = math.tointeger((tonumber(arg and arg[1]) or 32) * 1024 * 1024) or error("elementwise: bad size")
if arg and arg[2] then lattice.set_num_threads(math.tointeger(tonumber(arg[2])) or error("elementwise: threads must be an integer")) end
local C = 1024
local R = N // C
local SAMPLES = 9 -- the machine is shared: op and memcpy alternate, medians of the pairs

local x = lattice.random.normal({R, C})
local y = lattice.random.normal({R, C})
local row = lattice.random.normal({C})

local function median(xs)
  local s = {table.unpack(xs)}
  table.sort(s)
  return s[(#s + 1) // 2]
end

local function sigmoid(v) return 1 / (1 + math.exp(-v)) end

-- Each case: the op, the bytes it reads and writes, and a check of a few
-- elements against plain Lua before anything is timed.
local cases = {
  {name = "neg", fn = function() return -x end, bytes = 2 * N * 4, ref = function(a) return -a end},
  {name = "relu", fn = function() return lattice.relu(x) end, bytes = 2 * N * 4, ref = function(a) return math.max(a, 0) end},
  {name = "exp", fn = function() return lattice.exp(x) end, bytes = 2 * N * 4, ref = math.exp},
  {name = "silu", fn = function() return lattice.silu(x) end, bytes = 2 * N * 4, ref = function(a) return a * sigmoid(a) end},
  {name = "add", fn = function() return x + y end, bytes = 3 * N * 4, ref = function(a, b) return a + b end},
  {name = "mul", fn = function() return x * y end, bytes = 3 * N * 4, ref = function(a, b) return a * b end},
  {name = "add_row_broadcast", fn = function() return x + row end, bytes = (2 * N + C) * 4,
   ref = function(a, _, r) return a + r end},
}
if lattice.sum then
  cases[#cases + 1] = {name = "sum_last_axis", fn = function() return lattice.sum(x, -1) end, bytes = (N + R) * 4}
end

local function check(case)
  local out = case.fn()
  local xs, ys, rs = x[2]:tolist(), y[2]:tolist(), row:tolist()
  if case.name == "sum_last_axis" then
    local want = 0
    for j = 1, C do want = want + xs[j] end
    assert(math.abs(out[2]:item() - want) < 1e-4 * C, "sum check failed")
  else
    local got = out[2]:tolist()
    for j = 1, C, 97 do
      local want = case.ref(xs[j], ys[j], rs[j])
      assert(math.abs(got[j] - want) <= 1e-6 * math.abs(want) + 1e-30, case.name .. " check failed")
    end
  end
  out:close()
end

for _, case in ipairs(cases) do
  check(case)
  -- The output goes back to the context's cache after each call (close), so
  -- every timed call reuses warm pages, as a training loop does.
  local op_times, cp_times, ratios = {}, {}, {}
  case.fn():close()
  for i = 1, SAMPLES do
    local t0 = lattice.now()
    local out = case.fn()
    op_times[i] = lattice.now() - t0
    out:close()
    cp_times[i] = core.bench_memcpy(case.bytes // 2, 1)
    ratios[i] = cp_times[i] / op_times[i]
  end
  local t_op, t_cp = median(op_times), median(cp_times)
  common.report({
    bench = "elementwise", case = case.name, elements = N, bytes = case.bytes,
    gbps = case.bytes / t_op * 1e-9, memcpy_gbps = case.bytes / t_cp * 1e-9, ratio = median(ratios),
    ms = t_op * 1e3,
  })
end
