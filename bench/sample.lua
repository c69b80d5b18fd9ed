-- Next-token choice (lattice.sample.next_token, the C kernel lt_sample) on
-- one row of logits per call, as every decode step of generation makes it:
-- greedy, a plain draw, top-k 50 and top-p 0.9, for vocabularies of 32000
-- (LLaMA), 50257 (GPT-2) and 151936 (Qwen). The logits are peaked as a
-- trained model's are (normal * 4: the nucleus at 0.9 holds a few hundred
-- tokens). The reference, measured in the same run, is a memcpy of the
-- logits' bytes: reading them once is the least any choice must do.
-- Usage: lattice bench/sample.lua [threads]
package.path = arg[0]:gsub("[^/]*$", "") .. "?.lua;" .. package.path
local lattice = require "lattice"
local core = require "lattice.core"
local common = require "common"
local sample = require "lattice.sample"

if arg and arg[1] then lattice.set_num_threads(math.tointeger(tonumber(arg[1])) or error("sample: threads must be an integer")) end
local SAMPLES = 9

local cases = {
  { name = "greedy", o = { temperature = 0 } },
  { name = "plain", o = {} },
  { name = "top_k_50", o = { top_k = 50 } },
  { name = "top_p_0.9", o = { top_p = 0.9 } },
}

for _, V in ipairs({ 32000, 50257, 151936 }) do
  lattice.random.seed(V)
  local logits = lattice.random.normal({ 1, V }) * 4
  -- checks before timing: greedy is the argmax, top-k stays in the top 50
  assert(sample.next_token(logits, { temperature = 0 }):item() == lattice.argmax(logits, 2):item(), "greedy check")
  local _, top = lattice.topk(logits, 50)
  local in_top = {}
  for _, id in ipairs(top:tolist()[1]) do in_top[id] = true end
  for _ = 1, 20 do assert(in_top[sample.next_token(logits, { top_k = 50 }):item()], "top_k check") end
  for _, case in ipairs(cases) do
    local op, cp, ratios = {}, {}, {}
    sample.next_token(logits, case.o)
    for i = 1, SAMPLES do
      local t0 = lattice.now()
      sample.next_token(logits, case.o)
      op[i] = lattice.now() - t0
      cp[i] = core.bench_memcpy(4 * V, 5)
      ratios[i] = cp[i] / op[i]
    end
    local t = common.median(op)
    common.report({ bench = "sample", case = case.name, vocab = V, us = t * 1e6, tokens_per_s = 1 / t,
      logits_gbps = 4 * V / t * 1e-9, memcpy_gbps = 4 * V / common.median(cp) * 1e-9, ratio = common.median(ratios) })
  end
end
