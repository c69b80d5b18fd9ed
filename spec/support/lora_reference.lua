-- What the LoRA and QLoRA specs share: the adapted layer written plainly in
-- Lua doubles, a closeness check on nested lists, and the sorted dotted
-- names of a parameter tree.
local lattice = require "lattice"

local M = {}

local function rows(t) return t:astype("float64"):tolist() end

--- forward(x, w, b, a, bm, s): x W^T + b + s (x A) B from the tensors' values
-- (b may be nil); a list of rows.
function M.forward(x, w, b, a, bm, s)
  local X, W, A, B = rows(x), rows(w), rows(a), rows(bm)
  local bias = b and rows(b)
  local out = {}
  for i, xi in ipairs(X) do
    local xa = {}
    for r = 1, #A[1] do
      xa[r] = 0
      for k = 1, #xi do xa[r] = xa[r] + xi[k] * A[k][r] end
    end
    out[i] = {}
    for o = 1, #W do
      local v = bias and bias[o] or 0
      for k = 1, #xi do v = v + xi[k] * W[o][k] end
      local d = 0
      for r = 1, #xa do d = d + xa[r] * B[r][o] end
      out[i][o] = v + s * d
    end
  end
  return out
end

--- assert_close(got, want, tol): every entry within tol relative to 1 + |want|.
function M.assert_close(got, want, tol)
  for i = 1, #want do
    for j = 1, #want[i] do
      assert(math.abs(got[i][j] - want[i][j]) <= tol * (1 + math.abs(want[i][j])),
        ("[%d][%d]: got %.9g, want %.9g"):format(i, j, got[i][j], want[i][j]))
    end
  end
end

--- tree_names(tree): the dotted names of the tensors of a parameter tree, sorted.
function M.tree_names(tree, prefix, out)
  out = out or {}
  for k, v in pairs(tree) do
    local name = (prefix and prefix .. "." or "") .. (math.type(k) == "integer" and tostring(k - 1) or k)
    if lattice.is_tensor(v) then out[#out + 1] = name else M.tree_names(v, name, out) end
  end
  if not prefix then table.sort(out) end
  return out
end

return M
