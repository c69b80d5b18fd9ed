-- One training step (forward, backward, AdamW) of the sparse U-Net of
-- examples/sparse_segmentation.lua (its full-size widths) on the ~150,000
-- voxel surface support that bench/sparse_conv.lua times (one scene, 5 cm
-- voxels). Before timing: a few steps on the batch must lower its loss and
-- every gradient must be finite. Then one JSON line: scenes/s, the step's
-- time, the convolutions' FLOPs per step (2 x edges x C_in x C_out forward;
-- the backward counts the feature and weight gradients, the first layer
-- only the weight's) and their rate as a fraction of the FMA peak measured
-- in the same run, the process's CPU time a step, and the allocator's peak.
-- Usage: lattice bench/train_sparse.lua [voxels, default 150000] [threads]
local here = arg[0]:gsub("[^/]*$", "")
package.path = here .. "?.lua;" .. here .. "../examples/?.lua;" .. package.path
local lattice = require "lattice"
local core = require "lattice.core"
local common = require "common"
local sparse_support = require "sparse_support"
local seg = require "sparse_segmentation"

local nn, ops, optim = lattice.nn, lattice.ops, lattice.optim
local TARGET = math.tointeger(tonumber(arg and arg[1]) or 150000) or error("train_sparse: bad voxel count")
if arg and arg[2] then lattice.set_num_threads(math.tointeger(tonumber(arg[2])) or error("train_sparse: bad threads")) end
local VOXEL = 0.05

-- The voxels' centres as the scene's points, voxelized as the example does
-- (the same voxels, in the support's order); labels: the ground (the lowest
-- voxel layer) and the rest.
local function scene()
  local coords = lattice.slice(lattice.array(sparse_support.surface_voxels(TARGET, VOXEL), "int32"), 2, 2, 4)
  local points = (coords:astype("float32") + 0.5) * VOXEL
  local labels = lattice.greater(lattice.slice(coords, 2, 3, 3):reshape(-1), 0):astype("int32")
  return seg.to_voxels(points, labels, VOXEL)
end
local voxels = scene() -- (the support's 150,000 Lua tables gone before anything is timed)
collectgarbage()
local x, labels = voxels.x, voxels.labels

local widths = seg.CONFIGS.full.widths
lattice.random.seed(0)
local model = seg.UNet(seg.IN_CHANNELS, #seg.CLASSES, widths)
local loss_and_grad = nn.value_and_grad(model, function(m, xx, y)
  return nn.losses.cross_entropy(m(xx).feats, y, { reduction = "mean" })
end)
local opt = optim.AdamW { learning_rate = 1e-3 }
local function step()
  local loss, grads = loss_and_grad(model, x, labels)
  opt:update(model, grads)
  return loss:item(), grads
end

-- ---- the check: the step learns ----

local function all_finite(tree)
  for _, v in pairs(tree) do
    if lattice.is_tensor(v) then
      local s = lattice.sum(lattice.abs(v)):item() -- finite exactly when every element is (short of overflow)
      if s ~= s or s == math.huge then return false end
    elseif type(v) == "table" and not all_finite(v) then
      return false
    end
  end
  return true
end
local first, grads = step()
assert(all_finite(grads), "train_sparse: a gradient is not finite")
local last
for _ = 1, 4 do last = step() end
assert(last < first, ("train_sparse: the loss did not fall (%g -> %g)"):format(first, last))

-- ---- the convolutions' FLOPs, level by level as UNet:forward runs ----

local function subm_edges(t)
  return ops.build_kernel_relation(t.coordinate_map_key, { kernel_size = 3 }).edges
end
local function flop_count()
  local m = model
  local e0 = m.enc0(x)
  local d1 = m.down1(e0)
  local e1 = m.enc1(d1)
  local e2 = m.enc2(m.down2(e1))
  local mid = m.mid(m.pool(e2))
  local w = widths
  -- {edges, c_in, c_out, backward passes}; a k2 s2 conv has one edge per
  -- input row, its transpose one per output row
  local convs = {
    { subm_edges(e0), seg.IN_CHANNELS, w[1], 1 }, { #e0, w[1], w[2], 2 }, { subm_edges(e1), w[2], w[2], 2 },
    { #e1, w[2], w[3], 2 }, { subm_edges(e2), w[3], w[3], 2 }, { subm_edges(mid), w[3], w[4], 2 },
    { #e2, w[4], w[3], 2 }, { subm_edges(e2), 2 * w[3], w[3], 2 }, { #e1, w[3], w[2], 2 },
    { subm_edges(e1), 2 * w[2], w[2], 2 }, { #e0, w[2], w[1], 2 }, { subm_edges(e0), 2 * w[1], w[1], 2 },
    { #e0, w[1], #seg.CLASSES, 2 }, -- the head
  }
  local fwd, total = 0, 0
  for _, c in ipairs(convs) do
    local f = 2 * c[1] * c[2] * c[3]
    fwd, total = fwd + f, total + f * (1 + c[4])
  end
  return fwd, total, { #e0, #e1, #e2, #mid }
end
local fwd_flops, step_flops, level_rows = flop_count()

-- ---- timing, between two samples of the peak ----

local isa = lattice.isa() == "scalar" and "scalar" or lattice.isa()
local peak_before = core.peak_gflops(isa, 0.3)
local t_step = common.median_time(step, 5)
local c0 = os.clock() -- the process's CPU time a step (all threads): on a shared machine, what the step costs
for _ = 1, 3 do step() end
local cpu_step = (os.clock() - c0) / 3
local t_fwd = common.median_time(function() model(x) end, 5)
local peak = math.max(peak_before, core.peak_gflops(isa, 0.3))
local stats = lattice.memory_stats()

common.report({
  bench = "train_sparse", case = "unet_train_step", voxels = #x, level_rows = level_rows, widths = widths,
  step_ms = t_step * 1e3, step_cpu_ms = cpu_step * 1e3, scenes_per_sec = 1 / t_step, voxels_per_sec = #x / t_step, forward_ms = t_fwd * 1e3,
  forward_gflop = fwd_flops * 1e-9, step_gflop = step_flops * 1e-9, step_gflops = step_flops / t_step * 1e-9,
  fma_peak_gflops = peak, step_peak_ratio = step_flops / t_step * 1e-9 / peak,
  loss_first = first, loss_after_5 = last, memory_peak_mb = stats.peak / 2 ^ 20,
})
