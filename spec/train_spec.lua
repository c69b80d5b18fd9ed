-- lattice.train.Trainer: a short run whose loss falls well below the text's
-- unigram entropy; gradient accumulation equal to one step over the whole
-- batch; clipping to the given norm; evaluation loss and perplexity against
-- a plain mean; the callbacks' hooks, early stopping and the statistics
-- callbacks against hand-computed values; the progress output as lines and
-- as a terminal bar (through a writer object); every bad option.
local lattice = require "lattice"
local tiny = require "support.tiny_models"

local nn, optim, train, data = lattice.nn, lattice.optim, lattice.train, lattice.data

local function lm_data(n, seq_len, seed)
  local text = tiny.text(n, seed)
  local ds = data.TextDataset(text, { seq_len = seq_len, tokenizer = data.ByteTokenizer() })
  return text, ds
end

local function trainer(opts)
  local base = { loss_fn = tiny.lm_loss, progress = "none" }
  for k, v in pairs(opts) do base[k] = v end
  return train.Trainer(base)
end

-- The parameters as plain numbers, by name.
local function snapshot(model)
  local out = {}
  for name, t in pairs(model:named_parameters()) do out[name] = t:reshape({ -1 }):tolist() end
  return out
end

describe("lattice.train.Trainer", function()
  it("trains a small byte-level model until its loss is far below the unigram entropy", function()
    lattice.random.seed(0)
    local text, ds = lm_data(4000, 16)
    local train_ds, val_ds = ds:split(0.1)
    local model = tiny.TinyLM(256, 32)
    local t = trainer({ model = model, optimizer = optim.AdamW({ learning_rate = 1e-2 }),
      train_data = train_ds:batches({ batch_size = 16, seed = 1 }),
      eval_data = val_ds:batches({ batch_size = 16, shuffle = false, epochs = 1 }) })
    local history = t:fit({ steps = 150, eval_every = 50 })
    assert.are.equal(150, #history)
    assert.are.equal(150, t.step)
    local h = tiny.unigram_entropy(text)
    -- a uniform guess over 256 bytes starts at ln 256 = 5.5; the text's bytes
    -- carry h ~ 2.8 nats alone, and the current byte predicts the next far
    -- better than that (within a word almost surely)
    assert(history[1].loss > 5, history[1].loss)
    assert(history[150].eval_loss < 0.6 * h, ("eval loss %g, unigram entropy %g"):format(history[150].eval_loss, h))
    assert.are.equal(math.exp(history[150].eval_loss), history[150].eval_perplexity)
    for i = 1, 150 do assert.are.equal(i, history[i].step) end
  end)

  it("accumulates gradients: two half batches make the step one whole batch makes", function()
    local _, ds = lm_data(600, 8)
    local function one_step(batch_size, accum)
      lattice.random.seed(3)
      local model = tiny.TinyLM(256, 16)
      local t = trainer({ model = model, optimizer = optim.SGD({ learning_rate = 0.5 }),
        train_data = ds:batches({ batch_size = batch_size, shuffle = false }) })
      local h = t:fit({ steps = 1, grad_accum = accum })
      return snapshot(model), h[1]
    end
    local whole, hw = one_step(8, 1)
    local halves, hh = one_step(4, 2)
    -- the same sums in another order: float32 rounding of the gradient (a few
    -- 1e-8 relative) times the learning rate 0.5 on parameters of order 0.3
    for name, values in pairs(whole) do
      for i, v in ipairs(values) do
        assert(math.abs(v - halves[name][i]) <= 1e-6, ("%s[%d]: %g vs %g"):format(name, i, v, halves[name][i]))
      end
    end
    assert(math.abs(hw.loss - hh.loss) < 1e-6)
    assert.are.equal(64, hw.items)
    assert.are.equal(64, hh.items)
  end)

  it("clips the gradient to clip_grad_norm and reports the norm before clipping", function()
    local _, ds = lm_data(600, 8)
    lattice.random.seed(4)
    local model = tiny.TinyLM(256, 16)
    local x, y = ds:batches({ batch_size = 8, shuffle = false }):next()
    local _, grads = nn.value_and_grad(model, tiny.lm_loss)(model, x, y)
    local sq = 0
    local function each(tree)
      for _, v in pairs(tree) do
        if lattice.is_tensor(v) then
          for _, g in ipairs(v:reshape({ -1 }):astype("float64"):tolist()) do sq = sq + g * g end
        elseif type(v) == "table" then
          each(v)
        end
      end
    end
    each(grads)
    local before = snapshot(model)
    local t = trainer({ model = model, optimizer = optim.SGD({ learning_rate = 1 }),
      train_data = ds:batches({ batch_size = 8, shuffle = false }) })
    local h = t:fit({ steps = 1, clip_grad_norm = 0.01 })
    assert(math.abs(h[1].grad_norm - math.sqrt(sq)) <= 1e-5 * math.sqrt(sq))
    assert(math.sqrt(sq) > 0.01)
    -- SGD with rate 1: the parameters moved by the clipped gradient, of norm
    -- 0.01 / (1 + 1e-6 / norm) as MLX scales it
    local moved = 0
    for name, values in pairs(snapshot(model)) do
      for i, v in ipairs(values) do moved = moved + (v - before[name][i]) ^ 2 end
    end
    assert(math.abs(math.sqrt(moved) - 0.01) < 1e-6, math.sqrt(moved))
  end)

  it("evaluates in evaluation mode: the mean of the batch losses, and their exponential", function()
    local _, ds = lm_data(800, 8)
    lattice.random.seed(5)
    local model = tiny.TinyLM(256, 16, 0.5)
    local eval_data = ds:batches({ batch_size = 10, shuffle = false, epochs = 1 })
    local t = trainer({ model = model, optimizer = optim.SGD({ learning_rate = 0.1 }), train_data = eval_data,
      eval_data = eval_data })
    local e1 = t:evaluate()
    local e2 = t:evaluate()
    assert.are.equal(e1.eval_loss, e2.eval_loss) -- no dropout draws
    assert.is_true(model.training)
    model:eval()
    local sum, n = 0, 0
    eval_data:reset()
    for x, y in eval_data:iter() do sum, n = sum + tiny.lm_loss(model, x, y):item(), n + 1 end
    model:train()
    assert.are.equal(sum / n, e1.eval_loss)
    assert.are.equal(math.exp(sum / n), e1.eval_perplexity)
    local e3 = t:evaluate(2)
    eval_data:reset()
    model:eval()
    local a = tiny.lm_loss(model, eval_data:next()):item()
    local b = tiny.lm_loss(model, eval_data:next()):item()
    model:train()
    assert.are.equal((a + b) / 2, e3.eval_loss)
    local listed = trainer({ model = model, optimizer = optim.SGD({ learning_rate = 0.1 }),
      eval_data = { { eval_data:reset():next() } } })
    model:eval()
    local c = tiny.lm_loss(model, eval_data:reset():next()):item()
    model:train()
    assert.are.equal(c, listed:evaluate().eval_loss)
  end)

  it("calls the callbacks' hooks in order, and stops early when one asks", function()
    local _, ds = lm_data(600, 8)
    lattice.random.seed(6)
    local model = tiny.TinyLM(256, 16)
    local calls = {}
    local recorder = {
      on_train_begin = function(_, tr) calls[#calls + 1] = "begin " .. tr.step end,
      on_step_end = function(_, step, m) calls[#calls + 1] = ("step %d %s"):format(step, m.eval_loss and "e" or "-") end,
      on_eval_end = function(_, step, m) calls[#calls + 1] = ("eval %d %s"):format(step, m.eval_loss and "e" or "-") end,
      on_train_end = function(_, history) calls[#calls + 1] = "end " .. #history end,
    }
    -- learning rate 0: the evaluation never improves, so patience 2 stops after the third
    local stop = train.EarlyStopping({ patience = 2 })
    local out = tiny.Writer()
    local t = train.Trainer({ model = model, optimizer = optim.SGD({ learning_rate = 0 }), loss_fn = tiny.lm_loss,
      train_data = ds:batches({ batch_size = 4 }), eval_data = ds:batches({ batch_size = 4, epochs = 1 }),
      output = out, progress = "lines" })
    local h = t:fit({ steps = 20, eval_every = 2, callbacks = { recorder, stop } })
    assert.are.equal(6, #h)
    assert.are.same({ "begin 0", "step 1 -", "step 2 -", "eval 2 e", "step 3 -", "step 4 -", "eval 4 e", "step 5 -",
      "step 6 -", "eval 6 e", "end 6" }, calls)
    assert.is_true(stop.should_stop)
    assert.truthy(out:text():find(("early stopping at step 6 (best eval_loss %.4f)"):format(h[2].eval_loss), 1, true))
  end)

  it("reports gradient and weight statistics against hand-computed norms", function()
    local _, ds = lm_data(600, 8)
    lattice.random.seed(7)
    local model = tiny.TinyLM(256, 16)
    local probe = { ds:batches({ batch_size = 4, shuffle = false }):next() }
    local grad_stats = train.GradientStats({ probe_batch = probe, log_every = 2 })
    local weight_stats = train.WeightStats({ log_every = 2 })
    local function norms_now()
      local _, grads = nn.value_and_grad(model, tiny.lm_loss)(model, table.unpack(probe))
      local out = {}
      for name in pairs(model:named_parameters()) do
        local g = grads
        for part in name:gmatch("[^.]+") do g = g[part] end
        local sq = 0
        for _, v in ipairs(g:reshape({ -1 }):astype("float64"):tolist()) do sq = sq + v * v end
        out[name] = math.sqrt(sq)
      end
      return out
    end
    local function weight_norm()
      local sq = 0
      for _, p in pairs(model:named_parameters()) do
        for _, v in ipairs(p:reshape({ -1 }):astype("float64"):tolist()) do sq = sq + v * v end
      end
      return math.sqrt(sq)
    end
    local initial = weight_norm()
    local t = trainer({ model = model, optimizer = optim.Adam({ learning_rate = 1e-2 }),
      train_data = ds:batches({ batch_size = 4 }) })
    local h = t:fit({ steps = 2, callbacks = { grad_stats, weight_stats } })
    assert.is_nil(h[1].exp_grad_norm_mean)
    local norms = norms_now()
    local n, sum, max_name = 0, 0, nil
    for name, v in pairs(norms) do
      n, sum = n + 1, sum + v
      if max_name == nil or v > norms[max_name] then max_name = name end
    end
    local mean, var = sum / n, 0
    for _, v in pairs(norms) do var = var + (v - mean) ^ 2 end
    -- the same float32 gradients summed in double in another order
    assert(math.abs(h[2].exp_grad_norm_mean - mean) <= 1e-9 * mean)
    assert(math.abs(h[2].exp_grad_norm_std - math.sqrt(var / n)) <= 1e-9 * mean)
    assert.are.equal(max_name, h[2].exp_grad_norm_max_name)
    assert(math.abs(h[2].exp_weight_norm - weight_norm()) <= 1e-9 * initial)
    assert(math.abs(h[2].exp_weight_delta - math.abs(weight_norm() - initial)) <= 1e-9 * initial)
  end)

  it("measures throughput on the trainer's clock", function()
    local _, ds = lm_data(600, 8)
    local now = 0
    local out = tiny.Writer()
    local t = train.Trainer({ model = tiny.TinyLM(256, 8), optimizer = optim.SGD({ learning_rate = 0.1 }),
      loss_fn = function(m, x, y)
        now = now + 0.25 -- each step takes a quarter of a second
        return tiny.lm_loss(m, x, y)
      end, train_data = ds:batches({ batch_size = 4 }), output = out, progress = "lines",
      clock = function() return now end })
    local h = t:fit({ steps = 4, log_every = 2, callbacks = { train.ThroughputMonitor({ log_every = 2, tokens_per_step = 32 }) } })
    assert.are.equal(4, h[4].steps_per_sec)
    assert.are.equal(128, h[4].tokens_per_sec)
    assert.are.equal(32 * 4, h[4].items_per_sec) -- 32 tokens a step, 4 steps a second
    assert.are.equal(0, h[4].eta)
    assert.are.equal(0.5, h[2].eta) -- two steps left at 0.25 s each
    local text = out:text()
    assert.truthy(text:find("step 2: 4.0 steps/s, 128 tok/s\n", 1, true))
    assert.truthy(text:find("throughput: 4 steps in 1.0 s (4.0 steps/s, 128 tok/s)\n", 1, true))
  end)

  describe("progress", function()
    local function run(opts)
      local _, ds = lm_data(600, 8)
      lattice.random.seed(8)
      local now = 0
      local base = { model = tiny.TinyLM(256, 8), optimizer = optim.SGD({ learning_rate = 0.1 }),
        loss_fn = function(m, x, y)
          now = now + 0.5
          return tiny.lm_loss(m, x, y)
        end, train_data = ds:batches({ batch_size = 4 }), eval_data = ds:batches({ batch_size = 4, epochs = 1 }),
        clock = function() return now end }
      for k, v in pairs(opts) do base[k] = v end
      local t = train.Trainer(base)
      return t:fit({ steps = 4, log_every = 2, eval_every = 4, eval_batches = 1 })
    end

    -- what each step's display says: loss, rate, learning rate, time left
    local function fields(m)
      return ("loss %.4f | lr %.2e | %.0f tok/s | ETA %ds"):format(m.loss, m.learning_rate, m.items_per_sec,
        math.floor(m.eta + 0.5))
    end

    it("writes plain lines every log_every steps when the output is not a terminal", function()
      local out = tiny.Writer(false)
      local h = run({ output = out })
      assert.are.equal(("step 2/4 | %s\nstep 4/4 | %s\nstep 4 | eval loss %.4f | perplexity %.3f\n"):format(fields(h[2]),
        fields(h[4]), h[4].eval_loss, h[4].eval_perplexity), out:text())
      assert.is_nil(out:text():find("[\r\27]"))
      local file = io.tmpfile()
      run({ output = file })
      file:seek("set")
      local written = file:read("a")
      file:close()
      assert.truthy(written:find("^step 2/4 | loss "))
    end)

    it("redraws one bar on a terminal, with messages on lines of their own", function()
      local out = tiny.Writer(true)
      local h = run({ output = out })
      local bar = function(step, pct, filled, m)
        return ("\r[%s%s] %d/4 %3d%% | %s\27[K"):format(("="):rep(filled), (" "):rep(24 - filled), step, pct, fields(m))
      end
      -- steps 1, 2, 3 are 0.5 s apart, more than the 0.1 s between redraws; the last is always drawn
      local want = bar(1, 25, 6, h[1]) .. bar(2, 50, 12, h[2]) .. bar(3, 75, 18, h[3]) .. bar(4, 100, 24, h[4])
        .. ("\r\27[Kstep 4 | eval loss %.4f | perplexity %.3f\n"):format(h[4].eval_loss, h[4].eval_perplexity)
        .. bar(4, 100, 24, h[4]):sub(2) .. "\n"
      assert.are.equal(want, out:text())
      local forced = tiny.Writer(false)
      run({ output = forced, progress = "bar" })
      assert.truthy(forced:text():find("^\r%[====="))
      local silent = tiny.Writer(true)
      run({ output = silent, progress = "none" })
      assert.are.equal("", silent:text())
    end)

    it("formats durations", function()
      local duration = require("lattice.train.progress").duration
      assert.are.same({ "0s", "59s", "1m00s", "1m05s", "59m59s", "1h00m", "1h02m", "?" },
        { duration(0.2), duration(59.4), duration(59.6), duration(65), duration(3599), duration(3600), duration(3725),
          duration(math.huge) })
    end)
  end)

  it("stops when train_data runs out", function()
    local _, ds = lm_data(200, 8)
    local it = ds:batches({ batch_size = 8, epochs = 1 })
    local t = trainer({ model = tiny.TinyLM(256, 8), optimizer = optim.SGD({ learning_rate = 0.1 }), train_data = it })
    local h = t:fit({ steps = 100 })
    assert.are.equal(it.batches_per_epoch, #h)
    assert.are.equal(it.batches_per_epoch, t.step)
    assert.are.same({}, t:fit({ steps = 3 }))
  end)

  it("names bad options", function()
    local m, opt = tiny.TinyLM(256, 8), optim.SGD({ learning_rate = 0.1 })
    local _, ds = lm_data(200, 8)
    local it = ds:batches({ batch_size = 4 })
    assert.has_error(function() train.Trainer({ optimizer = opt, loss_fn = tiny.lm_loss }) end,
      "Trainer: model must be a module, got nil")
    assert.has_error(function() train.Trainer({ model = m, optimizer = {}, loss_fn = tiny.lm_loss }) end,
      "Trainer: optimizer must be a lattice.optim optimizer, got table")
    assert.has_error(function() train.Trainer({ model = m, optimizer = opt }) end, "Trainer: loss_fn is required")
    assert.has_error(function() train.Trainer({ model = m, optimizer = opt, loss_fn = tiny.lm_loss, train_data = 3 }) end,
      "Trainer: train_data must have a next() method (a BatchIterator) or be a function")
    assert.has_error(function() train.Trainer({ model = m, optimizer = opt, loss_fn = tiny.lm_loss, progress = "fancy" }) end,
      "Trainer: progress must be 'auto', 'bar', 'lines' or 'none', got fancy")
    assert.has_error(function() train.Trainer({ model = m, optimizer = opt, loss_fn = tiny.lm_loss, output = 1 }) end,
      "Trainer: output must be a file or have a write() method")
    assert.has_error(function() train.Trainer({ model = m, optimizer = opt, loss_fn = tiny.lm_loss, epochs = 1 }) end,
      "Trainer: unknown option 'epochs'")
    local t = trainer({ model = m, optimizer = opt, train_data = it })
    assert.has_error(function() t:fit({}) end,
      "Trainer:fit: steps must be an integer >= 0 (the step to train up to), got nil")
    assert.has_error(function() t:fit({ steps = 2, grad_accum = 0 }) end,
      "Trainer:fit: grad_accum must be a positive integer, got 0")
    assert.has_error(function() t:fit({ steps = 2, clip_grad_norm = -1 }) end,
      "Trainer:fit: clip_grad_norm must be a number > 0, got -1")
    assert.has_error(function() t:fit({ steps = 2, checkpoint_every = 1 }) end,
      "Trainer:fit: checkpoint_every needs a checkpoint_dir (a string)")
    assert.has_error(function() t:fit({ steps = 2, eval_every = 1 }) end, "Trainer:fit: eval_every needs the trainer's eval_data")
    assert.has_error(function() t:fit({ steps = 2, keep_checkpoints = 0 }) end,
      "Trainer:fit: keep_checkpoints must be a positive integer or false, got 0")
    assert.has_error(function() t:fit({ steps = 2, callbacks = { 3 } }) end, "Trainer:fit: callbacks[1] must be a table, got number")
    assert.has_error(function() t:evaluate() end, "Trainer:evaluate: the trainer has no eval_data")
    local bad = trainer({ model = m, optimizer = opt, train_data = it, loss_fn = function(model, x) return model(x) end })
    assert.has_error(function() bad:fit({ steps = 1 }) end, "value_and_grad: the function must return a scalar, got 8192 elements")
    assert.has_error(function() train.EarlyStopping({ patience = 0 }) end,
      "EarlyStopping: patience must be a positive integer, got 0")
    assert.has_error(function() train.GradientStats({}) end, "GradientStats: probe_batch must be a list of the batch's values")
  end)
end)
