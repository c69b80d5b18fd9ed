-- lattice.lora: LoRALinear against x W^T + b + (alpha / rank) (x A) B written
-- plainly in Lua, equal to its base layer at init, gradchecked; merging
-- within float32 rounding; apply_lora's targets on a model tree named as
-- lmxlab names its blocks; training that moves only the LoRA matrices (the
-- base weights bit for bit as they were); adapters through files; LoRA on a
-- SparseTensor's features; every bad input.
local lattice = require "lattice"
local lora_ref = require "support.lora_reference"
local gradcheck = require "support.gradcheck"
local tiny = require "support.tiny_models"

local nn, optim, lora, train, data = lattice.nn, lattice.optim, lattice.lora, lattice.train, lattice.data
local LoRALinear = lora.LoRALinear

local tmp = os.tmpname()
os.remove(tmp)

local ref_lora, assert_close, tree_names = lora_ref.forward, lora_ref.assert_close, lora_ref.tree_names

local function names(model)
  local out = {}
  for name in pairs(model:named_parameters()) do out[#out + 1] = name end
  table.sort(out)
  return out
end

local function trainable_names(model) return tree_names(model:trainable_parameters()) end

describe("LoRALinear", function()
  it("starts as the layer it adapts: B is zero, A Kaiming-normal", function()
    lattice.random.seed(1)
    local base = nn.Linear(16, 8)
    local l = LoRALinear.from_linear(base, { rank = 4, alpha = 8 })
    local x = lattice.random.normal({ 5, 16 })
    assert.are.same(base(x):tolist(), l(x):tolist())
    assert.are.same({ 16, 4 }, l.lora_A.shape)
    assert.are.same({ 4, 8 }, l.lora_B.shape)
    assert.are.same(lattice.zeros({ 4, 8 }):tolist(), l.lora_B:tolist())
    assert.are.equal(2, l.scaling)
    assert.is_true(lattice.shares_storage(l.weight, base.weight))
    -- A ~ N(0, 2 / in): 64 samples of variance 1/8; their mean square within 5 standard errors
    -- (the mean square of 64 normals has standard deviation sqrt(2/64) of its value)
    local sq = 0
    for _, r in ipairs(l.lora_A:tolist()) do
      for _, v in ipairs(r) do sq = sq + v * v end
    end
    assert(math.abs(sq / 64 - 1 / 8) < 5 * math.sqrt(2 / 64) / 8, sq / 64)
    local fresh = LoRALinear(16, 8, { bias = true })
    assert.are.equal(8, fresh.rank)
    assert.are.equal(1 / 8, fresh.scaling)
    assert.are.same(lattice.zeros({ 8 }):tolist(), fresh.bias:tolist())
    assert.is_nil(LoRALinear(4, 2).bias)
  end)

  it("computes x W^T + b + (alpha / rank) (x A) B", function()
    lattice.random.seed(2)
    local l = LoRALinear.from_linear(nn.Linear(6, 5), { rank = 3, alpha = 1.5 })
    l.lora_B = lattice.random.normal({ 3, 5 })
    local x = lattice.random.normal({ 4, 6 })
    -- float32 sums of 6 and 3 products of order 1: a few 1e-7 relative
    assert_close(l(x):tolist(), ref_lora(x, l.weight, l.bias, l.lora_A, l.lora_B, 0.5), 1e-6)
    local x3 = lattice.random.normal({ 2, 3, 6 })
    assert.are.same({ 2, 3, 5 }, l(x3).shape)
    assert_close(l(x3)[2]:tolist(), ref_lora(x3[2], l.weight, l.bias, l.lora_A, l.lora_B, 0.5), 1e-6)
  end)

  it("has the gradients of central differences in x, A and B", function()
    lattice.random.seed(3)
    local l = LoRALinear.from_linear(nn.Linear(5, 4), { rank = 2, alpha = 3 })
    local w, b = l.weight, l.bias
    local function f(x, a, bm)
      l.weight, l.bias, l.lora_A, l.lora_B = w:astype(x.dtype), b:astype(x.dtype), a, bm
      return lattice.sum(lattice.square(l(x)))
    end
    gradcheck.each_dtype(f, { lattice.random.normal({ 3, 5 }), lattice.random.normal({ 5, 2 }),
      lattice.random.normal({ 2, 4 }) })
  end)

  it("merges into an nn.Linear with the same outputs", function()
    lattice.random.seed(4)
    local l = LoRALinear.from_linear(nn.Linear(32, 16), { rank = 4, alpha = 4 })
    l.lora_B = lattice.random.normal({ 4, 16 })
    local merged = l:to_linear()
    assert.truthy(tostring(merged):find("^Linear%(input_dims=32, output_dims=16, bias=true%)"))
    local x = lattice.random.normal({ 8, 32 })
    -- the same value summed two ways in float32: x (W + s (AB)^T) against
    -- x W^T + s (xA) B, each a sum of ~32 products of order 1 (|x| ~ 1,
    -- |W| ~ 0.2, |s A B| ~ 1): rounding of 32 * 2^-24 * 6 ~ 1e-5 at most
    assert_close(merged(x):tolist(), l(x):tolist(), 2e-5)
    assert.is_true(lattice.shares_storage(merged.bias, l.bias))
    -- in float64 the two agree to double rounding
    local l64 = LoRALinear(32, 16, { rank = 4, bias = true })
    l64.weight, l64.bias = l.weight:astype("float64"), l.bias:astype("float64")
    l64.lora_A, l64.lora_B = l.lora_A:astype("float64"), l.lora_B:astype("float64")
    local x64 = x:astype("float64")
    assert_close(l64:to_linear()(x64):tolist(), l64(x64):tolist(), 1e-12)
    assert.are.equal("float64", l64:to_linear().weight.dtype)
  end)

  it("transforms a SparseTensor's features and keeps its coordinates", function()
    lattice.random.seed(5)
    local l = LoRALinear.from_linear(nn.Linear(3, 2), { rank = 2 })
    l.lora_B = lattice.random.normal({ 2, 2 })
    local coords = lattice.array({ { 0, 0, 0, 0 }, { 0, 1, 0, 0 }, { 1, 0, 2, 0 } }, "int32")
    local x = lattice.SparseTensor(coords, lattice.random.normal({ 3, 3 }), { batch_counts = { 2, 1 } })
    local y = l(x)
    assert.is_true(y.coordinate_map_key == x.coordinate_map_key)
    assert.are.same(l(x.feats):tolist(), y.feats:tolist())
    assert.are.same({ 2, 1 }, y.batch_counts)
    -- the merged layer takes the SparseTensor itself and gives the same rows
    local merged = l:to_linear()
    local z = merged(x)
    assert.is_true(z.coordinate_map_key == x.coordinate_map_key)
    assert_close(z.feats:tolist(), y.feats:tolist(), 1e-6)
  end)

  it("adapts and merges the linear layers of a sparse network", function()
    lattice.random.seed(6)
    local coords = lattice.array({ { 0, 0, 0, 0 }, { 0, 1, 0, 0 }, { 0, 1, 1, 0 }, { 1, 0, 2, 0 } }, "int32")
    local x = lattice.SparseTensor(coords, lattice.random.normal({ 4, 3 }), { batch_counts = { 3, 1 } })
    local net = nn.Sequential(nn.SubmConv3d(3, 4, { kernel_size = 3 }), nn.ReLU(), nn.Linear(4, 2))
    local base = net(x).feats:tolist()
    lora.apply_lora(net, { rank = 2, targets = { "layers.2" } })
    assert.is_true(lora.is_lora(net.layers[3]))
    assert.are.same(base, net(x).feats:tolist()) -- lora_B is zero: the base output
    net.layers[3].lora_B = lattice.random.normal({ 2, 2 })
    local adapted = net(x)
    assert.is_true(adapted.coordinate_map_key == x.coordinate_map_key)
    lora.merge_lora(net)
    assert.is_false(lora.is_lora(net.layers[3]))
    -- float32: the merged weight W + s A B rounds once more than x W^T + s (x A) B
    assert_close(net(x).feats:tolist(), adapted.feats:tolist(), 2e-5)
  end)

  it("names bad input", function()
    assert.has_error(function() LoRALinear(0, 2) end, "LoRALinear: input_dims must be a positive integer, got 0")
    assert.has_error(function() LoRALinear(2, 2, { rank = 0 }) end, "LoRALinear: rank must be a positive integer, got 0")
    assert.has_error(function() LoRALinear(2, 2, { alpha = 0 / 0 }) end,
      "LoRALinear: alpha must be a finite number, got " .. tostring(0 / 0))
    assert.has_error(function() LoRALinear(2, 2, { bias = 1 }) end, "LoRALinear: bias must be a boolean, got number")
    assert.has_error(function() LoRALinear(2, 2, { dropout = 0.1 }) end, "LoRALinear: unknown option 'dropout'")
    assert.has_error(function() LoRALinear.from_linear(nn.Embedding(3, 2)) end,
      "LoRALinear.from_linear: linear must be an nn.Linear, got Embedding")
    assert.has_error(function() LoRALinear.from_linear(nn.Linear(2, 2), { rank = 1.5 }) end,
      "LoRALinear.from_linear: rank must be a positive integer, got 1.5")
    local l = LoRALinear(4, 2)
    assert.has_error(function() l(lattice.ones({ 3, 5 })) end, "LoRALinear: input has 5 features on its last axis, the layer takes 4")
    assert.has_error(function() l("x") end, "LoRALinear: input must be a lattice.Tensor or a SparseTensor, got string")
  end)
end)

describe("apply_lora", function()
  local function stack()
    lattice.random.seed(10)
    return tiny.Stack(32, 8, 16, 2)
  end

  local function lora_layers(model)
    local out = {}
    model:apply_to_modules(function(name, m)
      if lora.is_lora(m) then out[#out + 1] = name end
    end)
    table.sort(out)
    return out
  end

  it("adapts the attention projections by default, as the seed", function()
    local m = stack()
    local ids = lattice.array({ { 1, 2, 3 }, { 4, 5, 6 } }, "int32")
    local before = m(ids):tolist()
    assert.are.equal(m, lora.apply_lora(m, { rank = 2 }))
    assert.are.same({ "blocks.0.attention.k_proj", "blocks.0.attention.o_proj", "blocks.0.attention.q_proj",
      "blocks.0.attention.v_proj", "blocks.1.attention.k_proj", "blocks.1.attention.o_proj",
      "blocks.1.attention.q_proj", "blocks.1.attention.v_proj" }, lora_layers(m))
    assert.are.same(before, m(ids):tolist())
    local want = {}
    for _, n in ipairs(lora_layers(m)) do want[#want + 1], want[#want + 2] = n .. ".lora_A", n .. ".lora_B" end
    table.sort(want)
    assert.are.same(want, trainable_names(m))
    assert.are.same(want, tree_names(lora.lora_parameters(m)))
  end)

  it("takes 'ffn', dotted fragments and several targets", function()
    local m = lora.apply_lora(stack(), { targets = { "ffn" } })
    assert.are.same({ "blocks.0.ffn.down", "blocks.0.ffn.gate", "blocks.0.ffn.up", "blocks.1.ffn.down",
      "blocks.1.ffn.gate", "blocks.1.ffn.up" }, lora_layers(m))
    m = lora.apply_lora(stack(), { targets = { "ffn.up", "1.attention.q_proj", "head" } })
    assert.are.same({ "blocks.0.ffn.up", "blocks.1.attention.q_proj", "blocks.1.ffn.up", "head" }, lora_layers(m))
    -- whole components only: 'proj' is part of no name
    assert.has_error(function() lora.apply_lora(stack(), { targets = { "proj" } }) end,
      "apply_lora: no nn.Linear in the model matches the target 'proj'")
  end)

  it("trains only the LoRA matrices: the base weights stay bit for bit", function()
    local m = lora.apply_lora(stack(), { rank = 4, alpha = 8, targets = { "attention", "ffn" } })
    local frozen = {}
    for name, p in pairs(m:named_parameters()) do
      if not name:find("lora_") then frozen[name] = p:tolist() end
    end
    local ids = lattice.arange(0, 32, "int32")
    local ds = data.TextDataset(lattice.concatenate({ ids, ids, ids, ids }), { seq_len = 8 })
    local t = train.Trainer({ model = m, optimizer = optim.AdamW({ learning_rate = 1e-2, weight_decay = 0.1 }),
      loss_fn = tiny.lm_loss, train_data = ds:batches({ batch_size = 8 }), progress = "none" })
    local h = t:fit({ steps = 30 })
    assert(h[30].loss < 0.8 * h[1].loss, ("%g -> %g"):format(h[1].loss, h[30].loss))
    for name, p in pairs(m:named_parameters()) do
      if frozen[name] then assert.are.same(frozen[name], p:tolist(), name) end
    end
    assert.are_not.same(lattice.zeros({ 4, 8 }):tolist(), m.blocks[1].attention.q_proj.lora_B:tolist())
    -- merged, the model gives the adapted outputs without LoRA layers
    local x = lattice.array({ { 3, 4, 5, 6 } }, "int32")
    local adapted = m(x):tolist()
    assert.are.equal(m, lora.merge_lora(m))
    assert.are.same({}, lora_layers(m))
    assert_close(m(x)[1]:tolist(), adapted[1], 1e-4)
    local only = LoRALinear(3, 2)
    assert.truthy(tostring(lora.merge_lora(only)):find("^Linear%(input_dims=3, output_dims=2, bias=false%)"))
  end)

  it("adapts lattice.transformer's gated FFN, whose projections carry the seed's names", function()
    lattice.random.seed(11)
    local Holder = nn.Module:extend("FFNHolder")
    function Holder:init() self.ffn = lattice.transformer.GatedFFN(lattice.BlockConfig({ ffn = "gated", d_model = 8,
      d_ff = 16, n_heads = 2 })) end
    function Holder:forward(x) return self.ffn(x) end
    local m = Holder()
    local x = lattice.random.normal({ 3, 8 })
    local before = m(x):tolist()
    lora.apply_lora(m, { targets = { "ffn" }, rank = 2 })
    assert.are.same({ "ffn.down", "ffn.gate", "ffn.up" }, lora_layers(m))
    assert.are.same(before, m(x):tolist())
  end)

  it("names bad targets and options", function()
    assert.has_error(function() lora.apply_lora(stack(), { targets = {} }) end,
      "apply_lora: targets must be a non-empty list of names")
    assert.has_error(function() lora.apply_lora(stack(), { targets = { "ffn..up" } }) end,
      "apply_lora: targets[1] must be a dotted name such as 'attention' or 'ffn.up', got ffn..up")
    assert.has_error(function() lora.apply_lora(stack(), { targets = { 3 } }) end,
      "apply_lora: targets[1] must be a dotted name such as 'attention' or 'ffn.up', got 3")
    assert.has_error(function() lora.apply_lora(stack(), { targets = { "attention", "mlp" } }) end,
      "apply_lora: no nn.Linear in the model matches the target 'mlp'")
    assert.has_error(function() lora.apply_lora(stack(), { rank = -1 }) end, "apply_lora: rank must be a positive integer, got -1")
    assert.has_error(function() lora.apply_lora(stack(), { ranks = 2 }) end, "apply_lora: unknown option 'ranks'")
    assert.has_error(function() lora.apply_lora(3) end, "apply_lora: model must be a module, got number")
    -- an error leaves the model as it was
    local m = stack()
    pcall(lora.apply_lora, m, { targets = { "attention", "mlp" } })
    assert.are.same({}, lora_layers(m))
    assert.are.equal(#names(m), #trainable_names(m))
  end)
end)

describe("LoRA adapters on disk", function()
  local function adapted(seed, targets, rank)
    lattice.random.seed(20)
    local m = tiny.Stack(16, 8, 8, 1)
    lattice.random.seed(seed)
    return lora.apply_lora(m, { rank = rank or 2, alpha = 4, targets = targets or { "attention" } })
  end

  it("writes adapter.safetensors and adapter_config.json and reads them back into another model", function()
    local m = adapted(1)
    m.blocks[1].attention.q_proj.lora_B = lattice.random.normal({ 2, 8 })
    local dir = tmp .. "-adapter/deeper"
    lora.save_lora_adapters(dir, m, { metadata = { base = "tiny", steps = 3 } })
    local tensors = lattice.load_safetensors(dir .. "/adapter.safetensors")
    local saved = {}
    for name in pairs(tensors) do saved[#saved + 1] = name end
    table.sort(saved)
    assert.are.same(trainable_names(m), saved)
    local config_text = assert(io.open(dir .. "/adapter_config.json")):read("a")
    assert.are.equal('{\n  "alpha": 4.0,\n  "base": "tiny",\n  "rank": 2,\n  "steps": 3\n}\n', config_text)
    local other = adapted(2)
    local ids = lattice.array({ { 1, 2, 3 } }, "int32")
    assert.are_not.same(m(ids):tolist(), other(ids):tolist())
    local config = lora.load_lora_adapters(dir, other)
    assert.are.same({ alpha = 4.0, base = "tiny", rank = 2, steps = 3 }, config)
    assert.are.same(m(ids):tolist(), other(ids):tolist())
    lora.save_lora_adapters(dir, m, { rank = 9, alpha = 0.5 })
    assert.are.same({ rank = 9, alpha = 0.5 }, lora.load_lora_adapters(dir, other))
  end)

  it("refuses a missing directory, a mismatched adapter and a model without LoRA", function()
    local dir = tmp .. "-mismatch"
    lora.save_lora_adapters(dir, adapted(1))
    local missing = tmp .. "-none"
    assert.has_error(function() lora.load_lora_adapters(missing, adapted(1)) end,
      "load_lora_adapters: adapter directory not found: " .. missing)
    local wider = adapted(1, { "attention", "ffn.up" })
    local before = wider.blocks[1].attention.q_proj.lora_A:tolist()
    assert.has_error(function() lora.load_lora_adapters(dir, wider) end,
      ("load_lora_adapters: %s/adapter.safetensors: the adapter has no 'blocks.0.ffn.up.lora_A'"):format(dir))
    assert.are.same(before, wider.blocks[1].attention.q_proj.lora_A:tolist()) -- nothing loaded
    assert.has_error(function() lora.load_lora_adapters(dir, adapted(1, nil, 3)) end,
      ("load_lora_adapters: %s/adapter.safetensors: blocks.0.attention.k_proj.lora_A has shape {8,2} in the adapter, "
        .. "the model's is {8,3}"):format(dir))
    assert.has_error(function() lora.load_lora_adapters(dir, adapted(1, { "q_proj" })) end,
      ("load_lora_adapters: %s/adapter.safetensors: 'blocks.0.attention.k_proj.lora_A' is not a LoRA matrix of the model")
      :format(dir))
    assert.has_error(function() lora.load_lora_adapters(dir, tiny.Stack(16, 8, 8, 1)) end,
      "load_lora_adapters: the model has no LoRA layers (apply_lora first)")
    assert.has_error(function() lora.save_lora_adapters(dir, tiny.Stack(16, 8, 8, 1)) end,
      "save_lora_adapters: the model has no LoRA layers (apply_lora first)")
    assert.has_error(function() lora.save_lora_adapters(dir, adapted(1), { metadata = { f = print } }) end,
      "save_lora_adapters: metadata: json.encode: cannot write a function")
    os.remove(dir .. "/adapter.safetensors")
    assert.has_error(function() lora.load_lora_adapters(dir, adapted(1)) end,
      ("load_lora_adapters: %s: no adapter.safetensors in it"):format(dir))
  end)
end)
