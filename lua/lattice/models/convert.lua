-- Reading a Hugging Face checkpoint directory (config.json and
-- *.safetensors, on disk: nothing is downloaded) into lattice's names, as
-- lmxlab's models/convert.py maps them:
--
--   model.embed_tokens.weight                     -> embed.weight
--   model.norm.weight                             -> final_norm.weight
--   lm_head.weight                                -> head.weight
--   model.layers.N.self_attn.{q,k,v,o}_proj.W     -> blocks.N.attention.{q,k,v,o}_proj.W
--   model.layers.N.mlp.{gate,up,down}_proj.W      -> blocks.N.ffn.{gate,up,down}.W
--   model.layers.N.input_layernorm.W              -> blocks.N.attn_norm.W
--   model.layers.N.post_attention_layernorm.W     -> blocks.N.ffn_norm.W
--
-- for the LLaMA family (model_type llama and mistral, which name their
-- tensors alike), and for GPT-2 (not in the seed):
--
--   wte.weight, wpe.weight                        -> embed.weight, pos_embed.weight
--   h.N.ln_1.W, h.N.ln_2.W, ln_f.W                -> blocks.N.attn_norm.W, blocks.N.ffn_norm.W, final_norm.W
--   h.N.attn.c_attn.W (d, 3d)                     -> blocks.N.attention.{q,k,v}_proj.W, transposed, split
--   h.N.attn.c_proj.W, h.N.mlp.c_fc.W, .c_proj.W  -> blocks.N.attention.o_proj.W, blocks.N.ffn.up.W, .down.W, transposed
--
-- (GPT-2's Conv1D keeps its weights (in, out), nn.Linear (out, in)), with
-- the config's learned positions (position "learned") and tanh GELU (ffn
-- "gelu_tanh"), the two components lattice has for it. Where the seed's conversion would give other logits than
-- the checkpoint's own model, this refuses instead: a config it cannot
-- express (rope_scaling, biases on some projections only, another
-- activation) is an error, a tensor name it has no place for is an error
-- (the seed drops it silently), and rms_norm_eps and sliding_window are read
-- (the seed leaves norm_eps at 1e-5 and ignores the window).
local lattice = require "lattice"
local core = require "lattice.core"
local sparse = require "lattice.sparse"

local M = {}
local api = sparse.api

local function fail(fname, msg) error(fname .. ": " .. msg, 0) end

-- ---- names ----

local FFN = { gate_proj = "gate", up_proj = "up", down_proj = "down" }

-- The lattice name of a LLaMA-family tensor, false for one to skip, nil for one unknown.
local function llama_name(hf)
  if hf == "model.embed_tokens.weight" then return "embed.weight" end
  if hf == "model.norm.weight" then return "final_norm.weight" end
  if hf == "lm_head.weight" then return "head.weight" end
  local idx, rest = hf:match("^model%.layers%.(%d+)%.(.+)$")
  if not idx then return nil end
  if rest:match("rotary_emb%.inv_freq$") then return false end -- a buffer, recomputed from rope_theta
  local proj, param = rest:match("^self_attn%.([qkvo]_proj)%.(%w+)$")
  if proj then return ("blocks.%s.attention.%s.%s"):format(idx, proj, param) end
  local ffn
  ffn, param = rest:match("^mlp%.(%w+_proj)%.(%w+)$")
  if ffn and FFN[ffn] then return ("blocks.%s.ffn.%s.%s"):format(idx, FFN[ffn], param) end
  param = rest:match("^input_layernorm%.(%w+)$")
  if param then return ("blocks.%s.attn_norm.%s"):format(idx, param) end
  param = rest:match("^post_attention_layernorm%.(%w+)$")
  if param then return ("blocks.%s.ffn_norm.%s"):format(idx, param) end
  return nil
end


-- GPT-2: a name's lattice name and how its tensor becomes the parameter(s).
-- Returns a list of {name, tensor}, false to skip, nil when unknown.
local function gpt2_tensors(hf, t, d)
  local name = hf:gsub("^transformer%.", "")
  if name == "wte.weight" then return { { "embed.weight", t } } end
  if name == "wpe.weight" then return { { "pos_embed.weight", t } } end
  if name == "lm_head.weight" then return { { "head.weight", t } } end
  local p = name:match("^ln_f%.(%w+)$")
  if p then return { { "final_norm." .. p, t } } end
  local idx, rest = name:match("^h%.(%d+)%.(.+)$")
  if not idx then return nil end
  local b = "blocks." .. idx .. "."
  if rest == "attn.bias" or rest == "attn.masked_bias" then return false end -- the causal mask buffers
  p = rest:match("^ln_1%.(%w+)$")
  if p then return { { b .. "attn_norm." .. p, t } } end
  p = rest:match("^ln_2%.(%w+)$")
  if p then return { { b .. "ffn_norm." .. p, t } } end
  local simple = { ["attn.c_proj"] = "attention.o_proj", ["mlp.c_fc"] = "ffn.up", ["mlp.c_proj"] = "ffn.down" }
  local layer
  layer, p = rest:match("^(.+)%.(%w+)$")
  if simple[layer] then return { { b .. simple[layer] .. "." .. p, p == "weight" and t:transpose():contiguous() or t } } end
  if layer == "attn.c_attn" then
    local full = p == "weight" and t:transpose():contiguous() or t -- (3d, d) or (3d)
    if full.shape[1] ~= 3 * d then return nil end
    local out = {}
    for i, proj in ipairs({ "q_proj", "k_proj", "v_proj" }) do
      out[i] = { b .. "attention." .. proj .. "." .. p, full:slice(1, (i - 1) * d + 1, i * d):contiguous() }
    end
    return out
  end
  return nil
end

-- Per architecture: name, tensor, d_model -> a list of {lattice name, tensor}, false, or nil.
local function renamed(map)
  return function(hf, t)
    local name = map(hf)
    if name == nil then return nil end
    return name and { { name, t } }
  end
end
M.WEIGHT_MAPS = { llama = renamed(llama_name), mistral = renamed(llama_name), gpt2 = gpt2_tensors }

local function arch_names()
  local names = {}
  for k in pairs(M.WEIGHT_MAPS) do names[#names + 1] = k end
  table.sort(names)
  return table.concat(names, ", ")
end

--- convert_weights(weights, arch[, d_model]): the tensors of a Hugging Face
-- state dict (name -> tensor) under lattice's names; arch is its
-- model_type (gpt2 needs d_model to split c_attn). A name the map does not
-- know is an error. A tied GPT-2 checkpoint's lm_head.weight is wte's and is
-- dropped by from_hf.
local function convert_weights(weights, arch, d_model)
  local fname = "convert_weights"
  local map = M.WEIGHT_MAPS[arch]
  if not map then fail(fname, ("unknown architecture '%s'; known: %s"):format(tostring(arch), arch_names())) end
  if type(weights) ~= "table" then fail(fname, "weights must be a table of tensors by name, got " .. type(weights)) end
  local out, names = {}, {}
  for k in pairs(weights) do names[#names + 1] = k end
  table.sort(names)
  if arch == "gpt2" and math.type(d_model) ~= "integer" then fail(fname, "gpt2 needs d_model to split c_attn") end
  for _, hf in ipairs(names) do
    local list = map(hf, weights[hf], d_model)
    if list == nil then fail(fname, ("%s: no lattice name for tensor '%s'"):format(arch, hf)) end
    for _, pair in ipairs(list or {}) do out[pair[1]] = pair[2] end
  end
  return out
end
M.convert_weights = api(convert_weights)

-- ---- config ----

local REQUIRED = { "num_attention_heads", "hidden_size", "intermediate_size", "vocab_size", "num_hidden_layers" }

-- What lattice's blocks cannot express, as an error.
local function check_expressible(hf, fname)
  local act = hf.hidden_act or "silu"
  if act ~= "silu" then fail(fname, ("hidden_act '%s' is not supported (the gated FFN uses silu)"):format(tostring(act))) end
  if hf.rope_scaling ~= nil then fail(fname, "rope_scaling is not supported (lattice's RoPE has no scaling of positions)") end
  if hf.attention_bias or hf.mlp_bias then
    fail(fname, "attention_bias and mlp_bias are not supported (lattice's bias applies to every projection and norm)")
  end
  if hf.head_dim ~= nil and hf.head_dim ~= hf.hidden_size // hf.num_attention_heads then
    fail(fname, ("head_dim %s differs from hidden_size / num_attention_heads"):format(tostring(hf.head_dim)))
  end
end

local GPT2_REQUIRED = { "n_embd", "n_head", "n_layer", "vocab_size" }
local GPT2_ACT = { gelu_new = "gelu_tanh", gelu_pytorch_tanh = "gelu_tanh", gelu = "standard" }

-- GPT-2: LayerNorm, MHA, learned positions, biases, pre-norm, tied by default.
local function gpt2_config(hf, fname)
  local missing = {}
  for _, k in ipairs(GPT2_REQUIRED) do if hf[k] == nil then missing[#missing + 1] = k end end
  if #missing > 0 then fail(fname, "config.json lacks " .. table.concat(missing, ", ")) end
  local act = hf.activation_function or "gelu_new"
  if not GPT2_ACT[act] then fail(fname, ("activation_function '%s' is not supported"):format(tostring(act))) end
  if hf.scale_attn_by_inverse_layer_idx or hf.reorder_and_upcast_attn or hf.scale_attn_weights == false then
    fail(fname, "scale_attn_by_inverse_layer_idx, reorder_and_upcast_attn and scale_attn_weights = false are not supported")
  end
  local block = lattice.BlockConfig {
    attention = "mha", ffn = GPT2_ACT[act], norm = "layer_norm", position = "learned", d_model = hf.n_embd,
    n_heads = hf.n_head, d_ff = hf.n_inner or 4 * hf.n_embd, bias = true, norm_eps = hf.layer_norm_epsilon or 1e-5,
    max_seq_len = hf.n_positions or 1024, pre_norm = true,
  }
  return lattice.ModelConfig { block = block, vocab_size = hf.vocab_size, n_layers = hf.n_layer,
    tie_embeddings = hf.tie_word_embeddings ~= false }
end

--- config_from_hf(hf_config): the ModelConfig of a parsed config.json of
-- the LLaMA family (the seed's config_from_hf, reading norm_eps and a
-- sliding window too) or of GPT-2.
local function config_from_hf(hf)
  local fname = "config_from_hf"
  if type(hf) ~= "table" then fail(fname, "config must be a table (a parsed config.json), got " .. type(hf)) end
  local mt = hf.model_type
  if not M.WEIGHT_MAPS[mt] then
    fail(fname, ("unsupported model_type '%s'; supported: %s"):format(tostring(mt or ""), arch_names()))
  end
  if mt == "gpt2" then
    local ok, cfg = pcall(gpt2_config, hf, fname)
    if not ok then
      local msg = tostring(cfg):gsub("^[^:]*:%d+: ", "")
      error(msg:find("^" .. fname .. ": ") and msg or fname .. ": " .. msg, 0)
    end
    return cfg
  end
  local missing = {}
  for _, k in ipairs(REQUIRED) do if hf[k] == nil then missing[#missing + 1] = k end end
  if #missing > 0 then fail(fname, "config.json lacks " .. table.concat(missing, ", ")) end
  check_expressible(hf, fname)
  local window = hf.sliding_window
  local ok, cfg = pcall(function()
    local block = lattice.BlockConfig {
      attention = window and "sliding_window_gqa" or "gqa", ffn = "gated", norm = "rms_norm", position = "rope",
      d_model = hf.hidden_size, n_heads = hf.num_attention_heads,
      n_kv_heads = hf.num_key_value_heads or hf.num_attention_heads, d_ff = hf.intermediate_size, bias = false,
      norm_eps = hf.rms_norm_eps or 1e-5, rope_theta = hf.rope_theta or 10000.0,
      max_seq_len = hf.max_position_embeddings or 4096, pre_norm = true, window_size = window,
    }
    return lattice.ModelConfig {
      block = block, vocab_size = hf.vocab_size, n_layers = hf.num_hidden_layers,
      tie_embeddings = hf.tie_word_embeddings == true,
    }
  end)
  if not ok then fail(fname, (tostring(cfg):gsub("^[^:]*:%d+: ", ""))) end
  return cfg
end
M.config_from_hf = api(config_from_hf)

-- ---- a directory ----

local function read_file(path, fname)
  local f, err = io.open(path, "rb")
  if not f then fail(fname, ("cannot read %s: %s"):format(path, err)) end
  local text = f:read("a")
  f:close()
  return text
end

-- The directory's *.safetensors files, in name order.
local function shards(dir, fname)
  local out = {}
  for _, name in ipairs(core.fs_list(dir, fname)) do
    if name:match("%.safetensors$") then out[#out + 1] = dir .. "/" .. name end
  end
  if #out == 0 then fail(fname, dir .. ": no .safetensors files in it") end
  return out
end

--- load_hf(dir[, {dtype = "float32"}]) -> weights, model_cfg: the tensors
-- of every *.safetensors file in dir under lattice's names, converted to
-- dtype, and the ModelConfig of its config.json. A tensor found in two
-- shards is an error.
local function load_hf(dir, opts)
  local fname = "load_hf"
  if type(dir) ~= "string" then fail(fname, "dir must be a path, got " .. type(dir)) end
  opts = sparse.check_options(opts, { dtype = true }, fname)
  local dtype = opts.dtype or "float32"
  if core.fs_kind(dir) ~= "directory" then fail(fname, dir .. ": not a directory") end
  local cfg_path = dir .. "/config.json"
  if core.fs_kind(cfg_path) ~= "file" then fail(fname, dir .. ": no config.json in it") end
  local ok, hf = pcall(lattice.json.decode, read_file(cfg_path, fname))
  if not ok then fail(fname, cfg_path .. ": " .. tostring(hf)) end
  local cfg = config_from_hf(hf)
  local all = {}
  for _, path in ipairs(shards(dir, fname)) do
    for name, t in pairs(lattice.load_safetensors(path)) do
      if all[name] then fail(fname, ("tensor '%s' is in two files (the second: %s)"):format(name, path)) end
      all[name] = t.dtype == dtype and t or t:astype(dtype)
    end
  end
  return convert_weights(all, hf.model_type, cfg.block.d_model), cfg
end
M.load_hf = api(load_hf)

-- The tree model:update takes, from dotted names (list positions from 0).
local function tree_of(flat)
  local tree = {}
  for name, t in pairs(flat) do
    local node, parts = tree, {}
    for p in name:gmatch("[^.]+") do parts[#parts + 1] = p end
    for i = 1, #parts - 1 do
      local k = math.tointeger(tonumber(parts[i])) and tonumber(parts[i]) + 1 or parts[i]
      node[k] = node[k] or {}
      node = node[k]
    end
    node[parts[#parts]] = t
  end
  return tree
end

--- from_hf(dir[, {dtype}]) -> model, model_cfg: an nn.LanguageModel built
-- from the directory's config with its tensors loaded. Every parameter must
-- come from the files and every tensor must have a parameter; shapes must
-- agree. The model is in eval mode.
local function from_hf(dir, opts)
  local fname = "from_hf"
  local weights, cfg = load_hf(dir, opts)
  local model = lattice.nn.LanguageModel(cfg)
  if cfg.tie_embeddings then weights["head.weight"] = nil end -- a tied checkpoint may store wte twice
  local params = model:named_parameters()
  local missing = {}
  for name in pairs(params) do if weights[name] == nil then missing[#missing + 1] = name end end
  table.sort(missing)
  if #missing > 0 then fail(fname, ("%s: the files lack %s"):format(dir, table.concat(missing, ", "))) end
  for name, t in pairs(weights) do
    if params[name] == nil then fail(fname, ("%s: tensor %s has no parameter in the model"):format(dir, name)) end
    if params[name].dtype ~= t.dtype then weights[name] = t:astype(params[name].dtype) end
  end
  local ok, err = pcall(model.update, model, tree_of(weights))
  if not ok then fail(fname, dir .. ": " .. tostring(err)) end
  model:eval()
  return model, cfg
end
M.from_hf = api(from_hf)

return M
