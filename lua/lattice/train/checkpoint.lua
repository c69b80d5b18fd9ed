-- Checkpoint directories: <dir>/step-00000100/ with model.safetensors,
-- optimizer.safetensors and metadata.json, as the seed's save_checkpoint
-- writes them. A checkpoint is written under a temporary name in <dir> and
-- renamed into place once every file is on disk (core/io/dirs.h), so a
-- writer killed half way leaves the checkpoints before it as they were and
-- its temporary (.lt-*.tmpdir, never listed) is removed by the next save.
local lattice = require "lattice"
local core = require "lattice.core"

local M = {}

M.FORMAT = "lattice.checkpoint"
M.VERSION = 1

local NAME = "step-%08d"

--- name(step) -> "step-00000100"
function M.name(step) return NAME:format(step) end

--- list(dir) -> {{step = 100, path = "<dir>/step-00000100"}, ...} by step:
-- the directories named step-<digits> that hold a metadata.json.
function M.list(dir, who)
  who = who or "checkpoint.list"
  if core.fs_kind(dir) ~= "directory" then return {} end
  local out = {}
  for _, name in ipairs(core.fs_list(dir, who)) do
    local digits = name:match("^step%-(%d+)$")
    local path = dir .. "/" .. name
    if digits and core.fs_kind(path .. "/metadata.json") == "file" then
      out[#out + 1] = { step = math.tointeger(tonumber(digits)), path = path }
    end
  end
  table.sort(out, function(a, b) return a.step < b.step end)
  return out
end

--- latest(dir) -> the path of the checkpoint with the highest step, or nil.
function M.latest(dir)
  local all = M.list(dir, "checkpoint.latest")
  return all[#all] and all[#all].path
end

--- save(dir, step, write, {keep}, who) -> path: write(tmp_path) writes the
-- files; then the directory appears as <dir>/step-<step>, and all but the
-- `keep` newest checkpoints are removed (keep = nil keeps all). An error in
-- write removes the temporary directory and leaves <dir> as it was.
function M.save(dir, step, write, keep, who)
  core.fs_mkdirs(dir, who)
  local td <close> = core.fs_tempdir(dir, M.name(step), who)
  write(td.path)
  td:commit()
  if keep then
    local all = M.list(dir, who)
    for i = 1, #all - keep do core.fs_remove_tree(all[i].path, who) end
  end
  return dir .. "/" .. M.name(step)
end

--- read_metadata(path, who) -> the checked metadata.json of a checkpoint.
function M.read_metadata(path, who)
  local file = path .. "/metadata.json"
  local f, err = io.open(file, "rb")
  if not f then error(("%s: %s: not a checkpoint (%s)"):format(who, path, err), 3) end
  local text = f:read("a")
  f:close()
  local ok, meta = pcall(lattice.json.decode, text)
  if not ok then error(("%s: %s: %s"):format(who, file, meta), 3) end
  if type(meta) ~= "table" or meta.format ~= M.FORMAT then
    error(("%s: %s is not the metadata of a lattice checkpoint"):format(who, file), 3)
  end
  if meta.version ~= M.VERSION then
    error(("%s: %s has version %s; this lattice reads version %d"):format(who, file, tostring(meta.version),
      M.VERSION), 3)
  end
  if math.type(meta.step) ~= "integer" or meta.step < 0 then
    error(("%s: %s: step must be an integer >= 0"):format(who, file), 3)
  end
  return meta
end

-- The generator's state as JSON keeps it: 64-bit values as 16 hex digits
-- (a JSON number holds 53 bits).
function M.rng_to_json(s) return { key = ("%016x"):format(s.key), counter = ("%016x"):format(s.counter) } end

function M.rng_from_json(t, who, file)
  local function hex(v)
    if type(v) ~= "string" or not v:match("^%x+$") or #v > 16 then
      error(("%s: %s: rng must hold 'key' and 'counter' as hex strings"):format(who, file), 4)
    end
    return tonumber(v, 16) -- wraps past 2^63 to the same 64 bits
  end
  if type(t) ~= "table" then error(("%s: %s: rng is missing"):format(who, file), 3) end
  return { key = hex(t.key), counter = hex(t.counter) }
end

return M
