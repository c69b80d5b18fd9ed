-- Shared by the benchmarks: timing with medians, one-line JSON output, and the
-- blas_info every line carries.
local lattice = require "lattice"
local core = require "lattice.core" -- bench_memcpy

local common = {}

-- Median wall time in seconds of `fn()` over `reps` runs (after one warm-up).
function common.median_time(fn, reps)
  fn()
  local times = {}
  for i = 1, reps do
    local t0 = lattice.now()
    fn()
    times[i] = lattice.now() - t0
  end
  table.sort(times)
  return times[(reps + 1) // 2]
end

-- A call's time against a memcpy of `bytes`, alternating `samples` times so
-- that a neighbour's load hits both alike: `seconds()` times one call (or a
-- mean over several) and returns seconds. Returns the median call time, the
-- median memcpy time and the median of the per-pair ratios memcpy / call.
function common.against_memcpy(seconds, bytes, samples, copy_reps)
  local times, copies, ratios = {}, {}, {}
  for i = 1, samples do
    times[i] = seconds()
    copies[i] = core.bench_memcpy(bytes, copy_reps)
    ratios[i] = copies[i] / times[i]
  end
  return common.median(times), common.median(copies), common.median(ratios)
end

-- The median of a list of numbers (the list is not changed).
function common.median(xs)
  local s = { table.unpack(xs) }
  table.sort(s)
  return s[(#s + 1) // 2]
end

local function encode(v)
  local t = type(v)
  if t == "table" then
    if #v > 0 or next(v) == nil then
      local parts = {}
      for i, x in ipairs(v) do parts[i] = encode(x) end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    local parts = {}
    for _, k in ipairs(keys) do parts[#parts + 1] = encode(k) .. ":" .. encode(v[k]) end
    return "{" .. table.concat(parts, ",") .. "}"
  elseif t == "string" then
    return '"' .. v:gsub('[%c"\\]', function(c) return ("\\u%04x"):format(c:byte()) end) .. '"'
  elseif t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return "null" end
    return math.type(v) == "integer" and tostring(v) or ("%.6g"):format(v)
  elseif t == "boolean" then
    return tostring(v)
  end
  return "null"
end

-- Prints one JSON line for a case, with blas_info and the thread count beside it.
function common.report(case)
  case.blas = lattice.blas_info()
  case.threads = lattice.num_threads()
  case.isa = lattice.isa and lattice.isa() or nil
  print(encode(case))
  io.stdout:flush()
end

common.encode = encode
return common
