-- `lattice models list|info|count|bench`: the seed CLI's output over
-- lattice.models, through lattice.cli.models.run and through the command.
local cli = require "lattice.cli.models"
local models = require "lattice.models"

local function buffer()
  local b = { text = "" }
  function b.write(self, ...)
    for _, s in ipairs({ ... }) do self.text = self.text .. s end
    return self
  end
  return b
end

local function run(...)
  local out, err = buffer(), buffer()
  local status = cli.run({ ... }, out, err)
  return status, out.text, err.text
end

describe("lattice models", function()
  it("lists every architecture with its components", function()
    local status, out = run("list")
    assert.equal(0, status)
    local lines = {}
    for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.equal("Available architectures:", lines[1])
    assert.equal("  gpt         attention=mha, norm=layer_norm, ffn=standard", lines[2])
    assert.equal("  gemma3      attention=sliding_window_gqa, norm=rms_norm, ffn=gated", lines[5])
    assert.equal(#models.names() + 1, #lines)
  end)

  it("shows a config's fields, tiny ones with --tiny", function()
    local status, out = run("info", "llama", "--tiny")
    assert.equal(0, status)
    assert.truthy(out:find("Architecture: llama (tiny)\n", 1, true))
    assert.truthy(out:find("  n_kv_heads:    2\n", 1, true))
    assert.truthy(out:find("  tie_embeddings:false\n", 1, true))
    status, out = run("info", "gemma3")
    assert.equal(0, status)
    assert.truthy(out:find("  vocab_size:    256,000\n", 1, true))
    assert.truthy(out:find("  window_size:   4096\n", 1, true))
    assert.truthy(out:find("  block_configs: 26 layers\n", 1, true))
  end)

  it("counts parameters from the config, by component with --detail", function()
    local status, out = run("count", "llama_13b")
    assert.equal(0, status)
    assert.equal(("llama_13b: %s parameters\n"):format(cli.commas(models.count_parameters(models.llama_13b()))), out)
    status, out = run("count", "gpt", "--tiny", "--detail")
    assert.equal(0, status)
    assert.equal("gpt (tiny): 83,456 parameters\n" ..
      "  blocks                     66,944  (80.2%)\n" ..
      "  embed                      16,384  (19.6%)\n" ..
      "  final_norm                    128  (0.2%)\n", out)
  end)

  it("benchmarks a model it builds: forward, prefill and decode", function()
    local status, out = run("bench", "llama", "--tiny", "--seq-len", "8", "--gen-tokens", "3")
    assert.equal(0, status)
    assert.truthy(out:find("^Architecture: llama %(tiny%)\n  Parameters: 106,816\n  Memory:     0%.4 MB\n"))
    assert.truthy(out:find("\nForward pass %(seq_len=8%):\n  Mean:       [%d.]+ ms\n  Throughput: %d+ tok/s\n"))
    assert.truthy(out:find("\nGeneration %(3 tokens%):\n  Prefill:    [%d.]+ ms\n  Decode:     [%d.]+ ms/tok\n"))
  end)

  it("says what is wrong, with exit status 1", function()
    local status, _, err = run("count", "gpt5")
    assert.equal(1, status)
    assert.truthy(err:find("Unknown architecture: gpt5\nAvailable: gpt, llama, ", 1, true))
    status, _, err = run("info")
    assert.equal(1, status)
    assert.truthy(err:find("lattice models info: missing the architecture NAME\nusage:", 1, true))
    status, _, err = run("count", "gpt", "--bad")
    assert.equal(1, status)
    assert.truthy(err:find("lattice models count: unknown option '--bad'", 1, true))
    status, _, err = run("bench", "gpt", "--seq-len", "0")
    assert.equal(1, status)
    assert.truthy(err:find("lattice models bench: option '--seq-len' needs a positive integer", 1, true))
    status, _, err = run("frobnicate")
    assert.equal(1, status)
    assert.truthy(err:find("lattice models: unknown command 'frobnicate'", 1, true))
    status, _, err = run("list", "extra")
    assert.equal(1, status)
    assert.truthy(err:find("lattice models list: takes no arguments", 1, true))
    local out
    status, out = run("--help")
    assert.equal(0, status)
    assert.truthy(out:find("^usage: lattice models list\n"))
  end)

  it("runs as the command's first argument", function()
    local exe = arg and arg[-1]
    if not exe then return end
    local p = assert(io.popen(("'%s' models count llama --tiny 2>&1; echo \"exit $?\""):format(exe)))
    assert.equal("llama (tiny): 106,816 parameters\nexit 0\n", p:read("a"))
    p:close()
    p = assert(io.popen(("'%s' models info nope 2>&1; echo \"exit $?\""):format(exe)))
    assert.truthy(p:read("a"):find("Unknown architecture: nope\n.*exit 1\n$"))
    p:close()
  end)
end)
