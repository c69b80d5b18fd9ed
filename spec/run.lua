-- Runs the busted specs inside the `lattice` command, so they test the binary
-- users run:
--   lattice spec/run.lua [busted arguments]
-- With no arguments it runs every *_spec.lua under spec/. Helpers in
-- spec/support/ are required as "support.<name>". busted ends the process
-- with os.exit(1) on any failure or error, which ctest reports.
local here = (arg and arg[0] or "spec/run.lua"):match("^(.*)/[^/]*$") or "."
package.path = here .. "/?.lua;" .. package.path

-- arg[-1] stays: spec/embed_spec.lua runs the `lattice` command found there.
local busted_arg = { [-1] = arg and arg[-1], [0] = arg and arg[0] or "spec/run.lua", ... }
if #busted_arg == 0 then busted_arg[1] = here end
arg = busted_arg -- luacheck: ignore 121 (busted reads the global `arg`)

require "busted.runner" { standalone = false }
