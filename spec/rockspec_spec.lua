-- rocks/lattice-scm-1.rockspec: it is Lua that LuaRocks can read, and its
-- install table is the rock's whole contents: every file under lua/, each
-- under its module name, and the C module. (ctest's luarocks_make builds it.)
local ROCKSPEC = "rocks/lattice-scm-1.rockspec"

local function load_rockspec()
  local env = {}
  local chunk = assert(loadfile(ROCKSPEC, "t", env))
  chunk()
  return env
end

-- The Lua files under dir, as paths relative to it (sorted).
local function lua_files(dir)
  local found = {}
  local p = assert(io.popen("cd '" .. dir .. "' && find lattice -name '*.lua' | sort"))
  for line in p:lines() do found[#found + 1] = line end
  p:close()
  return found
end

describe("the rockspec", function()
  local spec = load_rockspec()

  it("parses as Lua and names the package, a version and Lua 5.4", function()
    assert.are.equal("lattice", spec.package)
    assert.are.equal("scm-1", spec.version)
    assert.are.equal("3.0", spec.rockspec_format)
    assert.are.same({ "lua >= 5.4, < 5.5" }, spec.dependencies)
  end)

  it("declares the external libraries the C module links", function()
    assert.are.equal("openblas", spec.external_dependencies.OPENBLAS.library)
    assert.are.equal("cjson", spec.external_dependencies.CJSON.library)
    assert.are.equal("cjson/cJSON.h", spec.external_dependencies.CJSON.header)
  end)

  it("builds with CMake without the tests and installs through its own table", function()
    assert.are.equal("cmake", spec.build.type)
    assert.are.equal("OFF", spec.build.variables.LATTICE_BUILD_TESTS)
    assert.is_false(spec.build.install_pass)
  end)

  it("installs the C module lattice.core from the CMake build", function()
    assert.are.same({ ["lattice.core"] = "build.luarocks/lattice/core.so" }, spec.build.install.lib)
  end)

  it("installs every Lua file under lua/ as its module, and nothing else", function()
    local want = {}
    for _, f in ipairs(lua_files("lua")) do
      want[(f:gsub("%.lua$", ""):gsub("/", "."))] = "lua/" .. f
    end
    assert.are.same(want, spec.build.install.lua)
  end)
end)
