-- lattice.sample.next_token and lattice.topk against plain Lua: the seed's
-- steps in its order (repetition penalty, temperature, top-k or top-p, one
-- draw), with the draw's uniform taken from lattice's counter-based
-- generator written out here, so every token is checked exactly, not only in
-- distribution.
local lattice = require "lattice"
local sample = require "lattice.sample"

-- The generator's bits, as core/tensor/random.c has them, and its uniform.
local function mix(z)
  z = (z ~ (z >> 30)) * 0xbf58476d1ce4e5b9
  z = (z ~ (z >> 27)) * 0x94d049bb133111eb
  return z ~ (z >> 31)
end
local function unit(key, counter)
  local b = mix(mix(key + 0x9e3779b97f4a7c15) ~ (counter * 0xd1342543de82ef95 + 1))
  return (b >> 11) * 2.0 ^ -53
end

-- Candidates best first: a larger logit, ties to the lower id.
local function sorted_ids(v)
  local ids = {}
  for j = 1, #v do ids[j] = j - 1 end
  table.sort(ids, function(a, b) return v[a + 1] > v[b + 1] or (v[a + 1] == v[b + 1] and a < b) end)
  return ids
end

local function argmax(v)
  local best = 1
  for j = 2, #v do if v[j] > v[best] then best = j end end
  return best - 1
end

-- The documented draw of one row (0-based ids), from the uniform u.
local function ref_row(x, o, hist, u)
  local v = {}
  for j = 1, #x do v[j] = x[j] end
  local p = o.repetition_penalty or 1
  for _, t in ipairs(hist or {}) do v[t + 1] = x[t + 1] > 0 and x[t + 1] / p or x[t + 1] * p end
  local temp = o.temperature or 1
  if temp <= 0 then return argmax(v) end
  local ids
  if (o.top_k or 0) > 0 then
    ids = sorted_ids(v)
    for i = #ids, o.top_k + 1, -1 do ids[i] = nil end
  elseif (o.top_p or 1) < 1 then
    ids = sorted_ids(v)
  else -- ids in order, the largest moved first
    ids = {}
    for j = 1, #v do ids[j] = j - 1 end
    local b = argmax(v)
    ids[1], ids[b + 1] = b, 0
  end
  local top = v[ids[1] + 1] / temp
  local w, total = {}, 0
  for i, id in ipairs(ids) do
    w[i] = math.exp(v[id + 1] / temp - top)
    total = total + w[i]
  end
  local n = #ids
  if (o.top_k or 0) == 0 and (o.top_p or 1) < 1 then
    total = 0 -- the whole vocabulary's mass, summed in token order
    for j = 1, #v do total = total + math.exp(v[j] / temp - top) end
    local before, keep = 0, 0
    while keep < n and before / total <= o.top_p do
      keep = keep + 1
      before = before + w[keep]
    end
    n, total = keep, before
  end
  local target, run = u * total, 0
  for i = 1, n do
    run = run + w[i]
    if run > target and w[i] > 0 then return ids[i] end
  end
  return ids[n]
end

local function ref_sample(rows, o, hist)
  local s = lattice.random.get_state()
  local out = {}
  for r, x in ipairs(rows) do
    out[r] = ref_row(x, o, hist and hist[r], unit(s.key, s.counter + r - 1))
  end
  return out
end

local function random_rows(n_rows, V, seed)
  local s, rows = seed, {}
  for r = 1, n_rows do
    rows[r] = {}
    for j = 1, V do
      s = (s * 1103515245 + 12345) % 2147483648
      rows[r][j] = (s / 2147483648 * 2 - 1) * 3
    end
  end
  return rows
end

-- float64 logits, so the C draw sees exactly the reference's numbers.
-- (A vocabulary past 64 makes the nucleus search widen its selection.)
local function t64(rows) return lattice.array(rows, "float64") end

describe("sample.next_token", function()
  local rows = random_rows(3, 300, 7)
  local hist = { { 0, 5, 5, 299 }, { 1, 2, 3, 4 }, { 36, 36, 36, 10 } }

  local cases = {
    { name = "a plain draw", o = {} },
    { name = "temperature", o = { temperature = 0.35 } },
    { name = "top_k", o = { top_k = 5 } },
    { name = "top_k past the vocabulary", o = { top_k = 1000 } },
    { name = "top_p", o = { top_p = 0.6 } },
    { name = "top_p near 1 (past several selections)", o = { top_p = 0.999, temperature = 3 } },
    { name = "top_p 0 (the largest only)", o = { top_p = 0 } },
    { name = "top_k ahead of top_p", o = { top_k = 3, top_p = 0.1, temperature = 2 } },
    { name = "the repetition penalty", o = { repetition_penalty = 1.7, temperature = 0.8 }, hist = hist },
    { name = "a penalty below 1", o = { repetition_penalty = 0.5, top_p = 0.9 }, hist = hist },
  }
  for _, c in ipairs(cases) do
    it("draws the documented token for " .. c.name .. ", row by row", function()
      lattice.random.seed(11)
      for _ = 1, 25 do
        local want = ref_sample(rows, c.o, c.hist)
        local opts = {}
        for k, v in pairs(c.o) do opts[k] = v end
        if c.hist then opts.history = lattice.array(c.hist, "int32") end
        assert.same(want, sample.next_token(t64(rows), opts):tolist())
      end
    end)
  end

  it("draws the documented nucleus token over a large vocabulary with -inf logits", function()
    local big = random_rows(2, 6000, 5)
    for j = 1, 6000, 7 do big[2][j] = -math.huge end
    lattice.random.seed(2)
    for _, o in ipairs({ { top_p = 0.5 }, { top_p = 0.97, temperature = 4 }, { top_p = 0.999999 } }) do
      for _ = 1, 5 do assert.same(ref_sample(big, o), sample.next_token(t64(big), o):tolist()) end
    end
  end)

  it("is the argmax at temperature 0 or below, ties to the lower id, and draws nothing", function()
    local x = { { 1, 3, 3, -2 }, { -1, -1, -5, -1 } }
    local s = lattice.random.get_state()
    assert.same({ 1, 0 }, sample.next_token(lattice.array(x), { temperature = 0 }):tolist())
    assert.same({ 1, 0 }, sample.next_token(lattice.array(x), { temperature = -1, top_k = 2 }):tolist())
    assert.same(s, lattice.random.get_state())
    for r = 1, 3 do
      assert.equal(lattice.argmax(t64(rows)[r]):item(), sample.next_token(t64(rows)[r], { temperature = 0 }):item())
    end
  end)

  it("penalises a token once however often it occurs, dividing positive logits and multiplying negative ones", function()
    -- token 0: 2 -> 2/4 = 0.5; token 2: -0.1 -> -0.4; token 1 (1.0) wins
    local x = lattice.array({ 2, 1, -0.1 })
    local h = lattice.array({ 0, 0, 0, 2 }, "int64")
    assert.equal(1, sample.next_token(x, { temperature = 0, repetition_penalty = 4, history = h }):item())
    -- below 1 it favours them: token 2 -> -0.1 * 0.01 = -0.001 stays below token 1's 1.0, token 0 -> 200
    assert.equal(0, sample.next_token(x, { temperature = 0, repetition_penalty = 0.01, history = h }):item())
    -- an empty history and a penalty of 1 change nothing
    assert.equal(0, sample.next_token(x, { temperature = 0, repetition_penalty = 4,
      history = lattice.zeros({ 0 }, "int32") }):item())
  end)

  it("never draws a token outside top_k, outside the nucleus, or at -inf", function()
    local x = lattice.array({ { 0, math.log(2), math.log(3), math.log(4), -math.huge } })
    lattice.random.seed(3)
    local seen = {}
    for _ = 1, 2000 do
      local k = sample.next_token(x, { top_k = 2 }):item()
      local p = sample.next_token(x, { top_p = 0.5 }):item()
      local a = sample.next_token(x):item()
      assert.is_true(k == 2 or k == 3)
      assert.is_true(p == 2 or p == 3)
      assert.is_true(a ~= 4)
      seen[a] = true
    end
    assert.same({ [0] = true, [1] = true, [2] = true, [3] = true }, seen)
  end)

  it("draws in proportion to the probabilities", function()
    local x = lattice.array({ 0, math.log(2), math.log(3), math.log(4) })
    lattice.random.seed(5)
    local n, counts = 20000, { 0, 0, 0, 0 }
    for _ = 1, n do
      local t = sample.next_token(x):item()
      counts[t + 1] = counts[t + 1] + 1
    end
    for j = 1, 4 do
      local p = j / 10
      assert.is_true(math.abs(counts[j] / n - p) < 4 * math.sqrt(p * (1 - p) / n))
    end
  end)

  it("repeats its draws under a seed and takes one counter per row", function()
    lattice.random.seed(42)
    local a = sample.next_token(t64(rows), { top_p = 0.9 }):tolist()
    local s = lattice.random.get_state()
    lattice.random.seed(42)
    assert.same(a, sample.next_token(t64(rows), { top_p = 0.9 }):tolist())
    assert.same(s, lattice.random.get_state())
    assert.equal(3, s.counter)
  end)

  it("reads float16, bfloat16 and float32 logits and strided views", function()
    local x = lattice.array({ { 0.5, 2, -1 }, { 3, 0.25, 7 } })
    for _, dt in ipairs({ "float32", "float16", "bfloat16" }) do
      assert.same({ 1, 2 }, sample.next_token(x:astype(dt), { temperature = 0 }):tolist())
    end
    assert.same({ 1, 0, 1 }, sample.next_token(x:transpose(), { temperature = 0 }):tolist())
    assert.same("int64", sample.next_token(x).dtype)
    assert.same({ 2 }, sample.next_token(x).shape)
    assert.same({}, sample.next_token(x[1]).shape)
  end)

  it("refuses bad input, naming the problem", function()
    local x = lattice.array({ { 1, 2 } })
    local function err(msg, ...)
      local args = table.pack(...)
      assert.has_error(function() sample.next_token(table.unpack(args, 1, args.n)) end, msg)
    end
    err("sample.next_token: logits must be a lattice.Tensor, got table", { 1, 2 })
    err("sample: logits must be a float tensor, got int32", lattice.array({ 1, 2 }, "int32"))
    err("sample: logits must be (V) or (rows, V), got 3 dimensions", lattice.zeros({ 1, 1, 2 }))
    err("sample: logits have an empty vocabulary axis", lattice.zeros({ 2, 0 }))
    err("sample: logits row 0 has NaN at token 1", lattice.array({ { 1, 0 / 0 } }))
    err("sample: logits row 1 has +inf at token 0", lattice.array({ { 1, 2 }, { math.huge, 0 } }))
    err("sample: logits row 0 is -inf everywhere", lattice.array({ { -math.huge, -math.huge } }))
    err("sample: logits row 0 overflow when divided by temperature 1e-300", lattice.array({ { 1e300, 0 } }, "float64"),
      { temperature = 1e-300 })
    err("sample.next_token: unknown option 'topk'", x, { topk = 1 })
    err("sample.next_token: temperature must be a finite number, got nan", x, { temperature = 0 / 0 })
    err("sample.next_token: top_k must be an integer >= 0, got -1", x, { top_k = -1 })
    err("sample.next_token: top_k must be an integer >= 0, got 1.5", x, { top_k = 1.5 })
    err("sample.next_token: top_p must be a number in [0, 1], got 1.5", x, { top_p = 1.5 })
    err("sample.next_token: repetition_penalty must be a positive finite number, got 0", x, { repetition_penalty = 0 })
    err("sample.next_token: history must be a lattice.Tensor, got table", x, { history = { 1 } })
    err("sample: history must hold integer token ids, got float32", x, { history = lattice.array({ { 1 } }) })
    err("sample: history must be (1, n), one row per row of logits", x, { history = lattice.array({ 1 }, "int32") })
    err("sample: history must be 1-D beside 1-D logits, got 2 dimensions", x[1],
      { history = lattice.array({ { 1 } }, "int32") })
    err("sample: history holds token 2, outside the vocabulary 0 .. 1", x, { history = lattice.array({ { 2 } }, "int32") })
    err("sample: history holds token -1, outside the vocabulary 0 .. 1", x, { history = lattice.array({ { -1 } }, "int32") })
  end)
end)

describe("lattice.topk", function()
  it("gives the k largest of each row, largest first, ties to the lower position", function()
    local rows = random_rows(4, 29, 3)
    rows[2][5], rows[2][9] = 9, 9
    local x = lattice.array(rows, "float64")
    for _, k in ipairs({ 1, 3, 29 }) do
      local values, idx = lattice.topk(x, k)
      assert.same({ 4, k }, idx.shape)
      assert.same("int64", idx.dtype)
      for r = 1, 4 do
        local want = sorted_ids(rows[r])
        for i = 1, k do
          assert.equal(want[i], idx:tolist()[r][i])
          assert.equal(rows[r][want[i] + 1], values:tolist()[r][i])
        end
      end
    end
    local _, idx = x:topk(2)
    assert.same({ 4, 8 }, idx:tolist()[2])
  end)

  it("works on integer tensors, on 1-D and 3-D ones and on views", function()
    local _, i = lattice.topk(lattice.array({ 3, 9, -4, 9 }, "int32"), 3)
    assert.same({ 1, 3, 0 }, i:tolist())
    local v = lattice.topk(lattice.arange(24):reshape(2, 3, 4):transpose({ 1, 3, 2 }), 2)
    assert.same({ { { 8, 4 }, { 9, 5 }, { 10, 6 }, { 11, 7 } }, { { 20, 16 }, { 21, 17 }, { 22, 18 }, { 23, 19 } } },
      v:tolist())
  end)

  it("passes the gradient to the entries it picked", function()
    local x = lattice.array({ { 1, 5, 2 }, { 7, 0, 3 } })
    local g = lattice.grad(function(t) return lattice.sum(lattice.topk(t, 2) * lattice.array({ 1, 10 })) end)(x)
    assert.same({ { 0, 1, 10 }, { 1, 0, 10 } }, g:tolist())
  end)

  it("refuses bad input", function()
    assert.has_error(function() lattice.topk(lattice.zeros({ 2, 3 }), 4) end,
      "topk: k must be in 1 .. 3 (the last axis), got 4")
    assert.has_error(function() lattice.topk(lattice.zeros({ 2, 3 }), 0) end,
      "topk: k must be in 1 .. 3 (the last axis), got 0")
    assert.has_error(function() lattice.topk(lattice.array({ 1, 0 / 0 }), 1) end, "topk: x has NaN at element 1")
    assert.has_error(function() lattice.topk(lattice.array(3), 1) end, "topk: x must have at least one dimension")
    assert.has_error(function() lattice.topk(lattice.array({ true }), 1) end, "topk: x must be numeric, got bool")
  end)
end)
