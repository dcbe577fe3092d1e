"""Bundle transfer: the rootfs, podman's files and the volumes reach a node
through the tunnel, and what the container changed comes back.

On the single-node testbed the node sees the submit host's files, except
what exists only in podman's mount namespace (a rootless overlay rootfs):
`auto` must copy that, and `always` copies everything, so each way below
runs through the copy path. The multi-node testbed's nodes share nothing
(tests/multinode/test_transfer_nodes.py).
"""
import hashlib
import os
import subprocess
import time

import pytest

from . import testbed
from .testbed import IMAGE, Terminal, user_jobs, wait_until
from .transfer_ways import ROOT_SOURCE, run_as_root, unavailable, way
from .user_config import (all_user_jobs, clear_compute_leftovers, compute_leftovers, new_job,
                          root_config)

RUN = ("run", "--rm", "--network=none")
WAYS = ("podman-overlay-auto", "podman-vfs-always", "podman-rootful-overlay-always",
        "docker-always", "docker-overlay2-always")


@pytest.fixture(scope="module", params=WAYS)
def store(request):
    why = unavailable(request.param)
    if why:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    with way(request.param) as found:
        yield found


@pytest.fixture
def copying(store, clean_after):
    """The way, configured."""
    with store.configured():
        yield store


@pytest.fixture
def clean_after(store):
    """Nothing of the way's containers left after the test."""
    yield
    problems = []
    if not wait_until(lambda: not user_jobs(store.user), 20):
        problems.append("jobs left: %s" % user_jobs(store.user))
    if not wait_until(lambda: not testbed.anchors(store.user), 10):
        problems.append("anchors left: %s" % testbed.anchors(store.user))
    if store.user == testbed.USER:
        problems += compute_leftovers()
        clear_compute_leftovers()
    assert not problems


def test_the_container_runs_from_the_copy(copying):
    result = copying(*RUN, IMAGE, "sh", "-c", ROOT_SOURCE)
    assert result.returncode == 0, result.stderr
    assert b"/scrun-rest." in result.stdout and result.stdout.endswith(b"/bundle/0\n"), \
        result.stdout


def test_echo_exit_code_and_signal_death(copying):
    result = copying(*RUN, IMAGE, "echo", "hello")
    assert (result.returncode, result.stdout) == (0, b"hello\n"), result.stderr
    assert copying(*RUN, IMAGE, "sh", "-c", "exit 7").returncode == 7
    result = copying(*RUN, IMAGE, "sh", "-c", "sleep 30 & kill -TERM $!; wait $!; exit $?")
    assert result.returncode == 143, result.stderr


def test_stdin_and_separate_streams(copying):
    result = copying("run", "--rm", "-i", "--network=none", IMAGE, "md5sum", input=b"abc")
    assert result.stdout.split()[0] == hashlib.md5(b"abc").hexdigest().encode()
    result = copying(*RUN, IMAGE, "sh", "-c", "echo out; echo err >&2; echo out2")
    assert (result.stdout, result.stderr) == (b"out\nout2\n", b"err\n")


def test_20_mb_of_output_arrives_intact(copying):
    result = copying(*RUN, IMAGE, "sh", "-c",
                     "head -c 20000000 /dev/urandom > /tmp/x; sha256sum /tmp/x >&2; cat /tmp/x",
                     timeout=180)
    assert result.returncode == 0, result.stderr[-500:]
    assert hashlib.sha256(result.stdout).hexdigest().encode() == result.stderr.split()[0]


def test_detached_exec_and_stop(copying):
    started = copying("run", "-d", "--network=none", IMAGE, "sleep", "300")
    assert started.returncode == 0, started.stderr
    cid = started.stdout.decode().strip()
    try:
        result = copying("exec", cid, "sh", "-c", "cat /etc/hostname >/dev/null; echo in")
        assert (result.returncode, result.stdout) == (0, b"in\n"), result.stderr
        begin = time.monotonic()
        assert copying("stop", "-t", "2", cid).returncode == 0
        assert time.monotonic() - begin < 15
    finally:
        copying("rm", "-f", cid)


def test_a_terminal_session(copying):
    term = Terminal(copying.terminal_argv("run", "-it", "--rm", "--network=none", IMAGE, "sh"))
    try:
        term.expect("# ", 60)
        term.type("echo $((6*7)); exit 3\r")
        term.expect("\n42\r\n")
        assert term.wait() == 3
    finally:
        term.close()


# -- volumes -----------------------------------------------------------------

def tree(path):
    """Every entry under path: type, mode and content (or link target)."""
    found = {}
    for base, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(base, name)
            info = os.lstat(full)
            rel = os.path.relpath(full, path)
            if os.path.islink(full):
                found[rel] = ("link", os.readlink(full))
            elif os.path.isdir(full):
                found[rel] = ("dir", oct(info.st_mode & 0o7777))
            else:
                with open(full, "rb") as handle:
                    found[rel] = ("file", oct(info.st_mode & 0o7777), handle.read())
    return found


@pytest.fixture
def volume(store):
    """A directory of the engine's user with a little of everything."""
    base = "%s/xfer-volume-%d" % (testbed.HOME if store.user != "root" else "/var/tmp",
                                  os.getpid())
    subprocess.run(["rm", "-rf", base], check=True)
    os.makedirs(base + "/sub/deep")
    for name, text in (("keep.txt", "same"), ("change.txt", "old"), ("gone.txt", "bye"),
                       ("sub/deep/data.bin", "x" * 100000)):
        with open(os.path.join(base, name), "w") as handle:
            handle.write(text)
    os.symlink("keep.txt", base + "/link")
    if store.user != "root":
        subprocess.run(["chown", "-R", "%s:%s" % (testbed.USER, testbed.USER), base],
                       check=True)
    yield base
    subprocess.run(["rm", "-rf", base])


def test_a_read_write_volume_comes_back_as_the_container_left_it(copying, volume):
    script = ("echo new >> /w/change.txt; rm /w/gone.txt; mkdir -p /w/made/inner; "
              "echo fresh > /w/made/inner/f; chmod 640 /w/made/inner/f; "
              "ln -s made/inner /w/newlink; rm -r /w/sub/deep; echo done")
    result = copying(*RUN, "-v", volume + ":/w", IMAGE, "sh", "-c", script)
    assert (result.returncode, result.stdout) == (0, b"done\n"), result.stderr
    found = tree(volume)
    assert found["change.txt"][2] == b"oldnew\n"
    assert found["keep.txt"][2] == b"same" and found["link"] == ("link", "keep.txt")
    assert found["made/inner/f"] == ("file", "0o640", b"fresh\n")
    assert found["newlink"] == ("link", "made/inner")
    assert "gone.txt" not in found and "sub/deep" not in found and "sub" in found


def test_a_read_only_volume_stays_untouched(copying, volume):
    before = tree(volume)
    result = copying(*RUN, "-v", volume + ":/w:ro", IMAGE, "sh", "-c",
                     "cat /w/keep.txt; echo x > /w/keep.txt")
    assert result.stdout == b"same"
    assert result.returncode != 0 and b"Read-only file system" in result.stderr
    assert tree(volume) == before


def test_a_volume_over_the_limit_is_refused_before_any_job(store, clean_after, volume):
    before = all_user_jobs(store.user)
    with store.configured(VolumeCopyLimit="50K", SharedPaths=None):
        result = store(*RUN, "-v", volume + ":/w", IMAGE, "true")
    assert result.returncode != 0
    text = result.stderr.decode()
    assert "the volume %s (mounted at /w)" % volume in text, text
    assert "VolumeCopyLimit=50K" in text and "SharedPaths" in text, text
    assert all_user_jobs(store.user) == before


def test_a_file_the_container_wrote_is_there_for_cp_start_and_commit(copying):
    name = "scrun-xfer-cp-%d" % os.getpid()
    image = "localhost/scrun-xfer-committed-%d" % os.getpid()
    result = copying("run", "--name", name, "--network=none", IMAGE, "sh", "-c",
                     "echo made-on-node > /made.txt")
    try:
        assert result.returncode == 0, result.stderr
        copied = copying("cp", name + ":/made.txt", "-")
        assert copied.returncode == 0, copied.stderr
        assert b"made-on-node" in copied.stdout
        again = copying("start", "-a", name)
        assert again.returncode == 0, again.stderr
        committed = copying("commit", name, image)
        assert committed.returncode == 0, committed.stderr
        result = copying(*RUN, image, "cat", "/made.txt")
        assert (result.returncode, result.stdout) == (0, b"made-on-node\n"), result.stderr
    finally:
        copying("rm", "-f", name)
        copying("rmi", "-f", image)


def test_a_node_scratch_too_small_fails_cleanly(store, clean_after):
    small = "/var/tmp/scrun-xfer-small-%d" % os.getpid()
    os.makedirs(small, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k,mode=1777", "tmpfs", small],
                   check=True)
    try:
        before = all_user_jobs(store.user)
        with store.configured(NodeScratch=small):
            result = store(*RUN, IMAGE, "true")
        assert result.returncode != 0
        text = result.stderr.decode()
        assert "no space left" in text.lower() and "node " in text, text
        assert "Traceback" not in text
        job_id = new_job(before, store.user)
        assert wait_until(lambda: str(job_id) not in user_jobs(store.user), 15)
        assert wait_until(lambda: os.listdir(small) == [], 10), os.listdir(small)
    finally:
        subprocess.run(["umount", small])
        os.rmdir(small)


def test_docker_overlay2_auto_uses_the_rootfs_in_place():
    """dockerd mounts an overlay2 rootfs in the host's own mount namespace,
    which this testbed's node (the same host) shares: auto's probe finds
    the same content there and copies nothing, so the container's / is
    docker's merged overlay itself. (With nodes of their own, as in
    tests/multinode, it is copied.)"""
    why = unavailable("docker-overlay2-always")
    if why:
        pytest.skip(why)
    docker = ["/usr/bin/docker", "-H", testbed.DOCKER_OVERLAY2_HOST]
    with root_config(BundleTransfer="auto"):
        result = run_as_root(docker + ["run", "--runtime", "scrun-rest", "--rm",
                                       "--network=none", IMAGE, "sh", "-c",
                                       "%s; grep ' / / ' /proc/self/mountinfo" % ROOT_SOURCE])
    assert result.returncode == 0, result.stderr
    source, mount = result.stdout.decode().splitlines()
    assert source == "/" and " - overlay overlay " in mount, result.stdout
    assert wait_until(lambda: not user_jobs("root"), 20), user_jobs("root")
