-- The module protocol (lua/lattice/nn/module.lua, nn/init.lua, nn/containers.lua)
-- on a model that mixes built-in layers (userdata), Lua modules made with
-- nn.Module:extend, Lua lists and string-keyed tables.
local lattice = require "lattice"
local core = require "lattice.core"
local ref = require "support.reference"

local nn = lattice.nn

-- ---- the model every section uses ----
--
-- Net
--   embed   Embedding(10, 4)
--   blocks  {Block, Block, Block}   each: proj Linear(4, 4), ffn FFN, norm RMSNorm(4)
--                                   FFN: up Linear(4, 8), act GELU, down Linear(8, 4)
--   scales  {tensor(4), tensor(4)}  a list of the net's own tensors
--   out     Sequential(LayerNorm(4), Linear(4, 3, no bias))
--   label   "net"                   configuration, not a parameter

local FFN = nn.Module:extend("FFN")
function FFN:init(dims, hidden)
  self.up = nn.Linear(dims, hidden)
  self.act = nn.GELU()
  self.down = nn.Linear(hidden, dims)
end
function FFN:forward(x) return self.down(self.act(self.up(x))) end

local Block = nn.Module:extend("Block")
function Block:init(dims)
  self.proj = nn.Linear(dims, dims)
  self.ffn = FFN(dims, 2 * dims)
  self.norm = nn.RMSNorm(dims)
end
function Block:forward(x)
  local h = x + self.proj(self.norm(x))
  return h + self.ffn(h)
end

local Net = nn.Module:extend("Net")
function Net:init(dims)
  self.embed = nn.Embedding(10, dims)
  self.blocks = {Block(dims), Block(dims), Block(dims)}
  self.scales = {lattice.ones({dims}), lattice.full({dims}, 0.5)}
  self.out = nn.Sequential(nn.LayerNorm(dims), nn.Linear(dims, 3, {bias = false}))
  self.label = "net"
end
function Net:forward(ids)
  local x = self.embed(ids) * self.scales[1]
  for _, b in ipairs(self.blocks) do x = b(x) end
  return self.out(x + self.scales[2])
end

local ids = lattice.array({{1, 2, 3}, {4, 5, 0}}, "int32")

local BLOCK_PARAMS = {"proj.weight", "proj.bias", "ffn.up.weight", "ffn.up.bias", "ffn.down.weight", "ffn.down.bias",
                      "norm.weight"}

-- The dotted names a Net's parameters have, sorted.
local function net_parameter_names()
  local names = {"embed.weight", "scales.0", "scales.1", "out.layers.0.weight", "out.layers.0.bias",
                 "out.layers.1.weight"}
  for i = 0, 2 do
    for _, p in ipairs(BLOCK_PARAMS) do names[#names + 1] = "blocks." .. i .. "." .. p end
  end
  table.sort(names)
  return names
end

-- embed 10*4; per block proj 4*4+4, up 4*8+8, down 8*4+4, norm 4; scales 2*4;
-- out: LayerNorm 4+4, Linear 4*3.
local NET_SIZE = 40 + 3 * (20 + 40 + 36 + 4) + 8 + 8 + 12

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

-- Every (dotted name, tensor) in a tree as parameters() gives it: list
-- positions count from 0, as in named_parameters.
local function flatten(tree, prefix, out)
  out = out or {}
  for k, v in pairs(tree) do
    local name = (prefix and prefix .. "." or "") .. (math.type(k) == "integer" and tostring(k - 1) or k)
    if lattice.is_tensor(v) then out[name] = v else flatten(v, name, out) end
  end
  return out
end

-- Whether two tensors hold the same bits: dtype, shape and every element
-- (float16/bfloat16 widen exactly to a Lua number; zeros keep their sign).
local function assert_same_bits(a, b, name)
  assert.are.equal(a.dtype, b.dtype, name)
  assert.are.same(a.shape, b.shape, name)
  local x, y = ref.flat(a), ref.flat(b)
  for i = 1, #x do
    local same = x[i] == y[i] and (x[i] ~= 0 or 1 / x[i] == 1 / y[i]) or (x[i] ~= x[i] and y[i] ~= y[i])
    assert(same, ("%s: element %d is %s, expected %s"):format(name, i - 1, tostring(y[i]), tostring(x[i])))
  end
end

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- A fresh path in the temporary directory (os.tmpname creates its file: removed).
local function tmp_path(name)
  local base = os.tmpname()
  os.remove(base)
  return base .. "-" .. name .. ".safetensors"
end

-- A Lua module whose forward raises `err`.
local Boom = nn.Module:extend("Boom")
function Boom:init(err) self.err = err end
function Boom:forward() error(self.err, 0) end

describe("nn.Module:extend", function()
  it("makes a class that makes instances through init when called", function()
    local b = Block(4)
    assert.is_true(nn.is_module(b))
    assert.are.equal(Block, getmetatable(b))
    assert.are.same({4, 4}, b.proj.weight.shape)
    assert.are.same({8, 4}, b.ffn.up.weight.shape)
    assert.is_true(b.training)
  end)

  it("runs forward when an instance is called, with any arguments", function()
    local Affine = nn.Module:extend("Affine")
    function Affine:init(w, b)
      self.w, self.b = lattice.array(w), lattice.array(b)
    end
    function Affine:forward(x, scale) return (x * self.w + self.b) * scale, "second" end
    local y, extra = Affine({1, 2}, {10, 20})(lattice.array({3, 4}), 2)
    assert.are.same({26, 56}, y:tolist())
    assert.are.equal("second", extra)
  end)

  it("lets a subclass of a subclass extend its parent's init and forward", function()
    local Scaled = Block:extend("Scaled")
    function Scaled:init(dims, factor)
      Block.init(self, dims)
      self.factor = lattice.full({dims}, factor)
    end
    function Scaled:forward(x) return Block.forward(self, x) * self.factor end
    local s = Scaled(4, 3)
    local x = lattice.array({{1, 2, 3, 4}})
    local want = ref.flat(Block.forward(s, x))
    local got = ref.flat(s(x))
    for i = 1, 4 do assert.are.equal(ref.f32(want[i] * 3), got[i]) end
    assert.are.same({"factor", "ffn", "norm", "proj"}, sorted_keys(s:parameters()))
    assert.is_true(nn.is_module(s))
    assert.are.equal("class Scaled", tostring(Scaled))
    assert.are.equal("Scaled", getmetatable(s).__name)
  end)

  it("keeps a class's own metamethods in its subclasses", function()
    local Plus = nn.Module:extend("Plus")
    function Plus.__add(a, b) return a.n + b.n end
    function Plus:init(n) self.n = n end
    local Sub = Plus:extend("Sub")
    assert.are.equal(5, Sub(2) + Sub(3))
  end)

  it("makes an empty module to hold children from nn.Module() itself", function()
    local m = nn.Module()
    m.lin = nn.Linear(2, 3)
    assert.is_true(nn.is_module(m))
    assert.are.same({"lin.bias", "lin.weight"}, sorted_keys(m:named_parameters()))
    assert.are.equal("Module(\n  (lin): Linear(input_dims=2, output_dims=3, bias=true)\n)", tostring(m))
    assert.has_error(function() m(lattice.ones({2})) end, "Module: forward is not defined")
  end)

  it("tells modules from classes and plain tables", function()
    assert.is_false(nn.is_module(Block))
    assert.is_false(nn.is_module(nn.Module))
    assert.is_false(nn.is_module({}))
    assert.is_false(nn.is_module(lattice.ones({1})))
    assert.is_true(nn.is_module(nn.ReLU()))
    assert.are.equal("class Module", tostring(nn.Module))
  end)

  it("rejects a class without a name and an instance without forward", function()
    assert.has_error(function() nn.Module:extend() end, "Module:extend: name must be a non-empty string")
    assert.has_error(function() nn.Module:extend("") end, "Module:extend: name must be a non-empty string")
    assert.has_error(function() Block(4):extend("Mine") end, "Module:extend: call it on a class, not on a module")
    local NoForward = nn.Module:extend("NoForward")
    assert.has_error(function() NoForward()(1) end, "NoForward: forward is not defined")
  end)
end)

describe("names", function()
  it("gives named_parameters the dotted names, list indices from 0", function()
    local m = Net(4)
    local named = m:named_parameters()
    assert.are.same(net_parameter_names(), sorted_keys(named))
    assert.are.equal(m.blocks[1].proj.weight, named["blocks.0.proj.weight"])
    assert.are.equal(m.blocks[3].ffn.down.bias, named["blocks.2.ffn.down.bias"])
    assert.are.equal(m.scales[2], named["scales.1"])
    assert.are.equal(m.out.layers[2].weight, named["out.layers.1.weight"])
  end)

  it("gives named_modules every module, the model itself as ''", function()
    local m = Net(4)
    local mods = m:named_modules()
    local want = {"", "embed", "out", "out.layers.0", "out.layers.1"}
    for i = 0, 2 do
      for _, s in ipairs({"", ".proj", ".ffn", ".ffn.up", ".ffn.act", ".ffn.down", ".norm"}) do
        want[#want + 1] = "blocks." .. i .. s
      end
    end
    table.sort(want)
    assert.are.same(want, sorted_keys(mods))
    assert.are.equal(m, mods[""])
    assert.are.equal(m.blocks[2].ffn.act, mods["blocks.1.ffn.act"])
    assert.are.equal(m.out.layers[1], mods["out.layers.0"])
  end)

  it("names a module held in two places under both names", function()
    local m = nn.Module()
    local shared = nn.Linear(2, 2)
    m.a, m.b = shared, {shared}
    assert.are.same({"a.bias", "a.weight", "b.0.bias", "b.0.weight"}, sorted_keys(m:named_parameters()))
  end)
end)

describe("parameters and trainable_parameters", function()
  it("mirror the module tree, Lua lists staying 1-based", function()
    local m = Net(4)
    local p = m:parameters()
    assert.are.same({"blocks", "embed", "out", "scales"}, sorted_keys(p))
    assert.are.equal(3, #p.blocks)
    assert.are.equal(m.blocks[1].proj.weight, p.blocks[1].proj.weight)
    assert.are.equal(m.blocks[3].ffn.up.bias, p.blocks[3].ffn.up.bias)
    assert.are.same({}, p.blocks[2].ffn.act) -- a module without parameters
    assert.are.equal(m.scales[1], p.scales[1])
    assert.are.equal(m.out.layers[2].weight, p.out.layers[2].weight)
    assert.are.same({"weight"}, sorted_keys(p.out.layers[2]))
    assert.is_nil(p.label)
    assert.is_nil(p.training)
    assert.are.same(net_parameter_names(), sorted_keys(flatten(p)))
  end)

  it("leave out configuration tables that hold no tensor", function()
    local m = nn.Module()
    m.kernel_size, m.options, m.lin = {3, 3, 3}, {mode = "same", dims = {1, 2}}, nn.Linear(2, 2)
    m:freeze()
    assert.are.same({"lin"}, sorted_keys(m:parameters()))
    assert.are.same({"lin"}, sorted_keys(m:trainable_parameters()))
    assert.are.same({"lin"}, sorted_keys(m:children()))
    assert.are.same({"lin.bias", "lin.weight"}, sorted_keys(m:named_parameters()))
  end)

  it("leave frozen parameters out of trainable_parameters, keeping list positions", function()
    local m = Net(4)
    m.blocks[2]:freeze()
    m:freeze{keys = "scales", recurse = false}
    local t = m:trainable_parameters()
    assert.are.equal(3, #t.blocks)
    assert.are.same({proj = {}, ffn = {up = {}, act = {}, down = {}}, norm = {}}, t.blocks[2])
    assert.are.same({{}, {}}, t.scales)
    assert.are.equal(m.blocks[3].proj.weight, t.blocks[3].proj.weight)
    assert.are.equal(m.embed.weight, t.embed.weight)
    assert.are.equal(#net_parameter_names() - 7 - 2, #sorted_keys(flatten(t)))
  end)

  it("count elements in num_parameters, all or the trainable ones", function()
    local m = Net(4)
    assert.are.equal(NET_SIZE, m:num_parameters())
    m:freeze{keys = "bias"}
    -- biases: proj 4, up 8, down 4 per block; the LayerNorm's 4
    assert.are.equal(NET_SIZE - 3 * 16 - 4, m:num_parameters{trainable = true})
    assert.are.equal(NET_SIZE, m:num_parameters{trainable = false})
    assert.has_error(function() m:num_parameters{all = true} end, "num_parameters: unknown option 'all'")
    assert.has_error(function() m:num_parameters{trainable = 1} end,
      "num_parameters: trainable must be a boolean, got number")
  end)
end)

describe("children", function()
  it("gives the direct child modules and the lists holding them", function()
    local m = Net(4)
    local c = m:children()
    assert.are.same({"blocks", "embed", "out"}, sorted_keys(c))
    assert.are.equal(m.embed, c.embed)
    assert.are.equal(m.out, c.out)
    assert.are.equal(3, #c.blocks)
    for i = 1, 3 do assert.are.equal(m.blocks[i], c.blocks[i]) end
    assert.are.same({"layers"}, sorted_keys(m.out:children()))
    assert.are.same({}, nn.Linear(2, 2):children())
  end)

  it("keeps {} at a list position that holds no module", function()
    local double = function(x) return x * 2 end
    local s = nn.Sequential(nn.ReLU(), double, nn.Tanh())
    local c = s:children()
    assert.are.equal(s.layers[1], c.layers[1])
    assert.are.same({}, c.layers[2])
    assert.are.equal(s.layers[3], c.layers[3])
  end)
end)

describe("freeze and unfreeze", function()
  local function trainable_names(m) return sorted_keys(flatten(m:trainable_parameters())) end
  local function without(names, pattern)
    local out = {}
    for _, n in ipairs(names) do
      if not n:match(pattern) then out[#out + 1] = n end
    end
    return out
  end

  it("freezes every parameter of every module by default", function()
    local m = Net(4)
    assert.are.equal(m, m:freeze())
    assert.are.same({}, trainable_names(m))
    assert.are.equal(0, m:num_parameters{trainable = true})
    m:unfreeze()
    assert.are.same(net_parameter_names(), trainable_names(m))
  end)

  it("freezes parameters by key in every module", function()
    local m = Net(4)
    m:freeze{keys = "bias"}
    assert.are.same(without(net_parameter_names(), "bias$"), trainable_names(m))
    m:freeze{keys = {"weight", "bias"}}
    assert.are.same({"scales.0", "scales.1"}, trainable_names(m))
    m:unfreeze{keys = "weight"}
    assert.are.same(without(net_parameter_names(), "bias$"), trainable_names(m))
    m:unfreeze{keys = {"bias"}}
    assert.are.same(net_parameter_names(), trainable_names(m))
  end)

  it("freezes only the module's own parameters with recurse = false", function()
    local m = Net(4)
    m:freeze{recurse = false}
    assert.are.same(without(net_parameter_names(), "^scales"), trainable_names(m))
    m.blocks[1]:freeze{recurse = false} -- a Block holds no tensor itself
    assert.are.same(without(net_parameter_names(), "^scales"), trainable_names(m))
    m.blocks[1].proj:freeze{recurse = false, keys = "weight"}
    assert.are.same(without(without(net_parameter_names(), "^scales"), "^blocks%.0%.proj%.weight"), trainable_names(m))
    m:unfreeze{recurse = false}
    assert.are.same(without(net_parameter_names(), "^blocks%.0%.proj%.weight"), trainable_names(m))
  end)

  it("raises for a key a module lacks with strict = true, changing nothing", function()
    local m = Net(4)
    assert.has_error(function() m:freeze{keys = "bias", strict = true} end, "freeze: Net has no parameter 'bias'")
    assert.are.same(net_parameter_names(), trainable_names(m))
    -- the holder and its Linear have a bias, the RMSNorm after them does not
    local holder = nn.Module()
    holder.bias, holder.lin, holder.norm = lattice.zeros({2}), nn.Linear(2, 2), nn.RMSNorm(2)
    assert.has_error(function() holder:freeze{keys = "bias", strict = true} end,
      "freeze: RMSNorm has no parameter 'bias'")
    assert.are.same({"bias", "lin.bias", "lin.weight", "norm.weight"}, trainable_names(holder))
    assert.has_error(function() m.out:freeze{keys = "bias", strict = true} end,
      "freeze: Sequential has no parameter 'bias'")
    assert.has_error(function() m.blocks[1].proj:freeze{keys = "input_dims", strict = true} end,
      "freeze: Linear has no parameter 'input_dims'")
    assert.has_error(function() m.blocks[1].proj:unfreeze{keys = "gain", strict = true} end,
      "unfreeze: Linear has no parameter 'gain'")
    assert.are.same(net_parameter_names(), trainable_names(m))
    m.blocks[1].proj:freeze{keys = {"weight", "bias"}, strict = true}
    m:freeze{keys = "scales", recurse = false, strict = true}
    assert.are.equal(#net_parameter_names() - 4, #trainable_names(m))
  end)

  it("ignores keys a module lacks without strict", function()
    local m = Net(4)
    m:freeze{keys = {"bias", "no_such_key"}}
    assert.are.same(without(net_parameter_names(), "bias$"), trainable_names(m))
  end)

  it("keeps BatchNorm's running statistics frozen through unfreeze", function()
    local m = nn.Module()
    m.bn = nn.BatchNorm(3)
    assert.are.same({"bn.bias", "bn.weight"}, trainable_names(m))
    m:unfreeze()
    assert.are.same({"bn.bias", "bn.weight"}, trainable_names(m))
    m.bn:unfreeze{keys = {"running_mean", "running_var"}}
    assert.are.same({"bn.bias", "bn.weight"}, trainable_names(m))
    assert.are.same({"bn.bias", "bn.running_mean", "bn.running_var", "bn.weight"},
      sorted_keys(m:named_parameters()))
  end)

  it("rejects bad options with their messages", function()
    local m = Net(4)
    assert.has_error(function() m:freeze("bias") end, "freeze: options must be a table, got string")
    assert.has_error(function() m:freeze{key = "bias"} end, "freeze: unknown option 'key'")
    assert.has_error(function() m:freeze{keys = 3} end, "freeze: keys must be a string or a list of strings, got number")
    assert.has_error(function() m:freeze{keys = {"bias", 3}} end, "freeze: keys[2] must be a string, got number")
    assert.has_error(function() m:unfreeze{keys = {name = "bias"}} end, "unfreeze: keys[name] must be a string, got string")
    assert.has_error(function() m:freeze{recurse = "no"} end, "freeze: recurse must be a boolean, got string")
    assert.has_error(function() m:unfreeze{strict = 1} end, "unfreeze: strict must be a boolean, got number")
    assert.are.same(net_parameter_names(), trainable_names(m))
  end)
end)

describe("update", function()
  it("replaces parameters by those in a tree, in lists too", function()
    local m = Net(4)
    local w, s = lattice.ones({4, 4}), lattice.zeros({4})
    assert.are.equal(m, m:update{blocks = {[2] = {proj = {weight = w}}}, scales = {[2] = s}})
    assert.are.equal(w, m.blocks[2].proj.weight)
    assert.are.equal(s, m.scales[2])
    assert.are.equal(w, m:named_parameters()["blocks.1.proj.weight"])
    local y = m(ids) -- the built-in Linear reads its new weight
    assert.are.same({2, 3, 3}, y.shape)
  end)

  it("takes back the tree parameters() gave, and trainable_parameters() of a frozen list", function()
    local m = Net(4)
    local before = m:named_parameters()
    m:update(m:parameters())
    m:freeze{keys = "scales", recurse = false}
    m:update(m:trainable_parameters())
    local after = m:named_parameters()
    for name, t in pairs(before) do assert.are.equal(t, after[name], name) end
  end)

  it("checks shapes and dtypes, naming the dotted parameter", function()
    local m = Net(4)
    assert.has_error(function() m:update{blocks = {{}, {}, {ffn = {up = {weight = lattice.ones({4, 8})}}}}} end,
      "update: blocks.2.ffn.up.weight has shape {8,4}, got {4,8}")
    assert.has_error(function() m:update{out = {layers = {[2] = {weight = lattice.ones({3, 4}, "float16")}}}} end,
      "update: out.layers.1.weight has dtype float32, got float16")
    assert.has_error(function() m:update{scales = {lattice.ones({4, 1})}} end,
      "update: scales.0 has shape {4}, got {4,1}")
    assert.has_error(function() m:update{embed = {weight = 1}} end,
      "update: embed.weight: expected a lattice.Tensor, got number")
    assert.has_error(function() m:update{embed = lattice.ones({10, 4})} end,
      "update: embed: expected a table of parameters, got a tensor")
    assert.has_error(function() m:update{blocks = {"x"}} end,
      "update: blocks.0: expected a table of parameters, got string")
    assert.has_error(function() m:update() end, "update: tree: expected a table of parameters, got nil")
    assert.has_error(function() m:update{blocks = {Block(4)}} end,
      "update: blocks.0: expected a table of parameters, got a module")
    assert.has_error(function() m:update{out = nn.Sequential()} end,
      "update: out: expected a table of parameters, got a module")
  end)

  it("raises for unknown names unless strict = false", function()
    local m = Net(4)
    assert.has_error(function() m:update{blocks = {{proj = {gain = lattice.ones({4})}}}} end,
      "update: blocks.0.proj.gain: no such parameter")
    assert.has_error(function() m:update{blocks = {[4] = {}}} end, "update: blocks.3: no such parameter")
    assert.has_error(function() m:update{label = lattice.ones({1})} end, "update: label: no such parameter")
    -- the protocol's own fields are not parameters
    assert.has_error(function() m:update{blocks = {{_frozen = {proj = true}}}} end, "update: blocks.0._frozen: no such parameter")
    assert.has_error(function() m:update{embed = {_order = {}}} end, "update: embed._order: no such parameter")
    local w = lattice.ones({4, 4})
    m:update({head = {weight = w}, blocks = {{proj = {weight = w, gain = w}}}}, {strict = false})
    assert.are.equal(w, m.blocks[1].proj.weight)
    assert.has_error(function() m:update({}, {strict = "no"}) end, "update: strict must be a boolean, got string")
    assert.has_error(function() m:update({}, {force = true}) end, "update: unknown option 'force'")
  end)

  it("changes nothing when any part of the tree is wrong", function()
    local m = Net(4)
    local before = m:named_parameters()
    assert.has_error(function()
      m:update{blocks = {{proj = {weight = lattice.ones({4, 4})}}, {proj = {weight = lattice.ones({3, 3})}}},
               scales = {lattice.ones({4})}}
    end, "update: blocks.1.proj.weight has shape {4,4}, got {3,3}")
    local after = m:named_parameters()
    for name, t in pairs(before) do assert.are.equal(t, after[name], name) end
  end)
end)

describe("update_modules", function()
  it("replaces child modules by those in a tree, in lists too", function()
    local m = Net(4)
    local id, lin = nn.Identity(), nn.Linear(4, 3, {bias = false})
    assert.are.equal(m, m:update_modules{blocks = {[3] = {ffn = {act = id}}}, out = {layers = {[2] = lin}}})
    assert.are.equal(id, m.blocks[3].ffn.act)
    assert.are.equal(lin, m.out.layers[2])
    assert.are.equal(lin.weight, m:named_parameters()["out.layers.1.weight"])
  end)

  it("takes back the tree children() gave, {} for a function in a list", function()
    local s = nn.Sequential(nn.ReLU(), function(x) return x end, nn.Tanh())
    local c = s:children()
    c.layers[3] = nn.Sigmoid()
    s:update_modules(c)
    assert.are.equal(c.layers[3], s.layers[3])
    assert.are.equal("function", type(s.layers[2]))
  end)

  it("raises for names without a module unless strict = false, changing nothing", function()
    local m = Net(4)
    local act = m.blocks[1].ffn.act
    assert.has_error(function() m:update_modules{blocks = {{ffn = {act = nn.ReLU()}}, {mlp = nn.ReLU()}}} end,
      "update_modules: blocks.1.mlp: no such module")
    assert.are.equal(act, m.blocks[1].ffn.act)
    assert.has_error(function() m:update_modules{scales = {nn.ReLU()}} end, "update_modules: scales.0: no such module")
    assert.has_error(function() m:update_modules{embed = {weight = nn.ReLU()}} end,
      "update_modules: embed.weight: no such module")
    assert.has_error(function() m:update_modules(nn.ReLU()) end,
      "update_modules: tree: expected a table of modules, got a module")
    assert.has_error(function() m:update_modules{blocks = {{_order = {}}}} end,
      "update_modules: blocks.0._order: no such module")
    local relu = nn.ReLU()
    m:update_modules({blocks = {{ffn = {act = relu}}, {mlp = nn.ReLU()}}}, {strict = false})
    assert.are.equal(relu, m.blocks[1].ffn.act)
  end)
end)

describe("set_child and get_child", function()
  it("replace and find a module by its dotted name", function()
    local m = Net(4)
    local q = nn.Linear(4, 4, {bias = false})
    assert.are.equal(m, m:set_child("blocks.0.ffn.up", nn.Linear(4, 8)))
    m:set_child("blocks.1.proj", q)
    assert.are.equal(q, m.blocks[2].proj)
    assert.are.equal(q, m:get_child("blocks.1.proj"))
    assert.is_nil(m:named_parameters()["blocks.1.proj.bias"])
    local b = Block(4)
    m:set_child("blocks.2", b)
    assert.are.equal(b, m.blocks[3])
    m:set_child("out.layers.0", nn.RMSNorm(4))
    assert.are.equal("RMSNorm", getmetatable(m.out.layers[1]).__type_name)
    assert.are.equal(m.blocks[1].ffn, m:get_child("blocks.0.ffn"))
    assert.are.same({2, 3, 3}, m(ids).shape)
  end)

  it("reject paths that lead to no module", function()
    local m = Net(4)
    assert.has_error(function() m:set_child("blocks.3.proj", nn.ReLU()) end, "set_child: 'blocks.3.proj' has no '3'")
    assert.has_error(function() m:set_child("blocks.0.attn", nn.ReLU()) end, "set_child: 'blocks.0.attn' has no 'attn'")
    assert.has_error(function() m:set_child("blocks.0.proj.weight", nn.ReLU()) end,
      "set_child: 'blocks.0.proj.weight' is not a module")
    assert.has_error(function() m:set_child("blocks.0.proj.weight.x", nn.ReLU()) end,
      "set_child: 'blocks.0.proj.weight.x' is not a module path (at 'x')")
    assert.has_error(function() m:set_child("blocks", nn.ReLU()) end, "set_child: 'blocks' is not a module")
    assert.has_error(function() m:set_child("label", nn.ReLU()) end, "set_child: 'label' is not a module")
    assert.has_error(function() m:set_child("blocks.0", lattice.ones({1})) end,
      "set_child: the new child must be a module, got userdata")
    assert.has_error(function() m:set_child("", nn.ReLU()) end, "set_child: path must be a non-empty string")
    assert.has_error(function() m:set_child(1, nn.ReLU()) end, "set_child: path must be a non-empty string")
    assert.has_error(function() m:get_child("blocks.1e400") end, "get_child: 'blocks.1e400' has no '1e400'")
    assert.has_error(function() m:get_child("scales.0") end, "get_child: 'scales.0' is not a module")
    assert.has_error(function() m:get_child(nil) end, "get_child: path must be a non-empty string")
  end)
end)

describe("apply and apply_to_modules", function()
  it("apply replaces every parameter by fn of it", function()
    local m = Net(4)
    local old = m:named_parameters()
    assert.are.equal(m, m:apply(function(p) return p:astype("float16") end))
    for name, t in pairs(m:named_parameters()) do
      assert.are.equal("float16", t.dtype, name)
      assert.are.same(old[name]:astype("float16"):tolist(), t:tolist(), name)
    end
    assert.are.equal("float16", m.scales[2].dtype)
    assert.are.equal("float16", m(ids).dtype)
  end)

  it("apply changes nothing when fn returns something else", function()
    local m = Net(4)
    local before = m:named_parameters()
    local n = 0
    assert.has_error(function()
      m:apply(function(p)
        n = n + 1
        return n < 5 and p * 2 or "no"
      end)
    end, "apply: fn returned string for blocks.0.ffn.up.bias") -- the fifth in the walk's order
    for name, t in pairs(m:named_parameters()) do assert.are.equal(before[name], t, name) end
    assert.has_error(function() m:apply() end, "apply: fn must be a function, got nil")
  end)

  it("apply_to_modules calls fn(name, module) on every module, parents first", function()
    local m = Net(4)
    local seen, order = {}, {}
    m:apply_to_modules(function(name, mod)
      seen[name] = mod
      order[#order + 1] = name
    end)
    assert.are.same(sorted_keys(m:named_modules()), sorted_keys(seen))
    assert.are.equal("", order[1])
    local pos = {}
    for i, name in ipairs(order) do pos[name] = i end
    for name in pairs(pos) do
      local parent = name:match("^(.*)%.[^.]+$")
      if parent and pos[parent] then assert.is_true(pos[parent] < pos[name], name) end
    end
    assert.has_error(function() m:apply_to_modules("x") end, "apply_to_modules: fn must be a function, got string")
  end)
end)

describe("train and eval", function()
  local function modes(m)
    local out = {}
    m:apply_to_modules(function(name, mod) out[name] = mod.training end)
    return out
  end

  it("set training in every module, built-in and Lua alike", function()
    local m = Net(4)
    assert.is_true(m.training)
    assert.are.equal(m, m:eval())
    for name, t in pairs(modes(m)) do assert.is_false(t, name) end
    assert.is_false(m.blocks[2].ffn.act.training)
    assert.is_false(m.out.layers[1].training)
    m.blocks[1]:train()
    assert.is_true(m.blocks[1].ffn.up.training)
    assert.is_false(m.blocks[2].ffn.up.training)
    m:train(true)
    for name, t in pairs(modes(m)) do assert.is_true(t, name) end
    m:train(false)
    for name, t in pairs(modes(m)) do assert.is_false(t, name) end
  end)

  it("switch a Dropout inside the tree to the identity", function()
    local m = nn.Module()
    m.drop = {nn.Dropout{p = 0.5}}
    local x = lattice.ones({64})
    m:eval()
    assert.are.equal(x, m.drop[1](x))
    m:train()
    assert.are_not.equal(x, m.drop[1](x))
  end)

  it("rejects a mode that is not a boolean", function()
    assert.has_error(function() Net(4):train("x") end, "train: mode must be a boolean, got string")
  end)
end)

describe("tostring", function()
  it("prints an indented tree with each layer's summary", function()
    local Small = nn.Module:extend("Small")
    function Small:init()
      self.lin = nn.Linear(2, 3)
      self.blocks = {nn.ReLU(), FFN(3, 6)}
      self.seq = nn.Sequential(nn.LayerNorm(3), nn.Dropout{p = 0.25})
      self.gain = lattice.ones({3})
    end
    assert.are.equal(table.concat({
      "Small(",
      "  (lin): Linear(input_dims=2, output_dims=3, bias=true)",
      "  (blocks.0): ReLU()",
      "  (blocks.1): FFN(",
      "    (up): Linear(input_dims=3, output_dims=6, bias=true)",
      "    (act): GELU(approx=\"none\")",
      "    (down): Linear(input_dims=6, output_dims=3, bias=true)",
      "  )",
      "  (seq): Sequential(",
      "    (layers.0): LayerNorm(3, eps=1e-05, affine=true)",
      "    (layers.1): Dropout(p=0.25)",
      "  )",
      ")",
    }, "\n"), tostring(Small()))
    assert.are.equal("Embedding(10, 4)", tostring(nn.Embedding(10, 4)))
  end)
end)

describe("assignment to a built-in module's fields", function()
  it("accepts a tensor of the parameter's shape, in any float dtype", function()
    local lin = nn.Linear(2, 1)
    lin.weight = lattice.array({{1, 2}})
    lin.bias = lattice.array({0.5}, "float16")
    assert.are.same({{5.5}}, lin(lattice.array({{1, 2}})):tolist())
    lin.training = false
    assert.is_false(lin.training)
  end)

  it("rejects a wrong shape, a non-tensor, an integer tensor, other fields and a non-boolean mode", function()
    local lin = nn.Linear(2, 3)
    assert.has_error(function() lin.weight = lattice.zeros({2, 2}) end,
      "Linear: weight has shape {3,2}, got a tensor of shape {2,2}")
    assert.has_error(function() lin.weight = 1 end, "Linear: weight must be a lattice.Tensor, got number")
    assert.has_error(function() lin.bias = lattice.zeros({3}, "int32") end, "Linear: bias must be a float tensor, got int32")
    assert.has_error(function() lin.foo = 1 end, "Linear: field 'foo' cannot be set")
    assert.has_error(function() lin.input_dims = 3 end, "Linear: field 'input_dims' cannot be set")
    assert.has_error(function() lin.training = "x" end, "Linear: training must be a boolean, got string")
    assert.has_error(function() nn.ReLU().training = 1 end, "ReLU: training must be a boolean, got number")
  end)
end)

describe("save_weights and load_weights", function()
  -- A Net with some float16 and bfloat16 parameters.
  local function mixed_net()
    local m = Net(4)
    m.blocks[1].proj.weight = m.blocks[1].proj.weight:astype("float16")
    m.blocks[2].ffn.up.bias = m.blocks[2].ffn.up.bias:astype("bfloat16")
    m.out.layers[2].weight = m.out.layers[2].weight:astype("bfloat16")
    m.scales[2] = m.scales[2]:astype("float16")
    return m
  end

  it("round-trips every parameter bit for bit, float16 and bfloat16 included", function()
    local a, b = mixed_net(), mixed_net()
    local path, again = tmp_path("a"), tmp_path("b")
    assert.are.equal(a, a:save_weights(path))
    assert.are.equal(b, b:load_weights(path))
    local na, nb = a:named_parameters(), b:named_parameters()
    assert.are.same(sorted_keys(na), sorted_keys(nb))
    for name, t in pairs(na) do assert_same_bits(t, nb[name], name) end
    assert.are.equal("bfloat16", b.out.layers[2].weight.dtype)
    b:save_weights(again)
    assert.are.equal(read_file(path), read_file(again))
    assert.are.same(ref.flat(a(ids)), ref.flat(b(ids)))
    os.remove(path)
    os.remove(again)
  end)

  it("writes the dotted names, list indices from 0", function()
    local path = tmp_path("names")
    Net(4):save_weights(path)
    assert.are.same(net_parameter_names(), sorted_keys(lattice.load_safetensors(path)))
    os.remove(path)
  end)

  it("loads a file written the reference way (an MLX nn.Sequential's layers.0.weight)", function()
    local path = tmp_path("reference")
    lattice.save_safetensors(path, {
      ["layers.0.weight"] = lattice.array({{1, 0}, {0, -1}, {2, 3}}),
      ["layers.0.bias"] = lattice.array({0, 0, -10}),
      ["layers.2.weight"] = lattice.array({{1, 1, 1}}),
      ["layers.2.bias"] = lattice.array({0.5}),
    })
    local s = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    s:load_weights(path)
    assert.are.same({{1, 0}, {0, -1}, {2, 3}}, s.layers[1].weight:tolist())
    assert.are.same({0.5}, s.layers[3].bias:tolist())
    -- x = (1, -2): h = relu(1, 2, 2 - 6 - 10) = (1, 2, 0); y = 1 + 2 + 0 + 0.5
    assert.are.same({{3.5}}, s(lattice.array({{1, -2}})):tolist())
    os.remove(path)
  end)

  it("converts a parameter stored in another float dtype to the model's", function()
    local path = tmp_path("dtype")
    lattice.save_safetensors(path, {weight = lattice.array({{0.1, 2}}, "float16"), bias = lattice.array({1})})
    local lin = nn.Linear(2, 1)
    lin:load_weights(path)
    assert.are.equal("float32", lin.weight.dtype)
    assert.are.same(lattice.array({{0.1, 2}}, "float16"):tolist(), lin.weight:tolist())
    os.remove(path)
  end)

  it("names missing, unexpected and mis-shaped keys when strict, changing nothing", function()
    local path = tmp_path("strict")
    local s = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    s:save_weights(path)
    local function unchanged(m)
      local before = m:named_parameters()
      return function()
        for name, t in pairs(m:named_parameters()) do assert.are.equal(before[name], t, name) end
      end
    end
    local short = nn.Sequential(nn.Linear(2, 3))
    local check = unchanged(short)
    assert.has_error(function() short:load_weights(path) end,
      "load_weights: " .. path .. ": 2 unexpected parameters: layers.2.bias, layers.2.weight")
    check()
    local long = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1), nn.Linear(1, 1))
    check = unchanged(long)
    assert.has_error(function() long:load_weights(path) end,
      "load_weights: " .. path .. ": 2 parameters missing: layers.3.bias, layers.3.weight")
    check()
    local other = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1, {bias = false}), nn.Identity())
    assert.has_error(function() other:load_weights(path) end, "load_weights: " .. path ..
      ": 1 parameter missing: layers.1.weight; 2 unexpected parameters: layers.2.bias, layers.2.weight")
    local wide = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(3, 1))
    check = unchanged(wide)
    assert.has_error(function() wide:load_weights(path) end,
      "load_weights: " .. path .. ": layers.0.bias has shape {3} in the file, the model expects {4}")
    check()
    assert.has_error(function() wide:load_weights(path, {strict = false}) end,
      "load_weights: " .. path .. ": layers.0.bias has shape {3} in the file, the model expects {4}")
    check()
    os.remove(path)
  end)

  it("lists at most ten names and counts the rest", function()
    local path = tmp_path("many")
    lattice.save_safetensors(path, {})
    local m = nn.Module()
    m.ws = {}
    for i = 1, 12 do m.ws[i] = lattice.ones({1}) end
    assert.has_error(function() m:load_weights(path) end, "load_weights: " .. path ..
      ": 12 parameters missing: ws.0, ws.1, ws.10, ws.11, ws.2, ws.3, ws.4, ws.5, ws.6, ws.7, ... (12 in all)")
    os.remove(path)
  end)

  it("loads what the file has and leaves the rest with strict = false", function()
    local path = tmp_path("loose")
    lattice.save_safetensors(path, {["layers.0.weight"] = lattice.ones({3, 2}), ["head.weight"] = lattice.ones({1})})
    local s = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    local bias = s.layers[1].bias
    s:load_weights(path, {strict = false})
    assert.are.same({{1, 1}, {1, 1}, {1, 1}}, s.layers[1].weight:tolist())
    assert.are.equal(bias, s.layers[1].bias)
    os.remove(path)
  end)

  it("rejects bad paths and options with their messages", function()
    local m = nn.Linear(1, 1)
    assert.has_error(function() m:save_weights(5) end, "save_weights: path must be a string, got number")
    assert.has_error(function() m:load_weights(nil) end, "load_weights: path must be a string, got nil")
    assert.has_error(function() m:load_weights("/nonexistent/w.safetensors") end,
      "load_weights: /nonexistent/w.safetensors: cannot open: No such file or directory")
    assert.has_error(function() m:save_weights("/nonexistent/dir/w.safetensors") end,
      "save_weights: /nonexistent/dir/w.safetensors: cannot create a temporary file next to it: No such file or directory")
    assert.has_error(function() m:load_weights("x", {strict = 0}) end, "load_weights: strict must be a boolean, got number")
    assert.has_error(function() m:load_weights("x", {map = true}) end, "load_weights: unknown option 'map'")
  end)
end)

describe("errors inside a child", function()
  it("are prefixed with the child's dotted name from the outermost call", function()
    local m = Net(4)
    m:set_child("blocks.2.ffn", Boom("boom"))
    assert.has_error(function() m(ids) end, "blocks.2.ffn: boom")
    -- called directly, a block names its children relative to itself
    assert.has_error(function() m.blocks[3](lattice.ones({1, 4})) end, "ffn: boom")
    assert.has_error(function() m.blocks[3].ffn(1) end, "boom")
  end)

  it("name the innermost built-in layer that raised", function()
    local m = Net(4)
    m:set_child("blocks.1.ffn.down", nn.Linear(5, 4))
    assert.has_error(function() m(ids) end, "blocks.1.ffn.down: linear: weight has 5 input features, x has 8")
    local n = Net(4)
    n:set_child("out.layers.1", nn.Linear(3, 3))
    assert.has_error(function() n(ids) end, "out.layers.1: linear: weight has 3 input features, x has 4")
  end)

  it("are prefixed through a Sequential at the top", function()
    local s = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(2, 2))
    assert.has_error(function() s(lattice.ones({1, 2})) end, "layers.2: linear: weight has 2 input features, x has 3")
    local t = nn.Sequential(nn.Identity(), nn.Sequential(nn.ReLU(), Boom("deep")))
    assert.has_error(function() t(lattice.ones({1})) end, "layers.1.layers.1: deep")
  end)

  it("are not mislabelled by an earlier error a pcall inside a forward swallowed", function()
    local Careful = nn.Module:extend("Careful")
    function Careful:init()
      self.try = Boom("swallowed")
      self.lin = nn.Linear(2, 2)
    end
    function Careful:forward(x)
      assert(not pcall(self.try, x))
      return self.lin(x)
    end
    local m = nn.Module()
    m.blocks = {Careful()}
    m.forward = function(self, x) return self.blocks[1](x) end
    assert.has_error(function() m(lattice.ones({1, 3})) end, "blocks.0.lin: linear: weight has 2 input features, x has 3")
    -- and the next call starts afresh
    assert.has_error(function() m(lattice.ones({1, 3})) end, "blocks.0.lin: linear: weight has 2 input features, x has 3")
    assert.are.same({1, 2}, m(lattice.ones({1, 2})).shape)
  end)

  it("name the module that raised a new error after it swallowed one", function()
    local Raiser = nn.Module:extend("Raiser")
    function Raiser:init() self.try = Boom("first") end
    function Raiser:forward(x)
      pcall(self.try, x)
      error("second", 0)
    end
    local m = nn.Module()
    m.inner = Raiser()
    m.forward = function(self, x) return self.inner(x) end
    assert.has_error(function() m(1) end, "inner: second")
  end)

  it("name the module that made the one that raised, when that one is not in the tree", function()
    local Maker = nn.Module:extend("Maker")
    function Maker.forward(_, x) return Boom("made here")(x) end
    local m = nn.Module()
    m.maker = {Maker()}
    m.forward = function(self, x) return self.maker[1](x) end
    assert.has_error(function() m(1) end, "maker.0: made here")
  end)

  it("pass error values that are not strings unchanged", function()
    local err = {code = 7}
    local m = nn.Module()
    m.child = Boom(err)
    m.forward = function(self, x) return self.child(x) end
    local ok, got = pcall(m, 1)
    assert.is_false(ok)
    assert.are.equal(err, got)
  end)

  it("leave an error the model raises itself as it is", function()
    local m = nn.Module()
    m.forward = function() error("top", 0) end
    assert.has_error(function() m(1) end, "top")
  end)

  it("from a function in a Sequential are named after the Sequential", function()
    local m = nn.Module()
    m.seq = nn.Sequential(nn.Identity(), function() error("in a function", 0) end)
    m.forward = function(self, x) return self.seq(x) end
    assert.has_error(function() m(1) end, "seq: in a function")
  end)
end)

describe("Sequential", function()
  it("calls its modules and functions in order", function()
    local s = nn.Sequential(nn.ReLU(), function(x) return x * 2 end, nn.Tanh())
    local y = s(lattice.array({-1, 0.25}))
    local e = math.exp(2 * 0.5) -- tanh(0.5) = (e^1 - 1) / (e^1 + 1), from relu(0.25) * 2
    local got = y:tolist()
    assert.are.equal(0, got[1])
    assert.is_true(math.abs(got[2] - (e - 1) / (e + 1)) < 1e-6)
    local x = lattice.ones({2})
    assert.are.equal(x, nn.Sequential()(x))
  end)

  it("rejects arguments that are neither modules nor functions", function()
    assert.has_error(function() nn.Sequential(nn.ReLU(), 1) end,
      "Sequential: argument 2 must be a module or a function, got number")
    assert.has_error(function() nn.Sequential(nn.ReLU(), nil, nn.ReLU()) end,
      "Sequential: argument 2 must be a module or a function, got nil")
  end)
end)

describe("nn.value_and_grad", function()
  -- y = (x W^T + b) * gains[1], loss = sum(y), with W = (1 2), b = 0.5, g = 3
  -- and x = ((1 2) (3 4)): dW = g * sum of the rows of x = (12 18), db = g * 2,
  -- dg = sum(x W^T + b) = 5.5 + 11.5.
  local Scaled = nn.Module:extend("ScaledLinear")
  function Scaled:init()
    self.lin = nn.Linear(2, 1)
    self.lin.weight, self.lin.bias = lattice.array({{1, 2}}), lattice.array({0.5})
    self.gains = {lattice.array({3})}
  end
  function Scaled:forward(x) return self.lin(x) * self.gains[1] end
  local x = lattice.array({{1, 2}, {3, 4}})
  local function loss(model, input) return lattice.sum(model(input)) end

  it("gives the value and gradients mirroring trainable_parameters", function()
    local m = Scaled()
    local value, grads = nn.value_and_grad(m, loss)(m, x)
    assert.are.equal(3 * 17, value:item())
    assert.are.same({{12, 18}}, grads.lin.weight:tolist())
    assert.are.same({6}, grads.lin.bias:tolist())
    assert.are.same({17}, grads.gains[1]:tolist())
  end)

  it("gives a gradient for every trainable parameter of a nested model, of its shape", function()
    local m = Net(4)
    m.blocks[2]:freeze()
    m:freeze{keys = "bias"}
    local _, grads = nn.value_and_grad(m, function(model) return lattice.sum(model(ids)) end)(m)
    local want, got = flatten(m:trainable_parameters()), flatten(grads)
    assert.are.same(sorted_keys(want), sorted_keys(got))
    for name, t in pairs(want) do assert.are.same(t.shape, got[name].shape, name) end
    assert.are.same({{}, {}, {}}, {grads.blocks[2].proj, grads.blocks[2].norm, grads.blocks[2].ffn.up})
  end)

  -- The tree {a = {[1] = {b = t}}} for the dotted name "a.0.b".
  local function tree_at(name, t)
    local parts = {}
    for part in name:gmatch("[^.]+") do parts[#parts + 1] = part:match("^%d+$") and tonumber(part) + 1 or part end
    local tree = t
    for i = #parts, 1, -1 do tree = {[parts[i]] = tree} end
    return tree
  end

  it("puts each gradient at its parameter's place (central differences in float64)", function()
    local m = Net(4)
    m:apply(function(p) return p:astype("float64") end)
    local target = lattice.array(ref.rand({2, 3, 3}, ref.generator(7)), "float64")
    local function fn(model) return lattice.sum(lattice.square(model(ids) - target)) end
    local _, grads = nn.value_and_grad(m, fn)(m)
    local named_grads = flatten(grads)
    -- the same element of blocks whose parameters all have the same shapes:
    -- a gradient put at another block's place would differ
    local names = {"blocks.0.ffn.down.weight", "blocks.1.ffn.down.weight", "blocks.2.ffn.down.weight",
                   "blocks.1.proj.bias", "scales.1", "out.layers.0.bias", "embed.weight"}
    local k, eps = 3, 1e-6 -- element 2 of each (of embed row 0, which ids use)
    for _, name in ipairs(names) do
      local p = m:named_parameters()[name]
      local values = ref.flat(p)
      local function loss_at(v)
        local moved = {table.unpack(values)}
        moved[k] = v
        m:update(tree_at(name, ref.tensor(moved, p.shape, "float64")))
        local l = fn(m):item()
        m:update(tree_at(name, p))
        return l
      end
      local numeric = (loss_at(values[k] + eps) - loss_at(values[k] - eps)) / (2 * eps)
      local got = ref.flat(named_grads[name])[k]
      assert.is_true(math.abs(got - numeric) <= 1e-7 + 1e-6 * math.abs(numeric),
        ("%s[%d]: gradient %.10g, central difference %.10g"):format(name, k - 1, got, numeric))
    end
  end)

  it("gives frozen parameters no gradient and does no backward work for them", function()
    local m = Scaled()
    m.lin:freeze{keys = "bias"}
    local _, grads = nn.value_and_grad(m, loss)(m, x)
    assert.is_nil(grads.lin.bias)
    assert.are.same({{12, 18}}, grads.lin.weight:tolist())
    m:freeze()
    local recorded
    local value, frozen = nn.value_and_grad(m, function(model, input)
      local l = loss(model, input)
      recorded = core.tape_size()
      return l
    end)(m, x)
    assert.are.equal(0, recorded)
    assert.are.equal(51, value:item())
    assert.are.same({lin = {}, gains = {{}}}, frozen)
  end)

  it("puts the model's own tensors back after the call, and after an error in fn", function()
    local m = Scaled()
    local w, g = m.lin.weight, m.gains[1]
    local inside
    nn.value_and_grad(m, function(model, input)
      inside = model.lin.weight
      return loss(model, input)
    end)(m, x)
    assert.are_not.equal(w, inside)
    assert.are.equal(w, m.lin.weight)
    assert.are.equal(g, m.gains[1])
    local failing = nn.value_and_grad(m, function() error("in fn", 0) end)
    assert.has_error(function() failing(m, x) end, "in fn")
    assert.are.equal(w, m.lin.weight)
    assert.are.equal(g, m.gains[1])
    assert.has_error(function() nn.value_and_grad(m, function() return 1 end)(m, x) end,
      "value_and_grad: the function must return a lattice.Tensor, got number")
    assert.are.equal(w, m.lin.weight)
  end)

  it("keeps a frozen list's tensors in place", function()
    local m = Scaled()
    local g = m.gains[1]
    m:freeze{keys = "gains", recurse = false}
    local _, grads = nn.value_and_grad(m, function(model, input)
      assert.are.equal(g, model.gains[1])
      return loss(model, input)
    end)(m, x)
    assert.are.same({{}}, grads.gains)
    assert.are.equal(g, m.gains[1])
  end)

  it("passes extra return values through after the gradients", function()
    local m = Scaled()
    local value, grads, a, b = nn.value_and_grad(m, function(model, input)
      return loss(model, input), "aux", 42
    end)(m, x)
    assert.are.equal(51, value:item())
    assert.are.same({6}, grads.lin.bias:tolist())
    assert.are.equal("aux", a)
    assert.are.equal(42, b)
  end)

  it("is not disturbed by a nested call that fails inside fn", function()
    local m = Scaled()
    local w = m.lin.weight
    local step
    step = nn.value_and_grad(m, function(model, input, depth)
      if depth == 0 then assert(not pcall(step, model, input, 1)) end
      return loss(model, input)
    end)
    local _, grads = step(m, x, 0)
    assert.are.same({{12, 18}}, grads.lin.weight:tolist())
    assert.are.equal(w, m.lin.weight)
  end)

  it("rejects a model that is not a module and fn that is not a function", function()
    assert.has_error(function() nn.value_and_grad({}, loss) end, "nn.value_and_grad: model must be a module, got table")
    assert.has_error(function() nn.value_and_grad(Scaled(), 1) end, "nn.value_and_grad: fn must be a function, got number")
  end)
end)

describe("a module that contains itself", function()
  local function cyclic()
    local m = Net(2)
    m.blocks[2].parent = m
    return m
  end
  local msg = "Net: a module contains itself (at 'blocks.1.parent')"

  it("is an error in every method that walks the tree, not a stack overflow", function()
    local m = cyclic()
    assert.has_error(function() m:parameters() end, msg)
    assert.has_error(function() m:trainable_parameters() end, msg)
    assert.has_error(function() m:named_parameters() end, msg)
    assert.has_error(function() m:named_modules() end, msg)
    assert.has_error(function() m:num_parameters() end, msg)
    assert.has_error(function() m:freeze() end, msg)
    assert.has_error(function() m:eval() end, msg)
    assert.has_error(function() m:apply(function(p) return p end) end, msg)
    assert.has_error(function() tostring(m) end, msg)
    assert.has_error(function() m:save_weights(tmp_path("cycle")) end, msg)
    assert.has_error(function() nn.value_and_grad(m, function(model) return lattice.sum(model(ids)) end)(m) end, msg)
  end)

  it("is not confused with a table or module held in two places", function()
    local m = nn.Module()
    local shared_config, shared_lin = {3, 3, 3}, nn.Linear(2, 2)
    m.a, m.b = nn.Module(), nn.Module()
    m.a.kernel_size, m.b.kernel_size = shared_config, shared_config
    m.a.lin, m.b.lins = shared_lin, {shared_lin}
    assert.are.same({"a", "b"}, sorted_keys(m:parameters()))
    assert.are.same({"a", "b"}, sorted_keys(m:trainable_parameters()))
    assert.are.same({"a.lin.bias", "a.lin.weight", "b.lins.0.bias", "b.lins.0.weight"}, sorted_keys(m:named_parameters()))
    assert.are.equal(12, m:num_parameters())
    assert.is_string(tostring(m))
  end)

  it("is an error for a table that contains itself", function()
    local m = nn.Module()
    m.loop = {}
    m.loop.again = m.loop
    assert.has_error(function() m:parameters() end, "a table contains itself (at 'loop.again')")
    assert.has_error(function() m:children() end, "a table contains itself (at 'loop.again')")
    assert.has_error(function() tostring(m) end, "a table contains itself (at 'loop.again')")
  end)
end)
