"""SCRUN_* job input variables: one table from variable to Slurm setting.

Each variable becomes a field of the REST job request (named as in
slurmrestd's v0.0.38 job description; rest/ translates for newer APIs), an
option of the container's srun step, or both. Sources, each winning over
the one before: scrun-rest.conf, the environment of `create`, and
config.json's process.env, for the variables in FROM_CONTAINER only.
Nothing else of the container's environment is taken.
"""
import re

from scrun_rest import slurm_time
from scrun_rest.errors import UserError
from scrun_rest.log import VARIABLES as LOG_VARIABLES


# -- value parsers: each returns the value to use or raises ValueError -------
def text(value):
    if not value.strip():
        raise ValueError("it is empty")
    return value.strip()


def absolute_path(value):
    value = text(value)
    if not value.startswith("/"):
        raise ValueError("it is not an absolute path")
    return value


def count(value):
    if not re.match(r"^\s*\d+\s*$", value) or int(value) < 1:
        raise ValueError("it is not a positive whole number")
    return int(value)


def minutes(value):
    result = slurm_time.to_minutes(value)
    return "INFINITE" if result == slurm_time.INFINITE else result


_MEMORY_UNITS = {"": 1, "K": 1.0 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}


def megabytes(value):
    match = re.match(r"^\s*(\d+)\s*([KMGT]?)B?\s*$", value, re.IGNORECASE)
    if not match:
        raise ValueError("it is not a size such as 512M or 4G")
    size = int(match.group(1)) * _MEMORY_UNITS[match.group(2).upper()]
    return max(1, int(size)) if int(match.group(1)) else 0


def node_count(value):
    match = re.match(r"^\s*(\d+)(?:\s*-\s*(\d+))?\s*$", value)
    if not match or int(match.group(1)) < 1 or (
            match.group(2) and int(match.group(2)) < int(match.group(1))):
        raise ValueError("it is not a node count such as 2 or 1-4")
    return value.replace(" ", "")


def flag(value):
    """A switch: set, empty, 1, yes or true all turn it on."""
    lowered = value.strip().lower()
    if lowered in ("", "1", "yes", "true", "on"):
        return True
    if lowered in ("0", "no", "false", "off"):
        return False
    raise ValueError("it is not yes or no")


def exclusive(value):
    lowered = value.strip().lower()
    if lowered in ("user", "mcs"):
        return lowered
    return flag(value)


# -- the table ---------------------------------------------------------------
# variable: (job field or None, srun option or None, parser)
TABLE = {
    "SCRUN_ACCOUNT": ("account", None, text),
    "SCRUN_ACCTG_FREQ": ("account_gather_frequency", None, text),
    "SCRUN_BURST_BUFFER": ("burst_buffer", None, text),
    "SCRUN_CLUSTER_CONSTRAINT": ("cluster_constraint", None, text),
    "SCRUN_CLUSTERS": ("clusters", None, text),
    "SCRUN_CONSTRAINT": ("constraints", None, text),
    "SCRUN_CORE_SPEC": ("core_specification", None, count),
    "SLURM_CORE_SPEC": ("core_specification", None, count),
    "SCRUN_CPU_BIND": (None, "--cpu-bind", text),
    "SCRUN_CPU_FREQ_REQ": (None, "--cpu-freq", text),
    "SCRUN_CPUS_PER_GPU": ("cpus_per_gpu", None, count),
    "SCRUN_CPUS_PER_TASK": ("cpus_per_task", "--cpus-per-task", count),
    "SCRUN_DELAY_BOOT": ("delay_boot", None, minutes),
    "SCRUN_DEPENDENCY": ("dependency", None, text),
    "SCRUN_DISTRIBUTION": (None, "--distribution", text),
    "SCRUN_EPILOG": (None, "--epilog", text),
    "SCRUN_EXACT": (None, "--exact", flag),
    "SCRUN_EXCLUSIVE": ("exclusive", None, exclusive),
    "SCRUN_GPU_BIND": (None, "--gpu-bind", text),
    "SCRUN_GPU_FREQ": (None, "--gpu-freq", text),
    "SCRUN_GPUS": ("gpus", None, text),
    "SCRUN_GPUS_PER_NODE": ("gpus_per_node", None, text),
    "SCRUN_GPUS_PER_SOCKET": ("gpus_per_socket", None, text),
    "SCRUN_GPUS_PER_TASK": ("gpus_per_task", None, text),
    "SCRUN_GRES_FLAGS": ("gres_flags", None, text),
    "SCRUN_GRES": ("gres", None, text),
    "SCRUN_HINT": (None, "--hint", text),
    "SCRUN_JOB_NAME": ("name", None, text),
    "SCRUN_JOB_NODELIST": ("required_nodes", None, text),
    "SCRUN_JOB_NUM_NODES": ("nodes", "--nodes", node_count),
    "SCRUN_LABELIO": (None, None, flag),
    "SCRUN_MEM_BIND": (None, "--mem-bind", text),
    "SCRUN_MEM_PER_CPU": ("memory_per_cpu", None, megabytes),
    "SCRUN_MEM_PER_GPU": ("memory_per_gpu", None, megabytes),
    "SCRUN_MEM_PER_NODE": ("memory_per_node", None, megabytes),
    "SCRUN_MPI_TYPE": (None, "--mpi", text),
    "SCRUN_NCORES_PER_SOCKET": ("cores_per_socket", None, count),
    "SCRUN_NETWORK": (None, "--network", text),
    "SCRUN_NSOCKETS_PER_NODE": ("sockets_per_node", None, count),
    "SCRUN_NTASKS": ("tasks", None, count),
    "SCRUN_NTASKS_PER_CORE": ("tasks_per_core", "--ntasks-per-core", count),
    "SCRUN_NTASKS_PER_GPU": (None, "--ntasks-per-gpu", count),
    "SCRUN_NTASKS_PER_NODE": ("tasks_per_node", "--ntasks-per-node", count),
    "SCRUN_NTASKS_PER_TRES": ("ntasks_per_tres", None, count),
    "SCRUN_OPEN_MODE": ("open_mode", None, text),
    "SCRUN_OVERCOMMIT": (None, "--overcommit", flag),
    # Every scrun-rest step already overlaps so exec can join the container.
    "SCRUN_OVERLAP": (None, None, flag),
    "SCRUN_PARTITION": ("partition", None, text),
    "SCRUN_POWER": (None, "--power", text),
    "SCRUN_PROFILE": (None, "--profile", text),
    "SCRUN_PROLOG": (None, "--prolog", text),
    "SCRUN_QOS": ("qos", None, text),
    "SCRUN_REMOTE_CWD": (None, "--chdir", text),
    "SCRUN_REQ_SWITCH": ("required_switches", None, count),
    "SCRUN_RESERVATION": ("reservation", None, text),
    "SCRUN_SIGNAL": ("signal", None, text),
    "SCRUN_SLURMD_DEBUG": (None, "--slurmd-debug", text),
    "SCRUN_SPREAD_JOB": ("spread_job", None, flag),
    "SCRUN_TASK_EPILOG": (None, "--task-epilog", text),
    "SCRUN_TASK_PROLOG": (None, "--task-prolog", text),
    "SCRUN_THREAD_SPEC": ("thread_specification", None, count),
    "SCRUN_THREADS_PER_CORE": ("threads_per_core", "--threads-per-core", count),
    "SCRUN_THREADS": (None, "--threads", count),
    "SCRUN_TIMELIMIT": ("time_limit", None, minutes),
    "SCRUN_TRES_PER_TASK": ("tres_per_task", None, text),
    # Stdio never rides srun here, so it is unbuffered already.
    "SCRUN_UNBUFFEREDIO": (None, None, flag),
    "SCRUN_USE_MIN_NODES": (None, "--use-min-nodes", flag),
    "SCRUN_WAIT4SWITCH": ("wait_for_switch", None, minutes),
    "SCRUN_WCKEY": ("wckey", None, text),
    # The job's working directory (default /tmp); the container's own cwd
    # is config.json's process.cwd.
    "SCRUN_WORKING_DIR": ("current_working_directory", None, absolute_path),
}

# Settings that are not job options: logging (log.py).
OTHER_SETTINGS = LOG_VARIABLES
INPUT_VARIABLES = frozenset(TABLE) | frozenset(OTHER_SETTINGS)

# What config.json's process.env may set. It holds the image's own ENV as
# well as `podman run -e`, so nothing in it may run a program or write a file
# outside the container: these only shape the Slurm job. The rest (below)
# comes only from create's environment or scrun-rest.conf; a table row is
# left out until it is known to be harmless.
FROM_CONTAINER = frozenset((
    "SCRUN_ACCOUNT", "SCRUN_ACCTG_FREQ", "SCRUN_CLUSTER_CONSTRAINT", "SCRUN_CLUSTERS",
    "SCRUN_CONSTRAINT", "SCRUN_CORE_SPEC", "SLURM_CORE_SPEC", "SCRUN_CPU_BIND",
    "SCRUN_CPU_FREQ_REQ", "SCRUN_CPUS_PER_GPU", "SCRUN_CPUS_PER_TASK", "SCRUN_DELAY_BOOT",
    "SCRUN_DEPENDENCY", "SCRUN_DISTRIBUTION", "SCRUN_EXACT", "SCRUN_EXCLUSIVE",
    "SCRUN_GPU_BIND", "SCRUN_GPU_FREQ", "SCRUN_GPUS", "SCRUN_GPUS_PER_NODE",
    "SCRUN_GPUS_PER_SOCKET", "SCRUN_GPUS_PER_TASK", "SCRUN_GRES_FLAGS", "SCRUN_GRES",
    "SCRUN_HINT", "SCRUN_JOB_NAME", "SCRUN_JOB_NODELIST", "SCRUN_JOB_NUM_NODES",
    # The anchor caps a labelled line (anchor/relay.py), so output without
    # newlines cannot grow its memory.
    "SCRUN_LABELIO",
    "SCRUN_MEM_BIND", "SCRUN_MEM_PER_CPU", "SCRUN_MEM_PER_GPU", "SCRUN_MEM_PER_NODE",
    "SCRUN_MPI_TYPE", "SCRUN_NCORES_PER_SOCKET", "SCRUN_NETWORK", "SCRUN_NSOCKETS_PER_NODE",
    "SCRUN_NTASKS", "SCRUN_NTASKS_PER_CORE", "SCRUN_NTASKS_PER_GPU", "SCRUN_NTASKS_PER_NODE",
    "SCRUN_NTASKS_PER_TRES", "SCRUN_OVERCOMMIT", "SCRUN_OVERLAP", "SCRUN_PARTITION",
    "SCRUN_POWER", "SCRUN_QOS",
    # srun's working directory on the node; the task itself runs in its own
    # scratch dir and srun writes nothing there.
    "SCRUN_REMOTE_CWD",
    "SCRUN_REQ_SWITCH", "SCRUN_RESERVATION", "SCRUN_SIGNAL", "SCRUN_SPREAD_JOB",
    "SCRUN_THREAD_SPEC", "SCRUN_THREADS_PER_CORE", "SCRUN_THREADS", "SCRUN_TIMELIMIT",
    "SCRUN_TRES_PER_TASK", "SCRUN_UNBUFFEREDIO", "SCRUN_USE_MIN_NODES", "SCRUN_WAIT4SWITCH",
    "SCRUN_WCKEY",
))
# Left out, and why: SCRUN_PROLOG, SCRUN_EPILOG, SCRUN_TASK_PROLOG and
# SCRUN_TASK_EPILOG run programs on the node outside the container;
# SCRUN_BURST_BUFFER's directives stage files in and out; Slurm writes the
# job's output files relative to SCRUN_WORKING_DIR and as SCRUN_OPEN_MODE
# says; SCRUN_PROFILE writes profile files on the nodes; SCRUN_SLURMD_DEBUG
# and the log settings (SCRUN_LOG_FILE: a path the anchor appends to)
# change what is logged where.


class JobOptions:
    """The parsed variables: job fields, srun options and our own switches."""

    def __init__(self):
        self.fields = {}
        self.step_args = []
        self.sources = {}
        self.labelio = False
        self.ntasks = 1
        self.settings = {}

    def variable_for(self, field):
        return self.sources.get(field, field)


def collect(conf_values, create_env, process_env):
    """SCRUN_* from scrun-rest.conf, create's environment and config.json,
    each winning over the one before; with the names config.json set that
    it may not (the anchor logs them: one warning line each)."""
    values = dict(conf_values)
    values.update((key, value) for key, value in create_env.items()
                  if key in INPUT_VARIABLES)
    ignored = []
    for entry in process_env or ():
        key, sep, value = str(entry).partition("=")
        if not sep or key not in INPUT_VARIABLES:
            continue
        if key in FROM_CONTAINER:
            values[key] = value
        elif key not in ignored:
            ignored.append(key)
    return values, ignored


def parse(values):
    options = JobOptions()
    for name in sorted(values):
        if name in OTHER_SETTINGS:
            options.settings[name] = values[name]
            continue
        field, srun_option, parser = TABLE[name]
        try:
            value = parser(values[name])
        except ValueError as exc:
            raise UserError("%s=%s is invalid: %s" % (name, _short(values[name]), exc))
        if name == "SCRUN_LABELIO":
            options.labelio = value
        if name == "SCRUN_NTASKS":
            options.ntasks = value
        if field is not None and value is not False:
            options.fields[field] = value
            options.sources[field] = name
        if srun_option is not None and value is not False:
            options.step_args.append(srun_option if value is True
                                     else "%s=%s" % (srun_option, value))
    return options


def _short(value):
    return value if len(value) <= 40 else value[:37] + "..."
