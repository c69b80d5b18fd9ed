-- LuaRocks: `luarocks make rocks/lattice-scm-1.rockspec` builds lattice/core.so
-- with CMake (without the tests) and installs it with the Lua library into
-- the rocks tree, after which `require "lattice"` works wherever that tree is
-- on the Lua paths (`luarocks path` prints them). The install table below is
-- the rock's whole contents, one entry per module; spec/rockspec_spec.lua
-- checks that it names every file under lua/ and the C module.
rockspec_format = "3.0"
package = "lattice"
version = "scm-1"
source = {
  url = "git+file://.",
}
description = {
  summary = "Sparse 3D deep learning and transformers on the CPU, from Lua",
  detailed = [[
lattice: sparse tensors and sparse voxel convolutions, transformers, autograd,
optimizers and safetensors I/O, in a C core with OpenMP and AVX-512/AVX2
kernels, for Lua 5.4.]],
  license = "MIT",
  labels = { "deep-learning", "sparse", "point-cloud", "transformer" },
}
dependencies = {
  "lua >= 5.4, < 5.5",
}
-- Debian: libopenblas-dev libcjson-dev (readline is only for the lattice
-- command, which the rock does not install)
external_dependencies = {
  OPENBLAS = { library = "openblas" },
  CJSON = { header = "cjson/cJSON.h", library = "cjson" },
}
build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "Release",
    LUA_INCLUDE_DIR = "$(LUA_INCDIR)",
    LATTICE_BUILD_TESTS = "OFF",
  },
  -- the install below, not CMake's (which is for a prefix, not a rocks tree)
  install_pass = false,
  install = {
    lib = {
      ["lattice.core"] = "build.luarocks/lattice/core.so",
    },
    lua = {
      ["lattice.autograd"] = "lua/lattice/autograd.lua",
      ["lattice.checks"] = "lua/lattice/checks.lua",
      ["lattice.data.batches"] = "lua/lattice/data/batches.lua",
      ["lattice.cli.models"] = "lua/lattice/cli/models.lua",
      ["lattice.data.init"] = "lua/lattice/data/init.lua",
      ["lattice.data.pointcloud"] = "lua/lattice/data/pointcloud.lua",
      ["lattice.data.scenes"] = "lua/lattice/data/scenes.lua",
      ["lattice.data.text"] = "lua/lattice/data/text.lua",
      ["lattice.data.tokenizers"] = "lua/lattice/data/tokenizers.lua",
      ["lattice.format"] = "lua/lattice/format.lua",
      ["lattice.init"] = "lua/lattice/init.lua",
      ["lattice.lora"] = "lua/lattice/lora.lua",
      ["lattice.models.init"] = "lua/lattice/models/init.lua",
      ["lattice.models.convert"] = "lua/lattice/models/convert.lua",
      ["lattice.models.count"] = "lua/lattice/models/count.lua",
      ["lattice.models.presets"] = "lua/lattice/models/presets.lua",
      ["lattice.sample.init"] = "lua/lattice/sample/init.lua",
      ["lattice.sample.generate"] = "lua/lattice/sample/generate.lua",
      ["lattice.sample.search"] = "lua/lattice/sample/search.lua",
      ["lattice.sample.speculative"] = "lua/lattice/sample/speculative.lua",
      ["lattice.nn.containers"] = "lua/lattice/nn/containers.lua",
      ["lattice.nn.init"] = "lua/lattice/nn/init.lua",
      ["lattice.nn.initializers"] = "lua/lattice/nn/initializers.lua",
      ["lattice.nn.layers"] = "lua/lattice/nn/layers.lua",
      ["lattice.nn.losses"] = "lua/lattice/nn/losses.lua",
      ["lattice.nn.mlp"] = "lua/lattice/nn/mlp.lua",
      ["lattice.nn.module"] = "lua/lattice/nn/module.lua",
      ["lattice.nn.quantized"] = "lua/lattice/nn/quantized.lua",
      ["lattice.nn.quantized_conv"] = "lua/lattice/nn/quantized_conv.lua",
      ["lattice.nn.sparse_layers"] = "lua/lattice/nn/sparse_layers.lua",
      ["lattice.nn.sparse_pool"] = "lua/lattice/nn/sparse_pool.lua",
      ["lattice.ops"] = "lua/lattice/ops.lua",
      ["lattice.ops.algebra"] = "lua/lattice/ops/algebra.lua",
      ["lattice.ops.args"] = "lua/lattice/ops/args.lua",
      ["lattice.ops.feature"] = "lua/lattice/ops/feature.lua",
      ["lattice.ops.pool"] = "lua/lattice/ops/pool.lua",
      ["lattice.ops.rows"] = "lua/lattice/ops/rows.lua",
      ["lattice.ops.coords"] = "lua/lattice/ops/coords.lua",
      ["lattice.ops.neighbors"] = "lua/lattice/ops/neighbors.lua",
      ["lattice.ops.voxel"] = "lua/lattice/ops/voxel.lua",
      ["lattice.optim.init"] = "lua/lattice/optim/init.lua",
      ["lattice.optim.schedules"] = "lua/lattice/optim/schedules.lua",
      ["lattice.quantize"] = "lua/lattice/quantize.lua",
      ["lattice.registry"] = "lua/lattice/registry.lua",
      ["lattice.repl"] = "lua/lattice/repl.lua",
      ["lattice.sparse"] = "lua/lattice/sparse.lua",
      ["lattice.train.callbacks"] = "lua/lattice/train/callbacks.lua",
      ["lattice.train.checkpoint"] = "lua/lattice/train/checkpoint.lua",
      ["lattice.train.curriculum"] = "lua/lattice/train/curriculum.lua",
      ["lattice.train.init"] = "lua/lattice/train/init.lua",
      ["lattice.train.objectives"] = "lua/lattice/train/objectives.lua",
      ["lattice.train.progress"] = "lua/lattice/train/progress.lua",
      ["lattice.train.trainer"] = "lua/lattice/train/trainer.lua",
      ["lattice.transformer.attention"] = "lua/lattice/transformer/attention.lua",
      ["lattice.transformer.block"] = "lua/lattice/transformer/block.lua",
      ["lattice.transformer.cache"] = "lua/lattice/transformer/cache.lua",
      ["lattice.transformer.common"] = "lua/lattice/transformer/common.lua",
      ["lattice.transformer.ffn"] = "lua/lattice/transformer/ffn.lua",
      ["lattice.transformer.init"] = "lua/lattice/transformer/init.lua",
      ["lattice.transformer.model"] = "lua/lattice/transformer/model.lua",
      ["lattice.transformer.norm"] = "lua/lattice/transformer/norm.lua",
      ["lattice.transformer.position"] = "lua/lattice/transformer/position.lua",
    },
  },
}
