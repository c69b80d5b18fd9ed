-- The language-model examples, run as a user runs them (`lattice
-- examples/NAME.lua`, here at their LATTICE_SMOKE=1 size) in a child
-- process, with what they print checked: examples/char_lm.lua (the loss
-- falls, the unigram entropy is the text's, a checkpoint is written and
-- resumed, samples are drawn, a missing file is a clear error) and
-- examples/finetune_lora.lua (the second text's loss falls, the base weights
-- stay bit-identical, the adapter reloads to the same outputs and merges
-- within rounding). The command's path is arg[-1] when the specs run inside
-- it (spec/run.lua).
local lattice = require "lattice"

local exe = arg and arg[-1]
local inside_lattice = type(exe) == "string" and exe:match("lattice$") ~= nil
local root = debug.getinfo(1, "S").source:match("^@(.*)/spec/[^/]*$") or "."

local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function read_file(name)
  local f = assert(io.open(name, "rb"))
  local text = f:read("a")
  f:close()
  return text
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function tmpdir()
  local name = os.tmpname()
  os.remove(name)
  return name
end

-- Runs an example at its smoke size; returns stdout, stderr, the exit code.
local function run(example, args)
  local errfile = os.tmpname()
  local p = io.popen(("LATTICE_SMOKE=1 %s %s %s 2>%s </dev/null"):format(quote(exe),
    quote(root .. "/examples/" .. example), args, quote(errfile)))
  local out = p:read("a")
  local _, _, code = p:close()
  local err = read_file(errfile)
  os.remove(errfile)
  return out, err, code
end

-- The two numbers of "(a -> b)" after `label` in the output.
local function before_after(out, label)
  local a, b = out:match(label .. "[^\n]*%(([%d.]+) %-> ([%d.]+)%)")
  return tonumber(a), tonumber(b)
end

-- -sum p ln p over the characters (UTF-8) of a text, counted plainly.
local function unigram_entropy(text)
  local counts, n = {}, 0
  for c in text:gmatch(utf8.charpattern) do
    counts[c], n = (counts[c] or 0) + 1, n + 1
  end
  local h = 0
  for _, k in pairs(counts) do h = h - k / n * math.log(k / n) end
  return h
end

local describe_command = inside_lattice and describe or pending

describe_command("examples/char_lm.lua", function()
  local out_dir = tmpdir()
  teardown(function() os.execute("rm -rf " .. quote(out_dir)) end)

  it("trains until the validation loss falls, saves a checkpoint and samples", function()
    local out, err, code = run("char_lm.lua", "--out " .. quote(out_dir))
    assert.are.equal("", err)
    assert.are.equal(0, code)
    local text = read_file(root .. "/examples/data/coriolanus.txt")
    local printed = tonumber(out:match("unigram entropy of the text: ([%d.]+) nats/char"))
    assert.is_true(math.abs(printed - unigram_entropy(text)) < 1e-4)
    local before = tonumber(out:match("validation loss before training: ([%d.]+)"))
    local after = tonumber(out:match("validation loss after training: ([%d.]+)"))
    assert.is_true(after < before)
    assert.truthy(out:find("loss fell: yes", 1, true))
    -- not a terminal: plain progress lines, no carriage returns
    assert.truthy(out:find("\nstep 40/40 | loss ", 1, true))
    assert.falsy(out:find("\r", 1, true))
    local ck = out_dir .. "/step-00000040"
    assert.truthy(out:find("checkpoint: " .. ck, 1, true))
    for _, f in ipairs({ "model.safetensors", "optimizer.safetensors", "metadata.json" }) do
      assert.is_true(exists(ck .. "/" .. f))
    end
    assert.is_true(exists(out_dir .. "/tokenizer.json"))
    for i = 1, 3 do assert.truthy(out:find("--- sample " .. i, 1, true)) end
  end)

  it("resumes from its checkpoint when run again", function()
    local out, err, code = run("char_lm.lua", "--out " .. quote(out_dir))
    assert.are.equal("", err)
    assert.are.equal(0, code)
    assert.truthy(out:find("resumed from " .. out_dir .. "/step-00000040 at step 40", 1, true))
    assert.truthy(out:find("trained to step 40", 1, true))
  end)

  it("trains on a text file given as its argument", function()
    local path, dir = os.tmpname(), tmpdir()
    local f = assert(io.open(path, "wb"))
    f:write(("abcd efgh\n"):rep(300))
    f:close()
    local out, err, code = run("char_lm.lua", quote(path) .. " --steps 20 --out " .. quote(dir))
    os.remove(path)
    os.execute("rm -rf " .. quote(dir))
    assert.are.equal("", err)
    assert.are.equal(0, code)
    assert.truthy(out:find(path .. ", 3000 characters, 10 distinct", 1, true))
    assert.truthy(out:find("loss fell: yes", 1, true))
  end)

  it("names a missing file and an unknown option", function()
    local _, err, code = run("char_lm.lua", "/nonexistent/text.txt")
    assert.are_not.equal(0, code)
    assert.truthy(err:find("char_lm: /nonexistent/text.txt: No such file or directory", 1, true))
    _, err, code = run("char_lm.lua", "--stpes 3")
    assert.are_not.equal(0, code)
    assert.truthy(err:find("char_lm: unknown option --stpes", 1, true))
  end)
end)

describe_command("examples/finetune_lora.lua", function()
  local out_dir = tmpdir()
  teardown(function() os.execute("rm -rf " .. quote(out_dir)) end)

  it("finetunes with LoRA, keeps the base bit-identical, reloads and merges the adapter", function()
    local out, err, code = run("finetune_lora.lua", "--out " .. quote(out_dir))
    assert.are.equal("", err)
    assert.are.equal(0, code)
    local before, after = before_after(out, "finetuning loss fell: yes")
    assert.is_true(after < before)
    assert.truthy(out:find("base weights bit-identical after finetuning: yes", 1, true))
    assert.truthy(out:find("outputs equal the finetuned model's: yes (max |diff| 0)", 1, true))
    assert.truthy(out:find(": within rounding\n", 1, true))
    assert.truthy(out:find("LoRA layers left after merging: 0", 1, true))
    assert.is_true(exists(out_dir .. "/adapter/adapter.safetensors"))
    local config = lattice.json.decode(read_file(out_dir .. "/adapter/adapter_config.json"))
    assert.are.equal(4, config.rank)
    assert.are.equal(8, config.alpha)
    -- only the LoRA matrices are in the adapter
    local tensors = lattice.load_safetensors(out_dir .. "/adapter/adapter.safetensors")
    local n = 0
    for name in pairs(tensors) do
      n = n + 1
      assert.truthy(name:match("%.lora_[AB]$"), name)
    end
    assert.are.equal(2 * 2 * 7, n) -- 2 layers, q k v o gate up down, A and B
  end)

  it("names a missing text", function()
    local _, err, code = run("finetune_lora.lua", "/nonexistent/a.txt")
    assert.are_not.equal(0, code)
    assert.truthy(err:find("finetune_lora: /nonexistent/a.txt: No such file or directory", 1, true))
  end)
end)
