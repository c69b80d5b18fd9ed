-- The quantized sparse convolutions (lua/lattice/nn/quantized_conv.lua,
-- core/sparse/conv_quant.c) and the functional ops with a QuantizedWeight:
-- each module against its float source with the dequantized weight (the same
-- sums, so the same bits, and the plain-Lua convolution within float32
-- rounding) and with the float weight (within the bound the quantization
-- error gives), the same output coordinates, key, stride and batch counts,
-- gradients of the features and bias by central differences, frozen parts,
-- save/load under MLX's names, and every bad input with its message.
local lattice = require "lattice"
local ref = require "support.reference"
local sref = require "support.sparse_reference"
local gradcheck = require "support.gradcheck"

local nn, ops = lattice.nn, lattice.ops

local function i32(coords) return lattice.array(coords, "int32") end
local function values(t) return t:astype("float64"):tolist() end

local function random_rows(gen, n, m)
  local rows = {}
  for i = 1, n do
    rows[i] = {}
    for j = 1, m do rows[i][j] = gen() end
  end
  return rows
end

-- The cases: each kind with its float module, options and input tensor stride.
local KINDS = {
  { kind = "conv", float = "Conv3d", op = "conv3d", opts = { kernel_size = 3, stride = 2 }, in_stride = 1 },
  { kind = "subm", float = "SubmConv3d", op = "subm_conv3d", opts = { kernel_size = 3 }, in_stride = 1 },
  { kind = "transposed", float = "ConvTranspose3d", op = "conv_transpose3d", opts = { kernel_size = 2, stride = 2 },
    in_stride = 2 },
  { kind = "generative", float = "GenerativeConvTranspose3d", op = "generative_conv_transpose3d",
    opts = { kernel_size = 2, stride = 2 }, in_stride = 2 },
}

-- A problem: a float module of the case (C_in channels, 5 out, bias drawn),
-- an input SparseTensor with batch counts, and the plain-Lua edges.
local function problem(case, c_in, seed)
  local gen = ref.generator(seed)
  local coords = sref.random_support(gen, 14, { batches = 2, lo = -3, hi = 3 })
  if case.in_stride == 2 then
    for _, c in ipairs(coords) do
      for a = 2, 4 do c[a] = 2 * c[a] end
    end
  end
  local counts = { 0, 0 }
  for _, c in ipairs(coords) do counts[c[1] + 1] = counts[c[1] + 1] + 1 end
  local fv = random_rows(gen, #coords, c_in)
  local x = lattice.SparseTensor(i32(coords), lattice.array(fv), { stride = case.in_stride, batch_counts = counts })
  local o = {}
  for k, v in pairs(case.opts) do o[k] = v end
  local src = nn[case.float](c_in, 5, o)
  src.bias = lattice.array(random_rows(gen, 1, 5)[1])
  local s = sref.spec({ size = o.kernel_size, stride = case.kind ~= "subm" and o.stride or 1 })
  local support = sref.support(case.kind, coords, s)
  return { x = x, fv = fv, src = src, coords = coords, support = support,
    edges = sref.edges(case.kind, coords, support, s), K = s.size[1] * s.size[2] * s.size[3], c_in = c_in }
end

-- The flat values of a (C_out, Kx, Ky, Kz, C_in) weight.
local function flat(w) return ref.flat(w:astype("float64")) end

-- |y - want| <= (terms + 2) 2^-24 sum|terms|: a float32 sum of that many
-- products, each rounded once, against the exact sum.
local function assert_rounding(got, want, what)
  for o = 1, #want.y do
    for j = 1, #want.y[o] do
      local b = (want.y_terms[o][j] + 2) * 2 ^ -24 * want.y_abs[o][j]
      local e = math.abs(got[o][j] - want.y[o][j])
      assert(e <= b, ("%s [%d][%d]: %.9g vs %.9g, bound %.3g"):format(what, o, j, got[o][j], want.y[o][j], b))
    end
  end
end

-- The bound of |y_q - y_f| the weight's quantization gives: per group of
-- group_size input channels of each (output channel, offset) row, |w - q| is
-- at most step = (max - min) / (2^bits - 1) (quant_spec's bound), so an
-- output moves by at most sum over its edges and channels of step |x|; plus
-- both float32 sums' rounding.
local function assert_quantization_bound(yq, yf, p, w, bits, gs)
  local K, ci = p.K, p.c_in
  local step = {}
  for j = 1, 5 do
    for k = 1, K do
      local base = ((j - 1) * K + (k - 1)) * ci
      for g = 0, ci // gs - 1 do
        local lo, hi = math.huge, -math.huge
        for c = g * gs + 1, (g + 1) * gs do lo, hi = math.min(lo, w[base + c]), math.max(hi, w[base + c]) end
        step[base + g + 1] = math.max((hi - lo) / (2 ^ bits - 1), 1e-7) + 2 ^ -22 * math.max(-lo, hi)
      end
    end
  end
  local bound, mag = {}, {}
  for o = 1, #p.support do bound[o], mag[o] = { 0, 0, 0, 0, 0 }, { 0, 0, 0, 0, 0 } end
  for _, e in ipairs(p.edges) do
    local i, o, k = e[1], e[2], e[3]
    for j = 1, 5 do
      local base = ((j - 1) * K + (k - 1)) * ci
      for c = 1, ci do
        local s, a = step[base + (c - 1) // gs + 1], math.abs(p.fv[i][c])
        bound[o][j] = bound[o][j] + s * a
        mag[o][j] = mag[o][j] + (math.abs(w[base + c]) + s) * a
      end
    end
  end
  local worst = 0
  for o = 1, #p.support do
    for j = 1, 5 do
      local b = bound[o][j] + 2 * (#p.edges * ci + 8) * 2 ^ -24 * mag[o][j] + 2 ^ -20
      local e = math.abs(yq[o][j] - yf[o][j])
      assert(e <= b, ("bits %d [%d][%d]: %.9g vs %.9g, bound %.3g"):format(bits, o, j, yq[o][j], yf[o][j], b))
      worst = math.max(worst, e)
    end
  end
  return worst
end

for _, case in ipairs(KINDS) do
  local qname = "Quantized" .. case.float
  describe(qname, function()
    it("is its float source with the dequantized weight, bit for bit, and the plain convolution within rounding",
      function()
        for _, cfg in ipairs({ { bits = 8, c_in = 32 }, { bits = 4, c_in = 64 }, { bits = 2, c_in = 32 } }) do
          local p = problem(case, cfg.c_in, 11)
          local q = nn[qname].from_conv(p.src, { bits = cfg.bits })
          assert.equal(cfg.c_in >= 64 and 64 or 32, q.group_size) -- the seed's default
          local wd = q:quantized_weight():dequantize()
          local y = q(p.x)
          local yd = ops[case.op](p.x, wd, { kernel_size = case.opts.kernel_size,
            stride = case.kind ~= "subm" and case.opts.stride or nil, bias = p.src.bias })
          assert.are.same(values(yd.feats), values(y.feats))
          local want = sref.conv({ edges = p.edges, K = p.K, n_in = #p.coords, n_out = #p.support, c_in = cfg.c_in,
            c_out = 5, x = p.fv, w = flat(wd), b = values(p.src.bias) })
          assert_rounding(values(y.feats), want, qname)
        end
      end)

    it("is its float source within the weight's quantization error, 8 bits closer than 4", function()
      local p = problem(case, 64, 12)
      local yf = values(p.src(p.x).feats)
      local w = flat(p.src.weight)
      local worst = {}
      for _, cfg in ipairs({ { bits = 8, group_size = 64 }, { bits = 4, group_size = 32 }, { bits = 4, group_size = 64 },
        { bits = 2, group_size = 64 } }) do
        local q = nn[qname].from_conv(p.src, cfg)
        worst[#worst + 1] = assert_quantization_bound(values(q(p.x).feats), yf, p, w, cfg.bits, cfg.group_size)
      end
      assert(worst[1] < worst[3] / 8 and worst[3] < worst[4], "more bits, smaller error")
    end)

    it("keeps the float module's output coordinates, coordinate key, stride and batch counts", function()
      local p = problem(case, 32, 13)
      local q = nn[qname].from_conv(p.src, { bits = 4 })
      local y, yf = q(p.x), p.src(p.x)
      assert.is_true(y.coordinate_map_key == yf.coordinate_map_key)
      assert.are.same(p.support, y.coords:tolist())
      assert.are.same(yf.stride, y.stride)
      assert.are.same(yf.batch_counts, y.batch_counts)
      if case.kind == "subm" then assert.is_true(y.coordinate_map_key == p.x.coordinate_map_key) end
    end)

    it("differentiates the features and the bias (central differences in float64), the weight frozen", function()
      local p = problem(case, 32, 14)
      local q = nn[qname].from_conv(p.src, { bits = 4 })
      local qw, wd = q:quantized_weight(), q:quantized_weight():dequantize()
      local o = { kernel_size = case.opts.kernel_size, stride = case.kind ~= "subm" and case.opts.stride or nil }
      local g = lattice.array(random_rows(ref.generator(3), #p.support, 5), "float64")
      local function loss(weight)
        return function(feats, bias)
          local oo = { bias = bias }
          for k, v in pairs(o) do oo[k] = v end
          return lattice.sum(lattice.multiply(ops[case.op](p.x:with_feats(feats), weight, oo).feats, g))
        end
      end
      local f64, b64 = p.x.feats:astype("float64"), p.src.bias:astype("float64")
      gradcheck(loss(qw), { f64, b64 })
      -- and the gradient is the float convolution's with the dequantized weight
      local gq = lattice.grad(loss(qw), { 1, 2 })(f64, b64)
      local gf = lattice.grad(loss(wd), { 1, 2 })(f64, b64)
      assert.are.same(values(gf[1]), values(gq[1]))
      assert.are.same(values(gf[2]), values(gq[2]))
      -- float32 features get float32 gradients, the same as the float path's
      local g32 = g:astype("float32")
      local function loss32(weight)
        return function(feats)
          local oo = { bias = p.src.bias }
          for k, v in pairs(o) do oo[k] = v end
          return lattice.sum(lattice.multiply(ops[case.op](p.x:with_feats(feats), weight, oo).feats, g32))
        end
      end
      local dq = lattice.grad(loss32(qw))(p.x.feats)
      assert.equal("float32", dq.dtype)
      assert.are.same(values(lattice.grad(loss32(wd))(p.x.feats)), values(dq))
    end)

    it("holds frozen parts under MLX's names, saves and loads them, and comes back as the float module", function()
      local p = problem(case, 32, 15)
      local q = nn[qname].from_conv(p.src, { bits = 4, group_size = 32 })
      assert.is_nil(next(q:trainable_parameters()))
      q:unfreeze()
      assert.are.same({ "bias" }, (function()
        local ks = {}
        for k in pairs(q:trainable_parameters()) do ks[#ks + 1] = k end
        return ks
      end)())
      assert.equal(p.src.bias, q.bias)
      local qw = q:quantized_weight()
      assert.are.same({ 5, p.src.weight.shape[2], p.src.weight.shape[3], p.src.weight.shape[4], 32 }, qw.shape)
      assert.are.same({ 5, qw.shape[2], qw.shape[3], qw.shape[4], 4 }, q.weight.shape) -- 32 codes of 4 bits: 4 words
      assert.are.same({ 5, qw.shape[2], qw.shape[3], qw.shape[4], 1 }, q.scales.shape)
      local path = os.tmpname()
      q:save_weights(path)
      local other = nn[qname](32, 5, { kernel_size = case.opts.kernel_size,
        stride = case.kind ~= "subm" and case.opts.stride or nil, bits = 4, group_size = 32 })
      other:load_weights(path)
      os.remove(path)
      assert.are.same(values(q(p.x).feats), values(other(p.x).feats))
      local back = q:dequantized()
      assert.equal(case.float, getmetatable(back).__type_name)
      assert.are.same(p.src.kernel_size, back.kernel_size)
      assert.are.same(p.src.stride, back.stride)
      assert.are.same(values(q(p.x).feats), values(back(p.x).feats))
      local model = lattice.dequantize_model(nn.Sequential(q))
      assert.equal(case.float, getmetatable(model.layers[1]).__type_name)
    end)
  end)
end

describe("quantized sparse convolutions", function()
  local p = problem(KINDS[2], 32, 21)

  it("take a QuantizedWeight in the functional ops, with target coordinates for conv3d", function()
    local conv = nn.Conv3d(32, 3, { kernel_size = 3 })
    local q = nn.QuantizedConv3d.from_conv(conv, { bits = 8 })
    local target = lattice.SparseTensor(i32({ { 0, 0, 0, 0 }, { 1, 1, 1, 1 }, { 0, 5, 5, 5 } }), lattice.zeros({ 3, 1 }))
    local y = q(p.x, target)
    assert.is_true(y.coordinate_map_key == target.coordinate_map_key)
    local yd = ops.conv3d(p.x, q:quantized_weight(), { bias = conv.bias, coordinates = target })
    assert.are.same(values(y.feats), values(yd.feats))
    assert.are.same({ 0, 0, 0 }, values(y.feats)[3]) -- (5, 5, 5) has no neighbour: the bias, zeros
  end)

  it("make lattice.ops.linear take a QuantizedWeight on a SparseTensor's features", function()
    local qw = lattice.quantize_weight(lattice.array(random_rows(ref.generator(5), 6, 32)), { bits = 4, group_size = 32 })
    local b = lattice.array({ 1, 2, 3, 4, 5, 6 })
    local y = ops.linear(p.x, qw, b)
    assert.is_true(y.coordinate_map_key == p.x.coordinate_map_key)
    assert.are.same(values(lattice.linear(p.x.feats, qw, b)), values(y.feats))
    assert.are.same(values(lattice.linear(p.x.feats, qw:dequantize(), b)), values(ops.linear(p.x, qw:dequantize(), b)
      .feats))
  end)

  it("run in a sparse network whose Linear layers quantize_model quantized (they take SparseTensors too)", function()
    lattice.random.seed(31)
    local net = nn.Sequential(nn.SubmConv3d(32, 32), nn.ReLU(), nn.Linear(32, 8))
    local yf = net(p.x)
    lattice.quantize_model(net, { bits = 8, group_size = 32 })
    assert.equal("QuantizedLinear", getmetatable(net.layers[3]).__type_name)
    assert.equal("SubmConv3d", getmetatable(net.layers[1]).__type_name) -- quantize_model leaves convolutions
    net:set_child("layers.0", nn.QuantizedSubmConv3d.from_conv(net.layers[1], { bits = 8 }))
    local y = net(p.x)
    assert.is_true(y.coordinate_map_key == p.x.coordinate_map_key)
    assert.are.same(p.x.batch_counts, y.batch_counts)
    -- the linear layer on the features, and the conv before it, each as their float forms
    local h = ops.subm_conv3d(p.x, net.layers[1]:quantized_weight():dequantize(), { bias = net.layers[1].bias })
    local want = lattice.linear(lattice.relu(h.feats), net.layers[3]:quantized_weight(), net.layers[3].bias)
    assert.are.same(values(want), values(y.feats))
    -- 8 bits: within a few percent of the float network's outputs
    local scale = lattice.max(lattice.abs(yf.feats)):item()
    assert(lattice.max(lattice.abs(y.feats - yf.feats)):item() < 0.02 * scale)
    local qq = nn.QQLinear.from_linear(nn.Linear(32, 4), { mode = "mxfp8" })
    assert.is_true(qq(p.x).coordinate_map_key == p.x.coordinate_map_key)
    assert.are.same(values(qq(p.x.feats)), values(qq(p.x).feats))
  end)

  it("quantize mxfp8 and nvfp4 weights too", function()
    for _, mode in ipairs({ "mxfp8", "nvfp4" }) do
      local q = nn.QuantizedSubmConv3d.from_conv(p.src, { mode = mode, bits = mode == "mxfp8" and 8 or 4,
        group_size = mode == "mxfp8" and 32 or 16 })
      assert.equal(mode, q.mode)
      assert.is_nil(q.biases)
      local yd = ops.subm_conv3d(p.x, q:quantized_weight():dequantize(), { bias = p.src.bias })
      assert.are.same(values(yd.feats), values(q(p.x).feats))
    end
  end)

  it("keep the float convolution's dtype rules: float16 features and scales give float16", function()
    local w16 = p.src.weight:astype("float16")
    local qw16 = lattice.quantize_weight(w16, { bits = 8, group_size = 32 })
    assert.equal("float16", qw16.scales.dtype)
    local x16 = p.x:with_feats(p.x.feats:astype("float16"))
    local y = ops.subm_conv3d(x16, qw16, { bias = p.src.bias:astype("float16") })
    assert.equal("float16", y.feats.dtype)
    local yd = ops.subm_conv3d(x16, qw16:dequantize(), { bias = p.src.bias:astype("float16") })
    assert.are.same(values(yd.feats), values(y.feats))
    -- float32 scales with float16 features: computed and kept in float32, as the float path does
    local qw = lattice.quantize_weight(p.src.weight, { bits = 8, group_size = 32 })
    assert.equal("float32", ops.subm_conv3d(x16, qw).feats.dtype)
    assert.are.same(values(ops.subm_conv3d(x16, qw:dequantize()).feats), values(ops.subm_conv3d(x16, qw).feats))
  end)

  it("refuse a tracked quantized part", function()
    local qw = lattice.quantize_weight(p.src.weight, { bits = 4, group_size = 32 })
    local ok, err = pcall(lattice.grad(function(scales)
      local w = lattice.QuantizedWeight(qw.weight, scales, qw.biases, { bits = 4, group_size = 32 })
      return lattice.sum(ops.subm_conv3d(p.x, w).feats)
    end), qw.scales)
    assert.is_false(ok)
    assert.matches("subm_conv3d: a quantized weight takes no gradient %(its weight, scales and biases must be frozen%)",
      err)
  end)

  it("name the function and the problem for every bad input", function()
    local qw = lattice.quantize_weight(p.src.weight, { bits = 4, group_size = 32 })
    local q2 = lattice.quantize_weight(lattice.zeros({ 4, 32 }), { bits = 4, group_size = 32 })
    local wide = lattice.quantize_weight(lattice.zeros({ 5, 3, 3, 3, 64 }), { bits = 4, group_size = 32 })
    local cases = {
      { function() nn.QuantizedSubmConv3d(16, 4) end, "QuantizedSubmConv3d: in_channels 16 is not divisible by group_size 32" },
      { function() nn.QuantizedConv3d.from_conv(nn.Conv3d(96, 4), { group_size = 64 }) end,
        "QuantizedConv3d.from_conv: in_channels 96 is not divisible by group_size 64" },
      { function() nn.QuantizedSubmConv3d.from_conv(nn.Conv3d(32, 4)) end,
        "QuantizedSubmConv3d.from_conv: expected a SubmConv3d, got Conv3d" },
      { function() nn.QuantizedSubmConv3d.from_conv(nn.Linear(32, 4)) end,
        "QuantizedSubmConv3d.from_conv: expected a SubmConv3d, got Linear" },
      { function() nn.QuantizedSubmConv3d.from_conv(p.src, { bits = 3 }) end,
        "QuantizedSubmConv3d.from_conv: bits must be 2, 4 or 8 for mode 'affine', got 3" },
      { function() nn.QuantizedSubmConv3d.from_conv(p.src, { group_size = 48 }) end,
        "QuantizedSubmConv3d.from_conv: in_channels 32 is not divisible by group_size 48" },
      { function() nn.QuantizedSubmConv3d.from_conv(p.src, { stride = 2 }) end,
        "QuantizedSubmConv3d.from_conv: unknown option 'stride'" },
      { function() nn.QuantizedSubmConv3d(32, 4, { stride = 2 }) end, "QuantizedSubmConv3d: unknown option 'stride'" },
      { function() nn.QuantizedConv3d(0, 4) end, "QuantizedConv3d: in_channels must be a positive integer, got 0" },
      { function() ops.subm_conv3d(p.x, q2) end,
        "subm_conv3d: quantized weight must have shape {C_out,Kx,Ky,Kz,C_in}, got {4,32}" },
      { function() ops.subm_conv3d(p.x, wide) end, "subm_conv3d: weight has 64 input channels, input has 32" },
      { function() ops.subm_conv3d(p.x, qw, { kernel_size = 5 }) end,
        "subm_conv3d: quantized weight has shape {5,3,3,3,32}, expected {C_out,5,5,5,C_in}" },
      { function() ops.subm_conv3d(p.x, qw, { bias = lattice.zeros({ 4 }) }) end,
        "subm_conv3d: bias has shape {4}, expected {5}" },
      { function() nn.QuantizedSubmConv3d.from_conv(p.src)(p.x, p.x) end, "QuantizedSubmConv3d: takes no target coordinates" },
    }
    for _, c in ipairs(cases) do
      local ok, err = pcall(c[1])
      assert.is_false(ok, c[2])
      assert.equal(c[2], (tostring(err):gsub("^[^:]*:%d+: ", "")))
    end
  end)
end)
