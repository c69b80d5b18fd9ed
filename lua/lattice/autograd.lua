-- value_and_grad and grad in the MLX sense: differentiate a Lua function of
-- tensors (or of nested tables of tensors) that returns a scalar tensor.
local core = require "lattice.core"

local autograd = {}

-- Calls a tape primitive; its errors name the public function the user called
-- (the C core names them all "value_and_grad").
local function tape_call(fname, primitive, ...)
  local ok, result = pcall(primitive, ...)
  if not ok then error((tostring(result):gsub("value_and_grad:", fname .. ":", 1)), 0) end
  return result
end

-- Replaces every tensor in `tree` by a tracked leaf view; records the leaves in
-- order. Tables are copied (keeping their metatable); other values pass
-- through. A table met again on the path from the root is a cycle.
local function watch(tree, leaves, tape, fname, path)
  if core.is_tensor(tree) then
    local leaf = tape_call(fname, core.tape_watch, tape, tree)
    leaves[#leaves + 1] = leaf
    return leaf
  elseif type(tree) == "table" then
    path = path or {}
    if path[tree] then error(fname .. ": the arguments contain a table that contains itself", 0) end
    path[tree] = true
    local copy = {}
    for k, v in pairs(tree) do copy[k] = watch(v, leaves, tape, fname, path) end
    path[tree] = nil
    return setmetatable(copy, getmetatable(tree))
  end
  return tree
end

-- Rebuilds the structure of `tree` with the gradients in leaf order; values
-- that are not tensors have no gradient and are left out.
local function rebuild(tree, grads, pos)
  if core.is_tensor(tree) then
    pos[1] = pos[1] + 1
    return grads[pos[1]]
  elseif type(tree) == "table" then
    local out = {}
    for k, v in pairs(tree) do out[k] = rebuild(v, grads, pos) end
    return out
  end
  return nil
end

local function check_argnums(argnums, fname)
  if argnums == nil then return { 1 }, true end
  if math.type(argnums) == "integer" then return { argnums }, true end
  if type(argnums) == "table" then return argnums, false end
  error(fname .. ": argnums must be an integer or a table of integers", 3)
end

-- Runs fn with its differentiated arguments watched; returns the results of fn
-- and the gradients structured like those arguments. The tape belongs to this
-- call: it is freed on every path out, errors included, and when the call is
-- abandoned (its coroutine closed or collected) through the handle's __close
-- and __gc.
local function differentiate(fname, fn, argnums, single, ...)
  local args = table.pack(...)
  for _, k in ipairs(argnums) do
    if math.type(k) ~= "integer" or k < 1 or k > args.n then
      error(("%s: argnums %s is out of range for %d arguments"):format(fname, tostring(k), args.n), 3)
    end
  end
  local tape <close> = tape_call(fname, core.tape_begin)
  local originals, leaves = {}, {}
  for i, k in ipairs(argnums) do
    originals[i] = args[k]
    args[k] = watch(args[k], leaves, tape, fname)
  end
  local out = table.pack(fn(table.unpack(args, 1, args.n)))
  if not core.is_tensor(out[1]) then
    error(("%s: the function must return a lattice.Tensor, got %s"):format(fname, type(out[1])), 0)
  end
  local flat, pos = tape_call(fname, core.tape_backward, tape, out[1], leaves), { 0 }
  local grads = {}
  for i = 1, #argnums do grads[i] = rebuild(originals[i], flat, pos) end
  if single then return out, grads[1] end -- nil when the argument holds no tensor
  return out, grads
end

--- value_and_grad(fn[, argnums]) -> function(...) returning fn's value, the
-- gradients of the argument(s) `argnums` (1-based, default 1), and any extra
-- values fn returned after the scalar.
function autograd.value_and_grad(fn, argnums)
  if type(fn) ~= "function" then error("value_and_grad: fn must be a function, got " .. type(fn), 2) end
  local nums, single = check_argnums(argnums, "value_and_grad")
  return function(...)
    local out, grads = differentiate("value_and_grad", fn, nums, single, ...)
    return out[1], grads, table.unpack(out, 2, out.n)
  end
end

--- grad(fn[, argnums]) -> function(...) returning only the gradients.
function autograd.grad(fn, argnums)
  if type(fn) ~= "function" then error("grad: fn must be a function, got " .. type(fn), 2) end
  local nums, single = check_argnums(argnums, "grad")
  return function(...)
    local _, grads = differentiate("grad", fn, nums, single, ...)
    return grads
  end
end

return autograd
