"""A task's claimed scratch dir, and the sweep of dirs whose task died."""
import os
import stat
import subprocess
import sys
import time

import pytest

from scrun_rest.agent import leftovers, task

VALUES = {"n": "localhost.user.7.0.0", "U": "2000", "b": "/tmp/x"}


def sweep(base, now=None):
    removed_containers = []
    paths = leftovers.sweep(removed_containers.append, base=str(base), now=now)
    return [os.path.basename(p) for p in paths], removed_containers


def test_a_claimed_dir_is_private_and_locked(tmp_path):
    workdir, fd = leftovers.claim(str(tmp_path))
    try:
        assert os.path.basename(workdir).startswith(leftovers.PREFIX)
        assert stat.S_IMODE(os.stat(workdir).st_mode) == 0o700
        assert sorted(os.listdir(workdir)) == [leftovers.LOCK]
        assert sweep(tmp_path) == ([], [])
        assert os.path.isdir(workdir)
    finally:
        os.close(fd)


def test_the_dir_of_a_dead_task_goes_with_its_container(tmp_path):
    workdir, fd = leftovers.claim(str(tmp_path))
    leftovers.record_container(workdir, VALUES)
    os.close(fd)  # as the kernel does when the task is killed
    assert sweep(tmp_path) == ([os.path.basename(workdir)], [VALUES])
    assert not os.path.exists(workdir)


def test_a_dead_task_without_a_container_leaves_only_its_dir(tmp_path):
    workdir, fd = leftovers.claim(str(tmp_path))
    os.close(fd)
    assert sweep(tmp_path) == ([os.path.basename(workdir)], [])


def test_a_task_killed_by_sigkill_releases_its_claim(tmp_path):
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from scrun_rest.agent import leftovers; "
         "print(leftovers.claim(sys.argv[1])[0], flush=True); time.sleep(60)", str(tmp_path)],
        stdout=subprocess.PIPE)
    workdir = child.stdout.readline().decode().strip()
    assert sweep(tmp_path) == ([], [])
    child.kill()
    child.wait()
    assert sweep(tmp_path) == ([os.path.basename(workdir)], [])


def test_unclaimed_dirs_wait_out_the_claim_window(tmp_path):
    young = tmp_path / (leftovers.PREFIX + "young")
    young.mkdir()
    assert sweep(tmp_path) == ([], [])
    assert sweep(tmp_path, now=time.time() + leftovers.UNCLAIMED_GRACE + 1) == (
        [young.name], [])


@pytest.mark.parametrize("values", ['["a"]', '{"n": 5}', "not json"])
def test_a_garbled_container_note_removes_no_container(tmp_path, values):
    workdir, fd = leftovers.claim(str(tmp_path))
    with open(os.path.join(workdir, leftovers.CONTAINER), "w") as handle:
        handle.write(values)
    os.close(fd)
    assert sweep(tmp_path) == ([os.path.basename(workdir)], [])


def test_links_other_names_and_other_users_are_not_touched(tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir()
    (tmp_path / (leftovers.PREFIX + "link")).symlink_to(target)
    (tmp_path / "other-dir").mkdir()
    foreign = tmp_path / (leftovers.PREFIX + "foreign")
    foreign.mkdir()
    if os.getuid() == 0:
        os.chown(str(foreign), 12345, 12345)
    else:
        pytest.skip("needs root to make a dir of another user")
    later = time.time() + leftovers.UNCLAIMED_GRACE + 1
    assert sweep(tmp_path, now=later) == ([], [])
    assert target.is_dir() and foreign.is_dir()


@pytest.mark.parametrize("kill_wait, delay", [(30, 27.5), (5, 2.5), (2, 1.0), (1, 0.5)])
def test_the_container_is_killed_with_time_left_to_clean_up(kill_wait, delay):
    assert task.kill_delay(kill_wait) == delay
