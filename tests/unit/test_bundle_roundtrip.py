"""pack then safe_extract: what arrives is what left, by GNU tar and by the
stdlib writer alike (bundle/pack.py, python_tar.py, safe_extract.py)."""
import io
import os
import stat

import pytest

from bundle_trees import (copy_through, listing, pack_paths_to_bytes, pack_to_bytes,
                          sample_tree, set_user_xattr, without_root_times)
from scrun_rest.bundle import pack, safe_extract
from scrun_rest.bundle.errors import PackError


@pytest.fixture(params=["tar", "python"])
def writer(request, monkeypatch, unavailable):
    """Which writer pack uses: the host's GNU tar, or the stdlib fallback."""
    if request.param == "tar":
        if pack.tar_program() is None:
            unavailable("GNU tar is not installed")
    else:
        monkeypatch.setattr(pack, "tar_program", lambda: None)
    return request.param


@pytest.fixture
def src(tmp_path):
    return sample_tree(str(tmp_path / "src"))


@pytest.fixture
def dest(tmp_path):
    path = str(tmp_path / "dest")
    os.mkdir(path)
    return path


def test_a_tree_arrives_whole(writer, src, dest):
    stats = copy_through(src, dest)
    assert listing(dest) == listing(src)
    assert stats["devices"] == 0
    assert stats["entries"] == len(listing(src))
    assert stats["bytes"] == sum(os.lstat(os.path.join(src, rel)).st_size
                                 for rel, entry in listing(src).items()
                                 if stat.S_ISREG(entry[0]) and entry[5] == rel)


def test_hard_links_arrive_as_one_inode(writer, src, dest):
    copy_through(src, dest)
    assert os.path.samestat(os.lstat(os.path.join(dest, "plain")),
                            os.lstat(os.path.join(dest, "dir", "hardlink")))


def test_nanosecond_mtimes_and_special_entries_survive(writer, src, dest):
    copy_through(src, dest)
    assert os.lstat(os.path.join(dest, "plain")).st_mtime_ns == 1500000000123456789
    assert os.lstat(os.path.join(dest, "rel-link")).st_mtime_ns == 1200000000000000003
    assert os.readlink(os.path.join(dest, "abs-link")) == "/nonexistent/target"
    assert stat.S_ISFIFO(os.lstat(os.path.join(dest, "fifo")).st_mode)
    assert os.listdir(os.path.join(dest, "empty")) == []
    assert stat.S_IMODE(os.lstat(os.path.join(dest, "setuid")).st_mode) == 0o4755


def test_user_xattrs_travel_and_others_do_not(writer, src, dest, unavailable):
    if not set_user_xattr(os.path.join(src, "plain"), "user.note", b"bin\xffary"):
        unavailable("%s takes no user xattrs" % src)
    set_user_xattr(os.path.join(src, "dir"), "user.dir", b"d")
    copy_through(src, dest)
    assert os.getxattr(os.path.join(dest, "plain"), "user.note") == b"bin\xffary"
    assert os.getxattr(os.path.join(dest, "dir"), "user.dir") == b"d"


def test_names_that_are_not_utf8_survive(writer, tmp_path, dest):
    src = os.path.join(str(tmp_path), "odd")
    os.mkdir(src)
    raw = os.path.join(src.encode(), b"caf\xe9 -x")
    with open(raw, "wb") as handle:
        handle.write(b"data")
    copy_through(src, dest)
    assert os.listdir(dest.encode()) == [b"caf\xe9 -x"]


def test_a_single_file_arrives_under_its_basename(writer, src, dest):
    copy_through(os.path.join(src, "script"), dest)
    assert os.listdir(dest) == ["script"]
    assert listing(dest)["script"] == listing(src)["script"]


def test_a_single_file_named_like_an_option_arrives(writer, src, dest):
    path = os.path.join(src, "--help")
    with open(path, "w") as handle:
        handle.write("a file")
    copy_through(path, dest)
    assert os.listdir(dest) == ["--help"]


def test_a_symlink_given_to_pack_is_sent_as_the_link(writer, src, dest):
    copy_through(os.path.join(src, "rel-link"), dest)
    assert os.readlink(os.path.join(dest, "rel-link")) == "plain"


def test_pack_paths_sends_only_the_entries_named(writer, src, dest):
    data = pack_paths_to_bytes(src, ["dir", "dir/sub/data", "plain"])
    safe_extract.extract(io.BytesIO(data), dest)
    got = without_root_times(listing(dest))
    # dir/sub is made on the way to its file, not sent: its mode is not src's.
    assert sorted(got) == [".", "dir", "dir/sub", "dir/sub/data", "plain"]
    want = listing(src)
    for rel in ("dir", "dir/sub/data", "plain"):
        assert got[rel] == want[rel]


def test_pack_paths_takes_names_that_look_like_options(writer, src, dest):
    with open(os.path.join(src, "-v"), "w") as handle:
        handle.write("not an option")
    data = pack_paths_to_bytes(src, ["-v", "."])
    safe_extract.extract(io.BytesIO(data), dest)
    assert sorted(os.listdir(dest)) == ["-v"]
    assert listing(dest)["."] == listing(src)["."]  # "." sent: the root's mode and mtime


def test_pack_paths_refuses_names_that_leave_the_base(writer, src):
    for name in ("../etc", "/etc/passwd", "dir/../../x"):
        with pytest.raises(PackError):
            pack_paths_to_bytes(src, [name])


def test_the_two_writers_give_archives_that_unpack_the_same(src, tmp_path, monkeypatch,
                                                            unavailable):
    if pack.tar_program() is None:
        unavailable("GNU tar is not installed")
    by_tar = str(tmp_path / "by-tar")
    by_python = str(tmp_path / "by-python")
    os.mkdir(by_tar)
    os.mkdir(by_python)
    copy_through(src, by_tar)
    monkeypatch.setattr(pack, "tar_program", lambda: None)
    copy_through(src, by_python)
    assert listing(by_tar) == listing(by_python)


def test_pack_of_a_missing_path_names_it(writer, tmp_path):
    with pytest.raises(PackError) as caught:
        pack_to_bytes(str(tmp_path / "gone"))
    assert caught.value.path == str(tmp_path / "gone")
