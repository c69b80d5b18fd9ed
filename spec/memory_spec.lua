-- Long loops run in flat memory: tensor bytes are reported to the Lua GC and
-- come from the context's caching allocator, so dropped tensors are collected
-- and their buffers reused instead of growing the process.
local lattice = require "lattice"

local function rss_bytes()
  local f = assert(io.open("/proc/self/statm"))
  local pages = f:read("n") and f:read("n")
  f:close()
  return pages * 4096
end

describe("memory", function()
  it("stays flat over 10,000 iterations that allocate and drop tensors", function()
    local x = lattice.random.normal({256, 256}) -- 256 KiB per tensor
    local function step() return lattice.sum(lattice.exp(x * 0.5) + x) end
    for _ = 1, 200 do step() end -- warm the cache
    local rss0 = rss_bytes()
    for _ = 1, 10000 do step() end
    local grown = rss_bytes() - rss0
    -- 10,000 iterations allocate ~7.5 GiB in total; without GC accounting the
    -- process would grow by gigabytes. Allow 32 MiB of drift.
    assert.is_true(grown < 32 * 2 ^ 20, ("resident memory grew by %.1f MiB"):format(grown / 2 ^ 20))
  end)

  it("collects tiny tensors at the pace they are made", function()
    -- Each tiny tensor costs a few hundred bytes of headers and data that Lua
    -- cannot see; they are reported to the GC too, so garbage stays small.
    -- (Reported only in whole kilobytes, small amounts must add up, not vanish.)
    collectgarbage()
    local a = lattice.array({1, 2, 3, 4})
    local before = lattice.memory_stats().in_use
    for _ = 1, 500000 do
      local _ = a + a
    end
    local grown = lattice.memory_stats().in_use - before
    assert.is_true(grown < 2 ^ 20, ("%d bytes of tensors still held"):format(grown))
  end)

  it("stays flat over 10,000 value_and_grad steps", function()
    lattice.random.seed(5)
    local params = {w = lattice.random.normal({64, 64}), b = lattice.zeros({64})}
    local data = lattice.random.normal({128, 64})
    local step = lattice.value_and_grad(function(p)
      local h = lattice.tanh(lattice.matmul(data, p.w) + p.b)
      return lattice.mean(h * h)
    end)
    local function train(n)
      for _ = 1, n do
        local _, g = step(params)
        params = {w = params.w - 0.01 * g.w, b = params.b - 0.01 * g.b}
      end
    end
    train(200)
    local rss0, stats0 = rss_bytes(), lattice.memory_stats()
    train(10000)
    local grown = rss_bytes() - rss0
    assert.is_true(grown < 32 * 2 ^ 20, ("resident memory grew by %.1f MiB"):format(grown / 2 ^ 20))
    -- the allocator's own view: bytes in use do not creep up either
    assert.is_true(lattice.memory_stats().in_use < stats0.in_use + 16 * 2 ^ 20)
  end)

  it("reuses cached blocks and reports bytes in use, cached and peak", function()
    collectgarbage()
    collectgarbage("stop")
    local s0 = lattice.memory_stats()
    local t = lattice.zeros({1000, 1000})
    local s1 = lattice.memory_stats()
    assert.is_true(s1.in_use >= s0.in_use + 4e6)
    assert.is_true(s1.peak >= s1.in_use)
    t:close()
    local s2 = lattice.memory_stats()
    assert.are.equal(s0.in_use, s2.in_use)
    assert.is_true(s2.cached >= 4e6) -- kept for the next tensor of this size
    local u = lattice.zeros({1000, 1000})
    assert.are.equal(s2.cached - (s1.in_use - s0.in_use), lattice.memory_stats().cached)
    u:close()
    lattice.clear_cache()
    assert.are.equal(0, lattice.memory_stats().cached)
    collectgarbage("restart")
  end)
end)
