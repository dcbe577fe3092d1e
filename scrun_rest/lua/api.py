"""The `slurm` table scrun.lua sees, as scrun(1) documents it.

slurm.SUCCESS, slurm.ERROR (and FAILURE, NO_VAL, INFINITE as Slurm defines
them), set_bundle_path, set_root_path, remote_command, allocator_command,
log, error, log_error, log_info, log_verbose, log_debug..log_debug4 and
time_str2mins.

Follows Slurm's own implementation where the man page is vague:
* slurm.log takes (LEVEL, MSG) in Slurm's C code and (MSG, LEVEL) in the man
  page; both orders work (when both are numbers, the first is LEVEL), and
  slurm.log(MSG) logs at info. Levels 0..4 are info, verbose, debug, debug2,
  debug3; above 4 is debug4; below 0 logs nothing.
* slurm.log_info(FMT, ...) and friends format their arguments with
  string.format, as Slurm's do.
* set_bundle_path/set_root_path return the original path.
* allocator_command/remote_command return the command's exit status (128+N
  when signal N killed it) and its stdout and stderr together.
* time_str2mins returns -1 for -1/INFINITE/UNLIMITED and -2 for a string it
  cannot read: Slurm's NO_VAL as the C int time_str2mins() returns.
"""
import logging
import os
import re
import subprocess

from scrun_rest import slurm_time
from scrun_rest.log import LEVELS
from scrun_rest.lua.runtime import to_bytes, to_text

log = logging.getLogger("scrun_rest.lua")

SUCCESS = 0
ERROR = -1
NO_VAL = 0xfffffffe
INFINITE = 0xffffffff
TIME_INVALID = -2  # NO_VAL through time_str2mins()'s int
_DAYS_ONLY = re.compile(r"^\s*(\d+)-\s*$")

_LUA_SIDE = b"""
local py_log, py_bundle, py_root, py_remote, py_alloc, py_mins = ...
local format, tostring, tonumber, type, select, pcall, error =
  string.format, tostring, tonumber, type, select, pcall, error
local floor = math.floor

local slurm = {
  SUCCESS = 0, ERROR = -1, FAILURE = -1,
  NO_VAL = 4294967294, NO_VAL16 = 65534, NO_VAL8 = 254, INFINITE = 4294967295,
}

local function text(name, value)
  local kind = type(value)
  if kind == "string" then return value end
  if kind == "number" then return tostring(value) end
  error(format("slurm.%s: expected a string, got %s", name, kind), 3)
end

local function checked(name, ok, a, b)
  if not ok then error(format("slurm.%s: %s", name, tostring(a)), 3) end
  return a, b
end

local level_names = {[0] = "info", "verbose", "debug", "debug2", "debug3"}

function slurm.log(a, b)
  local level, msg
  if b == nil then
    level, msg = 0, a   -- one argument: the message, at level info
  elseif type(b) == "number" and type(a) ~= "number" then
    level, msg = b, a   -- slurm.log(MSG, LEVEL), as the man page writes it
  else
    level, msg = a, b   -- slurm.log(LEVEL, MSG), as Slurm's C code reads it
  end
  level = floor(tonumber(level) or 0)
  if level < 0 then return end
  py_log(level_names[level] or "debug4", tostring(msg))
end

function slurm.error(msg)
  py_log("error", tostring(msg))
end

local function message(fmt, ...)
  local ok, msg = pcall(format, fmt, ...)
  if ok then return msg end
  if select("#", ...) == 0 then return tostring(fmt) end
  error(msg, 3)
end

local function logger(name)
  return function(fmt, ...)
    local msg = message(fmt, ...)
    py_log(name, msg)
  end
end

slurm.log_error = logger("error")
slurm.log_info = logger("info")
slurm.log_verbose = logger("verbose")
slurm.log_debug = logger("debug")
slurm.log_debug2 = logger("debug2")
slurm.log_debug3 = logger("debug3")
slurm.log_debug4 = logger("debug4")

function slurm.set_bundle_path(path)
  local orig = checked("set_bundle_path", py_bundle(text("set_bundle_path", path)))
  return orig
end

function slurm.set_root_path(path)
  local orig = checked("set_root_path", py_root(text("set_root_path", path)))
  return orig
end

function slurm.remote_command(script)
  local status, output = checked("remote_command", py_remote(text("remote_command", script)))
  return status, output
end

function slurm.allocator_command(script)
  local status, output = checked("allocator_command",
                                 py_alloc(text("allocator_command", script)))
  return status, output
end

function slurm.time_str2mins(value)
  if type(value) ~= "string" and type(value) ~= "number" then value = nil end
  local minutes = py_mins(value ~= nil and tostring(value) or nil)
  return minutes
end

-- The anchor's stdout is the container's: print() logs at info instead.
function _G.print(...)
  local parts = {}
  for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
  py_log("info", table.concat(parts, "\t"))
end

_G.slurm = slurm
return slurm
"""


class SlurmApi:
    """Python side of the `slurm` table; one per Staging.

    `env` is the environment allocator_command runs with; `remote` is the
    anchor's remote_command while stage_in/stage_out runs, else None.
    """

    def __init__(self, runtime, orig_bundle, orig_root):
        self.runtime = runtime
        self.orig_bundle = orig_bundle
        self.orig_root = orig_root
        self.bundle = None
        self.root = None
        self.env = None
        self.remote = None
        self.table = runtime.run(_LUA_SIDE, self._log, self._set_bundle, self._set_root,
                                 self._remote_command, self._allocator_command,
                                 self._time_str2mins)

    # every callback returns plain values and never raises into Lua
    def _log(self, level, msg):
        try:
            log.log(LEVELS.get(to_text(level), LEVELS["info"]), "%s", to_text(msg))
        except Exception:  # logging must never break the script
            pass

    def _set_bundle(self, path):
        if not path:
            return False, b"empty path"
        self.bundle = to_text(path)
        log.debug("scrun.lua: bundle %s -> %s", self.orig_bundle, self.bundle)
        return True, to_bytes(self.orig_bundle or "")

    def _set_root(self, path):
        if not path:
            return False, b"empty path"
        self.root = to_text(path)
        log.debug("scrun.lua: root path %s -> %s", self.orig_root, self.root)
        return True, to_bytes(self.orig_root or "")

    def _remote_command(self, script):
        script = script.decode("utf-8", "replace")
        log.debug("scrun.lua: remote_command: %s", script)
        if self.remote is None:
            return True, 1, b"remote_command works only inside stage_in and stage_out"
        try:
            status, output = self.remote(script)
        except Exception as exc:
            log.error("scrun.lua: remote_command failed: %s", exc)
            return True, 1, to_bytes("remote_command failed: %s" % exc)
        try:
            status = int(status)
        except (TypeError, ValueError):
            status = 1
        log.log(LEVELS["debug2"], "scrun.lua: remote_command status %d: %s",
                status, to_text(output or b""))
        return True, status, to_bytes(output or b"")

    def _allocator_command(self, script):
        log.debug("scrun.lua: allocator_command: %s", to_text(script))
        env = dict(os.environ)
        env.update(self.env or {})
        try:
            done = subprocess.run([b"/bin/sh", b"-c", script], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        except OSError as exc:
            return True, 127, to_bytes("/bin/sh: %s" % exc.strerror)
        status = done.returncode
        if status < 0:
            status = 128 - status
        log.log(LEVELS["debug2"], "scrun.lua: allocator_command status %d: %s",
                status, to_text(done.stdout))
        return True, status, done.stdout

    def _time_str2mins(self, value):
        return time_str2mins(None if value is None else to_text(value))


def time_str2mins(text):
    """Slurm's time_str2mins(): minutes, -1 for unlimited, -2 when unreadable."""
    if text is None or not str(text).strip():
        return TIME_INVALID
    days = _DAYS_ONLY.match(text)
    if days:
        return int(days.group(1)) * 24 * 60
    try:
        return slurm_time.to_minutes(text)
    except ValueError:
        return TIME_INVALID
