-- The machine's fp32 FMA peak: a register-only kernel (12 independent chains of
-- vfmadd on zmm / ymm registers) on the current thread count, for AVX-512 and
-- AVX2 (those the CPU has). This is the limit every compute-bound benchmark
-- states its fraction of. Reference in the same run: lattice.matmul (OpenBLAS
-- sgemm) at 2048^3, reported as its fraction of each peak.
-- Usage: lattice bench/peak.lua [seconds per sample] [threads]
-- Expected here (Zen 5, 2 threads): ~436 GFLOP/s AVX-512, ~217 AVX2.
package.path = arg[0]:gsub("[^/]*$", "") .. "?.lua;" .. package.path
local lattice = require "lattice"
local core = require "lattice.core" -- the measuring hooks stay out of the public namespace
local common = require "common"

local SECONDS = tonumber(arg and arg[1]) or 0.5
local SAMPLES = 7 -- the machine is shared: median (and max) of this many runs
if arg and arg[2] then lattice.set_num_threads(math.tointeger(tonumber(arg[2])) or error("peak: threads must be an integer")) end

local function median(xs)
  local s = {table.unpack(xs)}
  table.sort(s)
  return s[(#s + 1) // 2], s[#s]
end

-- sgemm 2048^3 through lattice.matmul, checked on one element first.
local n = 2048
local a, b = lattice.random.normal({n, n}), lattice.random.normal({n, n})
do
  local c = lattice.matmul(a, b)
  local row, col = a[1]:tolist(), b:slice(2, 1, 1):reshape({n}):tolist()
  local want = 0
  for k = 1, n do want = want + row[k] * col[k] end
  assert(math.abs(c[1]:tolist()[1] - want) < 1e-3 * math.sqrt(n), "peak: matmul check failed")
  c:close()
end
local sgemm_time = common.median_time(function() lattice.matmul(a, b):close() end, 5)
local sgemm = 2 * n ^ 3 / sgemm_time * 1e-9

for _, isa in ipairs({"avx512", "avx2"}) do
  local check, why = core.peak_gflops(isa, 0.02)
  if not check then
    io.stderr:write(why, "\n")
  else
    local samples = {}
    for i = 1, SAMPLES do samples[i] = core.peak_gflops(isa, SECONDS) end
    local med, max = median(samples)
    print(common.encode({
      bench = "peak", isa = isa, threads = lattice.num_threads(), gflops = med, gflops_max = max,
      seconds = SECONDS, samples = SAMPLES, sgemm_2048_gflops = sgemm, sgemm_ratio = sgemm / med,
      blas = lattice.blas_info(),
    }))
    io.stdout:flush()
  end
end
