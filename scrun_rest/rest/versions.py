"""Every difference between slurmrestd API versions, kept as data.

Two tables: SHAPES says how each version writes its answers and takes its
bodies; FIELD_RULES says how each normalised job field is written for a
range of versions (no rule for a version = the version cannot express it).
Facts come from Slurm's source (v0.0.38: src/plugins/openapi/v0.0.38/jobs.c
and slurm_opt.c of 22.05; v0.0.39+: the data_parser plugins of 23.02-26.05)
and from recordings of live servers: 22.05 (v0.0.38), 24.11.5 (v0.0.40-42)
and 26.05.5 (v0.0.43-45); tests/unit/fixtures/rest/<version>/README.md says
which answers are recorded and which are still built from the source.

A server may serve versions newer than NEWEST_FIRST[0]: scrun-rest then uses
the newest version it knows that the server also serves (and `check` says
so), never a version it has no table for.
"""
import re
from dataclasses import dataclass
from typing import Tuple

from .errors import InvalidField, UnsupportedField
from .model import Controller, JobInfo, JobState

NEWEST_FIRST = ("v0.0.45", "v0.0.44", "v0.0.43", "v0.0.42", "v0.0.41", "v0.0.40", "v0.0.39",
                "v0.0.38")

# Slurm error numbers the client reacts to.
ERRNO_INVALID_JOB_ID = 2017
ERRNO_ALREADY_DONE = 2021
ERRNO_ZERO_BYTES = 5005
ERRNO_DB_CONNECTION = 7000
AUTH_ERRNOS = frozenset((1007, 9008) + tuple(range(6000, 6012)))

NO_VAL = 0xFFFFFFFE  # Slurm's "not set" for 32-bit numbers

# A job id no cluster is likely to have, below MAX_JOB_ID (0x03FFFFFF): the
# job/{id} handlers refuse larger ids themselves, without asking slurmctld,
# so only an id below it makes GET job a request that checks the token.
TOKEN_PROBE_JOB_ID = 0x03FFFFFE


@dataclass(frozen=True)
class Shape:
    version: str
    environment: str        # "dict" {K: V}, or "list" ["K=V"]
    unlimited: object       # how an unlimited time limit is written
    job_state: str          # "string" (a flag replaces the base state) or "list"
    exit_code: str          # "wait" raw status, "number" {set,infinite,number} around it, "verbose"
    errno_keys: Tuple[str, ...]  # keys of errors[] entries that hold the error number
    meta_slurm: str         # key under "meta" holding {"release", "version"}
    delete_status: bool     # DELETE answers list per-job failures in status[]
    # errors[] "source" values that, with error number -1 and HTTP 5xx, mean
    # slurmctld refused the token (22.05 reports no auth error number at all).
    token_refused_sources: Tuple[str, ...] = ()
    # Error numbers that, with HTTP 5xx, mean the same: 22.05's slurmctld
    # hangs up on a request whose token it refuses (5005, zero bytes).
    token_refused_errnos: Tuple[int, ...] = ()
    # Error numbers that mean this version cannot serve this server at all,
    # so an older one must: 23.02's v0.0.39 opens a slurmdbd connection for
    # every request and fails each with 7000 where there is none.
    unusable_errnos: Tuple[int, ...] = ()
    # From this release on, DELETE answers of this version are bare: 24.11's
    # openapi/slurmctld signals through slurm_kill_jobs(), which succeeds and
    # puts a job's own failure (unknown job, refused cancel) only in a status
    # list that v0.0.40/41 answers lack. Such an answer proves nothing.
    # (24.11.5 answers so through both, for a signal, a cancel and an unknown job.)
    bare_delete_from: Tuple[int, ...] = ()


_NUMBER_INFINITE = {"set": False, "infinite": True, "number": 0}

SHAPES = {
    # 22.05's own parser: sbatch option names, dict environment, bare ints;
    # errors[] mixes {error_number, description} with {error, error_code}.
    # A bad or expired token: HTTP 500 with error -1 from ping's and GET
    # job's calls, 5005 from submit's and DELETE's.
    "v0.0.38": Shape("v0.0.38", "dict", "INFINITE", "string", "wait",
                     ("error_number", "error_code"), "Slurm", False,
                     ("slurm_load_ctl_conf", "slurm_load_job", "slurm_load_jobs"),
                     (ERRNO_ZERO_BYTES,)),
    # First data_parser version: job_desc_msg_t field names, list environment.
    # src/plugins/openapi/v0.0.39/api.c (23.02) init_connection(): no slurmdbd
    # connection, error 7000 and HTTP 500 for every request; 23.02 also serves
    # v0.0.38, which needs none.
    "v0.0.39": Shape("v0.0.39", "list", _NUMBER_INFINITE, "string", "number",
                     ("error_number",), "Slurm", False,
                     unusable_errnos=(ERRNO_DB_CONNECTION,)),
    "v0.0.40": Shape("v0.0.40", "list", _NUMBER_INFINITE, "list", "verbose",
                     ("error_number",), "slurm", False, bare_delete_from=(24, 11)),
    # On 24.11+ an unknown job's DELETE here answers 200 with no error at all.
    "v0.0.41": Shape("v0.0.41", "list", _NUMBER_INFINITE, "list", "verbose",
                     ("error_number",), "slurm", False, bare_delete_from=(24, 11)),
    "v0.0.42": Shape("v0.0.42", "list", _NUMBER_INFINITE, "list", "verbose",
                     ("error_number",), "slurm", True),
    "v0.0.43": Shape("v0.0.43", "list", _NUMBER_INFINITE, "list", "verbose",
                     ("error_number",), "slurm", True),
    "v0.0.44": Shape("v0.0.44", "list", _NUMBER_INFINITE, "list", "verbose",
                     ("error_number",), "slurm", True),
    # 26.05: ping entries lose "pinged" and "mode" (deprecated since 24.11,
    # removed in 26.05.0) and gain "status"; job answers deprecate "shared"
    # for "oversubscribe"/"exclusive" (job descriptions still take "shared").
    "v0.0.45": Shape("v0.0.45", "list", _NUMBER_INFINITE, "list", "verbose",
                     ("error_number",), "slurm", True),
}


def shape(version):
    return SHAPES[version]


def _minor(version):
    return int(version.rsplit(".", 1)[1])


# ---------------------------------------------------------------------------
# Value checks: each returns the value in the type the server wants.

def _text(field, value):
    if not isinstance(value, str) or not value or "\n" in value:
        raise InvalidField(field, "expected a non-empty one-line string, got %r" % (value,))
    return value


def _int(field, value):
    if isinstance(value, bool):
        raise InvalidField(field, "expected a whole number, got %r" % (value,))
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidField(field, "expected a whole number, got %r" % (value,))
    if number < 0:
        raise InvalidField(field, "expected a number >= 0, got %r" % (value,))
    return number


def _bool(field, value):
    if not isinstance(value, bool):
        raise InvalidField(field, "expected true or false, got %r" % (value,))
    return value


def _node_count(field, value):
    text = str(value)
    if not re.fullmatch(r"\d+(-\d+)?", text):
        raise InvalidField(field, "expected a node count like 2 or 1-3, got %r" % (value,))
    return text


# ---------------------------------------------------------------------------
# Encoders: (field, value, shape) -> [(body key, body value), ...]

def _key(name, check=_text):
    return lambda field, value, shp: [(name, check(field, value))]


def _minutes(name):
    def encode(field, value, shp):
        if isinstance(value, str) and value.upper() in ("INFINITE", "UNLIMITED"):
            unlimited = shp.unlimited
            return [(name, dict(unlimited) if isinstance(unlimited, dict) else unlimited)]
        return [(name, _int(field, value))]
    return encode


def _prefixed(name, prefix, check=_text):
    return lambda field, value, shp: [(name, prefix + str(check(field, value)))]


def _gres_list(name):
    """gres "gpu:2,foo" as the data_parser wants it: "gres/gpu:2,gres/foo"."""
    def encode(field, value, shp):
        items = [item.strip() for item in _text(field, value).split(",") if item.strip()]
        return [(name, ",".join(i if i.startswith("gres/") else "gres/" + i.replace("gres:", "", 1)
                                for i in items))]
    return encode


def _job_flag(flag):
    return lambda field, value, shp: [("flags", [flag])] if _bool(field, value) else []


def _sbatch_switch(name):
    """v0.0.38 options that take no argument: present means on, whatever value."""
    return lambda field, value, shp: [(name, True)] if _bool(field, value) else []


def _requeue_sbatch(field, value, shp):
    # 22.05 sets requeue for "requeue" whatever its value; false needs no_requeue.
    return [("requeue" if _bool(field, value) else "no_requeue", True)]


def _exclusive_value(field, value, allowed):
    if value is True or value in allowed:
        return value
    if value is False:
        return None
    raise InvalidField(field, "expected true, %s, got %r" % (" or ".join(allowed), value))


def _exclusive_sbatch(field, value, shp):
    value = _exclusive_value(field, value, ("user", "mcs"))
    return [] if value is None else [("exclusive", "exclusive" if value is True else value)]


def _exclusive_parser(field, value, shp):
    value = _exclusive_value(field, value, ("user", "mcs"))
    return [] if value is None else [("exclusive", value)]


def _shared(allowed):
    def encode(field, value, shp):
        value = _exclusive_value(field, value, allowed)
        return [] if value is None else [("shared", ["none" if value is True else value])]
    return encode


def _gres_flags(disable_flag):
    """--gres-flags as job flags; the disable flag's name changed (GRED typo)."""
    def encode(field, value, shp):
        flags = []
        for item in _text(field, value).split(","):
            item = item.strip().lower()
            if item == "enforce-binding":
                flags.append("GRES_BINDING_ENFORCED")
            elif item == "disable-binding" and disable_flag:
                flags.append(disable_flag)
            else:
                raise UnsupportedField(field, shp.version, "gres flag %r" % item)
        return [("flags", flags)]
    return encode


def _open_mode_text(field, value):
    mode = {"a": "append", "t": "truncate"}.get(str(value).lower(), str(value).lower())
    if mode not in ("append", "truncate"):
        raise InvalidField(field, "expected append or truncate, got %r" % (value,))
    return mode


def _open_mode_flags(field, value, shp):
    return [("open_mode", [_open_mode_text(field, value).upper()])]


_PROFILES = ("ENERGY", "LUSTRE", "NETWORK", "TASK")


def _profile_flags(field, value, shp):
    names = [n.strip().upper() for n in _text(field, value).split(",") if n.strip()]
    if names == ["ALL"]:
        names = list(_PROFILES)
    for name in names:
        if name not in _PROFILES + ("NONE",):
            raise InvalidField(field, "unknown profile %r" % name)
    return [("profile", names)]


def _power_flags(field, value, shp):
    if _text(field, value) != "level":
        raise InvalidField(field, "expected level, got %r" % (value,))
    return [("power_flags", ["EQUAL_POWER"])]


_SIGNAL_SPEC = re.compile(r"(?:([RB]{1,2}):)?([A-Za-z0-9]+)(?:@(\d+))?")


def signal_spec(field, value):
    """--signal=[{R|B}:]<sig>[@<seconds>] split into (flags, signal, seconds)."""
    match = _SIGNAL_SPEC.fullmatch(_text(field, value))
    if not match:
        raise InvalidField(field, "expected [{R|B}:]<signal>[@<seconds>], got %r" % (value,))
    where, sig, seconds = match.groups()
    flags = [{"B": "BATCH_JOB", "R": "RESERVATION_JOB"}[c] for c in (where or "")]
    sig = sig.upper()
    sig = sig[3:] if sig.startswith("SIG") else sig
    return flags, sig, int(seconds) if seconds else 60


def _kill_warning(field, value, shp):
    flags, sig, seconds = signal_spec(field, value)
    pairs = [("kill_warning_signal", sig), ("kill_warning_delay", seconds)]
    return pairs + ([("kill_warning_flags", flags)] if flags else [])


def _minutes_as_seconds(name):
    return lambda field, value, shp: [(name, 60 * _int(field, value))]


# ---------------------------------------------------------------------------
# Which encoder each normalised field uses, by version range (inclusive).

NEWEST = NEWEST_FIRST[0]
ALL = ("v0.0.38", NEWEST)
V38 = ("v0.0.38", "v0.0.38")
V39 = ("v0.0.39", "v0.0.39")
V40 = ("v0.0.40", "v0.0.40")
V39_41 = ("v0.0.39", "v0.0.41")
V40_41 = ("v0.0.40", "v0.0.41")
V39_UP = ("v0.0.39", NEWEST)
V40_UP = ("v0.0.40", NEWEST)
V41_UP = ("v0.0.41", NEWEST)
V42_UP = ("v0.0.42", NEWEST)
V45_UP = ("v0.0.45", NEWEST)


def _same(name, check=_text):
    return ((ALL, _key(name, check)),)


FIELD_RULES = {
    "name": _same("name"),
    "current_working_directory": _same("current_working_directory"),
    "standard_output": _same("standard_output"),
    "standard_error": _same("standard_error"),
    "standard_input": _same("standard_input"),
    "partition": _same("partition"),
    "account": _same("account"),
    "qos": _same("qos"),
    "reservation": _same("reservation"),
    "wckey": _same("wckey"),
    "dependency": _same("dependency"),
    "container": _same("container"),
    "constraints": _same("constraints"),
    "cluster_constraint": _same("cluster_constraint"),
    "burst_buffer": _same("burst_buffer"),
    "cpu_frequency": _same("cpu_frequency"),
    "account_gather_frequency": _same("account_gather_frequency"),
    "comment": _same("comment"),
    "hold": _same("hold", _bool),
    "licenses": _same("licenses"),
    "time_limit": ((ALL, _minutes("time_limit")),),
    "time_minimum": ((ALL, _minutes("time_minimum")),),
    "nodes": _same("nodes", _node_count),
    "tasks": _same("tasks", _int),
    "tasks_per_node": _same("tasks_per_node", _int),
    "cpus_per_task": _same("cpus_per_task", _int),
    "memory_per_node": _same("memory_per_node", _int),
    "memory_per_cpu": _same("memory_per_cpu", _int),
    "ntasks_per_tres": _same("ntasks_per_tres", _int),
    "sockets_per_node": _same("sockets_per_node", _int),
    "threads_per_core": _same("threads_per_core", _int),
    "core_specification": _same("core_specification", _int),
    "thread_specification": _same("thread_specification", _int),
    "required_nodes": ((V38, _key("nodelist")), (V39_UP, _key("required_nodes"))),
    "excluded_nodes": ((V38, _key("exclude_nodes")), (V39_UP, _key("excluded_nodes"))),
    "tasks_per_core": ((V38, _key("ntasks_per_core", _int)),
                       (V39_UP, _key("tasks_per_core", _int))),
    "ntasks_per_gpu": ((V38, _key("ntasks_per_gpu", _int)),
                       (V39_UP, _key("ntasks_per_tres", _int))),
    "cpus_per_gpu": ((V38, _key("cpus_per_gpu", _int)),
                     (V39_UP, _prefixed("cpus_per_tres", "gres/gpu:", _int))),
    "memory_per_gpu": ((V38, _key("memory_per_gpu", _int)),
                       (V39_UP, _prefixed("memory_per_tres", "gres/gpu:", _int))),
    "gres": ((V38, _key("gres")), (V39_UP, _gres_list("tres_per_node"))),
    "gpus": ((V38, _key("gpus")), (V39_UP, _prefixed("tres_per_job", "gres/gpu:"))),
    "gpus_per_node": ((V38, _key("gpus_per_node")),
                      (V39_UP, _prefixed("tres_per_node", "gres/gpu:"))),
    "gpus_per_socket": ((V38, _key("gpus_per_socket")),
                        (V39_UP, _prefixed("tres_per_socket", "gres/gpu:"))),
    "gpus_per_task": ((V38, _key("gpus_per_task")),
                      (V39_UP, _prefixed("tres_per_task", "gres/gpu:"))),
    "gpu_bind": ((V38, _key("gpu_binding")), (V39_UP, _prefixed("tres_bind", "gres/gpu:"))),
    "gpu_freq": ((V38, _key("gpu_frequency")), (V39_UP, _prefixed("tres_freq", "gpu:"))),
    "tres_per_task": ((V39_UP, _key("tres_per_task")),),
    "tres_per_node": ((V39_UP, _key("tres_per_node")),),
    "tres_bind": ((V39_UP, _key("tres_bind")),),
    # GRES_BINDING_DISABLED was spelt GRED_ until 24.05.x; v0.0.40/41 span both.
    "gres_flags": ((V38, _key("gres_flags")), (V39, _gres_flags("GRED_BINDING_DISABLED")),
                   (V40_41, _gres_flags(None)), (V42_UP, _gres_flags("GRES_BINDING_DISABLED"))),
    "exclusive": ((V38, _exclusive_sbatch), (V39, _exclusive_parser),
                  (V40_41, _shared(("user", "mcs"))), (V42_UP, _shared(("user", "mcs", "topo")))),
    "requeue": ((V38, _requeue_sbatch), (V39_UP, _key("requeue", _bool))),
    # Minutes, as sbatch --delay-boot takes them; 22.05 parses a time string,
    # the data parsers want seconds.
    "delay_boot": ((V38, _key("delay_boot", _int)), (V39_UP, _minutes_as_seconds("delay_boot"))),
    # The data parsers of v0.0.39/40 refuse to parse a distribution at all.
    "distribution": ((V38, _key("distribution")), (V41_UP, _key("distribution"))),
    # 22.05's options and the v0.0.40 parser take cores_per_socket; v0.0.41-44
    # have no such key; v0.0.45 has it again (JOB_DESC_MSG in 26.05's
    # src/plugins/data_parser/v0.0.45/parsers.c).
    "cores_per_socket": ((V38, _key("cores_per_socket", _int)),
                         (V40, _key("cores_per_socket", _int)),
                         (V45_UP, _key("cores_per_socket", _int))),
    "network": ((V39_UP, _key("network")),),          # disabled in v0.0.38
    "overcommit": ((V39_UP, _key("overcommit", _bool)),),
    "clusters": ((V39_UP, _key("clusters")),),
    "required_switches": ((V39_UP, _key("required_switches", _int)),),
    "wait_for_switch": ((V39_UP, _minutes_as_seconds("wait_for_switch")),),  # minutes
    "power": ((V39, _power_flags),),                   # removed from Slurm in 24.05
    "open_mode": ((V38, _key("open_mode", _open_mode_text)), (V39_UP, _open_mode_flags)),
    "profile": ((V38, _key("profile")), (V39_UP, _profile_flags)),
    "signal": ((V38, _key("signal")), (V39_UP, _kill_warning)),
    "spread_job": ((V38, _sbatch_switch("spread_job")), (V39_UP, _job_flag("SPREAD_JOB"))),
    "use_min_nodes": ((V38, _sbatch_switch("minimum_nodes")),
                      (V39_UP, _job_flag("PREFER_MINIMUM_NODE_COUNT"))),
}

# Normalised fields that write GRES into the TRES keys above.
_GRES_FIELDS = ("gres", "gpus", "gpus_per_node", "gpus_per_socket", "gpus_per_task",
                "cpus_per_gpu", "memory_per_gpu", "gpu_bind", "tres_per_task",
                "tres_per_node", "tres_bind")

# Body keys several fields may add to: comma-joined strings, or lists.
_JOINED = frozenset(("tres_per_job", "tres_per_node", "tres_per_socket", "tres_per_task",
                     "tres_bind", "tres_freq", "flags"))


def _rule(field, version):
    rules = FIELD_RULES.get(field)
    if rules is None:
        raise InvalidField(field, "not a job request field scrun-rest knows")
    minor = _minor(version)
    for (first, last), encode in rules:
        if _minor(first) <= minor <= _minor(last):
            return encode
    raise UnsupportedField(field, version)


def supports(version, field):
    """Whether `version` can express the normalised job field `field`."""
    try:
        _rule(field, version)
    except UnsupportedField:
        return False
    return True


# slurmctld reads GRES in tres_per_*, cpus_per_tres, memory_per_tres and
# tres_bind as "gres:gpu:2" up to 23.02 and as "gres/gpu:2" from 23.11
# (23.02's gres_prepend_tres_type() prepends "gres:"; 23.11 moved the TRES
# strings to "gres/"). The prefix follows the Slurm release, not the API
# version: v0.0.39 is served by 23.02, 23.11 and 24.05 alike.
GRES_SLASH_FROM = (23, 11)
_GRES_KEYS = ("tres_per_job", "tres_per_node", "tres_per_socket", "tres_per_task",
              "cpus_per_tres", "memory_per_tres", "tres_bind")
_GRES_ITEM = re.compile(r"(^|[,;])gres/")


def release_needed(version, request):
    """Whether submit_body(version, request) depends on the Slurm release."""
    return (_minor(version) == 39 and isinstance(request, dict)
            and any(request.get(f) is not None for f in _GRES_FIELDS))


def submit_body(version, request, release=None):
    """The POST job/submit body for a normalised job request.

    release ("23.02.7") picks the GRES prefix; unknown, the 23.11+ one.
    """
    shp = SHAPES[version]
    request = dict(request)
    script = _text_block("script", request.pop("script", None))
    environment = request.pop("environment", None)
    if not isinstance(environment, dict) or not environment:
        raise InvalidField("environment", "expected a non-empty dict of strings")
    for key, value in environment.items():
        if not isinstance(key, str) or not isinstance(value, str) or not key or "=" in key:
            raise InvalidField("environment", "bad entry %r" % (key,))
    job = {"environment": dict(environment) if shp.environment == "dict"
           else ["%s=%s" % item for item in environment.items()]}
    owners = {}
    for field in sorted(request):
        value = request[field]
        if value is None:
            continue
        for key, encoded in _rule(field, version)(field, value, shp):
            _merge(job, owners, field, key, encoded)
    if _minor(version) >= 39 and _release_tuple(release) < GRES_SLASH_FROM:
        for key in _GRES_KEYS:
            if isinstance(job.get(key), str):
                job[key] = _GRES_ITEM.sub(r"\1gres:", job[key])
    return {"script": script, "job": job}


def _release_tuple(release):
    """(23, 2) of "23.02.7"; unknown or unreadable releases sort as the newest."""
    match = re.match(r"(\d+)\.(\d+)", release) if isinstance(release, str) else None
    return (int(match.group(1)), int(match.group(2))) if match else (9999, 0)


def _text_block(field, value):
    if not isinstance(value, str) or not value:
        raise InvalidField(field, "expected a non-empty string")
    return value


def _merge(job, owners, field, key, value):
    if key not in job:
        job[key], owners[key] = value, field
    elif key in _JOINED and isinstance(value, list):
        job[key] = job[key] + value
    elif key in _JOINED:
        job[key] = job[key] + "," + value
    else:
        raise InvalidField(field, "conflicts with %r (both set %r)" % (owners[key], key))


# ---------------------------------------------------------------------------
# Reading answers.

def errors_of(version, payload):
    """[(errno or None, text)] from an answer's errors[] (any entry shape)."""
    shp = SHAPES[version]
    found = []
    entries = payload.get("errors") if isinstance(payload, dict) else None
    for entry in entries if isinstance(entries, list) else ():
        if not isinstance(entry, dict):
            found.append((None, str(entry)))
            continue
        errno = next((entry[k] for k in shp.errno_keys if _is_int(entry.get(k))), None)
        parts = [entry.get(k) for k in ("description", "error") if isinstance(entry.get(k), str)]
        text = "; ".join(p for p in parts if p) or "unknown error"
        found.append((errno or None, text))
    return found


# A token slurmctld refuses reaches REST clients by Slurm release, not by API
# version. 23.02 to 24.05 (as 22.05) close the connection on it: submit and
# DELETE report the client library's errno 5005 (zero bytes) and GET job the
# -1 of slurm_load_job(), all with HTTP 500. From 24.11 slurmctld answers
# 1007 and slurmrestd says 511, which every release's rule below catches.
HANGUP_REFUSALS = ((23, 2), (24, 11))  # releases [first, last) that hang up
HANGUP_REFUSAL_ERRNOS = (ERRNO_ZERO_BYTES, -1)


def token_refused(version, status, payload, release=None):
    """Whether an answer means slurmrestd or slurmctld refused the token.

    401: no or unusable auth headers; 511 and error 1007: slurmctld refused
    it; 23.02-24.05 (the release the answer names, else `release`): see
    HANGUP_REFUSALS; 22.05: see token_refused_sources and token_refused_errnos.
    """
    if status in (401, 511):
        return True
    if status < 400 or not isinstance(payload, dict):
        return False
    errnos = [errno for errno, _ in errors_of(version, payload)]
    if any(errno in AUTH_ERRNOS for errno in errnos):
        return True
    first, last = HANGUP_REFUSALS
    series = _release_tuple(release_of(version, payload) or release)
    hangup = SHAPES[version].token_refused_errnos + (
        HANGUP_REFUSAL_ERRNOS if first <= series < last else ())
    if status >= 500 and any(errno in hangup for errno in errnos):
        return True
    sources = SHAPES[version].token_refused_sources
    entries = payload.get("errors") if isinstance(payload.get("errors"), list) else []
    return status >= 500 and any(
        isinstance(e, dict) and e.get("source") in sources and e.get("error_number") == -1
        for e in entries)


def version_unusable(version, payload):
    """Whether an answer says `version` cannot serve this server (see unusable_errnos)."""
    unusable = SHAPES[version].unusable_errnos
    return bool(unusable) and isinstance(payload, dict) and any(
        errno in unusable for errno, _ in errors_of(version, payload))


def delete_answer_is_bare(version, payload, release=None):
    """Whether a DELETE answer cannot tell success from failure (see bare_delete_from).

    The release is the one the answer names, else `release`; unknown counts as new.
    """
    since = SHAPES[version].bare_delete_from
    release = release_of(version, payload) or release
    return (bool(since) and _release_tuple(release) >= since
            and not (isinstance(payload, dict) and isinstance(payload.get("status"), list)))


def delete_failures(version, payload):
    """[(errno, text)] per-job failures a DELETE answer lists (v0.0.42+, or any status[])."""
    if not isinstance(payload, dict) or not (
            SHAPES[version].delete_status or isinstance(payload.get("status"), list)):
        return []
    failures = []
    status = payload.get("status")
    for entry in status if isinstance(status, list) else ():
        error = entry.get("error") if isinstance(entry, dict) else None
        if not isinstance(error, dict):
            continue
        code = error.get("code")
        if _is_int(code) and code not in (0, ERRNO_ALREADY_DONE):
            text = error.get("message") or error.get("string") or "signal failed"
            failures.append((code, text))
    return failures


def release_of(version, payload):
    """The Slurm release ("22.05.8") an answer's meta names, if any."""
    meta = payload.get("meta") if isinstance(payload, dict) else None
    slurm = meta.get(SHAPES[version].meta_slurm) if isinstance(meta, dict) else None
    if not isinstance(slurm, dict):
        return None
    if isinstance(slurm.get("release"), str):
        return slurm["release"]
    ver = slurm.get("version")
    if isinstance(ver, dict) and all(_is_int(ver.get(k)) for k in ("major", "minor", "micro")):
        return "%d.%02d.%d" % (ver["major"], ver["minor"], ver["micro"])
    return None


_API_VERSION = re.compile(r"v0\.0\.\d+")
_SLURM_PATH = re.compile(r"/slurm/(v0\.0\.\d+)/")
_OPENAPI_RELEASE = re.compile(r"Slurm-(\d+\.\d+\.\d+)")


def served_versions(document):
    """API versions an /openapi/v3 document says are served, newest first.

    From 25.05 info["x-slurm"]["data_parsers"] names them; before that the
    paths do (22.05's document has /slurm/v0.0.37/ping, /slurm/v0.0.38/ping,
    ...). Unknown ones are included: see newer_than_known().
    """
    info = document.get("info") if isinstance(document, dict) else None
    slurm = info.get("x-slurm") if isinstance(info, dict) else None
    found = set()
    for text in _strings(slurm.get("data_parsers") if isinstance(slurm, dict) else None):
        found.update(_API_VERSION.findall(text))
    paths = document.get("paths") if isinstance(document, dict) else None
    if not found and isinstance(paths, dict):
        for key in paths:
            match = _SLURM_PATH.match(key) if isinstance(key, str) else None
            if match:
                found.add(match.group(1))
    return sorted(found, key=_minor, reverse=True)


def openapi_release(document):
    """The Slurm release an /openapi/v3 document names, if any.

    info["x-slurm"]["release"] where present; 23.x writes info.version as
    "Slurm-23.11.4&openapi/slurmctld&..."; 22.05 names only its API ("0.0.38").
    """
    info = document.get("info") if isinstance(document, dict) else None
    if not isinstance(info, dict):
        return None
    slurm = info.get("x-slurm")
    if isinstance(slurm, dict) and isinstance(slurm.get("release"), str) and slurm["release"]:
        return slurm["release"]
    match = _OPENAPI_RELEASE.match(info.get("version") or "") if isinstance(
        info.get("version"), str) else None
    return match.group(1) if match else None


def newer_than_known(served):
    """The served versions newer than any this table knows (their shapes are unknown)."""
    return tuple(v for v in served if _minor(v) > _minor(NEWEST))


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def submitted_job_id(version, payload):
    job_id = payload.get("job_id") if isinstance(payload, dict) else None
    return job_id if _is_int(job_id) and job_id > 0 else None


def controllers(version, payload):
    """ping answers: v0.0.38 "ping": "UP"; v0.0.39+ "pinged"; 24.11+ "responding".

    v0.0.45 (26.05) has no "pinged" or "mode": "primary" (a bool) stands in
    for the mode, and "status" is the ping's own error text.
    """
    pings = payload.get("pings") if isinstance(payload, dict) else None
    found = []
    for entry in pings if isinstance(pings, list) else ():
        if not isinstance(entry, dict):
            continue
        if isinstance(entry.get("responding"), bool):
            up = entry["responding"]
        else:
            up = str(entry.get("pinged", entry.get("ping", ""))).upper() == "UP"
        mode = entry.get("mode")
        if not isinstance(mode, str):
            primary = entry.get("primary")
            mode = None if not isinstance(primary, bool) else "primary" if primary else "backup"
        status = entry.get("status")
        found.append(Controller(entry.get("hostname"), up, mode,
                                status if isinstance(status, str) and status else None))
    return found


def job_info(version, payload, job_id):
    """The JobInfo for job_id from a GET job/{id} answer, or None if absent."""
    jobs = payload.get("jobs") if isinstance(payload, dict) else None
    if not isinstance(jobs, list):
        return None
    entries = [j for j in jobs if isinstance(j, dict)]
    entry = next((j for j in entries if j.get("job_id") == job_id), None)
    if entry is None:
        return None
    shp = SHAPES[version]
    state = _state(entry.get("job_state"))
    exit_status = exit_signal = None
    if state.is_terminal or state is JobState.COMPLETING:
        exit_status, exit_signal = _EXIT_DECODERS[shp.exit_code](entry.get("exit_code"))
    return JobInfo(
        job_id=job_id,
        name=_str_or_none(entry.get("name")),
        state=state,
        state_reason=_str_or_none(entry.get("state_reason")),
        exit_status=exit_status,
        exit_signal=exit_signal,
        start_time=_epoch(entry.get("start_time")),
        end_time=_epoch(entry.get("end_time")),
        nodes=_str_or_none(entry.get("nodes")),
        partition=_str_or_none(entry.get("partition")),
        user_name=_str_or_none(entry.get("user_name")),
        raw=entry,
    )


# State flags in the order job_state_string() lets them hide the base state
# (v0.0.38/39 strings), with what each means for a caller; None keeps the base.
_STATE_FLAGS = (
    ("COMPLETING", JobState.COMPLETING), ("STAGE_OUT", JobState.COMPLETING),
    ("CONFIGURING", None), ("RESIZING", None),
    ("REQUEUED", JobState.REQUEUED), ("REQUEUE_FED", JobState.REQUEUED),
    ("REQUEUE_HOLD", JobState.REQUEUED), ("SPECIAL_EXIT", JobState.REQUEUED),
    ("STOPPED", JobState.SUSPENDED), ("REVOKED", JobState.CANCELLED),
    ("RESV_DEL_HOLD", JobState.PENDING), ("SIGNALING", None),
)
_BASE_STATES = {s.value: s for s in JobState
                if s not in (JobState.COMPLETING, JobState.REQUEUED, JobState.UNKNOWN)}


def _state(value):
    names = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    names = [n.upper() for n in names if isinstance(n, str)]
    base = next((_BASE_STATES[n] for n in names if n in _BASE_STATES), None)
    kept_base = False
    for flag, meaning in _STATE_FLAGS:
        if flag in names:
            if meaning is not None:
                return meaning
            kept_base = True
    if base is not None:
        return base
    return JobState.RUNNING if kept_base else JobState.UNKNOWN


def _from_wait_status(raw):
    """(exit status, signal) from a wait(2) status as Slurm stores it."""
    if not _is_int(raw) or raw < 0 or raw >= NO_VAL:
        return None, None
    if raw & 0x7F == 0:
        return (raw >> 8) & 0xFF, None
    if raw & 0x7F != 0x7F:
        return None, raw & 0x7F
    return None, None


def _exit_from_number(value):
    return _from_wait_status(_number(value))


def _exit_from_verbose(value):
    if not isinstance(value, dict):
        return None, None
    status = value.get("status")
    status = [s for s in (status if isinstance(status, list) else [status]) if isinstance(s, str)]
    if "SIGNALED" in status or "CORE_DUMPED" in status:
        signal = value.get("signal")
        return None, _number(signal.get("id")) if isinstance(signal, dict) else None
    if "SUCCESS" in status or "ERROR" in status:
        return _number(value.get("return_code")), None
    return None, None


_EXIT_DECODERS = {
    "wait": _from_wait_status,
    "number": _exit_from_number,
    "verbose": _exit_from_verbose,
}


def _number(value):
    """An int from a bare int or {set, infinite, number}; None when unset."""
    if isinstance(value, dict):
        if value.get("set") is False or value.get("infinite") is True:
            return None
        value = value.get("number")
    return value if _is_int(value) else None


def _epoch(value):
    number = _number(value)
    return number if number and number < NO_VAL else None


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _str_or_none(value):
    return value if isinstance(value, str) and value else None
