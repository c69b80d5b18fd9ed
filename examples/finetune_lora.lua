-- LoRA finetuning of a tiny language model: pretrain on one text, adapt to a
-- second with lattice.lora (only the low-rank matrices train), check that the
-- base weights did not move by a single bit, save the adapter, load it into a
-- fresh copy of the base model, and merge it into plain linear layers.
--
-- Usage: lattice examples/finetune_lora.lua [PRETRAIN_TEXT [FINETUNE_TEXT]] [--out DIR]
--   PRETRAIN_TEXT  default examples/data/coriolanus.txt (public domain)
--   FINETUNE_TEXT  default: sentences this script generates from a small
--                  grammar (seeded), a style the first text does not have
--   --out DIR      where the base weights and the adapter go (default lora_out)
-- LATTICE_SMOKE=1 runs a very small model for a few seconds (the size
-- spec/examples_lm_spec.lua runs).
local lattice = require "lattice"
local nn, optim, train, data, lora = lattice.nn, lattice.optim, lattice.train, lattice.data, lattice.lora

local SMOKE = os.getenv("LATTICE_SMOKE") == "1"
local HERE = (arg and arg[0] or ""):match("^(.*/)") or "./"

local SIZE = SMOKE and { d_model = 32, n_heads = 2, n_kv_heads = 1, d_ff = 96, n_layers = 2, seq_len = 32, batch = 8,
  pretrain_steps = 30, finetune_steps = 30, lr = 1e-2, lora_lr = 1e-2, rank = 4, eval_batches = 4 }
  or { d_model = 128, n_heads = 4, n_kv_heads = 2, d_ff = 352, n_layers = 4, seq_len = 64, batch = 32,
    pretrain_steps = 300, finetune_steps = 200, lr = 3e-3, lora_lr = 3e-3, rank = 8, eval_batches = 10 }

local function parse_args(argv)
  local opts, texts, i = { out = "lora_out" }, {}, 1
  while argv[i] do
    if argv[i] == "--out" then
      opts.out = argv[i + 1] or error("finetune_lora: --out needs a directory", 0)
      i = i + 2
    elseif argv[i]:sub(1, 2) == "--" then
      error("finetune_lora: unknown option " .. argv[i], 0)
    else
      texts[#texts + 1], i = argv[i], i + 1
    end
  end
  if #texts > 2 then error("finetune_lora: at most two texts, got " .. #texts, 0) end
  opts.pretrain, opts.finetune = texts[1] or HERE .. "data/coriolanus.txt", texts[2]
  return opts
end

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then error("finetune_lora: " .. err, 0) end
  local s = f:read("a")
  f:close()
  return s
end

-- Sentences of a small grammar ("the old fox sees a red dog."), words drawn
-- with the seeded generator: regular, so a model can learn it well, and in
-- letters the first text already has.
local function grammar_text(n_sentences)
  local det = { "the", "a", "every", "no" }
  local adj = { "old", "red", "quick", "lazy", "brave", "small" }
  local noun = { "fox", "dog", "king", "horse", "soldier", "city" }
  local verb = { "sees", "follows", "fears", "loves", "finds", "guards" }
  local parts = { det, adj, noun, verb, det, adj, noun }
  local picks = {}
  for k, words in ipairs(parts) do picks[k] = lattice.random.randint(1, #words + 1, { n_sentences }):tolist() end
  local lines = {}
  for i = 1, n_sentences do
    local w = {}
    for k, words in ipairs(parts) do w[k] = words[picks[k][i]] end
    lines[i] = table.concat(w, " ") .. "."
  end
  return table.concat(lines, "\n") .. "\n"
end

local function batches(tokens, shuffle)
  local train_ds, val_ds = data.TextDataset(tokens, { seq_len = SIZE.seq_len }):split(0.1)
  return train_ds:batches { batch_size = SIZE.batch, seed = 0, shuffle = shuffle },
    val_ds:batches { batch_size = SIZE.batch, shuffle = false, epochs = 1 }
end

local function lm_loss(m, x, y) return nn.losses.cross_entropy(m(x), y, { reduction = "mean" }) end

local function trainer_for(model, tokens, lr, steps)
  local train_it, val_it = batches(tokens)
  local warmup = math.max(1, steps // 10)
  return train.Trainer {
    model = model, loss_fn = lm_loss, train_data = train_it, eval_data = val_it,
    optimizer = optim.AdamW { learning_rate = optim.join_schedules({ optim.linear_schedule(0, lr, warmup),
      optim.cosine_decay(lr, math.max(1, steps - warmup), lr / 10) }, { warmup }) },
  }
end

-- The base model's tensors (everything but the LoRA matrices) by name.
local function base_tensors(model)
  local out = {}
  for name, t in pairs(model:named_parameters()) do
    if not (name:match("%.lora_A$") or name:match("%.lora_B$")) then out[name] = t end
  end
  return out
end

local function max_abs_diff(a, b) return lattice.abs(a - b):max():item() end

local opts = parse_args(arg or {})
lattice.random.seed(0)
local text_a = read_file(opts.pretrain)
local text_b = opts.finetune and read_file(opts.finetune) or grammar_text(SMOKE and 400 or 1200)
local tok = data.CharTokenizer(text_a .. text_b)
local tokens_a, tokens_b = tok:encode(text_a), tok:encode(text_b)
print(("pretraining text: %s, %d characters; finetuning text: %s, %d characters; %d distinct characters"):format(
  opts.pretrain, tokens_a.shape[1], opts.finetune or "generated sentences", tokens_b.shape[1], tok.vocab_size))

local config = lattice.ModelConfig {
  block = lattice.BlockConfig { attention = "gqa", ffn = "gated", norm = "rms_norm", position = "rope", bias = false,
    d_model = SIZE.d_model, n_heads = SIZE.n_heads, n_kv_heads = SIZE.n_kv_heads, d_ff = SIZE.d_ff,
    max_seq_len = SIZE.seq_len },
  vocab_size = tok.vocab_size, n_layers = SIZE.n_layers,
}
local model = nn.LanguageModel(config)

-- 1. Pretraining on the first text.
print(("== pretraining: %d parameters, %d steps"):format(model:num_parameters(), SIZE.pretrain_steps))
local pre = trainer_for(model, tokens_a, SIZE.lr, SIZE.pretrain_steps)
pre:fit { steps = SIZE.pretrain_steps, log_every = math.max(1, SIZE.pretrain_steps // 10) }
print(("validation loss on the pretraining text: %.4f nats/char"):format(pre:evaluate(SIZE.eval_batches).eval_loss))
local base_path = opts.out .. "/base.safetensors"
os.execute("mkdir -p '" .. opts.out:gsub("'", "'\\''") .. "'")
lattice.save_safetensors(base_path, model:named_parameters())

-- 2. LoRA on the attention and FFN projections; everything else frozen.
local lora_opts = { rank = SIZE.rank, alpha = 2 * SIZE.rank, targets = { "attention", "ffn" } }
lora.apply_lora(model, lora_opts)
local fine = trainer_for(model, tokens_b, SIZE.lora_lr, SIZE.finetune_steps)
local loss_before = fine:evaluate(SIZE.eval_batches).eval_loss
print(("== LoRA finetuning: rank %d, alpha %d, %d trainable parameters of %d, %d steps"):format(lora_opts.rank,
  lora_opts.alpha, model:num_parameters({ trainable = true }), model:num_parameters(), SIZE.finetune_steps))
print(("validation loss on the finetuning text before: %.4f nats/char"):format(loss_before))
fine:fit { steps = SIZE.finetune_steps, log_every = math.max(1, SIZE.finetune_steps // 10) }
local loss_after = fine:evaluate(SIZE.eval_batches).eval_loss
print(("validation loss on the finetuning text after: %.4f nats/char"):format(loss_after))
print(("finetuning loss fell: %s (%.4f -> %.4f)"):format(loss_after < loss_before and "yes" or "no", loss_before,
  loss_after))

-- 3. The base weights, written the same way before and after: the same bytes.
local after_path = opts.out .. "/base_after_finetuning.safetensors"
lattice.save_safetensors(after_path, base_tensors(model))
local bytes_before, bytes_after = read_file(base_path), read_file(after_path)
local n_tensors = 0
for _ in pairs(base_tensors(model)) do n_tensors = n_tensors + 1 end
print(("base weights bit-identical after finetuning: %s (%d tensors, %d bytes compared)"):format(
  bytes_before == bytes_after and "yes" or "no", n_tensors, #bytes_before))
os.remove(after_path)

-- 4. The adapter on disk, loaded into a fresh copy of the base model.
local adapter_dir = opts.out .. "/adapter"
lora.save_lora_adapters(adapter_dir, model, { metadata = { base = base_path, finetune_steps = SIZE.finetune_steps } })
local fresh = nn.LanguageModel(config)
fresh:load_weights(base_path)
lora.apply_lora(fresh, lora_opts)
local meta = lora.load_lora_adapters(adapter_dir, fresh)
model:eval()
fresh:eval()
local probe = tokens_b:slice(1, 1, SIZE.seq_len):reshape({ 1, SIZE.seq_len })
local adapted = model(probe)
local reloaded_diff = max_abs_diff(fresh(probe), adapted)
print(("adapter reloaded from %s (rank %s, alpha %s): outputs equal the finetuned model's: %s (max |diff| %g)"):format(
  adapter_dir, tostring(meta.rank), tostring(meta.alpha), reloaded_diff == 0 and "yes" or "no", reloaded_diff))

-- 5. Merged into plain nn.Linear layers: W + (alpha / rank) (A B)^T, the same
-- function summed another way, so equal within float32 rounding.
lora.merge_lora(fresh)
local merged_diff = max_abs_diff(fresh(probe), adapted)
local scale = lattice.abs(adapted):max():item()
local tolerance = 1e-5 * (1 + scale) * SIZE.n_layers
print(("merged: max |merged - adapted| = %.3g over logits up to %.3g (tolerance %.2g): %s"):format(merged_diff,
  scale, tolerance, merged_diff <= tolerance and "within rounding" or "NOT within rounding"))
local loras = 0
for _, m in pairs(fresh:named_modules()) do if lora.is_lora(m) then loras = loras + 1 end end
print(("LoRA layers left after merging: %d"):format(loras))
