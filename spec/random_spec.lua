-- lattice.random's state and permutations: get_state/set_state replay the
-- draws that followed, permutation against a plain Lua Fisher-Yates on the
-- same counter-based bits (lattice's generator written out with Lua's
-- wrapping 64-bit integers), seeded permutations leave the state alone, and
-- every position is equally likely.
local lattice = require "lattice"

-- splitmix64's finaliser and the generator's bits, as core/tensor/random.c has them.
local function mix(z)
  z = (z ~ (z >> 30)) * 0xbf58476d1ce4e5b9
  z = (z ~ (z >> 27)) * 0x94d049bb133111eb
  return z ~ (z >> 31)
end
local function bits(key, counter) return mix(mix(key + 0x9e3779b97f4a7c15) ~ (counter * 0xd1342543de82ef95 + 1)) end

-- The high 64 bits of the unsigned product a * b, b < 2^31.
local function mulhi(a, b)
  local hi, lo = a >> 32, a & 0xffffffff
  return (hi * b + ((lo * b) >> 32)) >> 32
end

local function ref_permutation(n, key, base)
  local p = {}
  for i = 0, n - 1 do p[i + 1] = i end
  for i = n - 1, 1, -1 do
    local j = mulhi(bits(key, base + i), i + 1)
    p[i + 1], p[j + 1] = p[j + 1], p[i + 1]
  end
  return p
end

describe("lattice.random state", function()
  it("replays the draws that followed a saved state, whatever ran in between", function()
    lattice.random.seed(99)
    lattice.random.normal({ 7 })
    local s = lattice.random.get_state()
    local a = lattice.random.uniform({ 5 }):tolist()
    local b = lattice.dropout(lattice.ones({ 9 }), 0.5):tolist()
    lattice.random.seed(3)
    lattice.random.normal({ 11 })
    lattice.random.set_state(s)
    assert.are.same(a, lattice.random.uniform({ 5 }):tolist())
    assert.are.same(b, lattice.dropout(lattice.ones({ 9 }), 0.5):tolist())
  end)

  it("holds the seed as its key and counts the draws", function()
    lattice.random.seed(-5)
    assert.are.same({ key = -5, counter = 0 }, lattice.random.get_state())
    lattice.random.uniform({ 3 })
    lattice.random.normal({ 2 }) -- two counters per normal
    assert.are.same({ key = -5, counter = 7 }, lattice.random.get_state())
  end)

  it("names a bad state", function()
    assert.has_error(function() lattice.random.set_state({ key = 1 }) end,
      "random.set_state: counter must be an integer, got nil")
    assert.has_error(function() lattice.random.set_state({ key = 1.5, counter = 0 }) end,
      "random.set_state: key must be an integer, got 1.5")
    assert.has_error(function() lattice.random.set_state(3) end,
      "bad argument #1 to 'set_state' (table expected, got number)")
    assert.has_error(function() lattice.random.get_state(1) end,
      "random.get_state: too many arguments (expected at most 0, got 1)")
  end)
end)

describe("lattice.random.permutation", function()
  it("is the plain Fisher-Yates of the generator's bits, from the context's counters", function()
    lattice.random.seed(12345)
    lattice.random.uniform({ 3 })
    for _, n in ipairs({ 0, 1, 2, 10, 257 }) do
      local s = lattice.random.get_state()
      local p = lattice.random.permutation(n)
      assert.are.equal("int32", p.dtype)
      assert.are.same(ref_permutation(n, s.key, s.counter), n > 0 and p:tolist() or {})
      assert.are.equal(s.counter + n, lattice.random.get_state().counter)
    end
  end)

  it("with a seed, draws from a generator of its own and leaves the context's as it was", function()
    lattice.random.seed(1)
    local s = lattice.random.get_state()
    local p = lattice.random.permutation(50, { seed = 77 }):tolist()
    assert.are.same(s, lattice.random.get_state())
    assert.are.same(ref_permutation(50, 77, 0), p)
    assert.are.same(p, lattice.random.permutation(50, { seed = 77 }):tolist())
    assert.are_not.same(p, lattice.random.permutation(50, { seed = 78 }):tolist())
  end)

  it("puts every element in every position equally often", function()
    -- 5000 permutations of 5: each (element, position) count is Binomial(5000, 1/5),
    -- mean 1000, standard deviation sqrt(5000 * 0.2 * 0.8) ~ 28; 5 deviations is 141
    local counts = {}
    for e = 0, 4 do counts[e] = { 0, 0, 0, 0, 0 } end
    for s = 1, 5000 do
      for pos, e in ipairs(lattice.random.permutation(5, { seed = s }):tolist()) do
        counts[e][pos] = counts[e][pos] + 1
      end
    end
    for e = 0, 4 do
      for pos = 1, 5 do assert(math.abs(counts[e][pos] - 1000) < 141, ("element %d at %d: %d"):format(e, pos, counts[e][pos])) end
    end
  end)

  it("names bad input", function()
    assert.has_error(function() lattice.random.permutation(-1) end,
      "random.permutation: n must be in [0, 2^31), got -1")
    assert.has_error(function() lattice.random.permutation(2 ^ 31 | 0) end,
      "random.permutation: n must be in [0, 2^31), got 2147483648")
    assert.has_error(function() lattice.random.permutation(3, { seed = 0.5 }) end,
      "random.permutation: seed must be an integer, got 0.5")
    assert.has_error(function() lattice.random.permutation(3, { key = 1 }) end, "random.permutation: unknown option 'key'")
  end)
end)
