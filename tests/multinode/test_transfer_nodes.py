"""Bundle transfer where the nodes share nothing with the login host (issue 13).

Each test runs under rootless podman on the login host (vfs and overlay),
rootful podman and docker with overlay2 (engines.py); the
volumes below are under the login host's /tmp. n1 and n2 see none of that
(test_node_filesystem.py), so every container here runs from copies the
tunnel brought, and what it changed must come back the same way. The
conftest checks after each test that no job, process, runc state or task
dir (where the copies are) is left on either node.
"""
import hashlib
import os
import re
import subprocess
import time

import pytest

from . import cluster, engines
from .cluster import IMAGE
from e2e.testbed import Terminal
from e2e.transfer_ways import ROOT_SOURCE

RUN = ("run", "--rm", "--network=none")
TWO = ("-e", "SCRUN_JOB_NUM_NODES=2", "-e", "SCRUN_NTASKS=2")
# A copy's place on a node: the task's scratch dir under the node's /tmp,
# which mountinfo shows from the root of that tmpfs.
COPY = re.compile(r"(?:/tmp)?/scrun-rest\.[^/]+/bundle/(\d+)")
# What the container sees of a tree, and how the login host must see it
# after: type, mode and content (or link target) of every entry.
MANIFEST = r"""cd "$1" && find . ! -name . | sort | while read -r f; do
  if [ -L "$f" ]; then echo "L $f $(readlink "$f")"
  elif [ -d "$f" ]; then echo "D $f $(stat -c %a "$f")"
  else echo "F $f $(stat -c %a "$f") $(md5sum < "$f" | cut -d' ' -f1)"; fi
done"""


def manifest(path):
    """MANIFEST's lines for a tree on the login host."""
    found = []
    for base, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(base, name)
            rel = "./" + os.path.relpath(full, path)
            mode = "%o" % (os.lstat(full).st_mode & 0o7777)
            if os.path.islink(full):
                found.append("L %s %s" % (rel, os.readlink(full)))
            elif os.path.isdir(full):
                found.append("D %s %s" % (rel, mode))
            else:
                with open(full, "rb") as handle:
                    found.append("F %s %s %s" % (rel, mode, hashlib.md5(handle.read()).hexdigest()))
    return sorted(found)


def node_path(source):
    """Where a copy is on its node, from the mount source mountinfo shows."""
    return source if source.startswith("/tmp/") else "/tmp" + source


def on_node(node, path):
    """path as the node itself sees it."""
    return cluster.node_root(node) + path


@pytest.fixture(scope="module")
def overlay_store():
    with engines.overlay_store() as store:
        yield store


@pytest.fixture(params=engines.NAMES)
def engine(request, unavailable):
    store = request.getfixturevalue("overlay_store") if request.param == "podman-overlay" \
        else ()
    engine = engines.Engine(request.param, store)
    why = engine.unavailable()
    if why:
        unavailable(why)
    return engine


def detached(engine, *args):
    started = engine("run", "-d", "--network=none", *args)
    assert started.returncode == 0, started.stderr
    return started.stdout.decode().strip()


def log_lines(engine, cid, count, timeout=30):
    """The container's output, once it printed `count` lines."""
    def enough():
        lines = engine("logs", cid).stdout.decode().splitlines()
        return lines if len(lines) >= count else None
    lines = cluster.wait_until(enough, timeout)
    assert lines, engine("logs", cid)
    return lines


@pytest.fixture
def volume():
    """A directory of the test user's in the login host's /tmp, with a
    little of everything; no node can see it."""
    with cluster.user_dir() as base:
        os.makedirs(base + "/sub/deep")
        os.makedirs(base + "/empty")
        for name, data in (("keep.txt", b"same\n"), ("change.txt", b"old\n"),
                           ("gone.txt", b"bye\n"), ("sub/deep/data.bin", os.urandom(300000)),
                           ("sub/mode600", b"private\n")):
            with open(os.path.join(base, name), "wb") as handle:
                handle.write(data)
        os.chmod(base + "/sub/mode600", 0o600)
        os.symlink("keep.txt", base + "/link")
        subprocess.run(["chown", "-R", "%s:%s" % (cluster.USER, cluster.USER), base],
                       check=True)
        yield base


# -- where the container runs from ----------------------------------------------

@pytest.mark.parametrize("nodes", [1, 2])
def test_each_task_runs_from_its_own_nodes_copy(engine, nodes):
    """Each task's / is a copy in its own node's scratch (not the login
    host's path, and not on the other node), made for this container."""
    extra = TWO if nodes == 2 else ()
    cid = detached(engine, *extra, IMAGE, "sh", "-c",
                   "echo $SLURM_PROCID $SLURM_TOPOLOGY_ADDR $(%s); "
                   "test -x /bin/busybox && exec sleep 300" % ROOT_SOURCE)
    try:
        lines = sorted(log_lines(engine, cid, nodes))
        tasks = [line.split() for line in lines]
        if nodes == 2:
            assert [task[:2] for task in tasks] == [["0", "n1"], ["1", "n2"]], lines
        else:
            assert len(tasks) == 1 and tasks[0][:1] == ["0"] and tasks[0][1] in ("n1", "n2"), \
                lines
        for _, node, source in tasks:
            match = COPY.fullmatch(source)
            assert match and match.group(1) == "0", source
            copy = node_path(source)
            assert os.path.isfile(on_node(node, copy) + "/bin/busybox"), (node, copy)
            assert not os.path.exists(copy), "the login host has %s" % copy
            for other in set(cluster.MN["MN_NODES"].split()) - {node}:
                assert not os.path.exists(on_node(other, copy)), (other, copy)
    finally:
        engine.remove(cid)


def test_both_tasks_of_a_two_node_container_run_and_exit(engine):
    result = engine(*RUN, *TWO, IMAGE, "sh", "-c",
                    "echo $SLURM_PROCID-$SLURM_TOPOLOGY_ADDR-$(%s | sed 's|.*/bundle/|bundle/|'); "
                    "exit $((3 + SLURM_PROCID))" % ROOT_SOURCE)
    assert result.returncode == 4, result.stderr
    assert sorted(result.stdout.decode().split()) == ["0-n1-bundle/0", "1-n2-bundle/0"]


# -- volumes ---------------------------------------------------------------------

WRITES = ("echo new >> /w/change.txt; rm /w/gone.txt; mkdir -p /w/made/inner; "
          "echo fresh > /w/made/inner/f; chmod 640 /w/made/inner/f; "
          "head -c 200000 /dev/urandom > /w/made/random.bin; "
          "ln -s made/inner /w/newlink; rm -r /w/sub/deep; rmdir /w/empty; "
          "chmod 644 /w/sub/mode600; echo more >> /w/sub/mode600; ")


def test_a_read_write_volume_comes_back_byte_for_byte(engine, volume):
    result = engine(*RUN, "-v", volume + ":/w", IMAGE, "sh", "-c",
                    WRITES + "awk '$5==\"/w\"{print $4}' /proc/self/mountinfo >&2; "
                    "sh -c \"$0\" - /w", MANIFEST)
    assert result.returncode == 0, result.stderr
    # The node had a copy (it cannot see the login host's /tmp).
    source = result.stderr.decode().split()
    assert len(source) == 1 and COPY.fullmatch(source[0]), result.stderr
    seen_inside = sorted(result.stdout.decode().splitlines())
    assert manifest(volume) == seen_inside
    assert "F ./made/random.bin 644" in " ".join(seen_inside)
    for gone in ("./gone.txt", "./sub/deep", "./empty"):
        assert not [line for line in seen_inside if line.split()[1].startswith(gone)], gone
    with open(volume + "/change.txt", "rb") as handle:
        assert handle.read() == b"old\nnew\n"
    assert os.readlink(volume + "/newlink") == "made/inner"


def test_a_read_only_volume_stays_untouched(engine, volume):
    before = manifest(volume)
    stamps = {name: os.lstat(os.path.join(volume, name)).st_mtime_ns
              for name in ("keep.txt", "sub", "sub/deep/data.bin")}
    result = engine(*RUN, "-v", volume + ":/w:ro", IMAGE, "sh", "-c",
                    "cat /w/keep.txt; echo x > /w/keep.txt; rm /w/gone.txt; exit 0")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"same\n"
    assert result.stderr.count(b"Read-only file system") == 2, result.stderr
    assert manifest(volume) == before
    assert stamps == {name: os.lstat(os.path.join(volume, name)).st_mtime_ns
                      for name in stamps}


# -- the container's own files, its life, its stdio ---------------------------

def test_a_file_written_without_rm_can_be_copied_out_after_exit(engine):
    name = "scrun-mn-xfer-cp-%d" % os.getpid()
    engine.remove(name)
    result = engine("run", "--name", name, "--network=none", IMAGE, "sh", "-c",
                    "echo made on $SLURM_TOPOLOGY_ADDR > /made.txt")
    try:
        assert result.returncode == 0, result.stderr
        copied = engine("cp", name + ":/made.txt", "-")
        assert copied.returncode == 0, copied.stderr
        # podman cp writes a tar archive to stdout.
        assert re.search(rb"made on n[12]\n", copied.stdout), copied.stdout[:600]
        again = engine("start", "-a", name)
        assert again.returncode == 0, again.stderr
    finally:
        engine.remove(name)


def test_detached_exec_and_stop(engine):
    cid = detached(engine, IMAGE, "sh", "-c", "echo up; exec sleep 300")
    try:
        log_lines(engine, cid, 1)
        result = engine("exec", cid, "sh", "-c",
                        "test -x /bin/busybox && %s && echo in" % ROOT_SOURCE)
        assert result.returncode == 0, result.stderr
        source, said = result.stdout.decode().split()
        assert COPY.fullmatch(source) and said == "in", result.stdout
        begin = time.monotonic()
        assert engine("stop", "-t", "2", cid).returncode == 0
        took = time.monotonic() - begin
        assert took < 15, took
        assert engine("wait", cid).stdout.strip() == b"137"
    finally:
        engine.remove(cid)


def test_a_terminal_session(engine):
    term = Terminal(engine.terminal_argv("run", "-it", "--rm", "--network=none", IMAGE, "sh"))
    try:
        term.expect("# ", 60)
        term.type("tty; %s; echo $((6*7)); exit 3\r" % ROOT_SOURCE)
        term.expect(r"\n/dev/pts/\d+\r\n%s\r\n42\r\n" % COPY.pattern)
        assert term.wait() == 3
    finally:
        term.close()


def test_20_mb_of_output_arrives_intact(engine):
    result = engine(*RUN, IMAGE, "sh", "-c",
                    "head -c 20000000 /dev/urandom > /tmp/x; sha256sum /tmp/x >&2; cat /tmp/x",
                    timeout=180)
    assert result.returncode == 0, result.stderr[-500:]
    assert len(result.stdout) == 20000000
    assert hashlib.sha256(result.stdout).hexdigest().encode() == result.stderr.split()[0]


def test_exit_code_and_separate_streams(engine):
    result = engine(*RUN, IMAGE, "sh", "-c", "echo out; echo err >&2; exit 7")
    assert (result.returncode, result.stdout, result.stderr) == (7, b"out\n", b"err\n")


def test_a_signal_death_is_128_plus_the_signal(engine):
    # pid 1 ignores what it has no handler for, but not KILL from outside.
    cid = detached(engine, IMAGE, "sh", "-c", "echo up; exec sleep 300")
    try:
        log_lines(engine, cid, 1)
        assert engine("kill", "-s", "KILL", cid).returncode == 0
        assert engine("wait", cid).stdout.strip() == b"137"
    finally:
        engine.remove(cid)


def test_stdin_reaches_the_container_whole(engine):
    data = os.urandom(3 << 20)
    result = engine(*RUN, "-i", IMAGE, "sha256sum", input=data)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0].decode() == hashlib.sha256(data).hexdigest()


# -- a node lost ---------------------------------------------------------------

@pytest.mark.slow
def test_losing_the_node_says_the_volume_changes_did_not_come_back(engine, volume):
    """n1 (the job's agent and its only task) is cut off from the login host
    while the container has written into its volume: nothing can come
    back, and the user must read that, naming the volume."""
    before = manifest(volume)
    running = engine.popen(
        *RUN, "-e", "SCRUN_CONSTRAINT=n1", "-v", volume + ":/w", IMAGE, "sh", "-c",
        "echo changed > /w/keep.txt; echo up; exec sleep 300")
    try:
        assert running.stdout.readline() == b"up\n", \
            running.stderr.read() if running.poll() is not None else "no up"
        job = cluster.user_jobs(engine.user)[0]
        with cluster.cut_login_from("n1"):
            try:
                running.wait(40)
            except subprocess.TimeoutExpired:
                pytest.fail("the container still ran 40 s after n1 was cut off")
            stderr = running.stderr.read().decode()
            print(stderr)
            assert running.returncode != 0, stderr
            assert "the container's changes to %s on node n1 were not copied back" % volume \
                in stderr, stderr
            assert cluster.wait_until(lambda: cluster.job_state(job) not in (
                "RUNNING", "COMPLETING"), 15), cluster.job_state(job)
            uid = 0 if engine.user == "root" else cluster.UID
            assert cluster.wait_until(lambda: not cluster.node_processes(uid=uid), 15), \
                cluster.node_processes(uid=uid)
    finally:
        if running.poll() is None:
            running.kill()
            running.wait()
    assert manifest(volume) == before
