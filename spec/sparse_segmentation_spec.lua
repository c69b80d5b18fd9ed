-- examples/sparse_segmentation.lua: its pieces (scenes, voxels, the U-Net's
-- supports and its BatchNorm in training and evaluation) checked in this
-- process, and the script itself run by the `lattice` command at the smoke
-- size on a PLY file written here: it trains (the loss falls), evaluates,
-- labels the file and writes the labels; a bad file stops it before any training with the reader's
-- message.
package.path = "examples/?.lua;" .. package.path
local lattice = require "lattice"
local seg = require "sparse_segmentation"

local nn, data = lattice.nn, lattice.data
local exe = arg and arg[-1]

local tmp = os.tmpname()
os.remove(tmp)
local function path(name) return tmp .. "-" .. name end

-- Runs the example in a fresh process at the smoke size; its exit status and output.
local function run_example(args)
  local p = assert(io.popen(("LATTICE_SMOKE=1 '%s' examples/sparse_segmentation.lua %s 2>&1; echo \"exit $?\""):format(
    exe, args or "")))
  local out = p:read("a")
  p:close()
  return tonumber(out:match("exit (%d+)\n$")), out
end

describe("sparse_segmentation example", function()
  describe("scenes", function()
    it("are the same for the same seed and label every point with a shape kind", function()
      local p1, l1 = seg.make_scene(5)
      local p2, l2 = seg.make_scene(5)
      assert.are.same(p1:tolist(), p2:tolist())
      assert.are.same(l1:tolist(), l2:tolist())
      assert.are.same({ p1.shape[1], 3 }, p1.shape)
      assert.are.same({ p1.shape[1] }, l1.shape)
      local seen = {}
      for _, l in ipairs(l1:tolist()) do seen[l] = true end
      assert.is_true(seen[0]) -- the ground is always there
      for l in pairs(seen) do assert(l >= 0 and l < #seg.CLASSES, "label " .. l) end
    end)
  end)

  describe("voxels", function()
    it("floor each point to its voxel, first seen first, with each point's voxel, the first point's label and the mean height", function()
      -- borders (exact multiples), negative coordinates, repeats
      local pts = { { 0, 0, 0 }, { 0.25, 0.5, 0.75 }, { -0.001, 0, 0 }, { 0.5, 0, 0 }, { 0.49, 0.99, 0.01 },
        { -0.5, -0.5, -0.5 }, { -0.51, 0.2, 0.3 }, { 0.1, 0.2, 0.3 }, { 0.3, 0.6, 0.9 }, { -0.75, 0.49, 0 } }
      local labels = { 0, 1, 2, 3, 0, 1, 2, 3, 0, 1 }
      local s, inverse = seg.to_voxels(lattice.array(pts), lattice.array(labels, "int32"), 0.5)
      -- the reference: math.floor and a table keyed by the cell
      local want_coords, want_inverse, want_labels, heights, index = {}, {}, {}, {}, {}
      for i, p in ipairs(pts) do
        local c = { 0, math.floor(p[1] / 0.5), math.floor(p[2] / 0.5), math.floor(p[3] / 0.5) }
        local key = table.concat(c, ",")
        if not index[key] then
          want_coords[#want_coords + 1], want_labels[#want_labels + 1] = c, labels[i]
          index[key], heights[#want_coords] = #want_coords, {}
        end
        want_inverse[i] = index[key] - 1
        table.insert(heights[index[key]], p[3])
      end
      assert.are.same({ { 0, 0, 0, 0 }, { 0, 0, 1, 1 }, { 0, -1, 0, 0 }, { 0, 1, 0, 0 }, { 0, 0, 1, 0 }, { 0, -1, -1, -1 },
        { 0, -2, 0, 0 } }, want_coords) -- the reference agrees with a hand count
      assert.are.same(want_coords, s.x.coords:tolist())
      assert.are.same(want_inverse, inverse:tolist())
      assert.are.same(want_labels, s.labels:tolist())
      assert.are.same({ #want_coords }, s.x.batch_counts)
      for v, f in ipairs(s.x.feats:tolist()) do
        local mean = 0
        for _, z in ipairs(heights[v]) do mean = mean + z / #heights[v] end
        assert.are.equal(1, f[1])
        assert(math.abs(f[2] - mean) < 1e-6, ("voxel %d: height %g, want %g"):format(v, f[2], mean))
      end
    end)
  end)

  describe("the U-Net", function()
    local a, b, model

    setup(function()
      lattice.random.seed(3)
      a = seg.to_voxels(seg.make_scene(11))
      b = seg.to_voxels(seg.make_scene(12))
      model = seg.UNet(seg.IN_CHANNELS, #seg.CLASSES, { 4, 8, 8, 8 })
    end)

    it("labels every input voxel, on the input's coordinates", function()
      local y = model(a.x)
      assert.are.same({ #a.x, #seg.CLASSES }, y.feats.shape)
      assert.is_true(y.coordinate_map_key == a.x.coordinate_map_key)
    end)

    it("moves BatchNorm's running statistics in training and uses them in evaluation", function()
      local bn = model.enc0.layers[2]
      local before = bn.running_mean:tolist()
      model:train()
      local step = nn.value_and_grad(model, function(m, x, y)
        return nn.losses.cross_entropy(m(x).feats, y, { reduction = "mean" })
      end)
      step(model, a.x, a.labels)
      assert.are_not.same(before, bn.running_mean:tolist()) -- moved inside value_and_grad, and kept
      -- evaluation: a scene's logits do not depend on what it is batched with
      model:eval()
      local alone = model(a.x).feats
      local both = model((data.collate_scenes({ a, b }))).feats
      local diff = lattice.max(lattice.abs(lattice.slice(both, 1, 1, #a.x) - alone)):item()
      assert(diff < 1e-5, "evaluation depends on the batch: " .. diff)
      -- training: the batch's statistics, so it does
      model:train()
      local t_alone = model(a.x).feats
      local t_both = model((data.collate_scenes({ a, b }))).feats
      assert(lattice.max(lattice.abs(lattice.slice(t_both, 1, 1, #a.x) - t_alone)):item() > 1e-3)
    end)
  end)

  describe("run by the lattice command", function()
    it("trains, evaluates held-out scenes and labels the points of a PLY file", function()
      local pts, labels = seg.make_scene(77)
      local p, l = pts:tolist(), labels:tolist()
      local body = {}
      for i = 1, #p do body[i] = string.pack("<fffi", p[i][1], p[i][2], p[i][3], l[i]) end
      local file = path("scene.ply")
      local f = assert(io.open(file, "wb"))
      f:write(("ply\nformat binary_little_endian 1.0\nelement vertex %d\nproperty float x\nproperty float y\n"
        .. "property float z\nproperty int label\nend_header\n"):format(#p), table.concat(body))
      f:close()
      local written = path("labels.xyz")
      local status, out = run_example("'" .. file .. "' '" .. written .. "'")
      assert.are.equal(0, status, out)
      local first, last = out:match("loss: first %d+ steps ([%d.]+), last %d+ steps ([%d.]+)")
      assert(first and last, out)
      assert(tonumber(last) < 0.8 * tonumber(first), "the loss did not fall: " .. out)
      assert.truthy(out:find("held%-out scenes %(%d+%): mean per%-class accuracy [%d.]+%%"), out)
      assert.truthy(out:find(file .. ": " .. #p .. " points", 1, true), out)
      local listed = 0
      for name in out:gmatch("\n%s*%-?[%d.]+%s+%-?[%d.]+%s+%-?[%d.]+%s+(%a+)") do
        listed = listed + 1
        assert.truthy(({ ground = 1, box = 1, sphere = 1, cylinder = 1 })[name], name)
      end
      assert.are.equal(20, listed)
      assert.truthy(out:find(("... (%d more)"):format(#p - 20), 1, true), out)
      assert.truthy(out:find(file:gsub("%p", "%%%0") .. ": mean per%-class accuracy [%d.]+%%"), out)
      -- every point's prediction, in the file's order
      local back = data.read_point_cloud(written)
      assert.are.same({ #p, 3 }, back.points.shape)
      assert(lattice.max(lattice.abs(back.points - pts)):item() < 1e-4)
      assert(lattice.min(back.labels):item() >= 0 and lattice.max(back.labels):item() < #seg.CLASSES)
      os.remove(file)
      os.remove(written)
    end)

    it("stops before training when the file is bad, with the reader's message", function()
      local file = path("bad.xyz")
      local f = assert(io.open(file, "w"))
      f:write("1 2 3\n4 5\n")
      f:close()
      local status, out = run_example("'" .. file .. "'")
      assert.are_not.equal(0, status)
      assert.truthy(out:find("read_point_cloud: " .. file .. ": line 2 has 2 values; a line is x y z or x y z label",
        1, true), out)
      assert.is_nil(out:find("new ones a step", 1, true))
      os.remove(file)
    end)
  end)
end)
