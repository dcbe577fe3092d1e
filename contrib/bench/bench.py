#!/usr/bin/env python3
"""scrun-rest next to its baselines, measured in the same run on the testbed.

    /opt/scrun-rest/bin/python contrib/bench/bench.py [--quick] [--only state,start,...]

Run as root on a machine brought up by contrib/testbed/setup.sh; podman,
srun and sbatch run as the test user (runuser), as a person would run them.
Every figure is the median of several runs, and the runs of scrun-rest and
of its baseline alternate, so load from other users of the machine hits
both alike. Prints a table: figure | scrun-rest | baseline | ratio | target | pass.

Figures (issue 7):
  state     `scrun-rest state ID` against `python -c pass` (same interpreter),
            and no requests/jsonschema/lupa/jwt in state, kill, delete
  start     `podman run --rm IMAGE true` against runc and `sbatch --wait`,
            and the REST requests one container costs (slurmrestd's log)
  io        bytes through stdout and stdin against podman+runc and with
            TunnelTls=no (what the default TLS costs), with srun's
            own forwarding for comparison; peak RSS of anchor, agent, task
  parallel  N parallel `podman run` against N parallel `srun` of the same
            podman command (with runc) and of bare `true`
  idle      REST requests per second that N running containers cost

--quick uses small sizes and few runs (a minute or two); the full run moves
1 GB each way and runs 32 containers at once: it loads the machine, so run
it sparingly when others share it.
"""
import argparse
import os
import pwd
import re
import statistics
import subprocess
import sys
import threading
import time

RUNTIME = "/opt/scrun-rest/bin/scrun-rest"
PYTHON = "/opt/scrun-rest/bin/python"
IMAGE = "localhost/busybox"
REST_LOG = "/var/log/slurm/slurmrestd.log"
HEAVY = ("requests", "jsonschema", "lupa", "jwt")
FIGURES = ("state", "start", "io", "parallel", "idle")

QUICK = dict(state_runs=30, start_runs=3, io_bytes=200 * 10**6, io_runs=1,
             parallel=8, parallel_runs=1, idle_counts=(4,), idle_window=10)
FULL = dict(state_runs=100, start_runs=7, io_bytes=10**9, io_runs=3,
            parallel=32, parallel_runs=3, idle_counts=(1, 8, 16), idle_window=30)


# -- running things as the test user -------------------------------------------

class User:
    def __init__(self, name):
        entry = pwd.getpwnam(name)
        self.name, self.uid, self.home = name, entry.pw_uid, entry.pw_dir

    def argv(self, argv):
        return ["runuser", "-u", self.name, "--", "env", "-i", "HOME=" + self.home,
                "USER=" + self.name, "XDG_RUNTIME_DIR=/run/user/%d" % self.uid,
                "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"] + list(argv)

    def run(self, argv, check=True, timeout=600, **kwargs):
        result = subprocess.run(self.argv(argv), cwd="/tmp", capture_output=True,
                                timeout=timeout, **kwargs)
        if check and result.returncode != 0:
            raise RuntimeError("%s failed (%d): %s" % (" ".join(argv), result.returncode,
                                                       result.stderr.decode()[-400:]))
        return result

    def shell(self, script, **kwargs):
        return self.run(["sh", "-c", script], **kwargs)

    def timed(self, argv, **kwargs):
        began = time.monotonic()
        result = self.run(argv, **kwargs)
        return time.monotonic() - began, result


def podman(runtime, *args):
    return ["podman", "--runtime", runtime] + list(args)


RUN = ("run", "--rm", "--network=none")


# -- bookkeeping -----------------------------------------------------------------

class Row:
    def __init__(self, figure, ours, base=None, target=None, better="lower", unit="",
                 limit=None, note=""):
        self.figure, self.ours, self.base = figure, ours, base
        self.target, self.better, self.unit, self.limit, self.note = \
            target, better, unit, limit, note

    @property
    def ratio(self):
        if isinstance(self.ours, (int, float)) and isinstance(self.base, (int, float)) \
                and self.base:
            return self.ours / self.base
        return None

    @property
    def passed(self):
        """True/False against the target; None when the row only informs."""
        if self.limit is None:
            return None
        value = self.ratio if self.target and self.target.startswith("ratio") else self.ours
        if not isinstance(value, (int, float)):
            return self.ours == self.limit
        return value <= self.limit if self.better == "lower" else value >= self.limit


def fmt(value, unit=""):
    if value is None:
        return "-"
    if isinstance(value, float):
        text = "%.3g" % value if abs(value) < 100 else "%.0f" % value
    else:
        text = str(value)
    return text + (" " + unit if unit and not isinstance(value, str) else "")


def print_table(rows, out=sys.stdout):
    header = ("figure", "scrun-rest", "baseline", "ratio", "target", "pass")
    lines = [header]
    for row in rows:
        verdict = {True: "yes", False: "NO", None: "-"}[row.passed]
        lines.append((row.figure, fmt(row.ours, row.unit), fmt(row.base, row.unit),
                      "%.2f" % row.ratio if row.ratio is not None else "-",
                      row.target or "-", verdict))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for number, line in enumerate(lines):
        out.write("| " + " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(line))
                  + " |\n")
        if number == 0:
            out.write("|" + "|".join("-" * (w + 2) for w in widths) + "|\n")
    for row in rows:
        if row.note:
            out.write("  %s: %s\n" % (row.figure, row.note))


def say(text):
    sys.stderr.write("bench: %s\n" % text)
    sys.stderr.flush()


def median(values):
    return statistics.median(values) if values else None


# -- outside witnesses: slurmrestd's log and /proc ---------------------------------

class RestLog:
    """Counts the requests slurmrestd logs for one user (one line per request)."""

    def __init__(self, user):
        self.pattern = re.compile(r"user_name %s token authentication" % re.escape(user.name))
        self.offset = 0

    def available(self):
        return os.access(REST_LOG, os.R_OK)

    def mark(self):
        self.offset = os.path.getsize(REST_LOG)

    def count(self):
        with open(REST_LOG, "rb") as handle:
            handle.seek(self.offset)
            text = handle.read().decode("utf-8", "replace")
        return len(self.pattern.findall(text))


class PeakMemory:
    """Samples VmHWM (peak RSS) of the user's anchor, agent and task shims."""

    ROLES = (("anchor", lambda comm, cmd: comm == "scrun-anchor"),
             ("agent", lambda comm, cmd: "slurm_script" in cmd),
             ("task", lambda comm, cmd: "scrun-rest boot" in cmd and comm != "srun"))

    def __init__(self, user):
        self.uid = user.uid
        self.peaks = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self):
        while not self._stop.wait(0.1):
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    self._sample(pid)

    def _sample(self, pid):
        try:
            if os.stat("/proc/" + pid).st_uid != self.uid:
                return
            with open("/proc/%s/comm" % pid) as handle:
                comm = handle.read().strip()
            with open("/proc/%s/cmdline" % pid, "rb") as handle:
                cmd = handle.read().replace(b"\0", b" ").decode("utf-8", "replace")
            with open("/proc/%s/status" % pid) as handle:
                status = handle.read()
        except OSError:
            return
        found = re.search(r"VmHWM:\s+(\d+) kB", status)
        if not found:
            return
        for role, matches in self.ROLES:
            if matches(comm, cmd):
                self.peaks[role] = max(self.peaks.get(role, 0), int(found.group(1)) / 1024)


# -- figures -----------------------------------------------------------------------

STATE_HARNESS = r"""
import json, subprocess, sys, time
runs, runtime, cid, python = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
commands = {"pass": [python, "-c", "pass"], "state": [runtime, "state", cid]}
times = {name: [] for name in commands}
for _ in range(runs):
    for name, argv in commands.items():
        began = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
        times[name].append(time.perf_counter() - began)
print(json.dumps(times))
"""


def heavy_imports(user, argv):
    """Heavy modules a command imports, read from `python -X importtime`."""
    result = user.run([PYTHON, "-X", "importtime", RUNTIME] + argv, check=False)
    imported = set(re.findall(r"\|\s+(\S+)\s*$", result.stderr.decode(), re.M))
    heavy = sorted({name.split(".")[0] for name in imported} & set(HEAVY))
    return heavy, len(imported)


def figure_state(user, sizes):
    import json
    say("state: one detached container, then %d alternating runs" % sizes["state_runs"])
    started = user.run(podman(RUNTIME, "run", "-d", "--network=none", IMAGE, "sleep", "600"))
    cid = started.stdout.decode().strip()
    rows = []
    try:
        result = user.run([PYTHON, "-c", STATE_HARNESS, str(sizes["state_runs"]), RUNTIME,
                           cid, PYTHON])
        times = json.loads(result.stdout)
        ours, base = median(times["state"]) * 1000, median(times["pass"]) * 1000
        rows.append(Row("state wall time", ours, base, "ratio <= 1.5", unit="ms", limit=1.5,
                        note="baseline: `python -c pass`, same interpreter"))
        found = {}
        for name, argv in (("state", ["state", cid]), ("kill", ["kill", cid, "CONT"]),
                           ("delete", ["delete", "--force", cid])):
            heavy, count = heavy_imports(user, argv)
            found[name] = heavy
            say("-X importtime %s: %d modules, heavy: %s" % (name, count, heavy or "none"))
        heavy = sorted({module for modules in found.values() for module in modules})
        rows.append(Row("state/kill/delete import " + "/".join(HEAVY),
                        ", ".join(heavy) or "none", target="none", limit="none",
                        note="from `python -X importtime` of each command"))
    finally:
        user.run(podman(RUNTIME, "rm", "-f", "-t", "0", cid), check=False)
    return rows


def figure_start(user, sizes, rest_log):
    runs = sizes["start_runs"]
    say("start: %d x (scrun-rest, runc, sbatch --wait) `true`" % runs)
    times = {"scrun": [], "runc": [], "sbatch": []}
    requests = []
    commands = {
        "scrun": podman(RUNTIME, *RUN, IMAGE, "true"),
        "runc": podman("runc", *RUN, IMAGE, "true"),
        "sbatch": ["sbatch", "--quiet", "--wait", "--output=/dev/null", "--wrap", "true"],
    }
    for _ in range(runs):
        for name, argv in commands.items():
            if name == "scrun" and rest_log.available():
                rest_log.mark()
            took, _ = user.timed(argv)
            times[name].append(took)
            if name == "scrun" and rest_log.available():
                requests.append(rest_log.count())
    ours = median(times["scrun"])
    rows = [
        Row("run --rm true, vs sbatch --wait", ours, median(times["sbatch"]),
            "ratio < 1", unit="s", limit=0.999,
            note="sbatch --wait polls the controller; scrun-rest hears start and exit "
                 "on its tunnel"),
        Row("run --rm true, vs local runc", ours, median(times["runc"]), unit="s",
            note="runc runs on this host, no Slurm at all: the floor"),
    ]
    if requests:
        rows.append(Row("REST requests per container", max(requests), target="<= 4",
                        limit=4, note="counted in slurmrestd's log; worst of %d runs: %s"
                        % (len(requests), requests)))
    return rows


# Passed with -c, so the test user needs no access to this checkout.
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "stream_meter.py")) as _f:
    STREAM_METER = _f.read()


def throughput(user, script, size):
    """(MB/s over the whole command, MB/s of the stream alone or None)."""
    took, result = user.timed(["sh", "-c", script])
    fields = result.stdout.split()
    moved = int(fields[0])
    if moved != size:
        raise RuntimeError("%r moved %d bytes, not %d" % (script, moved, size))
    return size / took / 1e6, float(fields[1]) if len(fields) > 1 else None


def runtime_with(user, name, **settings):
    """scrun-rest with the user's own settings plus `settings`, as a
    runtime path podman can be given (the user's file stays as it is)."""
    home = os.path.join("/tmp", "scrun-bench-%s-%d" % (name, user.uid))
    os.makedirs(home, mode=0o700, exist_ok=True)
    with open(os.path.join(user.home, ".config/scrun-rest/scrun-rest.conf")) as handle:
        text = handle.read()
    conf = os.path.join(home, "scrun-rest.conf")
    with open(conf, "w") as handle:
        handle.write(text + "\n" + "".join("%s=%s\n" % kv for kv in settings.items()))
    wrapper = os.path.join(home, "scrun-rest")
    with open(wrapper, "w") as handle:
        handle.write("#!/bin/sh\nSCRUN_REST_CONF=%s exec %s \"$@\"\n" % (conf, RUNTIME))
    os.chmod(conf, 0o600)
    os.chmod(wrapper, 0o700)
    for path in (home, conf, wrapper):
        os.chown(path, user.uid, -1)
    return wrapper


def figure_io(user, sizes):
    size, runs = sizes["io_bytes"], sizes["io_runs"]
    say("io: %d x %d MB each way through scrun-rest (TLS and plain), runc and srun"
        % (runs, size // 10**6))
    meter = "| %s -c '%s'" % (PYTHON, STREAM_METER)
    plain = runtime_with(user, "plain", TunnelTls="no")  # what the default TLS costs
    out = {
        "scrun": " ".join(podman(RUNTIME, *RUN, IMAGE, "head", "-c", str(size), "/dev/zero"))
        + meter,
        "plain": " ".join(podman(plain, *RUN, IMAGE, "head", "-c", str(size), "/dev/zero"))
        + meter,
        "runc": " ".join(podman("runc", *RUN, IMAGE, "head", "-c", str(size), "/dev/zero"))
        + meter,
        "srun": "srun -n1 head -c %d /dev/zero %s" % (size, meter),
    }
    into = {
        "scrun": "head -c %d /dev/zero | %s" % (size, " ".join(
            podman(RUNTIME, "run", "--rm", "-i", "--network=none", IMAGE, "wc", "-c"))),
        "plain": "head -c %d /dev/zero | %s" % (size, " ".join(
            podman(plain, "run", "--rm", "-i", "--network=none", IMAGE, "wc", "-c"))),
        "runc": "head -c %d /dev/zero | %s" % (size, " ".join(
            podman("runc", "run", "--rm", "-i", "--network=none", IMAGE, "wc", "-c"))),
        "srun": "head -c %d /dev/zero | srun -n1 wc -c" % size,
    }
    rates = {(way, name): [] for way in ("out", "in") for name in out}
    streams = {name: [] for name in out}
    with PeakMemory(user) as memory:
        for run in range(runs):
            for way, scripts in (("out", out), ("in", into)):
                for name, script in scripts.items():
                    if name == "srun" and run:
                        continue  # for comparison only, and slow: one run
                    rate, stream = throughput(user, script, size)
                    rates[way, name].append(rate)
                    if stream is not None:
                        streams[name].append(stream)
    with PeakMemory(user) as idle_memory:
        user.run(podman(RUNTIME, *RUN, IMAGE, "true"))
    rows = []
    for way, words in (("out", "stdout"), ("in", "stdin")):
        ours = median(rates[way, "scrun"])
        rows.append(Row("%s MB/s (%d MB), vs runc" % (words, size // 10**6), ours,
                        median(rates[way, "runc"]), "ratio >= 0.8", better="higher",
                        unit="MB/s", limit=0.8,
                        note="wall time of the whole pipeline, container start included"))
        if way == "out":
            rows.append(Row("stdout MB/s first byte to EOF, vs runc", median(streams["scrun"]),
                            median(streams["runc"]), "ratio >= 0.8", better="higher",
                            unit="MB/s", limit=0.8,
                            note="the stream alone: start-up does not count"))
        rows.append(Row("%s MB/s, TLS (default) vs TunnelTls=no" % words, ours,
                        median(rates[way, "plain"]), unit="MB/s",
                        note="what the default TLS tunnel costs"))
        rows.append(Row("%s MB/s, vs srun's forwarding" % words, ours,
                        median(rates[way, "srun"]), unit="MB/s",
                        note="`srun -n1` with its own I/O forwarding, no container"))
    for role in ("anchor", "agent", "task"):
        if role in memory.peaks:
            rows.append(Row("peak RSS %s while moving data" % role, memory.peaks[role],
                            idle_memory.peaks.get(role), "ratio <= 1.2", unit="MB",
                            limit=1.2, note="baseline: the same process for `true`"))
    return rows


def busy_cpu_seconds():
    """CPU time the whole machine has spent outside idle and iowait."""
    with open("/proc/stat") as handle:
        fields = [int(value) for value in handle.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def parallel_wall(user, count, argv):
    """Wall time of `count` copies at once, and the machine's CPU seconds."""
    script = "for i in $(seq %d); do %s >/dev/null 2>&1 & done; wait" % (
        count, " ".join(argv))
    cpu = busy_cpu_seconds()
    took, _ = user.timed(["sh", "-c", script])
    return took, busy_cpu_seconds() - cpu


def figure_parallel(user, sizes):
    count, runs = sizes["parallel"], sizes["parallel_runs"]
    say("parallel: %d x %d containers at once, scrun-rest and srun" % (runs, count))
    commands = {
        "scrun": podman(RUNTIME, *RUN, IMAGE, "true"),
        "srun-podman": ["srun", "-n1"] + podman("runc", *RUN, IMAGE, "true"),
        "srun": ["srun", "-n1", "true"],
    }
    walls = {name: [] for name in commands}
    cpus = {name: [] for name in commands}
    for _ in range(runs):
        for name, argv in commands.items():
            wall, cpu = parallel_wall(user, count, argv)
            walls[name].append(wall)
            cpus[name].append(cpu)
    ours = median(walls["scrun"])
    return [
        Row("%d parallel run --rm true, vs srun podman" % count, ours,
            median(walls["srun-podman"]), "ratio <= 1.5", unit="s", limit=1.5,
            note="baseline: %d parallel `srun -n1 podman --runtime runc run ...`, the same "
                 "podman command under srun" % count),
        Row("%d parallel run --rm true, vs srun true" % count, ours, median(walls["srun"]),
            unit="s", note="bare `srun -n1 true`: no container, no podman"),
        Row("CPU per container in those runs", median(cpus["scrun"]) / count,
            median(cpus["srun-podman"]) / count, unit="s",
            note="the machine's busy CPU seconds (/proc/stat) while %d ran, divided by %d: "
                 "with %d CPUs the wall cannot be below their sum / %d"
                 % (count, count, os.cpu_count(), os.cpu_count())),
    ]


def figure_idle(user, sizes, rest_log):
    if not rest_log.available():
        say("idle: %s is not readable; skipped" % REST_LOG)
        return []
    rows = []
    window = sizes["idle_window"]
    for count in sizes["idle_counts"]:
        say("idle: %d running containers, REST requests over %d s" % (count, window))
        names = ["bench-idle-%d-%d" % (os.getpid(), i) for i in range(count)]
        try:
            _start_detached(user, names)
            rest_log.mark()
            time.sleep(window)
            per_second = rest_log.count() / window
        finally:
            _remove(user, names)
        rows.append(Row("REST requests/s, %d running containers" % count, per_second,
                        target="~0", limit=0.05, unit="req/s",
                        note="counted in slurmrestd's log while the containers run"))
    return rows


def _start_detached(user, names):
    script = " ".join(
        "%s >/dev/null &" % " ".join(podman(RUNTIME, "run", "-d", "--network=none",
                                            "--name", name, IMAGE, "sleep", "3600"))
        for name in names) + " wait"
    user.shell(script)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        listed = user.run(["podman", "ps", "--format", "{{.Names}}"], check=False)
        if set(names) <= set(listed.stdout.decode().split()):
            return
        time.sleep(0.5)
    raise RuntimeError("the containers did not all start")


def _remove(user, names):
    user.run(["podman", "rm", "-f", "-t", "0"] + names, check=False)


# -- main ----------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few runs")
    parser.add_argument("--user", default=os.environ.get("SCRUN_TEST_USER", "scruntest"))
    parser.add_argument("--only", default=",".join(FIGURES),
                        help="comma-separated subset of " + ",".join(FIGURES))
    options = parser.parse_args()
    if os.getuid() != 0:
        parser.error("run as root: podman, srun and sbatch run as --user through runuser")
    only = [name.strip() for name in options.only.split(",") if name.strip()]
    unknown = set(only) - set(FIGURES)
    if unknown:
        parser.error("unknown figure(s): %s" % ", ".join(sorted(unknown)))
    sizes = QUICK if options.quick else FULL
    user = User(options.user)
    rest_log = RestLog(user)
    say("user %s, %s sizes, load %s" % (user.name, "quick" if options.quick else "full",
                                         open("/proc/loadavg").read().split()[:3]))
    began = time.monotonic()
    rows = []
    for name in only:
        if name == "state":
            rows += figure_state(user, sizes)
        elif name == "start":
            rows += figure_start(user, sizes, rest_log)
        elif name == "io":
            rows += figure_io(user, sizes)
        elif name == "parallel":
            rows += figure_parallel(user, sizes)
        elif name == "idle":
            rows += figure_idle(user, sizes, rest_log)
    say("done in %.0f s, load %s" % (time.monotonic() - began,
                                     open("/proc/loadavg").read().split()[:3]))
    print_table(rows)
    return 0 if all(row.passed is not False for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
