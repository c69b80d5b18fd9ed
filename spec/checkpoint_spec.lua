-- Checkpoints: the directory layout and metadata; a resumed run reproduces
-- the uninterrupted run's losses bit for bit (compared with ==), in this
-- process and in a fresh one, with dropout, a schedule, accumulation and
-- clipping; a bounded number kept; a write that fails or whose process is
-- killed half way leaves the checkpoints before it loadable and its
-- temporary directory is never taken for one; a failed resume changes
-- nothing; every bad input.
local lattice = require "lattice"
local core = require "lattice.core"
local tiny = require "support.tiny_models"

local nn, optim, train = lattice.nn, lattice.optim, lattice.train

local exe = arg and arg[-1]
local base = os.tmpname()
os.remove(base)
local function dir(name) return base .. "-" .. name end

local function exists(path) return core.fs_kind(path) ~= nil end

local function list_dir(path)
  local ok, names = pcall(core.fs_list, path, "spec")
  return ok and names or {}
end

local function tmpdirs(path)
  local out = {}
  for _, name in ipairs(list_dir(path)) do
    if name:match("^%.lt%-.*%.tmpdir$") then out[#out + 1] = name end
  end
  return out
end

-- The run every test resumes: a dropout model, AdamW on a warmup-then-cosine
-- schedule, two micro-batches a step, clipping; the data shuffled.
local SETUP = [[
local lattice = require "lattice"
local tiny = require "support.tiny_models"
local optim, train, data = lattice.optim, lattice.train, lattice.data
local function make(seed, output)
  lattice.random.seed(seed)
  local ds = data.TextDataset(tiny.text(3000, 2), { seq_len = 12, tokenizer = data.ByteTokenizer() })
  local train_ds, val_ds = ds:split(0.1)
  local schedule = optim.join_schedules({ optim.linear_schedule(0, 1e-2, 5), optim.cosine_decay(1e-2, 40) }, { 5 })
  return train.Trainer({ model = tiny.TinyLM(256, 24, 0.2), optimizer = optim.AdamW({ learning_rate = schedule }),
    loss_fn = tiny.lm_loss, train_data = train_ds:batches({ batch_size = 6, seed = 9 }),
    eval_data = val_ds:batches({ batch_size = 6, shuffle = false, epochs = 1 }), config = { d = 24, vocab = 256 },
    progress = output and "lines" or "none", output = output })
end
local FIT = { grad_accum = 2, clip_grad_norm = 0.5, eval_every = 10 }
local function fit(t, steps, extra)
  local o = { steps = steps }
  for k, v in pairs(FIT) do o[k] = v end
  for k, v in pairs(extra or {}) do o[k] = v end
  return t:fit(o)
end
]]
local make, fit = load(SETUP .. "return make, fit", "setup", "t", _ENV)()

local function losses(history)
  local out = {}
  for i, m in ipairs(history) do out[i] = m.loss end
  return out
end

-- Writes a script that runs SETUP and `body` in a fresh `lattice` process;
-- returns its exit status and what it printed.
local function child(body)
  local script = dir("child.lua")
  local f = assert(io.open(script, "w"))
  f:write(("package.path = %q .. package.path\n"):format("spec/?.lua;"), SETUP, body)
  f:close()
  local p = assert(io.popen(("'%s' '%s' 2>&1; echo \"exit $?\""):format(exe, script)))
  local out = p:read("a")
  p:close()
  return tonumber(out:match("exit (%d+)\n$")), out
end

describe("checkpoints", function()
  local uninterrupted

  setup(function()
    uninterrupted = losses(fit(make(1), 40))
  end)

  it("writes a directory per checkpoint with the model, the optimizer and the metadata", function()
    local d = dir("layout")
    local t = make(1)
    fit(t, 20, { checkpoint_every = 10, checkpoint_dir = d })
    assert.are.same({ "step-00000010", "step-00000020" }, list_dir(d))
    local ck = d .. "/step-00000020"
    assert.are.same({ "metadata.json", "model.safetensors", "optimizer.safetensors" }, list_dir(ck))
    local weights = lattice.load_safetensors(ck .. "/model.safetensors")
    for name, p in pairs(t.model:named_parameters()) do assert.are.same(p:tolist(), weights[name]:tolist()) end
    local meta = lattice.json.decode(assert(io.open(ck .. "/metadata.json")):read("a"))
    assert.are.equal("lattice.checkpoint", meta.format)
    assert.are.equal(20, meta.step)
    assert.are.equal(20, meta.optimizer_step)
    assert.are.equal("AdamW", meta.optimizer)
    assert.are.same(t.train_data:state(), meta.data)
    assert.are.same({ d = 24, vocab = 256 }, meta.config)
    local rng = lattice.random.get_state()
    assert.are.same({ key = ("%016x"):format(rng.key), counter = ("%016x"):format(rng.counter) }, meta.rng)
    assert.are.equal(uninterrupted[20], meta.metrics.loss)
    assert.are.same({ { step = 10, path = d .. "/step-00000010" }, { step = 20, path = ck } }, train.checkpoints(d))
    assert.are.equal(ck, train.latest_checkpoint(d))
  end)

  it("writes a ModelConfig in the config as its JSON object, its BlockConfig nested", function()
    local d = dir("model-config")
    local t = make(3)
    local block = lattice.BlockConfig({ d_model = 24, n_heads = 2, norm = "rms_norm" })
    local model_config = lattice.ModelConfig({ block = block, vocab_size = 256, n_layers = 2 })
    t.config = { model = model_config, text = "tiny" }
    local ck = t:save_checkpoint(d)
    local meta = lattice.json.decode(assert(io.open(ck .. "/metadata.json")):read("a"))
    assert.are.equal("tiny", meta.config.text)
    assert.are.equal(256, meta.config.model.vocab_size)
    assert.are.equal(24, meta.config.model.block.d_model)
    assert.are.equal("rms_norm", meta.config.model.block.norm)
    assert.are.equal(model_config, lattice.ModelConfig.from_json(lattice.json.encode(meta.config.model)))
  end)

  it("resumes to the uninterrupted run's losses, bit for bit", function()
    local d = dir("resume")
    local first = losses(fit(make(1), 25, { checkpoint_every = 10, checkpoint_dir = d }))
    for i = 1, 25 do assert.are.equal(uninterrupted[i], first[i]) end
    -- a trainer made with another seed: everything must come from the checkpoint
    local t = make(77)
    local meta = t:resume(d .. "/step-00000010")
    assert.are.equal(10, meta.step)
    assert.are.equal(10, t.step)
    local rest = losses(fit(t, 40))
    assert.are.equal(30, #rest)
    for i = 1, 30 do assert.are.equal(uninterrupted[10 + i], rest[i], "step " .. (10 + i)) end
    local latest = make(5)
    latest:resume(d) -- the directory: its latest checkpoint, step 20
    assert.are.equal(20, latest.step)
    local tail = losses(fit(latest, 40))
    for i = 1, 20 do assert.are.equal(uninterrupted[20 + i], tail[i]) end
  end)

  it("resumes bit for bit in a fresh process", function()
    local d = dir("fresh")
    fit(make(1), 20, { checkpoint_every = 20, checkpoint_dir = d })
    local status, out = child(([[
local t = make(123)
t:resume(%q)
for _, m in ipairs(fit(t, 40)) do io.write(("%%a\n"):format(m.loss)) end
]]):format(d))
    assert.are.equal(0, status, out)
    local got = {}
    for v in out:gmatch("[^\n]+") do got[#got + 1] = tonumber(v) end
    assert.are.equal(20, #got)
    for i = 1, 20 do assert.are.equal(uninterrupted[20 + i], got[i]) end
  end)

  it("keeps the newest keep_checkpoints and replaces a step saved again", function()
    local d = dir("keep")
    local t = make(1)
    fit(t, 20, { checkpoint_every = 5, checkpoint_dir = d, keep_checkpoints = 2 })
    assert.are.same({ "step-00000015", "step-00000020" }, list_dir(d))
    local again = make(2)
    again:resume(d .. "/step-00000015")
    fit(again, 20, { checkpoint_every = 5, checkpoint_dir = d, keep_checkpoints = false })
    assert.are.same({ "step-00000015", "step-00000020" }, list_dir(d))
    assert.are.same({}, tmpdirs(d))
    local w = lattice.load_safetensors(d .. "/step-00000020/model.safetensors")
    for name, p in pairs(again.model:named_parameters()) do assert.are.same(p:tolist(), w[name]:tolist()) end
  end)

  it("leaves the previous checkpoint loadable when a write fails half way", function()
    local d = dir("fail")
    local t = make(1)
    fit(t, 10, { checkpoint_every = 10, checkpoint_dir = d })
    local real = t.optimizer.save_state
    local seen_model = false
    -- model.safetensors is written first; the optimizer's file then fails
    rawset(t.optimizer, "save_state", function(_, path)
      seen_model = exists(path:gsub("optimizer%.safetensors$", "model.safetensors"))
      error("disk full", 0)
    end)
    assert.has_error(function() fit(t, 20, { checkpoint_every = 10, checkpoint_dir = d }) end, "disk full")
    assert.is_true(seen_model)
    rawset(t.optimizer, "save_state", nil)
    assert.are.equal(real, t.optimizer.save_state)
    assert.are.same({ "step-00000010" }, list_dir(d)) -- the temporary directory went with the error
    local back = make(3)
    back:resume(d)
    assert.are.equal(10, back.step)
    local rest = losses(fit(back, 15))
    for i = 1, 5 do assert.are.equal(uninterrupted[10 + i], rest[i]) end
  end)

  it("leaves the previous checkpoint loadable when the writer is killed half way", function()
    local d = dir("kill")
    -- the process dies (no cleanup runs) once model.safetensors of step 20 is on disk
    local status = child(([[
local t = make(1)
fit(t, 10, { checkpoint_every = 10, checkpoint_dir = %q })
rawset(t.optimizer, "save_state", function() os.exit(9, false) end)
fit(t, 20, { checkpoint_every = 10, checkpoint_dir = %q })
]]):format(d, d))
    assert.are.equal(9, status)
    local left = tmpdirs(d)
    assert.are.equal(1, #left)
    assert.truthy(left[1]:find("step%-00000020"))
    assert.are.same({ "model.safetensors" }, list_dir(d .. "/" .. left[1]))
    assert.are.same({ { step = 10, path = d .. "/step-00000010" } }, train.checkpoints(d))
    local t = make(4)
    t:resume(d)
    assert.are.equal(10, t.step)
    -- the next save removes the dead writer's leftover, not one whose writer still holds it
    local held <close> = core.fs_tempdir(d, "step-99999999", "spec")
    local rest = losses(fit(t, 20, { checkpoint_every = 10, checkpoint_dir = d }))
    for i = 1, 10 do assert.are.equal(uninterrupted[10 + i], rest[i]) end
    assert.are.same({ held.path:match("[^/]+$") }, tmpdirs(d))
    held:close()
    assert.are.same({}, tmpdirs(d))
    assert.are.same({ "step-00000010", "step-00000020" }, list_dir(d))
  end)

  it("changes nothing when a resume fails", function()
    local d = dir("broken")
    fit(make(1), 10, { checkpoint_every = 10, checkpoint_dir = d })
    local ck = d .. "/step-00000010"
    local f = assert(io.open(ck .. "/optimizer.safetensors", "wb"))
    f:write("not a safetensors file")
    f:close()
    local t = make(6)
    fit(t, 3)
    local before = {}
    for name, p in pairs(t.model:named_parameters()) do before[name] = p:tolist() end
    local rng, data_state, opt_step = lattice.random.get_state(), t.train_data:state(), t.optimizer.step
    local ok, err = pcall(t.resume, t, ck)
    assert.is_false(ok)
    assert.truthy(err:find("Trainer:resume: " .. ck .. ": ", 1, true), err)
    for name, p in pairs(t.model:named_parameters()) do assert.are.same(before[name], p:tolist()) end
    assert.are.same(rng, lattice.random.get_state())
    assert.are.same(data_state, t.train_data:state())
    assert.are.equal(opt_step, t.optimizer.step)
    assert.are.equal(3, t.step)
  end)

  it("keeps a generator state past 2^63 exactly", function()
    local d = dir("rng")
    local t = make(1)
    fit(t, 2)
    lattice.random.set_state({ key = -2, counter = math.mininteger + 5 })
    t:save_checkpoint(d)
    lattice.random.seed(0)
    make(3):resume(d)
    assert.are.same({ key = -2, counter = math.mininteger + 5 }, lattice.random.get_state())
  end)

  it("names bad input", function()
    local t = make(1)
    local missing = dir("missing")
    assert.has_error(function() t:resume(missing) end, ("Trainer:resume: %s: no checkpoint there"):format(missing))
    assert.has_error(function() t:resume(3) end, "Trainer:resume: path must be a string, got number")
    local d = dir("bad")
    fit(make(1), 2)
    t:save_checkpoint(d)
    local ck = d .. "/step-00000000"
    local sgd = train.Trainer({ model = tiny.TinyLM(256, 24), optimizer = optim.SGD({ learning_rate = 1 }),
      loss_fn = tiny.lm_loss, train_data = t.train_data })
    assert.has_error(function() sgd:resume(ck) end, ("Trainer:resume: %s holds the state of AdamW, not SGD"):format(ck))
    local plain = train.Trainer({ model = tiny.TinyLM(256, 24), optimizer = optim.AdamW({ learning_rate = 1 }),
      loss_fn = tiny.lm_loss, train_data = function() return nil end })
    assert.has_error(function() plain:resume(ck) end,
      ("Trainer:resume: %s saved a data position, but train_data has no set_state()"):format(ck))
    assert.has_error(function() plain:fit({ steps = 1, checkpoint_every = 1, checkpoint_dir = d }) end,
      "Trainer:fit: checkpoints need train_data with state() and set_state() (a BatchIterator has them)")
    assert.has_error(function() plain:save_checkpoint(d) end,
      "Trainer:save_checkpoint: train_data has no state() and set_state(), so a resume could not continue where it left off")
    assert.has_error(function() t:save_checkpoint(d, { keep = 0 }) end,
      "Trainer:save_checkpoint: keep must be a positive integer or false, got 0")
    local other = make(1)
    other.model = nn.Sequential(nn.Linear(2, 2))
    assert.has_error(function() other:resume(ck) end,
      ("Trainer:resume: %s: load_weights: %s/model.safetensors: 2 parameters missing: layers.0.bias, layers.0.weight; "
        .. "5 unexpected parameters: embed.weight, hidden.bias, hidden.weight, out.bias, out.weight"):format(ck, ck))
    local f = assert(io.open(ck .. "/metadata.json", "w"))
    f:write('{"format": "something else"}')
    f:close()
    assert.has_error(function() t:resume(ck) end,
      ("Trainer:resume: %s/metadata.json is not the metadata of a lattice checkpoint"):format(ck))
    f = assert(io.open(ck .. "/metadata.json", "w"))
    f:write('{"format": "lattice.checkpoint", "version": 1, "step": 2, "rng": {"key": "zz", "counter": "0"}}')
    f:close()
    assert.has_error(function() t:resume(ck) end,
      ("Trainer:resume: %s/metadata.json: rng must hold 'key' and 'counter' as hex strings"):format(ck))
    local file = dir("a-file")
    assert(io.open(file, "w")):close()
    assert.has_error(function() t:save_checkpoint(file .. "/sub") end,
      ("Trainer:save_checkpoint: %s/sub: cannot create the directory: Not a directory"):format(file))
  end)
end)
