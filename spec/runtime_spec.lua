local lattice = require "lattice"

local MiB = 1024 * 1024

describe("lattice.set_num_threads", function()
  local saved
  before_each(function() saved = lattice.num_threads() end)
  after_each(function() lattice.set_num_threads(saved) end)

  it("round-trips the thread count", function()
    lattice.set_num_threads(1)
    assert.are.equal(1, lattice.num_threads())
    lattice.set_num_threads(3)
    assert.are.equal(3, lattice.num_threads())
  end)

  it("starts at the number of processors or more than zero", function()
    assert.is_true(math.type(saved) == "integer" and saved >= 1)
  end)

  it("gives matmul the same result with one thread or two", function()
    -- small integers: every partial sum is exact, so any split must agree
    -- exactly with the plain Lua product
    local function grid(rows, cols, seed)
      local t = {}
      for i = 1, rows do
        t[i] = {}
        for j = 1, cols do t[i][j] = (i * 31 + j * 17 + seed) % 9 - 4 end
      end
      return t
    end
    local ta, tb = grid(128, 96, 1), grid(96, 64, 2)
    local want = {}
    for i = 1, 128 do
      want[i] = {}
      for j = 1, 64 do
        local s = 0
        for k = 1, 96 do s = s + ta[i][k] * tb[k][j] end
        want[i][j] = s
      end
    end
    local a, b = lattice.array(ta), lattice.array(tb)
    lattice.set_num_threads(1)
    assert.are.same(want, lattice.matmul(a, b):tolist())
    lattice.set_num_threads(2)
    assert.are.same(want, lattice.matmul(a, b):tolist())
  end)

  it("rejects a count below one", function()
    assert.has_error(function() lattice.set_num_threads(0) end, "set_num_threads: n must be at least 1, got 0")
    assert.has_error(function() lattice.set_num_threads(-2) end, "set_num_threads: n must be at least 1, got -2")
  end)

  it("says the count it was given, however large", function()
    -- 2^40 once printed as 0, math.maxinteger as -1
    assert.has_error(function() lattice.set_num_threads(2 ^ 40) end,
      "set_num_threads: n must be at most 1024, got 1099511627776")
    assert.has_error(function() lattice.set_num_threads(math.maxinteger) end,
      "set_num_threads: n must be at most 1024, got 9223372036854775807")
    assert.has_error(function() lattice.set_num_threads(math.mininteger) end,
      "set_num_threads: n must be at least 1, got -9223372036854775808")
  end)

  it("refuses arguments it does not take", function()
    assert.has_error(function() lattice.set_num_threads(1, 2) end,
      "set_num_threads: too many arguments (expected at most 1, got 2)")
    assert.has_error(function() lattice.num_threads(2) end, "num_threads: too many arguments (expected at most 0, got 1)")
  end)

  it("rejects a count that is not an integer", function()
    assert.has_error(function() lattice.set_num_threads(1.5) end,
      "bad argument #1 to 'set_num_threads' (number has no integer representation)")
    assert.has_error(function() lattice.set_num_threads("two") end,
      "bad argument #1 to 'set_num_threads' (number expected, got string)")
  end)
end)

describe("lattice.blas_info", function()
  it("reports OpenBLAS's kernel family, build, threads and threading model", function()
    local info = lattice.blas_info()
    assert.are.equal("string", type(info.core))
    assert.is_true(#info.core > 0)
    assert.truthy(info.config:find("OpenBLAS", 1, true))
    assert.are.equal("integer", math.type(info.num_threads))
    assert.is_true(info.num_threads >= 1)
    assert.truthy(({ sequential = true, pthreads = true, openmp = true })[info.parallel])
  end)

  it("reports this state's thread count right after set_num_threads, before any BLAS call", function()
    local saved = lattice.num_threads()
    finally(function() lattice.set_num_threads(saved) end)
    local a = lattice.ones({64, 64})
    lattice.set_num_threads(1)
    lattice.matmul(a, a) -- OpenBLAS last ran with 1 thread
    lattice.set_num_threads(2)
    assert.are.equal(2, lattice.blas_info().num_threads)
    lattice.set_num_threads(3)
    assert.are.equal(3, lattice.blas_info().num_threads)
    lattice.set_num_threads(1)
    assert.are.equal(1, lattice.blas_info().num_threads)
  end)

  it("shows OPENBLAS_CORETYPE as set in the environment, nil when unset", function()
    assert.are.equal(os.getenv("OPENBLAS_CORETYPE"), lattice.blas_info().coretype_env)
  end)

  it("follows OPENBLAS_CORETYPE when it is set", function()
    local env = os.getenv("OPENBLAS_CORETYPE")
    if env then assert.are.equal(env:lower(), lattice.blas_info().core:lower()) end
  end)
end)

describe("lattice.now", function()
  it("is a monotonic clock in seconds", function()
    local t0 = lattice.now()
    local last = t0
    for _ = 1, 1000 do
      local t = lattice.now()
      assert.is_true(t >= last)
      last = t
    end
    -- a child that sleeps 50 ms: the wall clock moves at least that far
    -- (os.clock would not do: it counts the CPU time of every thread)
    assert.is_true(os.execute("sleep 0.05"))
    local dt = lattice.now() - t0
    assert.is_true(dt >= 0.05 and dt < 10, "elapsed " .. dt)
  end)
end)

describe("lattice.memory_stats", function()
  it("has in_use, cached, peak and limit in bytes", function()
    local s = lattice.memory_stats()
    for _, k in ipairs({ "in_use", "cached", "peak", "limit" }) do
      assert.are.equal("integer", math.type(s[k]), k)
      assert.is_true(s[k] >= 0, k)
    end
    assert.is_true(s.peak >= s.in_use)
  end)

  it("moves when a tensor is allocated and dropped, and the bytes are reused", function()
    lattice.clear_cache()
    local before = lattice.memory_stats()
    local t = lattice.zeros({ 1024, 1024 }) -- 4 MiB of float32
    local held = lattice.memory_stats()
    assert.is_true(held.in_use - before.in_use >= 4 * MiB)
    assert.is_true(held.peak >= held.in_use)
    t:close()
    local dropped = lattice.memory_stats()
    assert.are.equal(before.in_use, dropped.in_use)
    assert.is_true(dropped.cached - before.cached >= 4 * MiB)
    -- the same size again comes from the cache
    local u = lattice.zeros({ 1024, 1024 })
    assert.are.equal(before.cached, lattice.memory_stats().cached)
    u:close()
  end)

  it("frees dropped tensors when the GC collects them", function()
    collectgarbage()
    local before = lattice.memory_stats().in_use
    do
      local _ = lattice.ones({ 256, 1024 })
    end
    collectgarbage()
    collectgarbage()
    assert.are.equal(before, lattice.memory_stats().in_use)
  end)
end)

describe("lattice.set_cache_limit and lattice.clear_cache", function()
  local saved
  before_each(function() saved = lattice.memory_stats().limit end)
  after_each(function() lattice.set_cache_limit(saved) end)

  it("clear_cache returns every cached byte", function()
    lattice.zeros({ 512, 512 }):close()
    assert.is_true(lattice.memory_stats().cached > 0)
    lattice.clear_cache()
    assert.are.equal(0, lattice.memory_stats().cached)
  end)

  it("the limit bounds what the cache keeps", function()
    lattice.set_cache_limit(MiB)
    assert.are.equal(MiB, lattice.memory_stats().limit)
    lattice.zeros({ 1024, 1024 }):close() -- 4 MiB: over the limit, freed at once
    assert.is_true(lattice.memory_stats().cached <= MiB)
    lattice.set_cache_limit(0)
    assert.are.equal(0, lattice.memory_stats().cached)
  end)

  it("rejects a negative or non-integer limit", function()
    assert.has_error(function() lattice.set_cache_limit(-1) end, "set_cache_limit: bytes must not be negative, got -1")
    assert.has_error(function() lattice.set_cache_limit("a lot") end,
      "bad argument #1 to 'set_cache_limit' (integer expected, got string)")
  end)
end)
