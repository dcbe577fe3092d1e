"""What a container changed, and write-back of it into a real directory
(bundle/tree_changes.py with pack_paths and safe_extract)."""
import io
import json
import os

import pytest

from bundle_trees import copy_through, listing, pack_paths_to_bytes, sample_tree
from scrun_rest.bundle import safe_extract, tree_changes
from scrun_rest.bundle.errors import ExtractError


@pytest.fixture
def tree(tmp_path):
    root = sample_tree(str(tmp_path / "tree"))
    os.makedirs(os.path.join(root, "keep", "deeper"))
    with open(os.path.join(root, "keep", "deeper", "file"), "w") as handle:
        handle.write("unchanged")
    return root


def at(root, *names):
    return os.path.join(root, *names)


def test_a_snapshot_survives_json_and_starts_with_the_root(tree):
    snap = tree_changes.snapshot(tree)
    assert json.loads(json.dumps(snap)) == snap
    names = list(snap)
    assert names[0] == "."
    for name in names[1:]:
        parent = os.path.dirname(name) or "."
        assert names.index(parent) < names.index(name)  # parents first
    assert snap["rel-link"][0] == "l" and snap["fifo"][0] == "p" and snap["dir"][0] == "d"


def test_nothing_changed_means_no_changes(tree):
    before = json.loads(json.dumps(tree_changes.snapshot(tree)))
    assert tree_changes.changes(tree, before) == ([], [])


def test_a_new_file_lists_it_and_its_parent_only(tree):
    before = tree_changes.snapshot(tree)
    with open(at(tree, "keep", "deeper", "new"), "w") as handle:
        handle.write("new")
    changed, deleted = tree_changes.changes(tree, before)
    assert changed == ["keep/deeper", "keep/deeper/new"]
    assert deleted == []


def test_a_rewrite_that_hides_behind_the_old_size_and_mtime_is_seen(tree):
    path = at(tree, "keep", "deeper", "file")
    old = os.lstat(path)
    before = tree_changes.snapshot(tree)
    with open(path, "r+") as handle:
        handle.write("UNCHANGED")
    os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns))
    assert tree_changes.changes(tree, before) == (["keep/deeper/file"], [])


def test_a_chmod_of_a_directory_lists_it(tree):
    before = tree_changes.snapshot(tree)
    os.chmod(at(tree, "keep"), 0o700)
    assert tree_changes.changes(tree, before) == (["keep"], [])


def test_a_deleted_tree_is_listed_deepest_first(tree):
    before = tree_changes.snapshot(tree)
    os.remove(at(tree, "keep", "deeper", "file"))
    os.rmdir(at(tree, "keep", "deeper"))
    os.rmdir(at(tree, "keep"))
    changed, deleted = tree_changes.changes(tree, before)
    assert deleted == ["keep/deeper/file", "keep/deeper", "keep"]
    assert changed == ["."]


def test_a_type_change_is_a_deletion_and_a_new_entry(tree):
    before = tree_changes.snapshot(tree)
    os.remove(at(tree, "plain"))
    os.mkdir(at(tree, "plain"))
    changed, deleted = tree_changes.changes(tree, before)
    assert "plain" in changed and deleted == ["plain"]


def test_apply_deletions_removes_files_and_trees_and_ignores_missing(tree):
    os.chmod(at(tree, "keep", "deeper"), 0o500)  # read-only: still removed
    removed = tree_changes.apply_deletions(tree, ["keep", "plain", "never-was", "dir/gone/x"])
    assert removed == 2
    assert not os.path.lexists(at(tree, "keep")) and not os.path.lexists(at(tree, "plain"))


def test_apply_deletions_never_follows_a_symlink(tmp_path):
    dest = tmp_path / "dest"
    outside = tmp_path / "outside"
    dest.mkdir()
    (outside / "sub").mkdir(parents=True)
    (outside / "x").write_text("keep me")
    os.symlink(str(outside), str(dest / "link"))
    os.symlink("../outside", str(dest / "rel"))
    assert tree_changes.apply_deletions(str(dest), ["link/x", "rel/sub", "rel"]) == 1
    assert (outside / "x").read_text() == "keep me" and (outside / "sub").is_dir()
    assert not os.path.lexists(str(dest / "rel")) and os.path.islink(str(dest / "link"))


def test_apply_deletions_refuses_names_that_leave_dest(tree):
    for name in ("../x", "/etc/passwd", "."):
        with pytest.raises(ExtractError):
            tree_changes.apply_deletions(tree, [name])


def test_write_back_makes_the_host_directory_match_the_node(tmp_path, tree):
    node = str(tmp_path / "node")
    os.mkdir(node)
    copy_through(tree, node)
    before = json.loads(json.dumps(tree_changes.snapshot(node)))
    # What a container does to a volume.
    with open(at(node, "plain"), "w") as handle:
        handle.write("changed through one of two hard links\n")
    with open(at(node, "keep", "deeper", "made"), "w") as handle:
        handle.write("new")
    os.remove(at(node, "script"))
    os.remove(at(node, "rel-link"))
    os.symlink("script", at(node, "rel-link"))
    os.remove(at(node, "dir", "sub", "data"))
    os.rmdir(at(node, "dir", "sub"))
    os.mkdir(at(node, "empty", "now-full"))
    os.chmod(at(node, "private"), 0o640)

    changed, deleted = tree_changes.changes(node, before)
    tree_changes.apply_deletions(tree, deleted)
    data = pack_paths_to_bytes(node, changed)
    safe_extract.extract(io.BytesIO(data), tree, on_host=True)
    assert listing(tree) == listing(node)


def test_snapshot_of_a_missing_root_is_an_oserror(tmp_path):
    with pytest.raises(OSError):
        tree_changes.snapshot(str(tmp_path / "gone"))
