"""The spool: which --root dirs are taken, and removing a container never leaves it."""
import os
import socket
import stat

import pytest

from scrun_rest.anchor.spool import Spool, ensure_private_dir
from scrun_rest.errors import UserError

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
STRANGER = 54321  # a uid with no account here


def _mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


# -- the --root dir -------------------------------------------------------------

def test_a_new_root_is_private(tmp_path):
    root = tmp_path / "a" / "root"
    ensure_private_dir(str(root))
    assert root.is_dir() and _mode(root) == 0o700


@pytest.mark.parametrize("mode", [0o700, 0o711, 0o755])
def test_an_existing_root_of_ours_is_taken_as_it_is(tmp_path, mode):
    """docker's --root (/run/docker/runtime-NAME/moby) is root's own: never chmod it."""
    root = tmp_path / "moby"
    root.mkdir()
    os.chmod(root, mode)
    ensure_private_dir(str(root))
    assert _mode(root) == mode


@pytest.mark.parametrize("mode", [0o770, 0o777, 0o1777])
def test_a_root_others_can_write_is_refused_and_left_alone(tmp_path, mode):
    root = tmp_path / "shared"
    root.mkdir()
    os.chmod(root, mode)
    with pytest.raises(UserError) as info:
        ensure_private_dir(str(root))
    assert str(info.value) == "%s is writable by others (mode %03o); run: chmod 700 %s" % (
        root, mode, root)
    assert _mode(root) == mode


@needs_root
def test_a_root_of_another_user_is_refused_and_left_alone(tmp_path):
    root = tmp_path / "theirs"
    root.mkdir(mode=0o755)
    os.chmod(root, 0o755)
    os.chown(root, STRANGER, STRANGER)
    with pytest.raises(UserError) as info:
        ensure_private_dir(str(root))
    assert str(info.value) == ("%s belongs to uid %d, not to you; choose a --root of your own"
                               % (root, STRANGER))
    assert _mode(root) == 0o755 and root.stat().st_uid == STRANGER


def test_a_link_as_root_is_refused(tmp_path):
    (tmp_path / "real").mkdir(mode=0o700)
    os.symlink(tmp_path / "real", tmp_path / "link")
    with pytest.raises(UserError, match="link is not a directory"):
        ensure_private_dir(str(tmp_path / "link"))


# -- removing a container -------------------------------------------------------

@pytest.fixture
def outside(tmp_path):
    """Files a removal must never touch."""
    victim = tmp_path / "victim"
    (victim / "deep").mkdir(parents=True)
    (victim / "precious").write_text("keep")
    (victim / "deep" / "also").write_text("keep")
    return victim


def _untouched(victim):
    return ((victim / "precious").read_text() == "keep"
            and (victim / "deep" / "also").read_text() == "keep")


def _spool(tmp_path):
    root = tmp_path / "root"
    root.mkdir(mode=0o700, exist_ok=True)
    return Spool(str(root), "c1")


def test_remove_takes_everything_in_the_container_dir(tmp_path):
    spool = _spool(tmp_path)
    spool.create()
    spool.write_state({"id": "c1", "status": "stopped"})
    (tmp_path / "root" / "c1" / "sub" / "subsub").mkdir(parents=True)
    (tmp_path / "root" / "c1" / "sub" / "subsub" / "f").write_text("x")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(spool.socket_path)
    listener.close()
    os.mkfifo(spool.path("fifo"))
    spool.remove()
    assert not os.path.lexists(spool.dir) and os.listdir(spool.root) == []
    spool.remove()  # twice is fine: delete may run twice


def test_a_linked_container_dir_is_unlinked_not_followed(tmp_path, outside):
    spool = _spool(tmp_path)
    os.symlink(outside, spool.dir)
    spool.remove()
    assert not os.path.lexists(spool.dir)
    assert _untouched(outside)


def test_links_inside_the_container_dir_are_not_followed(tmp_path, outside):
    spool = _spool(tmp_path)
    spool.create()
    os.symlink(outside, spool.path("to-dir"))
    os.symlink(outside / "precious", spool.path("state.json"))
    os.mkdir(spool.path("sub"))
    os.symlink(outside, spool.path("sub/deeper-link"))
    spool.remove()
    assert not os.path.lexists(spool.dir)
    assert _untouched(outside)


def test_a_file_in_place_of_the_container_dir_is_removed(tmp_path):
    spool = _spool(tmp_path)
    (tmp_path / "root" / "c1").write_text("stray")
    spool.remove()
    assert not os.path.lexists(spool.dir)


def test_remove_without_a_root_is_a_no_op(tmp_path):
    Spool(str(tmp_path / "nowhere"), "c1").remove()
