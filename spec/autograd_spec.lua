local lattice = require "lattice"
local gradcheck = require "support.gradcheck"

describe("value_and_grad", function()
  it("returns the value and the gradient of the first argument", function()
    local f = lattice.value_and_grad(function(x) return lattice.sum(x * x) end)
    local value, grad = f(lattice.array({1, 2, 3}))
    assert.are.equal(14, value:item())
    assert.are.same({2, 4, 6}, grad:tolist())
  end)

  it("gives gradients with the structure of a nested table", function()
    local function loss(p, x)
      return lattice.sum(lattice.matmul(x, p.layers[1].w) + p.layers[1].b) + lattice.sum(p.scale * p.scale)
    end
    local params = {layers = {{w = lattice.ones({2, 2}), b = lattice.zeros({2})}}, scale = lattice.array(3),
                    name = "not a tensor"}
    local x = lattice.array({{1, 2}, {3, 4}})
    local _, g = lattice.value_and_grad(loss)(params, x)
    -- d/dw sum(x @ w) = x^T @ ones: column sums of x for every output column
    assert.are.same({{4, 4}, {6, 6}}, g.layers[1].w:tolist())
    assert.are.same({2, 2}, g.layers[1].b:tolist())
    assert.are.equal(6, g.scale:item())
    assert.is_nil(g.name)
  end)

  it("differentiates the arguments named by argnums (1-based)", function()
    local f = function(a, b) return lattice.sum(a * b * b) end
    local a, b = lattice.array({1, 2}), lattice.array({3, 4})
    local _, gb = lattice.value_and_grad(f, 2)(a, b)
    assert.are.same({6, 16}, gb:tolist())
    local _, both = lattice.value_and_grad(f, {1, 2})(a, b)
    assert.are.same({9, 16}, both[1]:tolist())
    assert.are.same({6, 16}, both[2]:tolist())
    assert.has_error(function() lattice.value_and_grad(f, 3)(a, b) end,
      "value_and_grad: argnums 3 is out of range for 2 arguments")
  end)

  it("gives nil, not a table, for a single argument that holds no tensor", function()
    assert.is_nil(lattice.grad(function(_, y) return lattice.sum(y) end)(2, lattice.ones({2})))
  end)

  it("passes extra return values through after the gradients", function()
    local f = lattice.value_and_grad(function(x) return lattice.sum(x), "aux", 42 end)
    local v, g, aux, n = f(lattice.array({1, 2}))
    assert.are.equal(3, v:item())
    assert.are.same({1, 1}, g:tolist())
    assert.are.equal("aux", aux)
    assert.are.equal(42, n)
  end)

  it("accumulates gradients of an input used several times", function()
    local g = lattice.grad(function(x) return lattice.sum(x * x + x + lattice.exp(x * 0)) end)(lattice.array({1, -2}))
    assert.are.same({3, -3}, g:tolist())
  end)

  it("returns zeros for inputs the value does not depend on", function()
    local g = lattice.grad(function(_, y) return lattice.sum(y) end, {1, 2})(lattice.array({1, 2}), lattice.array({5}))
    assert.are.same({0, 0}, g[1]:tolist())
    assert.are.same({1}, g[2]:tolist())
  end)

  it("stops gradients at stop_gradient", function()
    local g = lattice.grad(function(x) return lattice.sum(x * lattice.stop_gradient(x)) end)(lattice.array({2, 3}))
    assert.are.same({2, 3}, g:tolist())
    assert.has_error(function() lattice.stop_gradient(lattice.array({1}), 2) end,
      "stop_gradient: too many arguments (expected at most 1, got 2)")
  end)

  it("keeps gradients in the dtype of their input", function()
    local g = lattice.grad(function(x) return lattice.sum(x * 2) end)(lattice.array({1, 2}, "float16"))
    assert.are.equal("float16", g.dtype)
    assert.are.same({2, 2}, g:tolist())
  end)

  it("rejects functions that do not return a scalar float tensor", function()
    local x = lattice.array({1, 2})
    assert.has_error(function() lattice.value_and_grad(function(t) return t end)(x) end,
      "value_and_grad: the function must return a scalar, got 2 elements")
    assert.has_error(function() lattice.value_and_grad(function() return 1 end)(x) end,
      "value_and_grad: the function must return a lattice.Tensor, got number")
    assert.has_error(function() lattice.grad(function(t) return lattice.sum(t:astype("int32")) end)(x) end,
      "grad: the function must return a float, got int64")
    assert.has_error(function() lattice.value_and_grad(42) end, "value_and_grad: fn must be a function, got number")
    assert.has_error(function() lattice.grad(function(t) return t end)(x) end,
      "grad: the function must return a scalar, got 2 elements")
  end)

  it("frees the tape when the function fails, so the next call works", function()
    local f = lattice.value_and_grad(function(x)
      if x:item() < 0 then error("negative input", 0) end
      return x * 2
    end)
    assert.has_error(function() f(lattice.array({-1})) end, "negative input")
    local v, g = f(lattice.array({1}))
    assert.are.equal(2, v:item())
    assert.are.same({2}, g:tolist())
  end)

  it("does not nest yet, and says so", function()
    local inner = lattice.grad(function(x) return lattice.sum(x * x) end)
    assert.has_error(function() lattice.grad(function(x) return lattice.sum(inner(x)) end)(lattice.array({1})) end,
      "grad: nested differentiation is not supported yet (value_and_grad was called inside a function it is "
        .. "differentiating)")
  end)

  it("calls nesting what nests through a coroutine the function resumes", function()
    local inner = lattice.grad(function(x) return lattice.sum(x * x) end)
    local outer = lattice.grad(function(x)
      local co = coroutine.wrap(function() return inner(x) end)
      return lattice.sum(co())
    end)
    assert.has_error(function() outer(lattice.array({1})) end,
      "grad: nested differentiation is not supported yet (value_and_grad was called inside a function it is "
        .. "differentiating)")
    assert.are.same({4}, lattice.grad(function(x) return lattice.sum(x * x * 2) end)(lattice.array({1})):tolist())
  end)

  describe("abandoned in a coroutine", function()
    local core = require "lattice.core"
    -- a gradient whose function yields half-way: the coroutine is left suspended
    local function suspended()
      local co = coroutine.create(lattice.value_and_grad(function(x)
        local y = x * 3
        coroutine.yield()
        return lattice.sum(y)
      end))
      assert(coroutine.resume(co, lattice.array({1, 2})))
      assert.are.equal("suspended", coroutine.status(co))
      return co
    end
    local function works()
      local v, g = lattice.value_and_grad(function(x) return lattice.sum(x * x) end)(lattice.array({3}))
      assert.are.equal(9, v:item())
      assert.are.same({6}, g:tolist())
    end

    it("frees the tape when the coroutine is closed", function()
      local co = suspended()
      assert.is_true(coroutine.close(co))
      assert.are.equal(0, core.tape_size())
      works()
    end)

    it("frees the tape when the coroutine is collected", function()
      suspended()
      collectgarbage()
      collectgarbage()
      assert.are.equal(0, core.tape_size())
      works()
    end)

    it("lets a new gradient take over while the old coroutine is still reachable, and fails the old one", function()
      local co = suspended()
      works()
      local ok, err = coroutine.resume(co)
      assert.is_false(ok)
      assert.are.equal("value_and_grad: this gradient was abandoned: another value_and_grad started while its "
        .. "coroutine was suspended", err)
      works()
    end)
  end)

  it("says an input was closed inside the function, naming the function called", function()
    local function closes(t)
      local y = lattice.sum(t * t)
      t:close()
      return y
    end
    assert.has_error(function() lattice.value_and_grad(closes)(lattice.array({1, 2})) end,
      "value_and_grad: an input being differentiated was closed inside the function (close it after the gradient "
        .. "is taken)")
    assert.has_error(function() lattice.grad(function(p) return closes(p.w) end)({ w = lattice.array({1}) }) end,
      "grad: an input being differentiated was closed inside the function (close it after the gradient is taken)")
    local v, g = lattice.value_and_grad(function(t) return lattice.sum(t * t) end)(lattice.array({3}))
    assert.are.same({9, 6}, {v:item(), g:item()})
  end)

  it("names a table that contains itself instead of overflowing the stack", function()
    local params = { w = lattice.array({1}) }
    params.self = params
    assert.has_error(function() lattice.grad(function(p) return lattice.sum(p.w) end)(params) end,
      "grad: the arguments contain a table that contains itself")
  end)

  it("records nothing outside value_and_grad and for untracked tensors", function()
    local core = require "lattice.core"
    local x, c = lattice.array({1, 2}), lattice.array({4, 5})
    local _ = x * c
    assert.are.equal(0, core.tape_size()) -- no tape outside value_and_grad
    local sizes = {}
    local f = lattice.value_and_grad(function(p)
      sizes[1] = core.tape_size()
      local k = c * 2 + 1 -- constants only: nothing recorded
      sizes[2] = core.tape_size()
      local y = p * k -- one node
      sizes[3] = core.tape_size()
      return lattice.sum(y)
    end)
    local _, g = f(x)
    assert.are.same({0, 0, 1}, sizes)
    assert.are.same({9, 11}, g:tolist())
    assert.are.equal(0, core.tape_size()) -- freed after backward
  end)

  it("matches finite differences on a composite function", function()
    lattice.random.seed(11)
    local a, b = lattice.random.normal({3, 4}), lattice.random.normal({4, 2})
    gradcheck.each_dtype(function(x, y) return lattice.sum(lattice.tanh(lattice.matmul(x, y)) * lattice.matmul(x, y)) end, {a, b})
  end)
end)
