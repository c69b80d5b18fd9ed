-- `lattice models ...`: the seed's command line (src/lmxlab/cli.py) over
-- lattice.models' presets.
--
--   lattice models list                          the architectures
--   lattice models info NAME [--tiny]            a config's fields
--   lattice models count NAME [--tiny] [--detail]   its parameter count
--   lattice models bench NAME [--tiny] [--seq-len N] [--gen-tokens N]
--                                                forward and decode speed
--
-- count is computed from the config (lattice.models.count_parameters), so
-- it answers for a 13B config too; bench builds the model.
local lattice = require "lattice"
local models = require "lattice.models"

local M = {}

local USAGE = [[
usage: lattice models list
       lattice models info NAME [--tiny]
       lattice models count NAME [--tiny] [--detail]
       lattice models bench NAME [--tiny] [--seq-len N] [--gen-tokens N]
]]

-- 1234567 -> "1,234,567", as Python's {:,}.
local function commas(n)
  local s = tostring(math.tointeger(n) or n)
  local head, tail = s:match("^(-?%d+)(.*)$")
  head = head:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^(-?),", "%1")
  return head .. tail
end
M.commas = commas

-- Parses args after the subcommand: one positional NAME and the flags
-- `spec` allows (true: a switch; "integer": takes a positive integer).
local function parse(args, spec)
  local o, name = {}, nil
  local i = 1
  while i <= #args do
    local a = args[i]
    local key = a:match("^%-%-([%w-]+)$")
    if key then
      local kind = spec[key]
      if kind == nil then return nil, ("unknown option '%s'"):format(a) end
      if kind == "integer" then
        local v = math.tointeger(tonumber(args[i + 1] or ""))
        if not v or v < 1 then return nil, ("option '%s' needs a positive integer"):format(a) end
        o[key] = v
        i = i + 1
      else
        o[key] = true
      end
    elseif name == nil then
      name = a
    else
      return nil, ("unexpected argument '%s'"):format(a)
    end
    i = i + 1
  end
  if name == nil then return nil, "missing the architecture NAME" end
  return name, o
end

-- The config NAME names (tiny when asked), or nil after saying why.
local function config_of(name, tiny, err)
  local arch = models.architecture(name:lower())
  if not arch then
    err:write(("Unknown architecture: %s\nAvailable: %s\n"):format(name, table.concat(models.names(), ", ")))
    return nil
  end
  return (tiny and arch.tiny or arch.full)(), tiny and name:lower() .. " (tiny)" or name:lower()
end

local function cmd_list(out)
  out:write("Available architectures:\n")
  for _, name in ipairs(models.names()) do
    local b = models.architecture(name).full().block
    out:write(("  %-10s  attention=%s, norm=%s, ffn=%s\n"):format(name, b.attention, b.norm, b.ffn))
  end
  return 0
end

local function cmd_info(cfg, label, out)
  local b = cfg.block
  local lines = {
    { "Architecture: ", label }, { "  vocab_size:    ", commas(cfg.vocab_size) }, { "  n_layers:      ", cfg.n_layers },
    { "  d_model:       ", b.d_model }, { "  n_heads:       ", b.n_heads },
    { "  n_kv_heads:    ", b.effective_n_kv_heads }, { "  d_ff:          ", b.d_ff },
    { "  head_dim:      ", b.head_dim }, { "  attention:     ", b.attention }, { "  ffn:           ", b.ffn },
    { "  norm:          ", b.norm }, { "  position:      ", b.position }, { "  bias:          ", b.bias },
    { "  pre_norm:      ", b.pre_norm }, { "  tie_embeddings:", cfg.tie_embeddings },
  }
  if b.window_size ~= nil then lines[#lines + 1] = { "  window_size:   ", b.window_size } end
  if b.qk_norm then lines[#lines + 1] = { "  qk_norm:       ", true } end
  if cfg.block_configs ~= nil then lines[#lines + 1] = { "  block_configs: ", #cfg.block_configs .. " layers" } end
  for _, l in ipairs(lines) do out:write(l[1], tostring(l[2]), "\n") end
  return 0
end

local function cmd_count(cfg, label, detail, out)
  local total, parts = models.count_parameters(cfg, { detail = true })
  out:write(("%s: %s parameters\n"):format(label, commas(total)))
  if detail then
    local names = {}
    for k in pairs(parts) do names[#names + 1] = k end
    table.sort(names, function(a, b) return parts[a] > parts[b] or (parts[a] == parts[b] and a < b) end)
    for _, k in ipairs(names) do
      out:write(("  %-20s %12s  (%.1f%%)\n"):format(k, commas(parts[k]), 100 * parts[k] / total))
    end
  end
  return 0
end

local function median(xs)
  table.sort(xs)
  local n = #xs
  return n % 2 == 1 and xs[(n + 1) // 2] or (xs[n // 2] + xs[n // 2 + 1]) / 2
end

-- The median seconds of `reps` runs of fn, after one warm-up run.
local function timed(fn, reps)
  fn()
  local t = {}
  for i = 1, reps do
    local t0 = lattice.now()
    fn()
    t[i] = lattice.now() - t0
  end
  return median(t)
end

local function cmd_bench(cfg, label, o, out)
  local model = lattice.nn.LanguageModel(cfg)
  model:eval()
  local n = model:num_parameters()
  out:write(("Architecture: %s\n  Parameters: %s\n  Memory:     %.1f MB\n"):format(label, commas(n), n * 4 / 2 ^ 20))
  local T = o["seq-len"] or 32
  lattice.random.seed(0)
  local tokens = lattice.random.randint(0, cfg.vocab_size, { 1, T })
  local fwd = timed(function() model(tokens) end, 5)
  out:write(("\nForward pass (seq_len=%d):\n  Mean:       %.2f ms\n  Throughput: %.0f tok/s\n"):format(T, fwd * 1e3,
    T / fwd))
  local G = o["gen-tokens"] or 20
  local prompt = lattice.random.randint(0, cfg.vocab_size, { 1, 4 })
  local cache
  local prefill = timed(function()
    cache = model:make_cache(1, 4 + G)
    model(prompt, { cache = cache })
  end, 5)
  local tok = lattice.array({ { 0 } }, "int32")
  local t0 = lattice.now()
  for _ = 1, G do model(tok, { cache = cache }) end
  local per = (lattice.now() - t0) / G
  out:write(("\nGeneration (%d tokens):\n  Prefill:    %.2f ms\n  Decode:     %.2f ms/tok\n  Decode:     %.0f tok/s\n")
    :format(G, prefill * 1e3, per * 1e3, 1 / per))
  return 0
end

local commands = {
  list = { spec = {} },
  info = { spec = { tiny = true } },
  count = { spec = { tiny = true, detail = true } },
  bench = { spec = { tiny = true, ["seq-len"] = "integer", ["gen-tokens"] = "integer" } },
}

--- run(args[, out, err]): runs `lattice models <args>`, writing to out and
-- err (io.stdout and io.stderr); returns the exit status.
function M.run(args, out, err)
  out, err = out or io.stdout, err or io.stderr
  if args[1] == "-h" or args[1] == "--help" then
    out:write(USAGE)
    return 0
  end
  local cmd = commands[args[1] or ""]
  if not cmd then
    if args[1] ~= nil then err:write(("lattice models: unknown command '%s'\n"):format(args[1])) end
    err:write(USAGE)
    return 1
  end
  local rest = table.move(args, 2, #args, 1, {})
  if args[1] == "list" then
    if #rest > 0 then
      err:write("lattice models list: takes no arguments\n", USAGE)
      return 1
    end
    return cmd_list(out)
  end
  local name, o = parse(rest, cmd.spec)
  if not name then
    err:write(("lattice models %s: %s\n"):format(args[1], o), USAGE)
    return 1
  end
  local cfg, label = config_of(name, o.tiny, err)
  if not cfg then return 1 end
  if args[1] == "info" then return cmd_info(cfg, label, out) end
  if args[1] == "count" then return cmd_count(cfg, label, o.detail, out) end
  return cmd_bench(cfg, label, o, out)
end

return M
