-- Semantic segmentation of point clouds with a small sparse U-Net.
--
-- Synthetic scenes (points on a ground plane and on boxes, spheres and
-- cylinders standing on it, label = the shape's kind) are voxelized and a
-- U-Net of submanifold and strided sparse convolutions, max pooling,
-- transposed convolutions and skip connections (sparse_cat_aligned), with
-- BatchNorm and ReLU, learns to label every voxel. Training uses
-- lattice.train's Trainer with AdamW on scenes made fresh for every step
-- (a fixed set of a few dozen is learnt by heart: sizes and places, not
-- shapes); held-out scenes, from seeds no training scene uses, give the
-- per-class accuracy of the points (each point takes its voxel's prediction).
--
--   lattice examples/sparse_segmentation.lua              train, evaluate
--   lattice examples/sparse_segmentation.lua cloud.ply    ... then label a file
--   lattice examples/sparse_segmentation.lua cloud.ply out.xyz   ... and write its labels
--
-- The file: a PLY (ascii or binary_little_endian) with vertex x, y, z and an
-- optional integer label, or plain XYZ text (x y z [label] a line), in metres
-- with z up, labels as here (0 ground, 1 box, 2 sphere, 3 cylinder). It prints
-- one prediction a point (up to `SHOW` of them), with labels the accuracy,
-- and writes every point's prediction to out.xyz when given.
-- LATTICE_SMOKE=1 runs a small configuration in a few seconds.
--
-- `require "sparse_segmentation"` (with examples/ on package.path) returns
-- its pieces instead of running: bench/train_sparse.lua times this U-Net and
-- spec/sparse_segmentation_spec.lua checks them.
local lattice = require "lattice"
local nn, ops, optim, train, data = lattice.nn, lattice.ops, lattice.optim, lattice.train, lattice.data

local SMOKE = (os.getenv("LATTICE_SMOKE") or "") ~= "" and os.getenv("LATTICE_SMOKE") ~= "0"
local CLASSES = { "ground", "box", "sphere", "cylinder" }
local CONFIGS = {
  full = { extent = 5, max_objects = 5, density = 300, voxel = 0.1, train_scenes = 64, test_scenes = 16, batch = 4,
    steps = 2400, widths = { 16, 32, 64, 128 }, learning_rate = 1e-3 },
  smoke = { extent = 3, max_objects = 2, density = 150, voxel = 0.12, train_scenes = 8, test_scenes = 2, batch = 2,
    steps = 20, widths = { 8, 16, 16, 16 }, learning_rate = 2e-2 },
}
local CFG = SMOKE and CONFIGS.smoke or CONFIGS.full
local SHOW = 20 -- points listed for a file

-- ---- scenes ----

local TWO_PI = 2 * math.pi
local function uniform(lo, hi, n) return lattice.random.uniform(lo, hi, { n }) end
local function points(x, y, z) return lattice.stack({ x, y, z }, 2) end

-- Each shape: its bounding radius for placement, and its surface points
-- (what a scan sees: no bottom faces) for n points per square metre.
local SHAPES = {
  box = function(rnd)
    local a, b, h, phi = 0.3 + 0.45 * rnd(), 0.3 + 0.45 * rnd(), 0.4 + 1.0 * rnd(), TWO_PI * rnd()
    return math.sqrt(a * a + b * b), function(density)
      local faces = {}
      local function face(count, fx, fy, fz) faces[#faces + 1] = points(fx(count), fy(count), fz(count)) end
      local function const(v) return function(n) return lattice.full({ n }, v) end end
      local function span(lo, hi) return function(n) return uniform(lo, hi, n) end end
      local side_a, side_b, top = math.ceil(2 * b * h * density), math.ceil(2 * a * h * density),
        math.ceil(4 * a * b * density)
      face(side_a, const(a), span(-b, b), span(0, h))
      face(side_a, const(-a), span(-b, b), span(0, h))
      face(side_b, span(-a, a), const(b), span(0, h))
      face(side_b, span(-a, a), const(-b), span(0, h))
      face(top, span(-a, a), span(-b, b), const(h))
      local p = lattice.concatenate(faces, 1)
      local x, y, z = lattice.slice(p, 2, 1, 1), lattice.slice(p, 2, 2, 2), lattice.slice(p, 2, 3, 3)
      local c, s = math.cos(phi), math.sin(phi)
      return lattice.concatenate({ x * c - y * s, x * s + y * c, z }, 2)
    end
  end,
  sphere = function(rnd)
    local r = 0.3 + 0.5 * rnd()
    return r, function(density)
      local n = math.ceil(4 * math.pi * r * r * density)
      local d = lattice.random.normal({ n, 3 })
      d = d / lattice.sqrt(lattice.sum(d * d, 2, true))
      return d * r + lattice.array({ 0, 0, r })
    end
  end,
  cylinder = function(rnd)
    local r, h = 0.3 + 0.35 * rnd(), 0.5 + 1.0 * rnd()
    return r, function(density)
      local ns, nt = math.ceil(TWO_PI * r * h * density), math.ceil(math.pi * r * r * density)
      local t = uniform(0, TWO_PI, ns)
      local side = points(lattice.cos(t) * r, lattice.sin(t) * r, uniform(0, h, ns))
      local u, rho = uniform(0, TWO_PI, nt), lattice.sqrt(uniform(0, 1, nt)) * r
      local cap = points(lattice.cos(u) * rho, lattice.sin(u) * rho, lattice.full({ nt }, h))
      return lattice.concatenate({ side, cap }, 1)
    end
  end,
}
local KINDS = { "box", "sphere", "cylinder" } -- labels 1, 2, 3

-- One scene: points (N, 3) float32 and labels (N) int32, from `seed` alone.
local function make_scene(seed)
  lattice.random.seed(seed) -- the points
  math.randomseed(seed) -- the shapes' sizes and places
  local rnd = math.random
  local half = CFG.extent / 2
  local n_ground = math.ceil(CFG.extent * CFG.extent * CFG.density)
  local parts = { points(uniform(-half, half, n_ground), uniform(-half, half, n_ground), lattice.zeros({ n_ground })) }
  local labels = { lattice.zeros({ n_ground }, "int32") }
  local placed = {}
  for _ = 1, CFG.max_objects do
    local label = 1 + math.floor(rnd() * 3) -- rnd() < 1
    local radius, surface = SHAPES[KINDS[label]](rnd)
    local cx, cy = (rnd() * 2 - 1) * (half - radius), (rnd() * 2 - 1) * (half - radius)
    local free = true
    for _, o in ipairs(placed) do
      if math.sqrt((cx - o[1]) ^ 2 + (cy - o[2]) ^ 2) < radius + o[3] + 0.1 then free = false end
    end
    if free then
      placed[#placed + 1] = { cx, cy, radius }
      local p = surface(CFG.density) + lattice.array({ cx, cy, 0 })
      parts[#parts + 1] = p
      labels[#labels + 1] = lattice.full({ p.shape[1] }, label, "int32")
    end
  end
  local p = lattice.concatenate(parts, 1)
  return p + lattice.random.normal(p.shape, { scale = 0.005 }), lattice.concatenate(labels, 1)
end

-- ---- voxels ----

-- A scene's points (N, 3) as {x = SparseTensor, labels = the voxels' (each
-- its first point's label)}, and the voxel of each point (N) int32: one row
-- a voxel of `voxel` metres, first seen first. Its features, means over its
-- points: a constant, the height in metres, and where in the voxel the
-- points lie (the fraction of a voxel from its centre on each axis), which
-- tells a curved surface from a flat one below the voxel's size.
local function to_voxels(pts, labels, voxel)
  voxel = voxel or CFG.voxel
  local _, first, inverse = ops.sparse_quantize(pts, { voxel_size = voxel, return_index = true, return_inverse = true })
  local n = pts.shape[1]
  local offset = (pts / voxel) % 1 - 0.5
  local point_feats = lattice.concatenate({ lattice.ones({ n, 1 }), lattice.slice(pts, 2, 3, 3), offset }, 2)
  local x = ops.voxelize(pts, point_feats, { voxel_size = voxel }) -- the same voxels in the same order
  return { x = x, labels = labels and lattice.take(labels, first) }, inverse
end
local IN_CHANNELS = 5

-- ---- the model ----

local function cbr(conv, c) return nn.Sequential(conv, nn.BatchNorm(c), nn.ReLU()) end
local function subm(cin, cout) return cbr(nn.SubmConv3d(cin, cout), cout) end

-- Three resolutions below the input's: a strided conv, a strided conv, a
-- max pool; back up by transposed convs onto the skips' supports, each
-- concatenated with its skip. `w` lists the channels of the four levels
-- (the finest, with the most voxels, kept narrow: it costs the most).
local UNet = nn.Module:extend("UNet")

function UNet:init(cin, classes, w)
  self.enc0 = subm(cin, w[1])
  self.down1 = cbr(nn.Conv3d(w[1], w[2], { kernel_size = 2, stride = 2 }), w[2])
  self.enc1 = subm(w[2], w[2])
  self.down2 = cbr(nn.Conv3d(w[2], w[3], { kernel_size = 2, stride = 2 }), w[3])
  self.enc2 = subm(w[3], w[3])
  self.pool = nn.MaxPool3d({ kernel_size = 2, stride = 2 })
  self.mid = subm(w[3], w[4])
  self.up2 = nn.ConvTranspose3d(w[4], w[3])
  self.dec2 = subm(2 * w[3], w[3])
  self.up1 = nn.ConvTranspose3d(w[3], w[2])
  self.dec1 = subm(2 * w[2], w[2])
  self.up0 = nn.ConvTranspose3d(w[2], w[1])
  self.dec0 = subm(2 * w[1], w[1])
  self.head = nn.Linear(w[1], classes)
end

function UNet:forward(x)
  local e0 = self.enc0(x)
  local e1 = self.enc1(self.down1(e0))
  local e2 = self.enc2(self.down2(e1))
  local m = self.mid(self.pool(e2))
  local d2 = self.dec2(ops.sparse_cat_aligned(self.up2(m, e2), e2))
  local d1 = self.dec1(ops.sparse_cat_aligned(self.up1(d2, e1), e1))
  local d0 = self.dec0(ops.sparse_cat_aligned(self.up0(d1, e0), e0))
  return self.head(d0)
end

-- ---- evaluation ----

-- Per-point predictions (N) int32 of a scene's points in evaluation mode.
local function predict(model, pts)
  local scene, inverse = to_voxels(pts)
  local was = model.training
  model:eval()
  local logits = model(scene.x).feats
  model:train(was)
  return lattice.take(lattice.argmax(logits, 2):astype("int32"), inverse)
end

-- Per class (1-based), the points of that class and those predicted right,
-- added into `counts`.
local function count_classes(counts, truth, pred)
  local right = lattice.equal(truth, pred)
  for c = 1, #CLASSES do
    local is_c = lattice.equal(truth, c - 1)
    counts.total[c] = counts.total[c] + lattice.sum(is_c):item()
    counts.right[c] = counts.right[c] + lattice.sum(lattice.multiply(is_c, right)):item()
  end
  return counts
end

local function new_counts()
  local counts = { total = {}, right = {} }
  for c = 1, #CLASSES do counts.total[c], counts.right[c] = 0, 0 end
  return counts
end

-- The accuracy of each class present, and their mean.
local function class_accuracies(counts)
  local acc, sum, present = {}, 0, 0
  for c = 1, #CLASSES do
    if counts.total[c] > 0 then
      acc[c] = counts.right[c] / counts.total[c]
      sum, present = sum + acc[c], present + 1
    end
  end
  return acc, present > 0 and sum / present or 0
end

local function report_accuracy(title, counts)
  local acc, mean = class_accuracies(counts)
  local parts = {}
  for c, name in ipairs(CLASSES) do
    parts[#parts + 1] = ("%s %s"):format(name, acc[c] and ("%.1f%%"):format(100 * acc[c]) or "-")
  end
  print(("%s: mean per-class accuracy %.1f%% (%s)"):format(title, 100 * mean, table.concat(parts, ", ")))
  return mean
end

-- ---- main ----

-- Class weights (C) that give every class the same total weight in the
-- training voxels (the ground would otherwise outweigh the rest), so the
-- loss follows the mean per-class accuracy the example reports.
local function balanced_weights(scenes)
  local counts = new_counts()
  for _, s in ipairs(scenes) do count_classes(counts, s.labels, s.labels) end
  local total, w = 0, {}
  for c = 1, #CLASSES do total = total + counts.total[c] end
  for c = 1, #CLASSES do w[c] = counts.total[c] > 0 and total / (#CLASSES * counts.total[c]) or 0 end
  return lattice.array(w)
end

-- points (N, 3) and labels (N) as XYZ text, written whole or not at all.
local function write_xyz(out_path, pts, labels)
  local tmp = out_path .. ".tmp"
  local f = assert(io.open(tmp, "w"))
  local xyz, l = pts:tolist(), labels:tolist()
  for i = 1, #l do f:write(("%.6g %.6g %.6g %d\n"):format(xyz[i][1], xyz[i][2], xyz[i][3], l[i])) end
  assert(f:close())
  assert(os.rename(tmp, out_path))
end

-- Batches of `batch` scenes made anew for every step (seeds from 100001 on:
-- never a held-out scene's), collated into one SparseTensor and its labels.
local function fresh_batches(batch)
  local made = 0
  return function()
    local scenes = {}
    for j = 1, batch do scenes[j] = to_voxels(make_scene(100000 + made + j)) end
    made = made + batch
    return data.collate_scenes(scenes)
  end
end

local function main(path, out_path)
  local t0 = lattice.now()
  local cloud = path and data.read_point_cloud(path) -- a bad file fails before the training, not after
  -- A sample of the scenes the training sees, for the class weights.
  local train_scenes = {}
  for i = 1, CFG.train_scenes do train_scenes[i] = to_voxels(make_scene(1000 + i)) end
  local voxels = 0
  for _, s in ipairs(train_scenes) do voxels = voxels + #s.x end
  print(("scenes of %.0f voxels on average (voxel %.2f m), %d new ones a step"):format(voxels / #train_scenes,
    CFG.voxel, CFG.batch))

  lattice.random.seed(0)
  local model = UNet(IN_CHANNELS, #CLASSES, CFG.widths)
  local class_weights = balanced_weights(train_scenes)
  local function loss_fn(m, x, labels)
    local w = lattice.take(class_weights, labels)
    return lattice.sum(nn.losses.cross_entropy(m(x).feats, labels, { weights = w })) / lattice.sum(w)
  end
  local trainer = train.Trainer {
    model = model,
    optimizer = optim.AdamW { learning_rate = optim.cosine_decay(CFG.learning_rate, CFG.steps, CFG.learning_rate / 20),
      weight_decay = 1e-4 },
    loss_fn = loss_fn,
    train_data = fresh_batches(CFG.batch),
  }
  local history = trainer:fit { steps = CFG.steps, log_every = math.max(1, CFG.steps // 10) }
  local function mean_loss(a, b)
    local s = 0
    for i = a, b do s = s + history[i].loss end
    return s / (b - a + 1)
  end
  local k = math.max(1, #history // 10)
  print(("loss: first %d steps %.4f, last %d steps %.4f"):format(k, mean_loss(1, k), k,
    mean_loss(#history - k + 1, #history)))

  local counts = new_counts()
  for i = 1, CFG.test_scenes do
    local pts, labels = make_scene(9000 + i)
    count_classes(counts, labels, predict(model, pts))
  end
  report_accuracy(("held-out scenes (%d)"):format(CFG.test_scenes), counts)
  print(("total %.1f s"):format(lattice.now() - t0))

  if cloud then
    local pred = predict(model, cloud.points)
    local n = pred.shape[1]
    local shown = math.min(SHOW, n)
    local p, xyz = lattice.slice(pred, 1, 1, shown):tolist(), lattice.slice(cloud.points, 1, 1, shown):tolist()
    print(("%s: %d points"):format(path, n))
    for i = 1, shown do
      print(("%10.4f %10.4f %10.4f  %s"):format(xyz[i][1], xyz[i][2], xyz[i][3], CLASSES[p[i] + 1]))
    end
    if n > shown then print(("... (%d more)"):format(n - shown)) end
    if cloud.labels then report_accuracy(path, count_classes(new_counts(), cloud.labels, pred)) end
    if out_path then
      write_xyz(out_path, cloud.points, pred)
      print(("predictions written to %s (x y z label)"):format(out_path))
    end
  end
end

local modname, modpath = ...
if modname == "sparse_segmentation" and type(modpath) == "string" then
  return {
    CONFIGS = CONFIGS, CFG = CFG, CLASSES = CLASSES, IN_CHANNELS = IN_CHANNELS, make_scene = make_scene,
    to_voxels = to_voxels, UNet = UNet, predict = predict,
    main = main,
  }
end
main(arg and arg[1], arg and arg[2])
