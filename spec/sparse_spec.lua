-- Sparse tensors, the coordinate manager, kernel relations and the four sparse
-- convolutions (lua/lattice/sparse.lua, lua/lattice/ops.lua, core/lua/sparse*.c,
-- core/sparse/). Every convolution kind is compared, forward and all three
-- gradients, with the brute-force convolution of spec/support/sparse_reference.lua
-- on small random supports, and checked by central differences in float64.
local lattice = require "lattice"
local ref = require "support.reference"
local sref = require "support.sparse_reference"
local gradcheck = require "support.gradcheck"

local ops = lattice.ops

-- ---- helpers ----

local function i32(coords)
  if #coords == 0 then return lattice.zeros({ 0, 4 }, "int32") end
  return lattice.array(coords, "int32")
end

-- A tensor's values as nested Lua numbers (exactly the values it holds).
local function values(t) return t:astype("float64"):tolist() end
local function flat_values(t) return ref.flat(t:astype("float64")) end

-- n x m values of gen, rounded to what a `dtype` tensor holds; the tensor and the values.
local function random_matrix(gen, n, m, dtype)
  local rows = {}
  for i = 1, n do
    rows[i] = {}
    for j = 1, m do rows[i][j] = gen() end
  end
  local t = n == 0 and lattice.zeros({ 0, m }, dtype) or lattice.array(rows, "float64"):astype(dtype)
  return t, values(t)
end

-- A cotangent whose values (multiples of 1/8 in [-1, 1]) every float dtype
-- holds exactly, so that the gradient a convolution receives is exact too.
local function cotangent(gen, n, m, dtype)
  local rows = {}
  for i = 1, n do
    rows[i] = {}
    for j = 1, m do rows[i][j] = math.floor(gen() * 8 + 0.5) / 8 end
  end
  local t = n == 0 and lattice.zeros({ 0, m }, dtype) or lattice.array(rows, "float64"):astype(dtype)
  return t, rows
end

-- Error bounds. The convolution accumulates in float32 (double for float64
-- inputs) and rounds the result to the output's dtype once. A sum of n
-- products accumulated in a format of unit roundoff u is within
-- gamma(n) = n u / (1 - n u) times the sum of the absolute values of its
-- terms of the exact sum (Higham, Accuracy and Stability, 3.1; n counts the
-- rounding of each product too, so n = terms + 1 is safe); the double
-- reference itself is within gamma(n) with u = 2^-53. Rounding to float16 or
-- bfloat16 adds at most u_out |y| (u_out = 2^-11 for float16's 11-bit
-- significand, 2^-8 for bfloat16's 8 bits), and float16's subnormals add half
-- their spacing, 2^-25, in absolute terms. Inputs are read back from the
-- tensors, so their own rounding is not an error.
local ACC_U = { float32 = 2 ^ -24, float16 = 2 ^ -24, bfloat16 = 2 ^ -24, float64 = 2 ^ -53 }
local OUT_U = { float32 = 0, float16 = 2 ^ -11, bfloat16 = 2 ^ -8, float64 = 0 }
local OUT_TINY = { float32 = 0, float16 = 2 ^ -25, bfloat16 = 0, float64 = 0 }

local function gamma(n, u) return n * u / (1 - n * u) end

local function bound(want, abs, terms, dtype)
  local acc = (gamma(terms + 1, ACC_U[dtype]) + gamma(terms + 1, 2 ^ -53)) * abs
  return acc + OUT_U[dtype] * (math.abs(want) + acc) + OUT_TINY[dtype]
end

-- Asserts got (nested lists) within the bounds of want; reports up to 5 misses.
local function check_close(got, want, abs, terms, dtype, what)
  local misses = {}
  local function walk(g, w, a, t, where)
    if type(w) == "table" then
      assert.are.equal(#w, #g, what .. ": length at " .. where)
      for i = 1, #w do walk(g[i], w[i], a[i], t[i], where .. "[" .. i .. "]") end
    else
      local b = bound(w, a, t, dtype)
      if not (math.abs(g - w) <= b) and #misses < 5 then -- luacheck: ignore 581 (a NaN must fail)
        misses[#misses + 1] = ("%s%s: got %.10g, want %.10g (bound %.3g)"):format(what, where, g, w, b)
      end
    end
  end
  walk(got, want, abs, terms, "")
  assert(#misses == 0, table.concat(misses, "\n"))
end

-- The rows of a coordinate tensor as Lua lists.
local function rows_of(t) return #t == 0 and {} or t:tolist() end

-- Each function fails with its error at its own line (the caller's, not the library's).
local function raise_at_their_lines(fns)
  for _, f in ipairs(fns) do
    local ok, err = pcall(f)
    assert.is_false(ok)
    local info = debug.getinfo(f, "S")
    assert.are.equal(info.short_src .. ":" .. info.linedefined .. ":", err:match("^[^:]*:%d+:"), err)
  end
end

local function same_bits(a, b) return a.dtype == b.dtype and lattice.equal(a, b):astype("int32"):sum():item() == a.size end

-- ---- the convolution cases ----

local OPS = { conv = "conv3d", subm = "subm_conv3d", transposed = "conv_transpose3d",
  generative = "generative_conv_transpose3d" }

-- The output's tensor stride.
local function out_stride(kind, in_stride, stride)
  local s = {}
  for a = 1, 3 do
    s[a] = kind == "conv" and in_stride[a] * stride[a] or kind == "subm" and in_stride[a] or in_stride[a] // stride[a]
  end
  return s
end

-- c: {kind, size, stride, padding, dilation, in_stride, coords or n, batches, lo, hi, c_in, c_out, bias, target}
-- target: {coords = list, as = "sparse" | "key" | "tensor"}
-- Builds the input from the generator of `seed`, runs the op under
-- value_and_grad, and returns what lattice gave with the reference's answer.
local function run_case(c, dtype, seed)
  local gen = ref.generator(seed or 7)
  local s = sref.spec(c)
  local in_stride = sref.spec({ stride = c.in_stride }).stride
  local coords = c.coords or sref.random_support(gen, c.n or 12, { batches = c.batches or 2, lo = c.lo, hi = c.hi })
  local c_in, c_out = c.c_in or 3, c.c_out or 2
  local f, fv = random_matrix(gen, #coords, c_in, dtype)
  local x = lattice.SparseTensor(i32(coords), f, { stride = in_stride })
  local K = s.size[1] * s.size[2] * s.size[3]
  local w_t, w_rows = random_matrix(gen, c_out, K * c_in, dtype)
  local w = w_t:reshape({ c_out, s.size[1], s.size[2], s.size[3], c_in })
  local wv = {}
  for j = 1, c_out do for q = 1, K * c_in do wv[#wv + 1] = w_rows[j][q] end end
  local b, bv
  if c.bias ~= false then
    local bt, brows = random_matrix(gen, 1, c_out, dtype)
    b, bv = bt:reshape({ c_out }), brows[1]
  end
  local opts = { stride = c.kind ~= "subm" and c.stride or nil, padding = c.padding, dilation = c.dilation,
    kernel_size = c.size }
  local support
  if c.target then
    support = c.target.coords
    local ts = lattice.SparseTensor(i32(support), lattice.zeros({ #support, 1 }),
      { stride = out_stride(c.kind, in_stride, s.stride) })
    opts.coordinates = c.target.as == "key" and ts.coordinate_map_key or c.target.as == "tensor" and i32(support) or ts
  else
    support = sref.support(c.kind, coords, s)
  end
  local edges = sref.edges(c.kind, coords, support, s)
  local g, gv = cotangent(gen, #support, c_out, dtype)
  local function fn(feats, weight, bias)
    local o = {}
    for k, v in pairs(opts) do o[k] = v end
    o.bias = bias
    local y = ops[OPS[c.kind]](x:with_feats(feats), weight, o)
    return lattice.sum(lattice.multiply(y.feats, g)), y
  end
  local _, grads, y = lattice.value_and_grad(fn, b and { 1, 2, 3 } or { 1, 2 })(f, w, b)
  local want = sref.conv({ edges = edges, K = K, n_in = #coords, n_out = #support, c_in = c_in, c_out = c_out,
    x = fv, w = wv, b = bv, g = gv })
  return { x = x, y = y, grads = grads, want = want, support = support, edges = edges, K = K, f = f, w = w, b = b,
    opts = opts, g = g, stride = out_stride(c.kind, in_stride, s.stride) }
end

-- Asserts the outputs of run_case against the reference.
local function check_case(c, dtype, seed)
  local r = run_case(c, dtype, seed)
  assert.are.same(r.support, rows_of(r.y.coords), "output support")
  assert.are.same(r.stride, r.y.stride, "output tensor stride")
  assert.are.equal(dtype, r.y.feats.dtype)
  local W = r.want
  check_close(values(r.y.feats), W.y, W.y_abs, W.y_terms, dtype, "y")
  assert.are.equal(dtype, r.grads[1].dtype)
  check_close(values(r.grads[1]), W.dx, W.dx_abs, W.dx_terms, dtype, "dfeats")
  assert.are.same(r.w.shape, r.grads[2].shape)
  check_close(flat_values(r.grads[2]), W.dw, W.dw_abs, W.dw_terms, dtype, "dweight")
  if r.b then check_close(flat_values(r.grads[3]), W.db, W.db_abs, W.db_terms, dtype, "dbias") end
  return r
end

-- The cases every dtype runs: each kind over kernel sizes 1, 2, 3, 5, strides
-- 1, 2, 3, dilation 2, paddings, per-axis values, tensor stride 2 inputs,
-- batch 2 and coordinates in -4 .. 4.
local CASES = {
  { kind = "conv", size = 1 },
  { kind = "conv", size = 1, stride = 2 },
  { kind = "conv", size = 2, stride = 2 },
  { kind = "conv", size = 3 },
  { kind = "conv", size = 3, padding = 1 },
  { kind = "conv", size = 3, stride = 2, padding = 1 },
  { kind = "conv", size = 3, stride = 3 },
  { kind = "conv", size = 5, stride = 2, padding = 2 },
  { kind = "conv", size = 3, dilation = 2 },
  { kind = "conv", size = 2, stride = 2, dilation = 2 },
  { kind = "conv", size = 3, stride = 2, in_stride = 2 },
  { kind = "conv", size = { 1, 2, 3 }, stride = { 1, 2, 3 }, padding = { 0, 1, 0 }, dilation = { 1, 1, 2 },
    in_stride = { 1, 2, 1 } },
  -- strides whose product wraps to 1 in 32 bits (641 x 6700417 = 2^32 + 1): still strided, not the input's support
  { kind = "conv", size = 1, stride = { 641, 6700417, 1 } },
  { kind = "subm", size = 1 },
  { kind = "subm", size = 3 },
  { kind = "subm", size = 5 },
  { kind = "subm", size = 3, dilation = 2 },
  { kind = "subm", size = 3, in_stride = 2 },
  { kind = "subm", size = { 3, 1, 5 }, dilation = { 1, 2, 1 } },
  { kind = "transposed", size = 2, stride = 2, in_stride = 2 },
  { kind = "transposed", size = 1, stride = 2, in_stride = 2 },
  { kind = "transposed", size = 3, stride = 2, padding = 1, in_stride = 2 },
  { kind = "transposed", size = 3, stride = 1 },
  { kind = "transposed", size = 5, stride = 3, padding = 2, in_stride = 3 },
  { kind = "transposed", size = 2, stride = 2, dilation = 2, in_stride = 4 },
  { kind = "transposed", size = { 2, 3, 1 }, stride = { 2, 1, 3 }, padding = { 0, 1, 0 }, in_stride = { 2, 2, 3 } },
  { kind = "generative", size = 2, stride = 2, in_stride = 2 },
  { kind = "generative", size = 3, stride = 2, in_stride = 2 },
  { kind = "generative", size = 1, stride = 1 },
  { kind = "generative", size = 5, stride = 3, in_stride = 3 },
  { kind = "generative", size = { 2, 1, 3 }, stride = { 2, 1, 1 }, in_stride = { 2, 1, 2 } },
}

local function case_name(c)
  local function v(t) return type(t) == "table" and "{" .. table.concat(t, ",") .. "}" or tostring(t) end
  local parts = { OPS[c.kind], "kernel_size " .. v(c.size) }
  if c.stride then parts[#parts + 1] = "stride " .. v(c.stride) end
  if c.padding then parts[#parts + 1] = "padding " .. v(c.padding) end
  if c.dilation then parts[#parts + 1] = "dilation " .. v(c.dilation) end
  if c.in_stride then parts[#parts + 1] = "tensor stride " .. v(c.in_stride) end
  return table.concat(parts, ", ")
end

describe("sparse convolutions against a brute-force convolution", function()
  for _, dtype in ipairs({ "float32", "float16", "bfloat16" }) do
    describe("in " .. dtype, function()
      for i, c in ipairs(CASES) do
        it(case_name(c) .. ": forward, feature, weight and bias gradients", function()
          check_case(c, dtype, i)
        end)
      end
    end)
  end

  it("gives each gradient alone as it gives it with the others", function()
    local r = run_case({ kind = "conv", size = 3, stride = 2 }, "float32", 3)
    local function loss(feats, weight, bias)
      local y = ops.conv3d(r.x:with_feats(feats), weight, { stride = 2, bias = bias })
      return lattice.sum(lattice.multiply(y.feats, r.g))
    end
    for k = 1, 3 do
      local g = lattice.grad(loss, k)(r.f, r.w, r.b)
      assert.is_true(same_bits(r.grads[k], g), "gradient " .. k)
    end
  end)

  it("generative_conv_transpose3d sums the contributions that meet at one output", function()
    -- two inputs two apart, kernel 3 at stride 2: they both write the coordinate between them
    local r = check_case({ kind = "generative", size = 3, stride = 2, in_stride = 2, batches = 1,
      coords = { { 0, 0, 0, 0 }, { 0, 1, 0, 0 } } }, "float32")
    local inputs_of = {}
    for _, e in ipairs(r.edges) do inputs_of[e[2]] = (inputs_of[e[2]] or 0) + 1 end
    local shared = 0
    for _, n in pairs(inputs_of) do shared = shared + (n == 2 and 1 or 0) end
    assert.are.equal(9, shared)
    assert.are.equal(2 * 27 - 9, #r.support) -- the shared plane of 9 outputs is merged
  end)

  local ends = { { 0, 2147483647, -2147483648, 0 }, { 0, 2147483646, -2147483647, 5 }, { 0, 2147483647, -2147483647, 1 },
    { 1, -2147483648, 2147483647, -2147483648 } }
  for _, c in ipairs({ { kind = "conv", size = 3, stride = 2, padding = 1 }, { kind = "conv", size = 2, stride = 2 },
    { kind = "conv", size = 3, stride = 3 }, { kind = "subm", size = 3 }, { kind = "subm", size = 5, dilation = 2 } }) do
    it(case_name(c) .. " at the ends of int32, where neighbours would leave it", function()
      c.coords = ends
      check_case(c, "float32")
    end)
  end

  it("conv_transpose3d onto a target at the ends of int32", function()
    local target = { { 0, 2147483647, -2147483648, 0 }, { 0, 2147483646, -2147483647, 1 }, { 1, -2147483648, 0, 0 } }
    check_case({ kind = "transposed", size = 3, stride = 2, padding = 1, in_stride = 2,
      coords = { { 0, 1073741823, -1073741824, 0 }, { 1, -1073741824, 0, 0 } }, target = { coords = target, as = "tensor" } },
      "float32")
  end)

  for _, kind in ipairs({ "conv", "subm", "transposed", "generative" }) do
    local base = ({ conv = { size = 3, stride = 2 }, subm = { size = 3 },
      transposed = { size = 2, stride = 2, in_stride = 2 }, generative = { size = 3, stride = 2, in_stride = 2 } })[kind]
    local function with(extra)
      local c = { kind = kind }
      for k, v in pairs(base) do c[k] = v end
      for k, v in pairs(extra) do c[k] = v end
      return c
    end
    it(OPS[kind] .. " of an empty tensor is empty, with zero gradients", function()
      local r = check_case(with({ coords = {} }), "float32")
      assert.are.equal(0, #r.y)
      assert.are.same({ 0, 3 }, r.grads[1].shape)
      assert.are.same({ 0, 0 }, flat_values(r.grads[3]))
    end)
    it(OPS[kind] .. " of a single point", function()
      check_case(with({ coords = { { 0, -1, 2, -3 } } }), "float32")
    end)
    it(OPS[kind] .. " with one channel in and out", function()
      check_case(with({ c_in = 1, c_out = 1, n = 15 }), "float32")
    end)
    it(OPS[kind] .. " without a bias", function()
      check_case(with({ bias = false }), "float32")
    end)
    it(OPS[kind] .. " with three batches and coordinates far below zero", function()
      check_case(with({ batches = 3, n = 20, lo = -1000, hi = -990 }), "float32")
    end)
  end
end)

describe("sparse convolutions in float64", function()
  for i, c in ipairs(CASES) do
    it(case_name(c) .. ": forward and gradients by central differences", function()
      local r = check_case(c, "float64", 100 + i)
      -- the same function of (feats, weight, bias), differentiated numerically
      local opts = r.opts
      local function fn(feats, weight, bias)
        local o = { bias = bias }
        for k, v in pairs(opts) do o[k] = v end
        return lattice.sum(lattice.multiply(ops[OPS[c.kind]](r.x:with_feats(feats), weight, o).feats, r.g))
      end
      assert(gradcheck(fn, { r.f, r.w, r.b }))
    end)
  end

  it("a chain conv3d -> subm_conv3d -> conv_transpose3d back onto the input, by central differences", function()
    local gen = ref.generator(5)
    local coords = sref.random_support(gen, 14, { batches = 2, lo = -3, hi = 3 })
    local x = lattice.SparseTensor(i32(coords), lattice.zeros({ 14, 2 }, "float64"))
    local f = random_matrix(gen, 14, 2, "float64")
    local w1 = random_matrix(gen, 3, 8 * 2, "float64"):reshape({ 3, 2, 2, 2, 2 })
    local w2 = random_matrix(gen, 2, 27 * 3, "float64"):reshape({ 2, 3, 3, 3, 3 })
    local w3 = random_matrix(gen, 2, 8 * 2, "float64"):reshape({ 2, 2, 2, 2, 2 })
    local g = cotangent(gen, 14, 2, "float64")
    local function fn(feats, a, b, c)
      local y = ops.conv3d(x:with_feats(feats), a, { stride = 2 })
      local z = ops.subm_conv3d(y, b)
      local u = ops.conv_transpose3d(z, c, { stride = 2, coordinates = x })
      assert(u.coordinate_map_key == x.coordinate_map_key)
      return lattice.sum(lattice.multiply(u.feats, g))
    end
    assert(gradcheck(fn, { f, w1, w2, w3 }))
  end)
end)

describe("the dtype of a convolution's output", function()
  local x = lattice.SparseTensor({ { 0, 0, 0, 0 }, { 0, 1, 0, 0 } }, lattice.ones({ 2, 2 }, "float16"))
  local function dtype_of(feats, w, b)
    return ops.subm_conv3d(x:astype(feats), lattice.ones({ 1, 3, 3, 3, 2 }, w), { bias = b and lattice.ones({ 1 }, b) })
      .feats.dtype
  end

  it("is the inputs' dtype when they share it", function()
    for _, dtype in ipairs({ "float16", "bfloat16", "float32", "float64" }) do
      assert.are.equal(dtype, dtype_of(dtype, dtype))
      assert.are.equal(dtype, dtype_of(dtype, dtype, dtype))
    end
  end)

  it("is float32 for mixed half-precision inputs, and float64 when any input is", function()
    assert.are.equal("float32", dtype_of("float16", "float32"))
    assert.are.equal("float32", dtype_of("bfloat16", "float16"))
    assert.are.equal("float32", dtype_of("float16", "float16", "float32"))
    assert.are.equal("float64", dtype_of("float16", "float16", "float64"))
    assert.are.equal("float64", dtype_of("float32", "float64"))
  end)
end)

describe("conv3d fed by another convolution's output", function()
  it("reads the tensor stride 2 output of a conv3d as coordinates on its own lattice", function()
    local gen = ref.generator(11)
    local coords = sref.random_support(gen, 30, { batches = 2, lo = -6, hi = 6 })
    local x = lattice.SparseTensor(i32(coords), (random_matrix(gen, 30, 3, "float32")))
    local y = ops.conv3d(x, random_matrix(gen, 4, 8 * 3, "float32"):reshape({ 4, 2, 2, 2, 3 }), { stride = 2 })
    assert.are.same({ 2, 2, 2 }, y.stride)
    local yc, yv = rows_of(y.coords), values(y.feats)
    for _, c in ipairs({ { kind = "subm", size = 3 }, { kind = "conv", size = 3, stride = 2 },
      { kind = "transposed", size = 2, stride = 2 } }) do
      local s = sref.spec(c)
      local K = s.size[1] * s.size[2] * s.size[3]
      local w, wrows = random_matrix(gen, 2, K * 4, "float32")
      local wv = {}
      for j = 1, 2 do for q = 1, K * 4 do wv[#wv + 1] = wrows[j][q] end end
      local out = ops[OPS[c.kind]](y, w:reshape({ 2, s.size[1], s.size[2], s.size[3], 4 }), { stride = c.stride })
      local support = sref.support(c.kind, yc, s)
      assert.are.same(support, rows_of(out.coords))
      assert.are.same(out_stride(c.kind, { 2, 2, 2 }, s.stride), out.stride)
      local want = sref.conv({ edges = sref.edges(c.kind, yc, support, s), K = K, n_in = #yc, n_out = #support,
        c_in = 4, c_out = 2, x = yv, w = wv })
      check_close(values(out.feats), want.y, want.y_abs, want.y_terms, "float32", OPS[c.kind])
    end
  end)
end)

describe("target coordinates", function()
  -- a target at stride 2: some outputs the stride-2 conv3d reaches, some it
  -- does not (they get the bias alone), one in a batch the input lacks
  local gen = ref.generator(21)
  local coords = sref.random_support(gen, 16, { batches = 2, lo = -4, hi = 4 })
  local reached = sref.support("conv", coords, { size = 3, stride = 2 })
  local target = { reached[3], { 0, 7, 7, 7 }, reached[1], { 1, -9, 0, 2 }, { 3, 0, 0, 0 }, reached[5] }

  for _, as in ipairs({ "sparse", "key", "tensor" }) do
    it("conv3d computes onto the target given as a " .. as, function()
      local r = check_case({ kind = "conv", size = 3, stride = 2, coords = coords, target = { coords = target, as = as } },
        "float32")
      local tk = lattice.SparseTensor(i32(target), lattice.zeros({ #target, 1 }), { stride = 2 }).coordinate_map_key
      assert.is_true(r.y.coordinate_map_key == tk)
      -- the target's row 2 is read by nothing: the bias alone
      assert.are.same(flat_values(r.b), values(r.y.feats)[2])
    end)
  end

  it("conv3d with stride 1 onto the input's own coordinates keeps their identity", function()
    local x = lattice.SparseTensor(i32(coords), lattice.ones({ 16, 2 }))
    local w = lattice.ones({ 1, 3, 3, 3, 2 })
    for _, t in ipairs({ x, x.coordinate_map_key, x.coords }) do
      local y = ops.conv3d(x, w, { coordinates = t })
      assert.is_true(y.coordinate_map_key == x.coordinate_map_key)
      assert.is_true(same_bits(ops.conv3d(x, w).feats, y.feats))
    end
  end)

  for _, spec in ipairs({ { size = 2, stride = 2 }, { size = 3, stride = 2, padding = 1 }, { size = 3, stride = 3 } }) do
    it(("conv_transpose3d with coordinates returns exactly to the fine support a conv3d (kernel_size %d, stride %d) came from")
      :format(spec.size, spec.stride), function()
        local g2 = ref.generator(spec.size * 10 + spec.stride)
        local fine = sref.random_support(g2, 25, { batches = 2, lo = -5, hi = 5 })
        local x = lattice.SparseTensor(i32(fine), (random_matrix(g2, 25, 2, "float32")))
        local k = spec.size
        local down = ops.conv3d(x, random_matrix(g2, 3, k ^ 3 * 2, "float32"):reshape({ 3, k, k, k, 2 }),
          { stride = spec.stride, padding = spec.padding })
        for _, t in ipairs({ x, x.coordinate_map_key, x.coords }) do
          local up = ops.conv_transpose3d(down, lattice.ones({ 2, k, k, k, 3 }),
            { stride = spec.stride, padding = spec.padding, coordinates = t })
          assert.is_true(up.coordinate_map_key == x.coordinate_map_key)
          assert.are.same(fine, rows_of(up.coords))
          assert.are.same({ 1, 1, 1 }, up.stride)
        end
        -- and the values, against the reference transposed onto that support
        check_case({ kind = "transposed", size = k, stride = spec.stride, padding = spec.padding,
          in_stride = spec.stride, coords = rows_of(down.coords), target = { coords = fine, as = "sparse" } },
          "float32")
      end)
  end

  it("an empty input onto a target gives the bias alone", function()
    local r = check_case({ kind = "conv", size = 3, stride = 2, coords = {}, target = { coords = target, as = "sparse" } },
      "float32")
    for _, row in ipairs(values(r.y.feats)) do assert.are.same(flat_values(r.b), row) end
  end)

  it("a target at the wrong tensor stride is an error", function()
    local x = lattice.SparseTensor(i32(coords), lattice.ones({ 16, 2 }))
    local w = lattice.ones({ 1, 3, 3, 3, 2 })
    assert.has_error(function() ops.conv3d(x, w, { stride = 2, coordinates = x }) end,
      "conv3d: the target coordinates have tensor stride {1,1,1}, this convolution makes {2,2,2}")
    assert.has_error(function() ops.conv3d(x, w, { stride = 2, coordinates = x.coordinate_map_key }) end,
      "conv3d: the target coordinates have tensor stride {1,1,1}, this convolution makes {2,2,2}")
    local y = ops.conv3d(x, w, { stride = 2 })
    assert.has_error(function()
      ops.conv_transpose3d(y, lattice.ones({ 1, 2, 2, 2, 1 }), { stride = 2, coordinates = y })
    end, "conv_transpose3d: the target coordinates have tensor stride {2,2,2}, this convolution makes {1,1,1}")
  end)

  it("a target that is not coordinates is an error", function()
    local x = lattice.SparseTensor(i32(coords), lattice.ones({ 16, 2 }))
    local w = lattice.ones({ 1, 3, 3, 3, 2 })
    local msg = "conv3d: coordinates must be a SparseTensor, a CoordinateMapKey or an int32 coordinate tensor"
    assert.has_error(function() ops.conv3d(x, w, { coordinates = {} }) end, msg .. ", got table")
    assert.has_error(function() ops.conv3d(x, w, { coordinates = "CoordinateMapKey" }) end, msg .. ", got string")
    assert.has_error(function() ops.conv3d(x, w, { coordinates = x.coords:astype("float32") }) end,
      msg .. ", got a float32 tensor")
    assert.has_error(function() ops.conv3d(x, w, { coordinates = lattice.zeros({ 2, 3 }, "int32") }) end,
      "conv3d: coordinates must have shape {N,4} (batch, x, y, z), got {2,3}")
    assert.has_error(function() ops.conv3d(x, w, { coordinates = lattice.zeros({ 2, 4 }, "int32") }) end,
      "conv3d: coordinates: rows 1 and 2 are the same coordinate (0, 0, 0, 0)")
  end)
end)

describe("build_kernel_relation", function()
  local gen = ref.generator(31)
  local coords = sref.random_support(gen, 20, { batches = 2, lo = -3, hi = 3 })

  local SPECS = {
    {},
    { kernel_size = { 7, 4, 6 } },
    { kernel_size = 1 },
    { kernel_size = 2, stride = 2 },
    { kernel_size = 3, stride = 2, padding = 1 },
    { kernel_size = 5, dilation = 2 },
    { kernel_size = { 3, 2, 1 }, stride = { 1, 2, 3 }, padding = { 1, 0, 0 }, dilation = { 2, 1, 1 } },
  }
  for _, opts in ipairs(SPECS) do
    local s = sref.spec({ size = opts.kernel_size, stride = opts.stride, padding = opts.padding,
      dilation = opts.dilation })
    it(("gives the brute-force edges for kernel_size {%s}, stride {%s}, padding {%s}, dilation {%s}"):format(
      table.concat(s.size, ","), table.concat(s.stride, ","), table.concat(s.padding, ","),
      table.concat(s.dilation, ",")), function()
      local support = sref.support("conv", coords, s)
      local edges, K = sref.edges("conv", coords, support, s)
      local in_row, out_row, kernel_id, counts = {}, {}, {}, {}
      for k = 1, K do counts[k] = 0 end
      for e, t in ipairs(edges) do
        in_row[e], out_row[e], kernel_id[e] = t[1] - 1, t[2] - 1, t[3] - 1
        counts[t[3]] = counts[t[3]] + 1
      end
      local r = ops.build_kernel_relation(i32(coords), opts)
      assert.are.equal("int32", r.in_row.dtype)
      assert.are.same(in_row, r.in_row:tolist())
      assert.are.same(out_row, r.out_row:tolist())
      assert.are.same(kernel_id, r.kernel_id:tolist())
      assert.are.same(support, rows_of(r.out_coords))
      assert.are.same(counts, r.counts)
      assert.are.same(sref.offsets(s.size, s.dilation), r.kernel_offsets)
      assert.are.equal(K, r.n_kernels)
      assert.are.equal(#edges, r.edges)
      assert.are.equal(("Relation(20 -> %d rows, %d offsets, %d edges)"):format(#support, K, #edges), tostring(r))
    end)
  end

  it("lists the kernel offsets odd-centred and even from 0, times the dilation, x slowest", function()
    local r = ops.build_kernel_relation(i32({ { 0, 0, 0, 0 } }), { kernel_size = { 3, 2, 1 }, dilation = { 2, 3, 1 } })
    assert.are.same({ { -2, 0, 0 }, { -2, 3, 0 }, { 0, 0, 0 }, { 0, 3, 0 }, { 2, 0, 0 }, { 2, 3, 0 } }, r.kernel_offsets)
  end)

  it("takes coordinates as an int32 tensor, a Lua table, a SparseTensor or a CoordinateMapKey", function()
    local x = lattice.SparseTensor(i32(coords), lattice.zeros({ 20, 1 }))
    local want = ops.build_kernel_relation(i32(coords), { kernel_size = 3 })
    for _, c in ipairs({ coords, x, x.coordinate_map_key, i32(coords):astype("int64") }) do
      local r = ops.build_kernel_relation(c, { kernel_size = 3 })
      assert.are.same(want.in_row:tolist(), r.in_row:tolist())
      assert.are.same(want.kernel_id:tolist(), r.kernel_id:tolist())
      assert.is_true(r.in_key == x.coordinate_map_key)
      assert.is_true(r.out_key == x.coordinate_map_key)
    end
  end)

  it("of an empty support has no edges", function()
    local r = ops.build_kernel_relation(i32({}), { kernel_size = 2, stride = 2 })
    assert.are.equal(0, r.edges)
    assert.are.same({ 0 }, r.in_row.shape)
    assert.are.same({ 0, 4 }, r.out_coords.shape)
  end)

  it("refuses bad input, naming itself", function()
    assert.has_error(function() ops.build_kernel_relation({ { 0, 0, 0, 0 }, { 0, 0, 0, 0 } }) end,
      "build_kernel_relation: rows 1 and 2 are the same coordinate (0, 0, 0, 0)")
    assert.has_error(function() ops.build_kernel_relation(i32(coords), { kernel_size = 8 }) end,
      "build_kernel_relation: kernel_size must be in 1..7, got 8")
    assert.has_error(function() ops.build_kernel_relation(i32(coords), { kernel = 3 }) end,
      "build_kernel_relation: unknown option 'kernel'")
    assert.has_error(function() ops.build_kernel_relation(i32(coords), { stride = 0 }) end,
      "build_kernel_relation: stride must be positive, got 0")
    assert.has_error(function() ops.build_kernel_relation("coords") end,
      "build_kernel_relation: coords must be a lattice.Tensor, a table, a SparseTensor or a CoordinateMapKey, got string")
  end)
end)

describe("the coordinate manager", function()
  local gen = ref.generator(41)
  local coords = sref.random_support(gen, 40, { batches = 2, lo = -4, hi = 4 })
  local function cache() return lattice.memory_stats().sparse_cache end

  it("interns maps: the same rows and stride give the same key", function()
    local a = lattice.SparseTensor(i32(coords), lattice.zeros({ 40, 1 }))
    local b = lattice.SparseTensor(coords, lattice.ones({ 40, 3 }, "float16"))
    assert.is_true(a.coordinate_map_key == b.coordinate_map_key)
    local reversed = {}
    for i = 40, 1, -1 do reversed[#reversed + 1] = coords[i] end
    assert.is_false(a.coordinate_map_key == lattice.SparseTensor(reversed, lattice.zeros({ 40, 1 })).coordinate_map_key)
    assert.is_false(a.coordinate_map_key == lattice.SparseTensor(coords, lattice.zeros({ 40, 1 }), { stride = 2 })
      .coordinate_map_key)
    assert.is_false(a.coordinate_map_key == lattice.SparseTensor({ coords[1] }, lattice.zeros({ 1, 1 })).coordinate_map_key)
  end)

  it("keeps the coordinate identity through subm_conv3d, conv3d of stride 1, with_feats and astype", function()
    local x = lattice.SparseTensor(coords, lattice.ones({ 40, 2 }))
    local key = x.coordinate_map_key
    assert.is_true(ops.subm_conv3d(x, lattice.ones({ 3, 3, 3, 3, 2 })).coordinate_map_key == key)
    assert.is_true(ops.subm_conv3d(x, lattice.ones({ 3, 5, 1, 3, 2 }), { dilation = 2 }).coordinate_map_key == key)
    assert.is_true(ops.conv3d(x, lattice.ones({ 3, 3, 3, 3, 2 }), { padding = 1 }).coordinate_map_key == key)
    assert.is_true(x:with_feats(lattice.zeros({ 40, 7 })).coordinate_map_key == key)
    assert.is_true(x:astype("bfloat16").coordinate_map_key == key)
    assert.is_false(ops.conv3d(x, lattice.ones({ 3, 1, 1, 1, 2 }), { stride = 2 }).coordinate_map_key == key)
    assert.is_false(key == 1)
  end)

  it("gives equal keys for the same rows and stride even after its cache forgot the first map", function()
    local a = lattice.SparseTensor(i32(coords), lattice.zeros({ 40, 1 }))
    for i = 1, 80 do lattice.SparseTensor({ { 0, i, 0, 0 } }, lattice.zeros({ 1, 1 })) end
    assert.is_true(a.coordinate_map_key == lattice.SparseTensor(i32(coords), lattice.zeros({ 40, 1 })).coordinate_map_key)
    lattice.clear_cache()
    assert.is_true(a.coordinate_map_key == lattice.SparseTensor(i32(coords), lattice.zeros({ 40, 1 })).coordinate_map_key)
  end)

  it("reuses a relation: a second identical convolution builds nothing and gives the same bits", function()
    lattice.clear_cache()
    assert.are.equal(0, cache())
    local x = lattice.SparseTensor(i32(coords), (random_matrix(gen, 40, 4, "float32")))
    local w = random_matrix(gen, 3, 27 * 4, "float32"):reshape({ 3, 3, 3, 3, 4 })
    local before = cache()
    local y1 = ops.conv3d(x, w, { stride = 2 })
    local after_one = cache()
    assert.is_true(after_one > before)
    local y2 = ops.conv3d(x, w, { stride = 2 })
    assert.are.equal(after_one, cache())
    assert.is_true(y1.coordinate_map_key == y2.coordinate_map_key)
    assert.is_true(same_bits(y1.feats, y2.feats))
    -- a layer with other weights on the same support shares the relation too
    ops.conv3d(x, lattice.ones({ 5, 3, 3, 3, 4 }), { stride = 2 })
    assert.are.equal(after_one, cache())
    -- another kernel is another relation
    ops.conv3d(x, lattice.ones({ 5, 2, 2, 2, 4 }), { stride = 2 })
    assert.is_true(cache() > after_one)
  end)

  it("empties with lattice.clear_cache(), and the convolutions after it give the same bits", function()
    local x = lattice.SparseTensor(i32(coords), (random_matrix(gen, 40, 4, "float32")))
    local w = random_matrix(gen, 3, 27 * 4, "float32"):reshape({ 3, 3, 3, 3, 4 })
    local y1 = ops.subm_conv3d(x, w)
    local z1 = ops.conv3d(x, w, { stride = 2 })
    assert.is_true(cache() > 0)
    lattice.clear_cache()
    assert.are.equal(0, cache())
    assert.is_true(same_bits(y1.feats, ops.subm_conv3d(x, w).feats))
    local z2 = ops.conv3d(x, w, { stride = 2 })
    assert.is_true(same_bits(z1.feats, z2.feats))
    assert.is_true(z1.coordinate_map_key == z2.coordinate_map_key)
  end)

  it("counts the maps its relations keep alive, also when the recent maps no longer hold them", function()
    lattice.clear_cache()
    local big = sref.random_support(ref.generator(42), 2000, { batches = 1, lo = -10, hi = 10 })
    ops.subm_conv3d(lattice.SparseTensor(big, lattice.ones({ 2000, 1 })), lattice.ones({ 1, 3, 3, 3, 1 }))
    local with_big = cache()
    for i = 1, 100 do lattice.SparseTensor({ { 0, i, 0, 0 } }, lattice.ones({ 1, 1 })) end
    assert.is_true(cache() > with_big) -- the ring forgot the big map; the relation still holds it
    lattice.clear_cache()
    assert.are.equal(0, cache())
  end)

  it("is bounded: past its capacity every new relation replaces an old one", function()
    lattice.clear_cache()
    -- same-sized supports, so every map and relation weighs the same
    local function support(i) return { { 0, i, 0, 0 }, { 0, i, 1, 0 }, { 1, -i, 0, 0 } } end
    local w = lattice.ones({ 1, 3, 3, 3, 1 })
    local sizes = {}
    for i = 1, 400 do
      ops.subm_conv3d(lattice.SparseTensor(support(i), lattice.ones({ 3, 1 })), w)
      sizes[i] = cache()
    end
    assert.is_true(sizes[10] > sizes[1])
    assert.are.equal(sizes[350], sizes[400])
    assert.is_true(sizes[400] < 400 * (sizes[2] - sizes[1]))
    lattice.clear_cache()
  end)
end)

describe("determinism", function()
  -- large enough for the parallel paths of every loop (relation, forward, both gradients)
  local gen = ref.generator(51)
  local coords = sref.random_support(gen, 3000, { batches = 2, lo = -12, hi = 12 })
  local f = random_matrix(gen, 3000, 16, "float32")
  local w3 = random_matrix(gen, 16, 27 * 16, "float32"):reshape({ 16, 3, 3, 3, 16 })
  local w2 = random_matrix(gen, 16, 8 * 16, "float32"):reshape({ 16, 2, 2, 2, 16 })
  local b = random_matrix(gen, 1, 16, "float32"):reshape({ 16 })

  local function run()
    lattice.clear_cache() -- the relations are rebuilt too
    local x = lattice.SparseTensor(i32(coords), f)
    local function fn(feats, a, c, bias)
      local y = ops.subm_conv3d(x:with_feats(feats), a, { bias = bias })
      local z = ops.conv3d(y, c, { stride = 2 })
      local u = ops.conv_transpose3d(z, c, { stride = 2, coordinates = x })
      return lattice.sum(lattice.multiply(u.feats, u.feats)), u
    end
    local _, grads, u = lattice.value_and_grad(fn, { 1, 2, 3, 4 })(f, w3, w2, b)
    return { u.feats, grads[1], grads[2], grads[3], grads[4] }
  end

  it("gives bitwise identical results and gradients across runs and for 1 and 2 threads", function()
    local threads = lattice.num_threads()
    lattice.set_num_threads(2)
    local a, b2 = run(), run()
    lattice.set_num_threads(1)
    local c = run()
    lattice.set_num_threads(threads)
    for i = 1, #a do
      assert.is_true(same_bits(a[i], b2[i]), "run to run, result " .. i)
      assert.is_true(same_bits(a[i], c[i]), "1 vs 2 threads, result " .. i)
    end
  end)
end)

describe("row order", function()
  -- The kernels take rows that lie scattered in a Morton order of their own,
  -- and rows already in Morton order as they lie; the same support both ways.
  -- Each output row's sum is its own chain in offset order, so the result and
  -- the feature gradient match bit for bit; the weight gradient sums its
  -- edges in row order, so it differs by rounding only: each entry sums at
  -- most n terms bounded by max|x| max|dy|, each way within gamma(n + 1) of
  -- that sum (Higham 3.1).
  it("changes no bit of the result or the feature gradient", function()
    local gen = ref.generator(77)
    local n, c = 2000, 8
    local coords = i32(sref.random_support(gen, n, { lo = -10, hi = 10 }))
    local sorted = ops.morton_sort_coords(coords)
    local f = random_matrix(gen, n, c, "float32")
    local w = random_matrix(gen, c, 27 * c, "float32"):reshape({ c, 3, 3, 3, c })
    local function run(rows, feats)
      local x = lattice.SparseTensor(rows, feats)
      local function loss(ff, ww)
        local y = ops.subm_conv3d(x:with_feats(ff), ww)
        return lattice.sum(lattice.multiply(y.feats, y.feats)), y
      end
      local _, grads, y = lattice.value_and_grad(loss, { 1, 2 })(feats, w)
      return y.feats, grads[1], grads[2]
    end
    local y1, dx1, dw1 = run(coords, f)
    local y2, dx2, dw2 = run(sorted.coords, lattice.take(f, sorted.order, 1))
    assert.is_true(same_bits(lattice.take(y1, sorted.order, 1), y2), "result")
    assert.is_true(same_bits(lattice.take(dx1, sorted.order, 1), dx2), "feature gradient")
    local limit = 2 * gamma(n + 1, 2 ^ -24) * n * lattice.max(lattice.abs(f)):item() *
      2 * lattice.max(lattice.abs(y1)):item()
    assert.is_true(lattice.max(lattice.abs(lattice.subtract(dw1, dw2))):item() <= limit, "weight gradient")
  end)
end)

describe("SparseTensor", function()
  local coords = { { 0, 1, 2, 3 }, { 0, -4, 0, 7 }, { 1, 0, 0, 0 }, { 0, 5, -6, -7 } }

  it("holds coords, feats, batch_counts, stride and #x", function()
    local f = lattice.ones({ 4, 3 }, "bfloat16")
    local x = lattice.SparseTensor(i32(coords), f, { batch_counts = { 3, 1 }, stride = { 1, 2, 4 } })
    assert.are.equal(4, #x)
    assert.are.equal("int32", x.coords.dtype)
    assert.are.same(coords, x.coords:tolist())
    assert.are.equal(f, x.feats)
    assert.are.same({ 3, 1 }, x.batch_counts)
    assert.are.same({ 1, 2, 4 }, x.stride)
    assert.are.same({ 2, 2, 2 }, lattice.SparseTensor(coords, f, { stride = 2 }).stride)
    assert.is_nil(lattice.SparseTensor(coords, f).batch_counts)
  end)

  it("takes coordinates as a table, an integer tensor or a float tensor of integers", function()
    local want = lattice.SparseTensor(i32(coords), lattice.zeros({ 4, 1 })).coordinate_map_key
    for _, c in ipairs({ coords, i32(coords):astype("int64"), i32(coords):astype("float32"), i32(coords):astype("float64") }) do
      local x = lattice.SparseTensor(c, lattice.zeros({ 4, 1 }))
      assert.are.same(coords, x.coords:tolist())
      assert.is_true(x.coordinate_map_key == want)
    end
  end)

  it("keeps its own copy of the batch counts and of the coordinates", function()
    local counts = { 3, 1 }
    local x = lattice.SparseTensor(coords, lattice.zeros({ 4, 1 }), { batch_counts = counts })
    counts[1] = 99
    assert.are.same({ 3, 1 }, x.batch_counts)
  end)

  it("hands out copies of its batch counts", function()
    local x = lattice.SparseTensor(coords, lattice.zeros({ 4, 1 }), { batch_counts = { 3, 1 } })
    x.batch_counts[1] = 99
    assert.are.same({ 3, 1 }, x.batch_counts)
  end)

  it("with_feats keeps the coordinate identity, astype converts the features", function()
    local x = lattice.SparseTensor(coords, lattice.ones({ 4, 2 }), { batch_counts = { 3, 1 }, stride = 2 })
    local y = x:with_feats(lattice.zeros({ 4, 5 }, "float16"))
    assert.is_true(y.coordinate_map_key == x.coordinate_map_key)
    assert.are.same({ 3, 1 }, y.batch_counts)
    assert.are.same({ 4, 5 }, y.feats.shape)
    for _, dtype in ipairs({ "float16", "bfloat16", "float64", "float32" }) do
      local z = x:astype(dtype)
      assert.are.equal(dtype, z.feats.dtype)
      assert.is_true(z.coordinate_map_key == x.coordinate_map_key)
      assert.are.same({ 2, 2, 2 }, z.stride)
    end
  end)

  it("is differentiable through with_feats and astype", function()
    local x = lattice.SparseTensor(coords, lattice.zeros({ 4, 2 }))
    local f = lattice.array({ { 1, 2 }, { 3, 4 }, { 5, 6 }, { 7, 8 } })
    local _, g = lattice.value_and_grad(function(feats)
      return lattice.sum(lattice.multiply(x:with_feats(feats):astype("float64").feats, 3))
    end)(f)
    assert.are.same({ { 3, 3 }, { 3, 3 }, { 3, 3 }, { 3, 3 } }, g:tolist())
  end)

  it("reads as a string with its size, dtype, stride and batch counts", function()
    local x = lattice.SparseTensor(coords, lattice.ones({ 4, 2 }, "float16"), { batch_counts = { 3, 1 }, stride = { 1, 2, 4 } })
    assert.are.equal("SparseTensor(rows=4, channels=2, dtype=float16, stride={1, 2, 4}, batch_counts={3, 1})", tostring(x))
    assert.are.equal("SparseTensor(rows=4, channels=2, dtype=float32, stride={1, 1, 1})",
      tostring(lattice.SparseTensor(coords, lattice.ones({ 4, 2 }))))
    assert.truthy(tostring(x.coordinate_map_key):find("^CoordinateMapKey%(%d+, stride={1, 2, 4}, rows=4%)$"))
  end)

  it("accepts negative coordinates and an empty support", function()
    local x = lattice.SparseTensor({ { 0, -2147483648, 2147483647, -1 } }, lattice.zeros({ 1, 1 }))
    assert.are.same({ { 0, -2147483648, 2147483647, -1 } }, x.coords:tolist())
    local e = lattice.SparseTensor(lattice.zeros({ 0, 4 }, "int32"), lattice.zeros({ 0, 3 }), { batch_counts = {} })
    assert.are.equal(0, #e)
    assert.are.same({}, e.batch_counts)
  end)

  it("refuses bad input with a message naming it", function()
    local f = lattice.zeros({ 4, 1 })
    local function bad(msg, ...)
      local args = table.pack(...)
      assert.has_error(function() lattice.SparseTensor(table.unpack(args, 1, args.n)) end, msg)
    end
    bad("SparseTensor: rows 2 and 4 are the same coordinate (0, -4, 0, 7)",
      { { 0, 1, 2, 3 }, { 0, -4, 0, 7 }, { 1, 0, 0, 0 }, { 0, -4, 0, 7 } }, f)
    bad("SparseTensor: coords must have shape {N,4} (batch, x, y, z), got {4,3}",
      lattice.zeros({ 4, 3 }, "int32"), f)
    bad("SparseTensor: coords must have shape {N,4} (batch, x, y, z), got {4}", lattice.zeros({ 4 }, "int32"), f)
    bad("SparseTensor: coords must be integers, got non-integer values", { { 0, 1.5, 0, 0 } }, lattice.zeros({ 1, 1 }))
    bad("SparseTensor: coords must be integers, got non-integer values", lattice.array({ { 0, 0 / 0, 0, 0 } }),
      lattice.zeros({ 1, 1 }))
    bad("SparseTensor: coords must be integers, got bool", lattice.zeros({ 1, 4 }, "bool"), lattice.zeros({ 1, 1 }))
    bad("SparseTensor: coords must fit in int32", { { 0, 2 ^ 31, 0, 0 } }, lattice.zeros({ 1, 1 }))
    bad("SparseTensor: coords must be a lattice.Tensor or a table, got string", "coords", f)
    bad("SparseTensor: row 3 has batch index -1; batch indices start at 0",
      { { 0, 1, 2, 3 }, { 0, -4, 0, 7 }, { -1, 0, 0, 0 }, { 0, 5, -6, -7 } }, f)
    bad("SparseTensor: feats have 3 rows, coords have 4", coords, lattice.zeros({ 3, 1 }))
    bad("SparseTensor: feats must have shape {N,C}, got {4}", coords, lattice.zeros({ 4 }))
    bad("SparseTensor: feats must be a float tensor, got int32", coords, lattice.zeros({ 4, 1 }, "int32"))
    bad("SparseTensor: feats must be a lattice.Tensor, got table", coords, { { 1 }, { 2 }, { 3 }, { 4 } })
    bad("SparseTensor: batch_counts sum to 3, not to the row count 4", coords, f, { batch_counts = { 2, 1 } })
    bad("SparseTensor: batch_counts[1] is 2, the batch column counts 3 for batch 0", coords, f,
      { batch_counts = { 2, 2 } })
    bad("SparseTensor: batch_counts[1] is 4, the batch column counts 3 for batch 0", coords, f,
      { batch_counts = { 4, 0 } })
    bad("SparseTensor: batch_counts[2] is 0, the batch column counts 1 for batch 1", coords, f,
      { batch_counts = { 3, 0, 1 } })
    bad("SparseTensor: row 1 has batch index 2147483647, batch_counts has 1 batches", { { 2147483647, 0, 0, 0 } },
      lattice.zeros({ 1, 1 }), { batch_counts = { 1 } })
    bad("SparseTensor: batch_counts[2] must be a non-negative integer", coords, f, { batch_counts = { 3, 1.5 } })
    bad("SparseTensor: batch_counts[1] must be a non-negative integer", coords, f, { batch_counts = { -1, 5 } })
    bad("SparseTensor: batch_counts must be a list of integers, got number", coords, f, { batch_counts = 4 })
    bad("SparseTensor: unknown option 'strides'", coords, f, { strides = 2 })
    bad("SparseTensor: options must be a table, got number", coords, f, 2)
    bad("SparseTensor: stride must be a positive integer", coords, f, { stride = 0 })
    bad("SparseTensor: stride must be a number or a list of 3", coords, f, { stride = { 1, 2 } })
    bad("SparseTensor: stride must hold positive integers", coords, f, { stride = { 1, 2, 0 } })
    bad("SparseTensor: stride must be a positive integer", coords, f, { stride = "2" })
    bad("SparseTensor: stride must hold positive integers", coords, f, { stride = { 1, "2", 1 } })
    bad("SparseTensor: batch_counts[1] must be a non-negative integer", coords, f, { batch_counts = { "3", 1 } })
    bad("SparseTensor: batch_counts[1] is 9223372036854775807, the batch column counts 3 for batch 0", coords, f,
      { batch_counts = { math.maxinteger, math.maxinteger, 6 } })
  end)

  it("refuses bad features in with_feats and astype, and assignments to its fields", function()
    local x = lattice.SparseTensor(coords, lattice.zeros({ 4, 2 }))
    assert.has_error(function() x:with_feats(lattice.zeros({ 3, 2 })) end,
      "with_feats: features must have shape {4,C}, got {3,2}")
    assert.has_error(function() x:with_feats(lattice.zeros({ 4 })) end, "with_feats: features must have shape {4,C}, got {4}")
    assert.has_error(function() x:with_feats(lattice.zeros({ 4, 2 }, "int32")) end,
      "with_feats: features must be a float tensor, got int32")
    assert.has_error(function() x:with_feats("f") end, "bad argument #1 to 'with_feats' (lattice.Tensor expected, got string)")
    assert.has_error(function() x:astype("int32") end, "astype: a SparseTensor's features must be a float dtype, got int32")
    assert.has_error(function() x.feats = lattice.zeros({ 4, 2 }) end,
      "SparseTensor: field 'feats' cannot be set (use with_feats for new features)")
  end)

  it("raises its errors at the caller's line", function()
    local f = function() lattice.SparseTensor({ { 0, 0, 0, 0 }, { 0, 0, 0, 0 } }, lattice.zeros({ 2, 1 })) end
    local ok, err = pcall(f)
    assert.is_false(ok)
    local info = debug.getinfo(f, "S")
    assert.are.equal(info.short_src .. ":" .. info.linedefined .. ":", err:match("^[^:]*:%d+:"))
  end)
end)

describe("convolution argument checks", function()
  local coords = { { 0, 1, 2, 3 }, { 0, -4, 0, 7 }, { 1, 0, 0, 0 } }
  local x = lattice.SparseTensor(coords, lattice.zeros({ 3, 4 }))
  local x2 = lattice.SparseTensor(coords, lattice.zeros({ 3, 4 }), { stride = 2 })
  local w3 = lattice.zeros({ 8, 3, 3, 3, 4 })

  it("refuse wrong weights and biases", function()
    assert.has_error(function() ops.conv3d(x, lattice.zeros({ 8, 3, 3, 3, 16 })) end,
      "conv3d: weight has 16 input channels, input has 4")
    assert.has_error(function() ops.subm_conv3d(x, lattice.zeros({ 8, 3, 3, 3 })) end,
      "subm_conv3d: weight must have shape {C_out,Kx,Ky,Kz,C_in}, got {8,3,3,3}")
    assert.has_error(function() ops.conv3d(x, w3, { kernel_size = 2 }) end,
      "conv3d: weight has shape {8,3,3,3,4}, expected {C_out,2,2,2,C_in}")
    assert.has_error(function() ops.conv3d(x, w3, { kernel_size = { 3, 3, 1 } }) end,
      "conv3d: weight has shape {8,3,3,3,4}, expected {C_out,3,3,1,C_in}")
    assert.has_error(function() ops.conv3d(x, "w") end, "conv3d: weight must be a lattice.Tensor or a QuantizedWeight, got string")
    assert.has_error(function() ops.conv3d(x, lattice.zeros({ 8, 3, 3, 3, 4 }, "int32")) end,
      "conv3d: weight must be a float tensor, got int32")
    assert.has_error(function() ops.conv3d(x, w3, { bias = lattice.zeros({ 4 }) }) end,
      "conv3d: bias has shape {4}, expected {8}")
    assert.has_error(function() ops.conv3d(x, w3, { bias = true }) end,
      "conv3d: bias must be a lattice.Tensor, got boolean")
    assert.has_error(function() ops.generative_conv_transpose3d(x2, lattice.zeros({ 8, 2, 2, 2, 4 }), { bias = lattice.zeros({ 8, 1 }) }) end,
      "generative_conv_transpose3d: bias has shape {8,1}, expected {8}")
  end)

  it("refuse a weight or bias before building a relation, so the cache keeps what it had", function()
    local fresh = lattice.SparseTensor({ { 0, 9, 9, 9 }, { 0, 9, 9, 10 } }, lattice.zeros({ 2, 4 }))
    local qw = lattice.quantize_weight(lattice.zeros({ 8, 3, 3, 3, 32 }), { bits = 4, group_size = 32 })
    local before = lattice.memory_stats().sparse_cache
    for _, c in ipairs({
      { function() ops.conv3d(fresh, lattice.zeros({ 8, 3, 3, 3, 16 })) end,
        "conv3d: weight has 16 input channels, input has 4" },
      { function() ops.conv3d(fresh, w3, { kernel_size = 5 }) end,
        "conv3d: weight has shape {8,3,3,3,4}, expected {C_out,5,5,5,C_in}" },
      { function() ops.subm_conv3d(fresh, w3, { bias = lattice.zeros({ 3 }) }) end,
        "subm_conv3d: bias has shape {3}, expected {8}" },
      { function() ops.conv_transpose3d(fresh, lattice.zeros({ 8, 3, 3, 3, 5 }), { stride = 1, coordinates = x }) end,
        "conv_transpose3d: weight has 5 input channels, input has 4" },
      { function() ops.subm_conv3d(fresh, qw) end, "subm_conv3d: weight has 32 input channels, input has 4" },
      { function() lattice.nn.SubmConv3d(5, 8)(fresh) end, "SubmConv3d: weight has 5 input channels, input has 4" },
    }) do
      local ok, err = pcall(c[1])
      assert.is_false(ok, c[2])
      assert.are.equal(c[2], (tostring(err):gsub("^[^:]*:%d+: ", "")))
      assert.are.equal(before, lattice.memory_stats().sparse_cache, c[2])
    end
  end)

  it("refuse even submanifold kernel sizes", function()
    assert.has_error(function() ops.subm_conv3d(x, lattice.zeros({ 8, 2, 2, 2, 4 })) end,
      "subm_conv3d: a submanifold kernel_size must be odd, got 2")
    assert.has_error(function() ops.subm_conv3d(x, lattice.zeros({ 8, 3, 4, 3, 4 })) end,
      "subm_conv3d: a submanifold kernel_size must be odd, got 4")
  end)

  it("refuse a transposed stride that does not divide the tensor stride", function()
    assert.has_error(function() ops.conv_transpose3d(x, lattice.zeros({ 8, 2, 2, 2, 4 })) end,
      "conv_transpose3d: stride 2 does not divide the input's tensor stride 1")
    assert.has_error(function() ops.conv_transpose3d(x2, lattice.zeros({ 8, 2, 2, 2, 4 }), { stride = { 2, 3, 2 } }) end,
      "conv_transpose3d: stride 3 does not divide the input's tensor stride 2")
    assert.has_error(function() ops.generative_conv_transpose3d(x2, lattice.zeros({ 8, 2, 2, 2, 4 }), { stride = 4 }) end,
      "generative_conv_transpose3d: stride 4 does not divide the input's tensor stride 2")
  end)

  it("refuse unknown options, and options that kind does not take", function()
    assert.has_error(function() ops.conv3d(x, w3, { strides = 2 }) end, "conv3d: unknown option 'strides'")
    assert.has_error(function() ops.subm_conv3d(x, w3, { stride = 2 }) end, "subm_conv3d: unknown option 'stride'")
    assert.has_error(function() ops.subm_conv3d(x, w3, { coordinates = x }) end, "subm_conv3d: unknown option 'coordinates'")
    assert.has_error(function() ops.generative_conv_transpose3d(x2, lattice.zeros({ 8, 2, 2, 2, 4 }), { padding = 1 }) end,
      "generative_conv_transpose3d: unknown option 'padding'")
    assert.has_error(function() ops.conv_transpose3d(x2, lattice.zeros({ 8, 2, 2, 2, 4 }), { [1] = 2 }) end,
      "conv_transpose3d: unknown option '1'")
    assert.has_error(function() ops.conv3d(x, w3, 3) end, "conv3d: options must be a table, got number")
  end)

  it("refuse bad sizes, strides, paddings and dilations", function()
    assert.has_error(function() ops.conv3d(x, w3, { stride = 0 }) end, "conv3d: stride must be positive, got 0")
    assert.has_error(function() ops.conv3d(x, w3, { stride = 1.5 }) end,
      "conv3d: stride must be an integer or a list of 3 integers, got 1.5")
    assert.has_error(function() ops.conv3d(x, w3, { stride = { 1, 2 } }) end,
      "conv3d: stride must be an integer or a list of 3 integers, got {1,2}")
    assert.has_error(function() ops.conv3d(x, w3, { stride = 1 << 40 }) end,
      "conv3d: stride must fit in int32, got 1099511627776")
    assert.has_error(function() ops.conv3d(x, w3, { padding = -1 }) end, "conv3d: padding must be non-negative, got -1")
    assert.has_error(function() ops.subm_conv3d(x, w3, { dilation = 0 }) end, "subm_conv3d: dilation must be positive, got 0")
    assert.has_error(function() ops.conv3d(x, lattice.zeros({ 1, 8, 1, 1, 4 })) end,
      "conv3d: kernel_size must be in 1..7, got 8")
    assert.has_error(function() ops.conv3d(x, lattice.zeros({ 1, 7, 1, 1, 4 }), { dilation = 400000000 }) end,
      "conv3d: dilation 400000000 is too large for kernel_size 7")
    assert.has_error(function() ops.conv3d(x2, lattice.zeros({ 1, 1, 1, 1, 4 }), { stride = 1 << 30 }) end,
      "conv3d: the output's tensor stride 2147483648 is outside int32")
    assert.has_error(function() ops.conv3d(x, w3, { kernel_size = "3" }) end,
      "conv3d: kernel_size must be an integer or a list of 3 integers, got string")
  end)

  it("refuse bad sizes, strides, paddings and dilations in the modules when built, before making a weight", function()
    local cases = {
      { function() lattice.nn.Conv3d(4, 8, { stride = (1 << 32) + 2 }) end,
        "Conv3d: stride must fit in int32, got 4294967298" }, -- which C would have read as 2
      { function() lattice.nn.Conv3d(4, 8, { kernel_size = -1 }) end, "Conv3d: kernel_size must be in 1..7, got -1" },
      { function() lattice.nn.ConvTranspose3d(4, 8, { kernel_size = 8 }) end,
        "ConvTranspose3d: kernel_size must be in 1..7, got 8" },
      { function() lattice.nn.SubmConv3d(4, 8, { kernel_size = { 3, 2, 3 } }) end,
        "SubmConv3d: a submanifold kernel_size must be odd, got 2" },
      { function() lattice.nn.GenerativeConvTranspose3d(4, 8, { stride = 0 }) end,
        "GenerativeConvTranspose3d: stride must be positive, got 0" },
      { function() lattice.nn.Conv3d(4, 8, { padding = -1 }) end, "Conv3d: padding must be non-negative, got -1" },
      { function() lattice.nn.Conv3d(4, 8, { dilation = { 1, 0, 1 } }) end, "Conv3d: dilation must be positive, got 0" },
      { function() lattice.nn.QuantizedSubmConv3d(32, 8, { kernel_size = 4 }) end,
        "QuantizedSubmConv3d: a submanifold kernel_size must be odd, got 4" },
      { function() lattice.nn.Conv3d(4, 8, { kernel_size = { 3, 3, 3, 3 } }) end,
        "Conv3d: kernel_size must be an integer or a list of 3 integers, got {3,3,3,3}" },
      -- a string "false" made a bias, where nn.Linear refuses it
      { function() lattice.nn.Conv3d(4, 8, { bias = "false" }) end, "Conv3d: bias must be a boolean, got string" },
      { function() lattice.nn.QuantizedSubmConv3d(32, 8, { bias = 0 }) end,
        "QuantizedSubmConv3d: bias must be a boolean, got number" },
    }
    for _, c in ipairs(cases) do
      local ok, err = pcall(c[1])
      assert.is_false(ok, c[2])
      assert.are.equal(c[2], (tostring(err):gsub("^[^:]*:%d+: ", "")))
    end
    raise_at_their_lines({ -- at the caller's line, as the options' errors are
      function() lattice.nn.Conv3d(4, 8, { stride = -1 }) end,
      function() lattice.nn.Conv3d(4, 8, { stride = 1.5 }) end,
      function() lattice.nn.SubmConv3d(0, 8) end,
      function() lattice.nn.Conv3d(4, 8, { strides = 2 }) end,
      function() lattice.nn.SubmConv3d(4, 8, { bias = 1 }) end,
    })
  end)

  it("refuse an input that is not a SparseTensor", function()
    assert.has_error(function() ops.conv3d(lattice.zeros({ 3, 4 }), w3) end,
      "conv3d: x must be a SparseTensor, got lattice.Tensor")
    assert.has_error(function() ops.subm_conv3d(nil, w3) end, "subm_conv3d: x must be a SparseTensor, got nil")
  end)

  it("refuse an input that is not a SparseTensor in the modules, naming the module", function()
    local nn = lattice.nn
    for _, m in ipairs({ nn.Conv3d(4, 8), nn.SubmConv3d(4, 8), nn.ConvTranspose3d(4, 8),
      nn.GenerativeConvTranspose3d(4, 8), nn.QuantizedSubmConv3d(32, 8) }) do
      local name = tostring(m):match("^%w+")
      assert.has_error(function() m(lattice.zeros({ 3, 4 })) end, name .. ": x must be a SparseTensor, got lattice.Tensor")
      assert.has_error(function() m() end, name .. ": x must be a SparseTensor, got nil")
    end
  end)

  it("refuse output coordinates outside int32 instead of wrapping or dropping them", function()
    local far = lattice.SparseTensor({ { 0, 2 ^ 30, 0, 0 } }, lattice.zeros({ 1, 1 }), { stride = 2 })
    assert.has_error(function() ops.conv_transpose3d(far, lattice.zeros({ 1, 2, 2, 2, 1 })) end,
      "conv_transpose3d: output coordinate x = 2147483648 is outside int32")
    assert.has_error(function() ops.generative_conv_transpose3d(far, lattice.zeros({ 1, 2, 2, 2, 1 })) end,
      "generative_conv_transpose3d: output coordinate x = 2147483648 is outside int32")
  end)

  it("raise their errors at the caller's line", function()
    raise_at_their_lines({
      function() ops.conv3d(x, lattice.zeros({ 8, 3, 3, 3, 16 })) end,
      function() ops.conv3d(x, w3, { strides = 2 }) end,
      function() ops.conv3d(x, w3, { stride = 1.5 }) end,
      function() ops.conv3d(x, w3, { coordinates = 1 }) end,
      function() ops.subm_conv3d(x, lattice.zeros({ 8, 2, 2, 2, 4 })) end,
      function() ops.build_kernel_relation({ { 0, 0, 0, 0 }, { 0, 0, 0, 0 } }) end,
    })
  end)
end)

describe("batch counts of convolution outputs", function()
  local coords = { { 0, 0, 0, 0 }, { 0, 1, 0, 0 }, { 0, 4, 0, 0 }, { 1, 0, 0, 0 }, { 1, 5, 5, 5 } }

  it("are counted from the output's rows when the input had them", function()
    local x = lattice.SparseTensor(coords, lattice.ones({ 5, 1 }), { batch_counts = { 3, 2 } })
    local y = ops.conv3d(x, lattice.ones({ 1, 2, 2, 2, 1 }), { stride = 2 })
    assert.are.same({ 2, 2 }, y.batch_counts)
    assert.are.same({ 3, 2 }, ops.subm_conv3d(x, lattice.ones({ 1, 3, 3, 3, 1 })).batch_counts)
    local up = ops.generative_conv_transpose3d(y, lattice.ones({ 1, 2, 2, 2, 1 }))
    assert.are.same({ 16, 16 }, up.batch_counts)
  end)

  it("keep the input's number of batches when the last ones are empty", function()
    local x = lattice.SparseTensor({ { 0, 0, 0, 0 } }, lattice.ones({ 1, 1 }), { batch_counts = { 1, 0, 0 } })
    assert.are.same({ 1, 0, 0 }, ops.conv3d(x, lattice.ones({ 1, 2, 2, 2, 1 }), { stride = 2 }).batch_counts)
  end)

  it("refuse a target row in a batch the input's counts do not have", function()
    local x = lattice.SparseTensor(coords, lattice.ones({ 5, 1 }), { batch_counts = { 3, 2 } })
    assert.has_error(function()
      ops.conv3d(x, lattice.ones({ 1, 2, 2, 2, 1 }), { stride = 2, coordinates = i32({ { 0, 0, 0, 0 }, { 2000000000, 0, 0, 0 } }) })
    end, "conv3d: coordinates: row 2 has batch index 2000000000, the input's batch_counts has 2 batches")
  end)

  it("are absent when the input had none", function()
    local x = lattice.SparseTensor(coords, lattice.ones({ 5, 1 }))
    assert.is_nil(ops.conv3d(x, lattice.ones({ 1, 2, 2, 2, 1 }), { stride = 2 }).batch_counts)
  end)
end)
