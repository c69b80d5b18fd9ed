-- A tiny LLaMA-style character language model (RMSNorm, RoPE, a gated FFN,
-- grouped-query attention) trained on a text file with lattice.train.Trainer:
-- the progress bar, checkpoints halfway and at the end (a run started again
-- resumes from the latest), the validation loss against the text's unigram
-- entropy, and a few sampled lines.
--
-- Usage: lattice examples/char_lm.lua [TEXT_FILE] [--steps N] [--out DIR]
--   TEXT_FILE  UTF-8 text to learn (default: examples/data/keeper.txt,
--              public domain, see examples/data/README.md)
--   --steps N  optimizer steps (default 300: past it the model starts to learn this
--              short text by heart and the validation loss rises; 40 with LATTICE_SMOKE=1)
--   --out DIR  checkpoint directory (default: char_lm_checkpoints)
-- LATTICE_SMOKE=1 trains a very small model for a few seconds (the size
-- spec/examples_lm_spec.lua runs).
local lattice = require "lattice"
local nn, optim, train, data = lattice.nn, lattice.optim, lattice.train, lattice.data

local SMOKE = os.getenv("LATTICE_SMOKE") == "1"
local HERE = (arg and arg[0] or ""):match("^(.*/)") or "./"

-- Sizes: the full run takes about a minute on 2 cores; the smoke run seconds.
local SIZE = SMOKE and { d_model = 32, n_heads = 2, n_kv_heads = 1, d_ff = 96, n_layers = 2, seq_len = 32, batch = 8,
  steps = 40, lr = 1e-2, sample_chars = 40 }
  or { d_model = 128, n_heads = 4, n_kv_heads = 2, d_ff = 352, n_layers = 4, seq_len = 64, batch = 32, steps = 300,
    lr = 3e-3, sample_chars = 200 }

local function parse_args(argv)
  local opts = { text = HERE .. "data/keeper.txt", steps = SIZE.steps, out = "char_lm_checkpoints" }
  local i = 1
  while argv[i] do
    local a = argv[i]
    if a == "--steps" then
      opts.steps = math.tointeger(tonumber(argv[i + 1])) or error("char_lm: --steps needs an integer", 0)
      i = i + 2
    elseif a == "--out" then
      opts.out = argv[i + 1] or error("char_lm: --out needs a directory", 0)
      i = i + 2
    elseif a:sub(1, 2) == "--" then
      error("char_lm: unknown option " .. a, 0)
    else
      opts.text, i = a, i + 1
    end
  end
  return opts
end

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then error("char_lm: " .. err, 0) end
  local text = f:read("a")
  f:close()
  return text
end

-- Entropy in nats of the tokens' unigram distribution: the loss of a model
-- that knows each character's frequency and nothing else. Counted in chunks
-- (ids compared with every vocabulary id, then summed), so a large text never
-- makes an (n, V) table of its own.
local function unigram_entropy(tokens, vocab_size)
  local n, counts = tokens.shape[1], lattice.zeros({ vocab_size }, "int64")
  local ids = lattice.arange(vocab_size, "int32"):reshape({ 1, vocab_size })
  for first = 1, n, 65536 do
    local chunk = tokens:slice(1, first, math.min(first + 65535, n)):reshape({ -1, 1 })
    counts = counts + lattice.equal(chunk, ids):sum(1)
  end
  local p = counts:astype("float64") / n
  local plogp = lattice.where(lattice.greater(p, 0), p * lattice.log(lattice.maximum(p, 1e-300)), 0)
  return -plogp:sum():item()
end

-- Draws `n` characters after `prompt` with model:generate (lattice.sample:
-- a KV cache, one token per step, temperature sampling over the logits). The
-- model has seen positions 0 .. window - 1 only, so each call continues the
-- last half window of text and draws up to the other half.
local function sample(model, tok, prompt, n, temperature, window)
  local ids = tok:encode(prompt)
  local was = model.training
  model:eval()
  local drawn = 0
  while drawn < n do
    local ctx = ids:slice(1, math.max(1, ids.shape[1] - window // 2 + 1))
    local k = math.min(n - drawn, window - ctx.shape[1])
    local out = model:generate(ctx, { max_tokens = k, temperature = temperature })
    ids = lattice.concatenate({ ids, out:slice(1, ctx.shape[1] + 1) })
    drawn = drawn + k
  end
  model:train(was)
  return tok:decode(ids)
end

local opts = parse_args(arg or {})
lattice.random.seed(0)

local text = read_file(opts.text)
local tok = data.CharTokenizer(text)
local tokens = tok:encode(text)
local entropy = unigram_entropy(tokens, tok.vocab_size)
print(("text: %s, %d characters, %d distinct"):format(opts.text, tokens.shape[1], tok.vocab_size))
print(("unigram entropy of the text: %.4f nats/char (%.3f bits)"):format(entropy, entropy / math.log(2)))

local windows = data.TextDataset(tokens, { seq_len = SIZE.seq_len })
local train_ds, val_ds = windows:split(0.1)

local block = lattice.BlockConfig {
  attention = "gqa", ffn = "gated", norm = "rms_norm", position = "rope", bias = false,
  d_model = SIZE.d_model, n_heads = SIZE.n_heads, n_kv_heads = SIZE.n_kv_heads, d_ff = SIZE.d_ff,
  max_seq_len = SIZE.seq_len,
}
local config = lattice.ModelConfig { block = block, vocab_size = tok.vocab_size, n_layers = SIZE.n_layers }
local model = nn.LanguageModel(config)
print(("model: LLaMA-style, %d layers, d_model %d, %d heads (%d kv), d_ff %d, %d parameters"):format(
  SIZE.n_layers, SIZE.d_model, SIZE.n_heads, SIZE.n_kv_heads, SIZE.d_ff, model:num_parameters()))

local warmup = math.max(1, opts.steps // 20)
local schedule = optim.join_schedules({ optim.linear_schedule(0, SIZE.lr, warmup),
  optim.cosine_decay(SIZE.lr, math.max(1, opts.steps - warmup), SIZE.lr / 10) }, { warmup })
local trainer = train.Trainer {
  model = model,
  optimizer = optim.AdamW { learning_rate = schedule, weight_decay = 0.01 },
  loss_fn = function(m, x, y) return nn.losses.cross_entropy(m(x), y, { reduction = "mean" }) end,
  train_data = train_ds:batches { batch_size = SIZE.batch, seed = 0 },
  eval_data = val_ds:batches { batch_size = SIZE.batch, shuffle = false, epochs = 1 },
  config = { model = config, text = opts.text },
}

local eval_batches = SMOKE and 4 or 20
local before = trainer:evaluate(eval_batches).eval_loss
if train.latest_checkpoint(opts.out) then
  trainer:resume(opts.out)
  print(("resumed from %s at step %d"):format(train.latest_checkpoint(opts.out), trainer.step))
end
print(("validation loss before training: %.4f nats/char"):format(before))

local t0 = lattice.now()
trainer:fit { steps = opts.steps, eval_every = math.max(1, opts.steps // 4), log_every = math.max(1, opts.steps // 20),
  checkpoint_every = math.max(1, opts.steps // 2), checkpoint_dir = opts.out, clip_grad_norm = 1.0, eval_batches = eval_batches }
local elapsed = lattice.now() - t0
tok:save(opts.out .. "/tokenizer.json")

local after = trainer:evaluate(eval_batches).eval_loss
print(("trained to step %d in %.1f s; checkpoint: %s"):format(trainer.step, elapsed,
  train.latest_checkpoint(opts.out) or "none"))
print(("validation loss after training: %.4f nats/char (%.3f bits), unigram entropy %.4f nats/char"):format(
  after, after / math.log(2), entropy))
print(("loss fell: %s; below the unigram entropy: %s (%.4f nats/char, %.0f%% of it)"):format(
  after < before and "yes" or "no", after < entropy and "yes" or "no", math.abs(entropy - after),
  100 * math.abs(entropy - after) / entropy))

-- Samples start after a line break (or the text's first character when it
-- has none), so every prompt is in the vocabulary.
local prompt = text:find("\n", 1, true) and "\n" or text:match("^" .. utf8.charpattern) or text:sub(1, 1)
print("samples (temperature 0.8):")
for i = 1, 3 do
  print(("--- sample %d"):format(i))
  print((sample(model, tok, prompt, SIZE.sample_chars, 0.8, SIZE.seq_len):gsub("^\n", "")))
end
