"""What a task runs: the runtime command for its part of the container.

For the container itself, podman's config.json adapted to this node
(node_config) is written into the task's private work dir as the bundle;
for an exec, the process it joins with. The command comes from oci.conf
patterns, run or create/start. Python 3.6+, stdlib only.
"""
import json
import os
import re
import shlex
import shutil
import socket

from scrun_rest.agent import node_config, oci_conf, runtime_root
from scrun_rest.oci import rootfs_lookup

DEFAULT_EXEC = "runc --rootless=true --root=%R exec"


class Plan:
    """mode: "run" or "exec"; command: the runtime's (create, when start is
    set); start: the start command of create/start mode, else None; values:
    the pattern values (%b, %n, ...) hooks such as RunTimeKill expand."""

    def __init__(self, mode, command, values, start=None):
        self.mode, self.command, self.values, self.start = mode, command, values, start


def prepare(setup, settings, workdir):
    """(Plan, None), or (None, (exit status, why)) when it cannot run."""
    mode = setup.get("mode", "run")
    config = setup["config"]
    rootfs = config.get("root", {}).get("path", "")
    terminal = "tty" in setup["streams"]
    process = setup.get("process") if mode == "exec" else config.get("process", {})
    node = "node %s" % (os.environ.get("SLURMD_NODENAME") or socket.gethostname())
    problem = (rootfs_lookup.missing_rootfs(rootfs, node)
               or rootfs_lookup.check_executable(rootfs, process or {}))
    if problem:
        return None, problem
    env_file = os.path.join(workdir, "environment")
    # An exec must find its container where the container's task made it.
    root = setup.get("root") if mode == "exec" else None
    values = oci_conf.pattern_values(workdir, rootfs, env_file, workdir,
                                     (process or {}).get("args") or [], os.getpid(),
                                     root or runtime_root.choose(workdir))
    if mode == "exec":
        return Plan(mode, _exec_command(setup, settings, workdir, values, terminal),
                    values), None
    adapted = node_config.adapt(config, os.getuid(), os.getgid(),
                                container_env(setup, settings), terminal,
                                disable_hooks=True)
    write_private(os.path.join(workdir, "config.json"), json.dumps(adapted))
    write_private(env_file, "".join("%s\n" % e for e in adapted["process"]["env"]))
    pattern = settings.get("RunTimeRun")
    create, start = settings.get("RunTimeCreate"), settings.get("RunTimeStart")
    values["container"] = oci_conf.container_name(values)
    if create and start and not terminal:
        # The container then holds its stdio itself: no copy by runc.
        return Plan(mode, oci_conf.expand(create, values), values,
                    start=oci_conf.expand(start, values)), None
    if not pattern:
        # A terminal needs run mode: its runtime stays the session leader
        # that owns the terminal (after `create` exits, a hangup would
        # kill the container).
        return None, (126, "no RunTimeRun in oci.conf%s" % (
            " (a terminal needs run mode)" if terminal else
            " and no RunTimeCreate with RunTimeStart"))
    return Plan(mode, oci_conf.expand(pattern, values), values), None


def _exec_command(setup, settings, workdir, values, terminal):
    process = dict(setup["process"])
    process["terminal"] = terminal
    env = list(process.get("env") or [])
    present = {entry.split("=", 1)[0] for entry in env}
    env += ["%s=%s" % kv for kv in sorted(container_env(setup, settings).items())
            if kv[0] not in present]
    process["env"] = env
    process.pop("consoleSize", None)
    user = process.get("user") or {}
    user.pop("additionalGids", None)
    path = os.path.join(workdir, "process.json")
    write_private(path, json.dumps(process))
    base = settings.get("RunTimeExec") or DEFAULT_EXEC
    command = "%s %s--process %s %s" % (
        oci_conf.expand(base, values), "--tty " if terminal else "",
        oci_conf.quote_all([path]), oci_conf.quote_all([setup["container"]]))
    # For hooks (RunTimeKill) from here on: the container this exec joined.
    values["container"] = setup["container"]
    return command


def container_env(setup, settings):
    """The step's SLURM_* variables and the anchor's, minus EnvExclude."""
    env = {k: v for k, v in os.environ.items()
           if k.startswith("SLURM_") and k != "SLURM_JWT"}
    env.update(setup.get("env") or {})
    exclude = settings.get("EnvExclude") or settings.get("RunTimeEnvExclude")
    if exclude:
        pattern = re.compile(exclude)
        env = {k: v for k, v in env.items() if not pattern.search(k)}
    return env


def write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def check_runtime(command):
    """Fail early, as runc would at create, when the runtime is missing."""
    try:
        program = shlex.split(command)[0]
    except (ValueError, IndexError):
        return 126, "cannot parse the runtime command %r" % command
    if "/" in program:
        if os.path.isfile(program) and not os.access(program, os.X_OK):
            return 126, "%s: permission denied on node %s (not executable)" % (
                program, socket.gethostname())
        found = os.path.isfile(program)
    else:
        found = shutil.which(program) is not None
    if not found:
        return 127, "%s: executable file not found on node %s" % (program, socket.gethostname())
    return None
