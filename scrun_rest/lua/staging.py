"""scrun.lua: loaded by `create`, run by the anchor around the container.

Staging.load() runs the script once (it must return slurm.SUCCESS and define
slurm_scrun_stage_in and slurm_scrun_stage_out); the anchor then calls
stage_in() once the job runs and stage_out() when the container is done, each
from a worker thread. Every failure is a one-line UserError.

Differences from scrun(1), all deliberate:
* job_env is indexed from 1, so ipairs() sees every entry (scrun indexes it
  from 0 and ipairs misses the first variable).
* The chunk must return slurm.SUCCESS (scrun also accepts a chunk that
  returns nothing, which hides mistakes); a stage function that returns a
  non-number is taken as success with a log line, as scrun does.
* `require 'json'` is always the built-in module (see json_module).
"""
import logging
import os
import threading

from scrun_rest.errors import UserError
from scrun_rest.lua import json_module
from scrun_rest.lua.api import SlurmApi
from scrun_rest.lua.runtime import new_runtime, one_line, pair, to_bytes, to_text

log = logging.getLogger("scrun_rest.lua")

STAGE_IN = "slurm_scrun_stage_in"
STAGE_OUT = "slurm_scrun_stage_out"

_LUA_SIDE = b"""
local G = _G
local loadfile, pcall, tonumber, tostring, type = loadfile, pcall, tonumber, tostring, type
local ipairs, concat = ipairs, table.concat
local required = {...}

local function describe(value)
  if value == nil then return "nil" end
  if type(value) == "string" or type(value) == "number" then
    return type(value) .. " " .. tostring(value)
  end
  return type(value)
end

local function load_script(path)
  local chunk, err = loadfile(path)
  if not chunk then return "syntax", tostring(err) end
  local ok, rc = pcall(chunk)
  if not ok then return "error", tostring(rc) end
  if tonumber(rc) ~= 0 then return "return", describe(rc) end
  local missing = {}
  for _, name in ipairs(required) do
    if type(G[name]) ~= "function" then missing[#missing + 1] = name .. "()" end
  end
  if #missing > 0 then return "missing", concat(missing, " and ") end
  return "ok", nil
end

local function call_stage(name, ...)
  local fn = G[name]
  if fn == nil then return "missing", nil end
  local ok, rc = pcall(fn, ...)
  if not ok then return "error", tostring(rc) end
  local number = tonumber(rc)
  if number == nil then return "other", describe(rc) end
  return "rc", number
end

return load_script, call_stage
"""


class Staging:
    def __init__(self, path, setup, runtime):
        self.path = path
        self.setup = setup
        self.runtime = runtime
        self.lock = threading.Lock()
        self.orig_bundle = setup.bundle
        self.orig_root = _rootfs(setup)
        self.config_file = setup.config_file
        self.stage_env = {}
        self.json = json_module.install(runtime)
        self.api = SlurmApi(runtime, self.orig_bundle, self.orig_root)
        self._load_script, self._call_stage = runtime.run(
            _LUA_SIDE, STAGE_IN.encode(), STAGE_OUT.encode())

    @classmethod
    def load(cls, path, setup):
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise UserError("cannot read scrun.lua %s: %s" % (path, exc.strerror or exc)) \
                from None
        staging = cls(path, setup, new_runtime())
        staging.api.env = staging._environment({}, {})
        with staging.lock:
            try:
                kind, detail = pair(staging._load_script(os.fsencode(path)))
            except staging.runtime.module.LuaError as exc:
                kind, detail = "error", str(exc)
        kind, detail = to_text(kind), to_text(detail) if detail is not None else None
        if kind == "syntax":
            raise UserError("scrun.lua has a syntax error: %s" % one_line(detail))
        if kind == "error":
            raise UserError("scrun.lua failed while loading: %s" % one_line(detail))
        if kind == "return":
            raise UserError("%s must end with `return slurm.SUCCESS` but returned %s"
                            % (path, one_line(detail)))
        if kind == "missing":
            raise UserError("%s does not define %s" % (path, detail))
        log.debug("scrun.lua: loaded %s (%s)", path, staging.runtime.version)
        return staging

    # -- the two stages -------------------------------------------------------
    @property
    def bundle(self):
        return self.api.bundle or self.orig_bundle

    @property
    def root_path(self):
        return self.api.root or self.orig_root

    def stage_in(self, job_id, job_env, remote_command, identity=None):
        """identity: who the job runs as (the agent's SCRUN_REST_* values)."""
        setup = self.setup
        identity = identity or {}
        env = self.stage_env = self._environment(job_env or {}, identity)
        entries = self.runtime.lua.table_from(
            [to_bytes("%s=%s" % item) for item in env.items()])
        self._run("stage_in", STAGE_IN, env, remote_command,
                  _lua(setup.container_id), _lua(self.bundle), _lua(_spool_dir(setup)),
                  _lua(self.config_file), _job_id(job_id),
                  _id(identity, "SCRUN_REST_USER_ID"), _id(identity, "SCRUN_REST_GROUP_ID"),
                  entries)
        if self.api.bundle is None and self.api.root is None:
            return
        bundle = os.path.abspath(self.api.bundle) if self.api.bundle else setup.bundle
        try:
            setup.reload_bundle(bundle, self.api.root)
        except (OSError, ValueError) as exc:
            raise UserError("scrun.lua stage_in moved the bundle to %s but its config.json "
                            "cannot be read: %s" % (bundle, exc)) from None
        log.info("scrun.lua: staged the container to bundle %s, root %s",
                 bundle, self.root_path)

    def stage_out(self, job_id, remote_command, identity=None):
        setup = self.setup
        identity = identity or {}
        # SCRUN_BUNDLE and SCRUN_ROOTFS_PATH now name what stage_in staged.
        env = dict(self.stage_env, **self._environment({}, identity))
        self._run("stage_out", STAGE_OUT, env, remote_command,
                  _lua(setup.container_id), _lua(self.bundle), _lua(self.orig_bundle),
                  _lua(self.root_path), _lua(self.orig_root), _lua(_spool_dir(setup)),
                  _lua(self.config_file), _job_id(job_id),
                  _id(identity, "SCRUN_REST_USER_ID"), _id(identity, "SCRUN_REST_GROUP_ID"))

    def _run(self, stage, function, env, remote_command, *args):
        with self.lock:
            self.api.env = env
            self.api.remote = remote_command
            try:
                kind, detail = pair(self._call_stage(function.encode(), *args))
            except self.runtime.module.LuaError as exc:
                kind, detail = b"error", str(exc)
            finally:
                self.api.remote = None
        kind = to_text(kind)
        if kind == "error":
            raise UserError("scrun.lua %s failed: %s" % (stage, one_line(to_text(detail))))
        if kind == "rc" and _code(detail) != 0:
            raise UserError("scrun.lua %s returned %s, not slurm.SUCCESS"
                            % (stage, _code(detail)))
        if kind == "other":
            log.info("scrun.lua: %s returned %s, not a number: taken as success, as scrun "
                     "does", stage, to_text(detail))
        if kind == "missing":
            log.debug("scrun.lua: no longer defines %s(): nothing to do", function)

    def _environment(self, job_env, identity):
        """The job's variables plus scrun's output variables, as text."""
        env = {str(key): str(value) for key, value in job_env.items() if value is not None}
        try:
            output = self.setup.output_env(identity)
        except Exception as exc:  # never keep the script from running over a variable
            log.warning("scrun.lua: cannot work out the SCRUN_* variables: %s", exc)
            output = {}
        env.update((key, str(value)) for key, value in output.items() if value is not None)
        return env


def _code(number):
    """The return code as scrun's C int cast reads it (nan and inf are errors)."""
    try:
        return int(number)
    except (ValueError, OverflowError):
        return str(number)


def _rootfs(setup):
    try:
        root = setup.rootfs
    except Exception:
        root = None
    return root or os.path.join(setup.bundle or ".", "rootfs")


def _spool_dir(setup):
    spool = getattr(setup, "spool", None)
    return getattr(spool, "dir", None)


def _lua(value):
    return None if value is None else to_bytes(value)


def _job_id(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _id(identity, key):
    try:
        return int(identity.get(key))
    except (TypeError, ValueError):
        return 0
