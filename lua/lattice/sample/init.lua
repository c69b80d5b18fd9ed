-- lattice.sample: choosing tokens and generating text from a language model
-- (lmxlab's models/generate.py and inference/): next_token, generate,
-- stream_generate (lattice.sample.generate), best_of_n, majority_vote,
-- beam_search (lattice.sample.search) and speculative_decode
-- (lattice.sample.speculative). The helpers whose names start with _ stay
-- in their files.
local M = {}
for _, name in ipairs({ "lattice.sample.generate", "lattice.sample.search", "lattice.sample.speculative" }) do
  for k, v in pairs(require(name)) do
    if k:sub(1, 1) ~= "_" then M[k] = v end
  end
end
return M
