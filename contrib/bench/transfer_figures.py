#!/usr/bin/env python3
"""Bundle transfer's figures (issue 13), measured on the single-node testbed.

    /opt/scrun-rest/bin/python contrib/bench/transfer_figures.py [--quick]
        [--only rootfs,start] [--tls yes,no] [--py-spy PATH]

Run as root, as bench.py is (its helpers run podman as the test user).
The testbed's rootless vfs store is visible to the node, so
BundleTransfer=never is the shared-filesystem baseline and `always` minus
`never` is what the copy costs. Each setting is a runtime wrapper with its
own scrun-rest.conf (bench.runtime_with): the user's file is not touched.

Figures:
  rootfs  an image of busybox plus 1 GB of random bytes in 4 files,
          imported into the test user's podman and removed after: the
          transfer's MB/s (rootfs bytes over the extra wall time of
          `run --rm IMAGE true` with `always`) next to the same files through
          stdout (`cat` of them with `never`, over its extra wall time
          against `true`), for each --tls; bytes on the wire (an iptables
          counter on the tunnel's ports) and where the CPU went (/proc: the
          anchor's tar, the anchor, the task shim's main thread, which
          unpacks, and its other threads, the TLS relay among them)
  start   `run --rm busybox true` with `always` (a few MB copied) and `auto`
          (a probe finds the store in place) against `never`; --node-scratch
          DIR puts the copies there (this VM's /tmp makes each symlink
          0.3-0.7 ms, /var/tmp 0.02 ms: busybox's rootfs holds 268)

Each round runs every command once, the order rotating from round to round,
and each run starts once Slurm lists no job of the user. Times are given
twice: the whole run, and from the job's start (its batch script's start
time in /proc) to the end, which leaves out the wait for slurmctld's
scheduling loop: it wakes once a second, so any job waits 0.1-1 s for it.
--py-spy PATH (a py-spy binary) adds one `always` run for each --tls, not
counted, where py-spy records the anchor and the task shim, and prints
where their samples ended. --quick: 200 MB, fewer runs.
"""
import argparse
import collections
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time

import bench
from bench import RUN, Row, median, podman, runtime_with, say

BIG_IMAGE = "localhost/scrun-bench-transfer"
FILES = 4
# The tunnel's ports for these runs, above the ephemeral range, so that the
# counter sees only what anchors send.
PORTS = (61100, 61199)
COMMENT = "scrun-bench-transfer"
QUICK = dict(image_bytes=200 * 10**6, rootfs_runs=2, start_runs=5)
FULL = dict(image_bytes=10**9, rootfs_runs=5, start_runs=9)
HZ = os.sysconf("SC_CLK_TCK")


def testbed_fact(key, default):
    try:
        with open("/var/lib/scrun-testbed/testbed.env") as handle:
            for line in handle:
                if line.startswith(key + "="):
                    return line.strip().split("=", 1)[1]
    except OSError:
        pass
    return default


# -- the image -----------------------------------------------------------------

def make_image(user, total):
    """Import busybox plus `total` random bytes in FILES files under /big as
    BIG_IMAGE. Returns (bytes of file content in the rootfs, the big files)."""
    work = tempfile.mkdtemp(prefix="scrun-bench-image-", dir="/var/tmp")
    try:
        root = os.path.join(work, "root")
        shutil.copytree(testbed_fact("TB_ROOTFS", "/var/lib/scrun-testbed/busybox-rootfs"),
                        root, symlinks=True)
        os.mkdir(os.path.join(root, "big"))
        names = ["/big/f%d" % index for index in range(FILES)]
        for name in names:
            with open(root + name, "wb") as handle:
                left = total // FILES
                while left:
                    left -= handle.write(os.urandom(min(left, 4 << 20)))
        content = content_bytes(root)
        archive = os.path.join(work, "image.tar")
        subprocess.run(["tar", "-C", root, "--numeric-owner", "-cf", archive, "."], check=True)
        shutil.rmtree(root)
        os.chmod(work, 0o755)
        os.chmod(archive, 0o644)
        user.run(["podman", "import", "-q", archive, BIG_IMAGE], timeout=900)
        return content, names
    finally:
        shutil.rmtree(work, ignore_errors=True)


def content_bytes(root):
    seen, total = set(), 0
    for top, _, files in os.walk(root):
        for name in files:
            st = os.lstat(os.path.join(top, name))
            if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def remove_image(user):
    user.run(["podman", "rmi", "-f", BIG_IMAGE], check=False)


# -- witnesses: bytes on the wire, CPU per process and thread --------------------

class WireCounter:
    """Bytes of the TCP packets anchors send (source port in PORTS, on lo),
    counted by an iptables rule without a target; None without iptables."""

    RULE = ["OUTPUT", "-o", "lo", "-p", "tcp", "--sport", "%d:%d" % PORTS,
            "-m", "comment", "--comment", COMMENT]

    def __enter__(self):
        self.ok = subprocess.run(["iptables", "-I"] + self.RULE,
                                 capture_output=True).returncode == 0
        if not self.ok:
            say("iptables refused the counting rule: no bytes on the wire")
        return self

    def __exit__(self, *exc):
        if self.ok:
            subprocess.run(["iptables", "-D"] + self.RULE, check=False)

    def read(self):
        if not self.ok:
            return None
        out = subprocess.run(["iptables", "-L", "OUTPUT", "-v", "-x", "-n"],
                             capture_output=True, text=True).stdout
        for line in out.splitlines():
            if "/* %s */" % COMMENT in line:
                return int(line.split()[1])
        return None


def proc_stat(path):
    """(comm, the fields after comm) of a /proc stat file, or None."""
    try:
        with open(path) as handle:
            text = handle.read()
    except OSError:
        return None
    right = text.rindex(")")
    return text[text.index("(") + 1:right], text[right + 2:].split()


def uptime():
    with open("/proc/uptime") as handle:
        return float(handle.read().split()[0])


class CpuSampler:
    """CPU seconds of the user's anchor, the tar it runs and the task shim,
    per thread, read from /proc every 0.1 s while a command runs; how long
    each tar lived (the transfer, give or take 0.1 s); when the job's batch
    script, the agent, started (job_start, s since boot).
    on_new(role, pid) is called once for each process found."""

    AGENT = staticmethod(dict(bench.PeakMemory.ROLES)["agent"])
    TASK = staticmethod(dict(bench.PeakMemory.ROLES)["task"])

    def __init__(self, uid, on_new=None):
        self.uid, self.on_new = uid, on_new
        self.roles = {}                  # pid -> role, or None for others
        self.cpu = {}                    # (role, pid, tid) -> seconds
        self.tar_span = {}               # pid -> [start, last seen] (s since boot)
        self.job_start = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self.machine = bench.busy_cpu_seconds()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.machine = bench.busy_cpu_seconds() - self.machine

    def _run(self):
        while not self._stop.wait(0.1):
            self._sample()

    def _sample(self):
        now = uptime()
        for name in os.listdir("/proc"):
            if name.isdigit():
                pid = int(name)
                role = self.roles[pid] if pid in self.roles else self._classify(pid, now)
                if role:
                    self._read(role, pid, now)

    def _classify(self, pid, now):
        found = proc_stat("/proc/%d/stat" % pid)
        try:
            owner = os.stat("/proc/%d" % pid).st_uid
            with open("/proc/%d/cmdline" % pid, "rb") as handle:
                cmd = handle.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            return None
        if found is None:
            return None
        comm, fields = found
        role = None
        if owner == self.uid:
            if comm == "scrun-anchor":
                role = "anchor"
            elif comm == "tar" and self.roles.get(int(fields[1])) == "anchor":
                role = "tar"
            elif self.TASK(comm, cmd):
                role = "task"
            elif self.AGENT(comm, cmd):
                role = "agent"
                start = int(fields[19]) / HZ
                self.job_start = min(start, self.job_start or start)
        # A young process may still exec or rename itself: asked again.
        if role or now - int(fields[19]) / HZ > 2:
            self.roles[pid] = role
            if role and self.on_new:
                self.on_new(role, pid)
        return role

    def _read(self, role, pid, now):
        try:
            tids = [int(tid) for tid in os.listdir("/proc/%d/task" % pid)]
        except OSError:
            return
        for tid in tids:
            found = proc_stat("/proc/%d/task/%d/stat" % (pid, tid))
            if found:
                fields = found[1]
                self.cpu[role, pid, tid] = (int(fields[11]) + int(fields[12])) / HZ
                if role == "tar" and tid == pid:
                    self.tar_span.setdefault(pid, [int(fields[19]) / HZ, now])[1] = now

    def totals(self):
        """{part: CPU seconds} with "tar", "anchor", "task main" (the
        thread that unpacks), "task threads" and "machine" (all busy CPU)."""
        parts = collections.Counter()
        for (role, pid, tid), seconds in self.cpu.items():
            if role == "task":
                role += " main" if tid == pid else " threads"
            parts[role] += seconds
        parts["machine"] = self.machine
        parts["tar time"] = sum(last - start for start, last in self.tar_span.values())
        return parts


class PySpy:
    """py-spy recordings of the anchor and the task shim of one run."""

    def __init__(self, binary, label):
        self.binary, self.label = binary, label
        self.dir = tempfile.mkdtemp(prefix="scrun-bench-pyspy-")
        self.procs = []

    def __call__(self, role, pid):
        if role not in ("anchor", "task"):
            return
        out = os.path.join(self.dir, "%s-%s.txt" % (role, self.label))
        self.procs.append((role, out, subprocess.Popen(
            [self.binary, "record", "--pid", str(pid), "--rate", "200", "--threads",
             "--nonblocking", "--format", "raw", "--output", out],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))

    def report(self):
        for role, out, proc in self.procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            say("py-spy %s (%s), %s: where its samples ended" % (role, self.label, out))
            for line in summarize(out):
                say("  " + line)


def summarize(path, top=12):
    """The leaf functions of a raw py-spy recording, by share of samples,
    per thread."""
    leaves, total = collections.Counter(), 0
    try:
        with open(path) as handle:
            for line in handle:
                stack, _, count = line.rstrip("\n").rpartition(" ")
                frames = stack.split(";")
                thread = frames[0].split(" ")[-1] if frames else "?"
                leaves[thread, frames[-1]] += int(count)
                total += int(count)
    except (OSError, ValueError):
        return ["(no recording)"]
    return ["%5.1f%%  %s  %s" % (100 * n / total, thread, leaf)
            for (thread, leaf), n in leaves.most_common(top)]


# -- figures ------------------------------------------------------------------------

def settled(user, timeout=20):
    """Wait until Slurm lists no job of the user: a job's end goes on after
    podman returns, and would otherwise slow the next run (by 0.25-0.3 s
    here, a run after `never` or `auto` more than one after `always`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = subprocess.run(["squeue", "-h", "-u", user.name, "-o", "%i"],
                                capture_output=True, text=True).stdout
        if not listed.strip():
            return
        time.sleep(0.1)
    say("jobs of %s still listed after %d s" % (user.name, timeout))


class Run:
    """One command, measured: wall (s), after_start (s from the job's start
    to the end: without the wait for slurmctld's scheduling loop, which
    wakes once a second and so adds 0.1-1 s to any wall), result, cpu
    (CpuSampler.totals), sent (bytes anchors sent, or None)."""


def measured(user, argv, wire, on_new=None):
    """Run argv once the node is idle, watched."""
    settled(user)
    run = Run()
    before = wire.read()
    with CpuSampler(user.uid, on_new) as cpu:
        run.wall, run.result = user.timed(argv, timeout=900)
        ended = uptime()
    after = wire.read()
    run.cpu, run.sent = cpu.totals(), None if before is None else after - before
    run.after_start = ended - cpu.job_start if cpu.job_start else None
    return run


def extra(runs, base, field):
    """The median over rounds of runs' field minus base's (None if unknown)."""
    pairs = [(getattr(a, field), getattr(b, field)) for a, b in zip(runs, base)]
    if any(None in pair for pair in pairs):
        return None
    return median([a - b for a, b in pairs])


def rotated(commands, run):
    """The commands in the order of round `run`: each goes first in turn,
    so that none always follows the same one (and pays for its leftovers)."""
    names = list(commands)
    shift = run % len(names)
    return [(name, commands[name]) for name in names[shift:] + names[:shift]]


def tls_name(tls):
    return "TLS" if tls == "yes" else "TunnelTls=no"


def figure_rootfs(user, sizes, tls_settings, wire, py_spy=None):
    say("rootfs: building a %d MB image" % (sizes["image_bytes"] // 10**6))
    content, names = make_image(user, sizes["image_bytes"])
    big = sizes["image_bytes"] // FILES * FILES
    rows = []
    try:
        for tls in tls_settings:
            rows += rootfs_rows(user, sizes, tls, wire, content, names, big, py_spy)
    finally:
        remove_image(user)
    return rows


def rootfs_rows(user, sizes, tls, wire, content, names, big, py_spy):
    runs = sizes["rootfs_runs"]
    say("rootfs, %s: %d x (never true, always true, never cat)" % (tls_name(tls), runs))
    ways = {mode: runtime_with(user, "xfer-%s-%s" % (mode, tls), BundleTransfer=mode,
                               TunnelTls=tls, TunnelPortRange="%d-%d" % PORTS)
            for mode in ("never", "always")}
    cat = "%s | %s -c '%s'" % (" ".join(podman(ways["never"], *RUN, BIG_IMAGE, "cat", *names)),
                               bench.PYTHON, bench.STREAM_METER)
    commands = {"never": podman(ways["never"], *RUN, BIG_IMAGE, "true"),
                "always": podman(ways["always"], *RUN, BIG_IMAGE, "true"),
                "cat": ["sh", "-c", cat]}
    user.run(commands["never"], timeout=900)  # warm: the first run after the import
    if py_spy:  # a run of its own: the sampling slows what it watches
        spy = PySpy(py_spy, tls_name(tls))
        measured(user, commands["always"], wire, spy)
        spy.report()
    done = {name: [] for name in commands}
    streams = []
    for run in range(runs):
        for name, argv in rotated(commands, run):
            done[name].append(measured(user, argv, wire))
            last = done[name][-1]
            if name == "cat":
                count, rate = last.result.stdout.split()
                if int(count) != big:
                    raise RuntimeError("cat moved %s bytes, not %d" % (count, big))
                streams.append(float(rate))
            say("  %s %s: %.2f s, %s s after the job started, tar %.2f s, anchors sent "
                "%s bytes" % (tls_name(tls), name, last.wall, _seconds(last.after_start),
                              last.cpu["tar time"], last.sent))
    label = "%s, %d MB" % (tls_name(tls), big // 10**6)
    rows = []
    for field, words in (("wall", "whole run"), ("after_start", "job start to exit")):
        copy = extra(done["always"], done["never"], field)
        out = extra(done["cat"], done["never"], field)
        if copy is None or out is None:
            continue
        rows.append(Row("rootfs copy vs stdout MB/s, %s, %s" % (label, words),
                        content / copy / 1e6, big / out / 1e6, "ratio >= 0.8",
                        better="higher", unit="MB/s", limit=0.8,
                        note="rootfs bytes / (always - never) of `run --rm IMAGE true`, vs "
                             "the files' bytes / (`cat` of them - `true`), medians over %d "
                             "rounds of the differences: %.2f s and %.2f s"
                             % (runs, copy, out)))
    rows.append(Row("the same while tar ran vs stdout first byte to EOF, %s" % tls_name(tls),
                    content / median([r.cpu["tar time"] for r in done["always"]]) / 1e6,
                    median(streams), better="higher", unit="MB/s",
                    note="the copy alone (the anchor's tar from start to exit, sampled "
                         "every 0.1 s) vs stream_meter's rate of the cat"))
    sent = extra(done["always"], done["never"], "sent")
    if sent is not None:
        rows.append(Row("MB anchors sent for the rootfs vs its content, %s" % tls_name(tls),
                        sent / 1e6, content / 1e6, unit="MB",
                        note="iptables counter on the tunnel's ports (packets with their "
                             "headers), always minus never: %d bytes for %d (%+.2f %%)"
                             % (sent, content, 100.0 * (sent - content) / content)))
    parts = ("tar", "anchor", "task main", "task threads", "machine")
    cpu = {part: median([a.cpu[part] - n.cpu[part]
                         for a, n in zip(done["always"], done["never"])]) for part in parts}
    rows.append(Row("CPU s of the copy, %s: %s" % (tls_name(tls), " / ".join(parts)),
                    " / ".join("%.2f" % cpu[part] for part in parts),
                    note="always minus never, medians; task main unpacks, task threads "
                         "relay TLS; machine: all busy CPU (/proc/stat)"))
    return rows


def _seconds(value):
    return "?" if value is None else "%.2f" % value


def figure_start(user, sizes, wire, node_scratch=None):
    runs = sizes["start_runs"]
    say("start: %d x busybox `true` with never, always, auto%s" % (
        runs, ", copies in " + node_scratch if node_scratch else ""))
    extra = {"NodeScratch": node_scratch} if node_scratch else {}
    commands = {mode: podman(runtime_with(user, "xfer-start-" + mode, BundleTransfer=mode,
                                          TunnelPortRange="%d-%d" % PORTS, **extra),
                             *RUN, bench.IMAGE, "true")
                for mode in ("never", "always", "auto")}
    done = {name: [] for name in commands}
    for run in range(runs):
        for name, argv in rotated(commands, run):
            done[name].append(measured(user, argv, wire))
        say("  round %d: %s" % (run + 1, ", ".join(
            "%s %.2f s (%s after the job started)" % (
                name, done[name][-1].wall, _seconds(done[name][-1].after_start))
            for name in commands)))
    rows = []
    for mode in ("always", "auto"):
        for field, words in (("wall", "whole run"), ("after_start", "job start to exit")):
            ours = [getattr(r, field) for r in done[mode]]
            base = [getattr(r, field) for r in done["never"]]
            if None in ours + base:
                continue
            rows.append(Row("run --rm busybox true, %s vs never, %s" % (mode, words),
                            median(ours), median(base), unit="s",
                            note="medians of %d rotating rounds; %+.0f ms (median of the "
                                 "rounds' differences %+.0f ms)" % (
                                     runs, 1000 * (median(ours) - median(base)),
                                     1000 * extra(done[mode], done["never"], field))))
    sent = [r.sent for r in done["always"]]
    if None not in sent:
        rows.append(Row("bytes anchors sent, always (busybox)", median(sent),
                        note="iptables counter on the tunnel's ports, whole run"))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 MB, fewer runs")
    parser.add_argument("--user", default=os.environ.get("SCRUN_TEST_USER", "scruntest"))
    parser.add_argument("--only", default="rootfs,start", help="rootfs, start or both")
    parser.add_argument("--tls", default="yes,no", help="TunnelTls values for rootfs")
    parser.add_argument("--py-spy", help="a py-spy binary: profile the first copy")
    parser.add_argument("--node-scratch", help="NodeScratch for the start figures")
    options = parser.parse_args()
    if os.getuid() != 0:
        parser.error("run as root: podman runs as --user through runuser")
    only = [name.strip() for name in options.only.split(",") if name.strip()]
    if set(only) - {"rootfs", "start"}:
        parser.error("--only takes rootfs and start")
    tls_settings = [value.strip() for value in options.tls.split(",") if value.strip()]
    if set(tls_settings) - {"yes", "no"}:
        parser.error("--tls takes yes and no")
    sizes = QUICK if options.quick else FULL
    user = bench.User(options.user)
    say("user %s, load %s" % (user.name, open("/proc/loadavg").read().split()[:3]))
    began = time.monotonic()
    rows = []
    with WireCounter() as wire:
        for name in only:
            if name == "rootfs":
                rows += figure_rootfs(user, sizes, tls_settings, wire, options.py_spy)
            else:
                rows += figure_start(user, sizes, wire, options.node_scratch)
    say("done in %.0f s, load %s" % (time.monotonic() - began,
                                     open("/proc/loadavg").read().split()[:3]))
    bench.print_table(rows)
    return 0 if all(row.passed is not False for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
