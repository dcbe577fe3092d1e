"""Whether two hosts see the same tree, and how big one is
(bundle/tree_probe.py)."""
import os
import subprocess

import pytest

from bundle_trees import sample_tree
from scrun_rest.bundle import tree_probe


@pytest.fixture
def tree(tmp_path):
    return sample_tree(str(tmp_path / "tree"))


def copy_keeping_times(src, dest):
    subprocess.check_call(["cp", "-a", src, dest])


def copy_with_new_times(src, dest):
    subprocess.check_call(["cp", "-R", src, dest])


def test_the_same_tree_gives_the_same_short_digest(tree):
    first = tree_probe.digest(tree)
    assert first == tree_probe.digest(tree + "/")
    assert len(first) == 32 and int(first, 16) >= 0


def test_a_copy_with_its_own_mtimes_is_told_apart(tree, tmp_path):
    copy = str(tmp_path / "copy")
    copy_with_new_times(tree, copy)
    assert tree_probe.digest(copy) != tree_probe.digest(tree)


def test_a_faithful_copy_looks_the_same(tree, tmp_path):
    copy = str(tmp_path / "copy")
    copy_keeping_times(tree, copy)
    os.chmod(copy, os.lstat(tree).st_mode)
    assert tree_probe.digest(copy) == tree_probe.digest(tree)


def test_a_copy_with_other_bytes_in_a_small_file_is_told_apart(tree, tmp_path):
    copy = str(tmp_path / "copy")
    copy_keeping_times(tree, copy)
    path = os.path.join(copy, "plain")
    st = os.lstat(path)
    with open(path, "r+") as handle:
        handle.write("HELLO")  # same size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.utime(copy, ns=(os.lstat(tree).st_atime_ns, os.lstat(tree).st_mtime_ns))
    assert os.lstat(path).st_mtime_ns == os.lstat(os.path.join(tree, "plain")).st_mtime_ns
    assert tree_probe.digest(copy) != tree_probe.digest(tree)


def test_a_change_two_levels_down_is_seen(tree):
    before = tree_probe.digest(tree)
    os.utime(os.path.join(tree, "dir", "sub"), ns=(1, 1))
    assert tree_probe.digest(tree) != before


def test_a_file_is_known_by_its_size_times_and_both_ends(tmp_path):
    path = str(tmp_path / "big")
    with open(path, "wb") as handle:
        handle.write(b"a" * (1 << 20))
    st = os.lstat(path)
    first = tree_probe.digest(path)
    with open(path, "r+b") as handle:
        handle.seek((1 << 20) - 10)
        handle.write(b"b")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert tree_probe.digest(path) != first


def test_a_missing_path_has_no_digest(tmp_path):
    assert tree_probe.digest(str(tmp_path / "gone")) is None


def test_size_counts_files_once_and_follows_no_symlink(tmp_path):
    root = tmp_path / "root"
    (root / "d").mkdir(parents=True)
    (root / "d" / "a").write_bytes(b"x" * 1000)
    os.link(str(root / "d" / "a"), str(root / "hard"))
    (root / "b").write_bytes(b"y" * 24)
    big = tmp_path / "outside"
    big.write_bytes(b"z" * 100000)
    os.symlink(str(big), str(root / "link"))
    os.symlink(str(tmp_path), str(root / "dirlink"))
    assert tree_probe.size(str(root), 10 ** 9) == 1024
    assert tree_probe.size(str(root), 1000) == 1001
    assert tree_probe.size(str(root / "b"), 10) == 11
    assert tree_probe.size(str(root / "b"), 100) == 24
