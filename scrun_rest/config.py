"""scrun-rest.conf: slurm.conf-style settings plus the few environment overrides.

podman hands the runtime almost no environment, so everything a user needs
must be expressible in the file; the environment only overrides it.
"""
import os

from . import conf_lines
from .errors import UserError

# Keys we know, in their canonical spelling. Lookups are case-insensitive like
# slurm.conf, but an unknown key is an error so typos do not pass silently.
KNOWN_KEYS = (
    # slurmrestd and authentication
    "RestUrl", "RestCaFile", "RestProxy", "RestTimeout", "JwtFile", "JwtCommand",
    "JwtKeyFile", "JwtLifespan", "JwtUser",
    # the tunnel between anchor and agent
    "TunnelHost", "TunnelPortRange", "TunnelTls", "TunnelHeartbeat",
    # submit-side behaviour
    "LuaScript", "CreateTimeout", "AgentPython", "JobOutput",
    # what the nodes get a copy of (anchor/bundle_plan.py)
    "BundleTransfer", "SharedPaths", "VolumeCopyLimit",
    # oci.conf(5) keys for the compute side
    "RunTimeRun", "RunTimeCreate", "RunTimeStart", "RunTimeQuery",
    "RunTimeKill", "RunTimeDelete", "RunTimeExec", "RunTimeEnvExclude", "EnvExclude",
    "CreateEnvFile", "IgnoreFileConfigJson", "DisableHooks",
    "DisableCleanup", "MountSpoolDir", "ContainerPath", "SrunPath",
    "SrunArgs", "StdIODebug", "SyslogDebug", "FileDebug",
    # where a task unpacks the copies on its node (agent/leftovers.py), and
    # the user's cache of rootfs files there (agent/node_cache.py)
    "NodeScratch", "NodeCache", "NodeCacheLimit",
)
# scrun(1)'s SCRUN_* input variables may be set here too: the one way for a
# podman user to set those that config.json may not (job_options.py).
_CANONICAL = {k.lower(): k for k in KNOWN_KEYS}


def canonical_key(key):
    """The key's canonical spelling, or None for an unknown key."""
    known = _CANONICAL.get(key.lower())
    if known is None and key.upper().startswith("SCRUN_"):
        # job_options pulls in logging: only a file that names one pays.
        from .job_options import INPUT_VARIABLES
        return key.upper() if key.upper() in INPUT_VARIABLES else None
    return known

DEFAULTS = {
    "RestTimeout": "30",
    "JwtLifespan": "86400",
    "TunnelPortRange": "",
    "TunnelTls": "yes",
    "TunnelHeartbeat": "5",
    "LuaScript": "/etc/slurm/scrun.lua",
    "CreateTimeout": "200",
    "AgentPython": "python3",
    "JobOutput": "/dev/null",
    "BundleTransfer": "auto",
    "VolumeCopyLimit": "1G",
    # runc --rootless keeps its state in %R, /run/user/UID where the node
    # has it, else a private dir of the task (agent/runtime_root.py);
    # %n.%u.%j.%s.%t names each task's container uniquely.
    "RunTimeRun": "runc --rootless=true --root=%R run %n.%u.%j.%s.%t -b %b",
    # Without a terminal the task shim uses create/start instead: the
    # container then writes into its stdio itself, where `runc run` would
    # copy every byte (agent/detached.py; a third more throughput).
    "RunTimeCreate": "runc --rootless=true --root=%R create %n.%u.%j.%s.%t -b %b",
    "RunTimeStart": "runc --rootless=true --root=%R start %n.%u.%j.%s.%t",
    # Asked after `runc run`, until the user's program runs (agent/task.py).
    "RunTimeQuery": "runc --rootless=true --root=%R state %n.%u.%j.%s.%t",
    "RunTimeKill": "runc --rootless=true --root=%R kill -a %n.%u.%j.%s.%t",
    "RunTimeDelete": "runc --rootless=true --root=%R delete --force %n.%u.%j.%s.%t",
    "SrunPath": "srun",
}

# The oci.conf keys travel to the agent, which lets the node's own
# /etc/slurm/oci.conf override them.
OCI_CONF_KEYS = tuple(KNOWN_KEYS[KNOWN_KEYS.index("RunTimeRun"):])
RUNTIME_MODES = ((("RunTimeRun",), ("RunTimeCreate", "RunTimeStart")),
                 (("RunTimeCreate", "RunTimeStart"), ("RunTimeRun",)))

SYSTEM_CONF = "/etc/scrun-rest/scrun-rest.conf"


def real_uid():
    """The caller's uid outside rootless podman's user namespace."""
    value = os.environ.get("_CONTAINERS_ROOTLESS_UID")
    return int(value) if value and value.isdigit() else os.getuid()


def config_path(environ=None):
    """$SCRUN_REST_CONF, else the first existing of $XDG_CONFIG_HOME/scrun-rest/,
    ~/.config/scrun-rest/ (scrun-rest.conf in each), else the system file."""
    env = os.environ if environ is None else environ
    if env.get("SCRUN_REST_CONF"):
        return env["SCRUN_REST_CONF"]
    home = env.get("HOME") or os.path.expanduser("~")
    for base in (env.get("XDG_CONFIG_HOME"), os.path.join(home, ".config")):
        if base:
            user_conf = os.path.join(base, "scrun-rest", "scrun-rest.conf")
            if os.path.exists(user_conf):
                return user_conf
    return SYSTEM_CONF


def parse_conf_text(text, source="<config>"):
    """Parse Key=Value lines (conf_lines); an unknown key is an error too."""
    values = {}
    try:
        for lineno, key, value in conf_lines.settings(text):
            canonical = canonical_key(key)
            if canonical is None:
                raise UserError("%s:%d: unknown setting %r" % (source, lineno, key))
            values[canonical] = value
    except conf_lines.MalformedLine as exc:
        raise UserError("%s:%d: %s" % (source, exc.lineno, exc.reason))
    return values


class Config:
    """Settings from the file, the defaults and the environment overrides."""

    def __init__(self, values=None, path=None, environ=None):
        self.path = path
        self._values = dict(DEFAULTS)
        named = set(values or {})
        for mode, other in RUNTIME_MODES:
            if named & set(mode):
                # The file picks its way to run containers: our default for
                # the other way must not win over it (task.py prefers
                # create/start when both are there).
                for key in set(other) - named:
                    self._values.pop(key, None)
        self._values.update(values or {})
        env = os.environ if environ is None else environ
        if env.get("SCRUN_REST_URL"):
            self._values["RestUrl"] = env["SCRUN_REST_URL"]

    @classmethod
    def load(cls, path=None, environ=None):
        path = path or config_path(environ)
        values = {}
        try:
            with open(path, encoding="utf-8") as handle:
                values = parse_conf_text(handle.read(), path)
        except FileNotFoundError:
            if path != SYSTEM_CONF:
                raise UserError("config file %s does not exist" % path)
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError("cannot read config file %s: %s" % (path, exc))
        return cls(values, path, environ)

    def get(self, key, default=None):
        value = self._values.get(canonical_key(key) or key)
        return default if value in (None, "") else value

    def require(self, key):
        value = self.get(key)
        if value is None:
            raise UserError("%s is not set in %s" % (key, self.path or SYSTEM_CONF))
        return value

    def get_int(self, key, minimum=None):
        value = self.get(key)
        if value is None:
            return None
        try:
            number = int(value)
        except ValueError:
            raise UserError("%s=%s is not a whole number" % (key, value))
        if minimum is not None and number < minimum:
            raise UserError("%s=%s is below %d" % (key, value, minimum))
        return number

    def get_bool(self, key):
        value = (self.get(key) or "no").lower()
        if value in ("yes", "true", "1", "on"):
            return True
        if value in ("no", "false", "0", "off"):
            return False
        raise UserError("%s=%s is not yes or no" % (key, value))

    def port_range(self):
        """TunnelPortRange as (low, high); (0, 0) lets the kernel choose."""
        text = self.get("TunnelPortRange")
        if not text:
            return (0, 0)
        low, _, high = text.partition("-")
        try:
            low, high = int(low), int(high or low)
        except ValueError:
            raise UserError("TunnelPortRange=%s is not LOW-HIGH" % text)
        if not 0 < low <= high < 65536:
            raise UserError("TunnelPortRange=%s is outside 1-65535" % text)
        return (low, high)

    def input_variables(self):
        """The SCRUN_* variables the file sets."""
        return {k: v for k, v in self._values.items() if k.startswith("SCRUN_")}

    def oci_settings(self):
        return {k: self._values[k] for k in OCI_CONF_KEYS if self._values.get(k)}
