-- Sparse algebra aligned by coordinate value (lattice.ops.sparse_add ..
-- sparse_cat_aligned, cat, and SparseTensor arithmetic) against a plain Lua
-- join: the output rows in the documented order (inner: a's rows b has, in
-- a's order; left: a; right: b; outer: a, then b's new rows in b's order),
-- a missing row reading as zeros.
local lattice = require "lattice"
local gradcheck = require "support.gradcheck"
local ref = require "support.reference"
local sr = require "support.sparse_random"

local ops = lattice.ops
local generator, assert_close, weighted = ref.generator, ref.assert_close, ref.weighted
local key = sr.key

local FN = {
  add = function(a, b) return a + b end,
  sub = function(a, b) return a - b end,
  mul = function(a, b) return a * b end,
  maximum = function(a, b) return math.max(a, b) end,
  minimum = function(a, b) return math.min(a, b) end,
}
local OP = { add = "sparse_add", sub = "sparse_sub", mul = "sparse_mul", maximum = "sparse_maximum",
  minimum = "sparse_minimum", cat = "sparse_cat_aligned" }

-- The joined rows and features of (ra, va) and (rb, vb).
local function join_ref(ra, va, rb, vb, join, op)
  local ia, ib, out = {}, {}, {}
  for i, r in ipairs(ra) do ia[key(r)] = i end
  for k, r in ipairs(rb) do ib[key(r)] = k end
  if join == "right" then
    for k, r in ipairs(rb) do out[#out + 1] = { r, ia[key(r)], k } end
  else
    for i, r in ipairs(ra) do
      if join ~= "inner" or ib[key(r)] then out[#out + 1] = { r, i, ib[key(r)] } end
    end
    for k, r in ipairs(rb) do
      if join == "outer" and not ia[key(r)] then out[#out + 1] = { r, nil, k } end
    end
  end
  local ca, cb = #va[1], #vb[1]
  local rows, feats = {}, {}
  for j, o in ipairs(out) do
    rows[j] = o[1]
    local a, b, y = {}, {}, {}
    for c = 1, ca do a[c] = o[2] and va[o[2]][c] or 0 end
    for c = 1, cb do b[c] = o[3] and vb[o[3]][c] or 0 end
    if op == "cat" then
      for c = 1, ca do y[c] = a[c] end
      for c = 1, cb do y[ca + c] = b[c] end
    else
      for c = 1, ca do y[c] = FN[op](a[c], b[c]) end
    end
    feats[j] = y
  end
  return rows, feats
end

local function f32_values(gen, n, c)
  local v = sr.values(gen, n, c)
  for _, r in ipairs(v) do
    for j = 1, #r do r[j] = ref.f32(r[j]) end
  end
  return v
end

-- A float32 result of one operation on float32 values of |v| < 1: one rounding.
local TOL = 1e-7

describe("sparse algebra", function()
  local gen = generator(61)
  -- a and b drawn in the same box: they overlap, each with rows the other lacks
  local ra = sr.support(gen, { n = 40, batches = 2, lo = -2, hi = 2 })
  local rb = sr.support(gen, { n = 35, batches = 2, lo = -2, hi = 2 })
  local va, vb = f32_values(gen, #ra, 3), f32_values(gen, #rb, 3)
  local a, b = sr.tensor(ra, va), sr.tensor(rb, vb)

  for _, op in ipairs({ "add", "sub", "mul", "maximum", "minimum", "cat" }) do
    it(OP[op] .. " matches the reference join on overlapping supports, for every join", function()
      for _, join in ipairs({ "inner", "left", "right", "outer" }) do
        local y = ops[OP[op]](a, b, { join = join })
        local rows, feats = join_ref(ra, va, rb, vb, join, op)
        assert.are.same(rows, y.coords:tolist())
        assert_close(y.feats:tolist(), feats, TOL, join)
      end
    end)
  end

  it("uses the seed's default joins: outer for add and sub, inner for the rest", function()
    local n_inner = #join_ref(ra, va, rb, vb, "inner", "add")
    local n_outer = #join_ref(ra, va, rb, vb, "outer", "add")
    assert(n_inner < #ra and n_outer > #ra, "the supports overlap only partly")
    assert.are.equal(n_outer, #ops.sparse_add(a, b))
    assert.are.equal(n_outer, #ops.sparse_sub(a, b))
    for _, name in ipairs({ "sparse_mul", "sparse_maximum", "sparse_minimum", "sparse_cat_aligned" }) do
      assert.are.equal(n_inner, #ops[name](a, b))
    end
    assert.are.equal(n_inner, #ops.cat({ a, b }))
  end)

  it("joins disjoint supports", function()
    local rc = sr.support(gen, { n = 10, batches = 2, lo = 5, hi = 7 })
    local vc = f32_values(gen, #rc, 3)
    local c = sr.tensor(rc, vc)
    assert.are.equal(0, #ops.sparse_mul(a, c))
    assert.are.same({ 0, 3 }, ops.sparse_mul(a, c).feats.shape)
    local y = ops.sparse_add(a, c)
    local rows, feats = join_ref(ra, va, rc, vc, "outer", "add")
    assert.are.same(rows, y.coords:tolist())
    assert_close(y.feats:tolist(), feats, TOL)
  end)

  it("aligns the same rows in another order by value", function()
    local rev, vrev = {}, {}
    for i = #rb, 1, -1 do rev[#rev + 1], vrev[#vrev + 1] = rb[i], va[1] end
    local r = sr.tensor(rev, vrev)
    assert(r.coordinate_map_key ~= b.coordinate_map_key)
    for _, join in ipairs({ "inner", "outer", "left", "right" }) do
      local y = ops.sparse_sub(b, r, { join = join })
      local rows, feats = join_ref(rb, vb, rev, vrev, join, "sub")
      assert.are.same(rows, y.coords:tolist())
      assert_close(y.feats:tolist(), feats, TOL)
      assert(y.coordinate_map_key == (join == "right" and r or b).coordinate_map_key, "the output is b's (r's) map")
    end
  end)

  it("combines tensors of one coordinate identity row by row", function()
    local c = a:with_feats(lattice.array(f32_values(gen, #ra, 3)))
    for _, join in ipairs({ "inner", "outer", "left", "right" }) do
      local y = ops.sparse_mul(a, c, { join = join })
      assert(y.coordinate_map_key == a.coordinate_map_key)
      assert.are.same(lattice.multiply(a.feats, c.feats):tolist(), y.feats:tolist())
    end
    assert.are.same(lattice.concatenate({ a.feats, c.feats }, 2):tolist(), ops.cat({ a, c }).feats:tolist())
  end)

  it("gives the result the identity of an input whose rows it has, in order", function()
    local sub = {}
    for i = 1, #ra, 2 do sub[#sub + 1] = ra[i] end
    local s = sr.tensor(sub, f32_values(gen, #sub, 3))
    assert(ops.sparse_add(a, s).coordinate_map_key == a.coordinate_map_key) -- outer: s adds nothing
    assert(ops.sparse_mul(s, a).coordinate_map_key == s.coordinate_map_key) -- inner: all of s
    assert(ops.sparse_mul(a, s).coordinate_map_key == s.coordinate_map_key) -- inner: s's rows in s's order
    assert(ops.sparse_add(a, b, { join = "left" }).coordinate_map_key == a.coordinate_map_key)
    assert(ops.sparse_add(a, b, { join = "right" }).coordinate_map_key == b.coordinate_map_key)
  end)

  it("splits the gradient of a tied maximum evenly, and fills a missing row with zeros", function()
    local x = sr.tensor({ { 0, 0, 0, 0 }, { 0, 1, 0, 0 } }, { { 2 }, { -1 } })
    local y = sr.tensor({ { 0, 0, 0, 0 }, { 0, 5, 0, 0 } }, { { 2 }, { -3 } })
    local out = ops.sparse_maximum(x, y, { join = "outer" })
    assert.are.same({ { 2 }, { 0 }, { 0 } }, out.feats:tolist()) -- max(-1, 0), max(0, -3)
    local g = lattice.grad(function(f, h)
      return lattice.sum(ops.sparse_maximum(x:with_feats(f), y:with_feats(h), { join = "outer" }).feats)
    end, { 1, 2 })(x.feats, y.feats)
    assert.are.same({ { 0.5 }, { 0 } }, g[1]:tolist()) -- the tie, then max(-1, 0): 0 wins
    assert.are.same({ { 0.5 }, { 0 } }, g[2]:tolist())
  end)

  for _, op in ipairs({ "add", "sub", "mul", "maximum", "minimum", "cat" }) do
    it(OP[op] .. " has the gradients of finite differences (float64)", function()
      local x, y = a:astype("float64"), b:astype("float64")
      for _, join in ipairs({ "inner", "outer", "right" }) do
        gradcheck(function(f, g) return weighted(ops[OP[op]](x:with_feats(f), y:with_feats(g), { join = join }).feats) end,
          { x.feats, y.feats })
      end
    end)
  end

  it("keeps the dtype the inputs share, else promotes", function()
    assert.are.equal("float16", ops.sparse_add(a:astype("float16"), b:astype("float16")).feats.dtype)
    assert.are.equal("bfloat16", ops.sparse_mul(a:astype("bfloat16"), b:astype("bfloat16")).feats.dtype)
    assert.are.equal("float64", ops.sparse_add(a, b:astype("float64")).feats.dtype)
    assert.are.equal("float32", ops.sparse_add(a:astype("float16"), b:astype("bfloat16")).feats.dtype)
    local y = ops.sparse_add(a:astype("float16"), b:astype("float16"), { join = "outer" })
    local rows, feats = join_ref(ra, a:astype("float16").feats:astype("float64"):tolist(), rb,
      b:astype("float16").feats:astype("float64"):tolist(), "outer", "add")
    assert.are.same(rows, y.coords:tolist())
    assert_close(y.feats:astype("float64"):tolist(), feats, 1e-3) -- one float16 rounding: 2^-11
  end)

  it("gives the result batch counts for as many batches as either input has", function()
    local x = sr.tensor(ra, va, "float32", 4)
    assert.are.same(sr.counts(join_ref(ra, va, rb, vb, "outer", "add"), 4), ops.sparse_add(x, b).batch_counts)
    assert.are.same(sr.counts(join_ref(ra, va, rb, vb, "inner", "add"), 4), ops.sparse_mul(b, x).batch_counts)
    assert.is_nil(ops.sparse_add(a, b).batch_counts)
    local c = sr.tensor({ { 0, 9, 9, 9 }, { 5, 9, 9, 9 } }, { { 1, 1, 1 }, { 2, 2, 2 } })
    assert.has_error(function() ops.sparse_add(x, c) end,
      "sparse_add: b has a row of batch 5, beyond the 4 batches of a's batch_counts")
    assert.has_error(function() ops.sparse_mul(c, x) end,
      "sparse_mul: a has a row of batch 5, beyond the 4 batches of b's batch_counts")
  end)

  it("folds cat over any number of tensors", function()
    local rc = sr.support(gen, { n = 30, batches = 2, lo = -2, hi = 2 })
    local vc = f32_values(gen, #rc, 2)
    local c = sr.tensor(rc, vc)
    local r1, f1 = join_ref(ra, va, rb, vb, "outer", "cat")
    local r2, f2 = join_ref(r1, f1, rc, vc, "outer", "cat")
    local y = ops.cat({ a, b, c }, { join = "outer" })
    assert.are.same(r2, y.coords:tolist())
    assert_close(y.feats:tolist(), f2, TOL)
    assert.are.equal(a, ops.cat({ a }))
  end)

  it("gives the same result on one and two threads", function()
    local g2 = generator(77)
    local rx, ry = sr.support(g2, { n = 6000, batches = 2, lo = -15, hi = 15 }),
      sr.support(g2, { n = 6000, batches = 2, lo = -15, hi = 15 })
    local x, y = sr.tensor(rx, sr.values(g2, #rx, 8)), sr.tensor(ry, sr.values(g2, #ry, 8))
    local before, out = lattice.num_threads(), {}
    for _, n in ipairs({ 1, 2 }) do
      lattice.set_num_threads(n)
      local v, g = lattice.value_and_grad(function(f)
        return weighted(ops.sparse_mul(x:with_feats(f), y, { join = "outer" }).feats)
      end)(x.feats)
      out[n] = { v:item(), g:tolist(), ops.sparse_add(x, y).coords:tolist() }
    end
    lattice.set_num_threads(before)
    assert.are.same(out[1], out[2])
  end)

  it("rejects bad arguments with their messages", function()
    local s2 = lattice.SparseTensor(lattice.array(ra, "int32"), lattice.array(va), { stride = 2 })
    local c4 = sr.tensor(rb, sr.values(gen, #rb, 4))
    local cases = {
      { function() ops.sparse_add(a, s2) end, "sparse_add: the tensor strides differ, {1,1,1} and {2,2,2}" },
      { function() ops.sparse_mul(a, c4) end, "sparse_mul: a has 3 channels, b has 4" },
      { function() ops.sparse_add(a, b, { join = "full" }) end,
        "sparse_add: join must be 'inner', 'left', 'outer', 'right', got full" },
      { function() ops.sparse_sub(a, b, { how = "inner" }) end, "sparse_sub: unknown option 'how'" },
      { function() ops.sparse_maximum(a, b.feats) end, "sparse_maximum: b must be a SparseTensor, got lattice.Tensor" },
      { function() ops.sparse_minimum(a.feats, b) end, "sparse_minimum: x must be a SparseTensor, got lattice.Tensor" },
      { function() ops.cat({}) end, "cat: tensors must be a non-empty list of SparseTensors" },
      { function() ops.cat({ a, 3 }) end, "cat: tensors[2] must be a SparseTensor, got number" },
      { function() ops.cat({ a, nil, b }) end, "cat: tensors[2] must be a SparseTensor, got nil" },
      { function() ops.cat({ a, s2 }) end, "cat: the tensor strides differ, {1,1,1} and {2,2,2}" },
    }
    for _, c in ipairs(cases) do assert.has_error(c[1], c[2]) end
  end)
end)

describe("sparse algebra errors", function()
  it("are raised at the caller's line", function()
    local a = sr.tensor({ { 0, 0, 0, 0 } }, { { 1 } })
    local b = lattice.SparseTensor({ { 0, 0, 0, 0 } }, lattice.ones({ 1, 1 }), { stride = 2 })
    sr.assert_raised_here({
      function() ops.sparse_add(a, b) end,
      function() ops.sparse_mul(a, a, { join = "full" }) end,
      function() ops.cat({ a, 3 }) end,
      function() return a + b end,
    })
  end)
end)

describe("SparseTensor arithmetic", function()
  local gen = generator(5)
  local rows = sr.support(gen, { n = 9, batches = 2 })
  local x = sr.tensor(rows, sr.values(gen, #rows, 2), "float32", 2)
  local y = x:with_feats(lattice.array(sr.values(gen, #rows, 2)))

  it("adds, subtracts and multiplies tensors of one identity, keeping it", function()
    for sign, fn in pairs({ ["+"] = lattice.add, ["-"] = lattice.subtract, ["*"] = lattice.multiply }) do
      local z = sign == "+" and x + y or sign == "-" and x - y or x * y
      assert(z.coordinate_map_key == x.coordinate_map_key)
      assert.are.same(x.batch_counts, z.batch_counts)
      assert.are.same(fn(x.feats, y.feats):tolist(), z.feats:tolist())
    end
    local g = lattice.grad(function(f) return lattice.sum((x:with_feats(f) * y).feats) end)(x.feats)
    assert.are.same(y.feats:tolist(), g:tolist())
  end)

  it("refuses operands of different identities or types", function()
    local other = sr.tensor(rows, sr.values(gen, #rows, 2)) -- same rows, interned: the same identity
    assert(other.coordinate_map_key == x.coordinate_map_key)
    local moved = {}
    for i, r in ipairs(rows) do moved[i] = { r[1], r[2] + 10, r[3], r[4] } end
    local m = sr.tensor(moved, sr.values(gen, #rows, 2))
    assert.has_error(function() return x + m end,
      "SparseTensor +: the operands have different coordinate identities (ops.sparse_add aligns them by coordinate value)")
    assert.has_error(function() return x - m end,
      "SparseTensor -: the operands have different coordinate identities (ops.sparse_sub aligns them by coordinate value)")
    assert.has_error(function() return x * 2 end,
      "SparseTensor *: both operands must be SparseTensors, got lattice.SparseTensor and number")
  end)
end)
