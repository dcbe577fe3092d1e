"""pack's failures: a file it cannot read is an error naming it, never a
short archive (bundle/pack.py, python_tar.py)."""
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

import scrun_rest.bundle
from bundle_trees import pack_to_bytes
from scrun_rest.bundle import pack
from scrun_rest.bundle.errors import PackError

NOBODY = 65534
# Run as a user who cannot read what the test made unreadable: root reads all.
CHILD = r"""
import os, sys, tempfile
from scrun_rest.bundle import pack
from scrun_rest.bundle.errors import PackError
if sys.argv[2] == "python":
    pack.tar_program = lambda: None
# A real file: GNU tar writing to /dev/null does not even read the files.
spool = tempfile.TemporaryFile()
out = spool.fileno()
try:
    print("packed by " + pack.pack(sys.argv[1], out))
except PackError as err:
    print("PackError|%s|%s" % (err.path, err.why))
"""


@pytest.fixture(params=["tar", "python"])
def writer(request, unavailable):
    if request.param == "tar" and pack.tar_program() is None:
        unavailable("GNU tar is not installed")
    return request.param


@pytest.fixture
def shared_dir():
    """A dir another user may enter (pytest's tmp dirs are 0700), holding a
    copy of the bundle package that user can import."""
    path = tempfile.mkdtemp(prefix="bundle-pack-")
    os.chmod(path, 0o755)
    package = os.path.dirname(os.path.abspath(scrun_rest.bundle.__file__))
    shutil.copytree(package, os.path.join(path, "lib", "scrun_rest", "bundle"))
    open(os.path.join(path, "lib", "scrun_rest", "__init__.py"), "w").close()
    os.mkdir(os.path.join(path, "tree"))
    yield path
    shutil.rmtree(path)


@pytest.fixture
def pack_as_a_user(unavailable):
    """pack_as_a_user(path, writer, lib): what pack said, run as a user to
    whom mode 000 means no."""
    def drop():
        if os.geteuid() == 0:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)

    def run(path, writer, lib):
        env = dict(os.environ, PYTHONPATH=lib)
        try:
            return subprocess.check_output([sys.executable, "-c", CHILD, path, writer], env=env,
                                           preexec_fn=drop, universal_newlines=True).strip()
        except PermissionError:
            unavailable("%s cannot be run by uid %d" % (sys.executable, NOBODY))
    return run


def test_an_unreadable_file_fails_pack_naming_it(writer, shared_dir, pack_as_a_user):
    tree = os.path.join(shared_dir, "tree")
    for name in ("a", "secret", "z"):
        with open(os.path.join(tree, name), "w") as handle:
            handle.write(name)
    os.chmod(os.path.join(tree, "secret"), 0)
    said = pack_as_a_user(tree, writer, os.path.join(shared_dir, "lib"))
    assert said == "PackError|%s|cannot open: permission denied" % os.path.join(tree, "secret")


def test_an_unreadable_directory_fails_pack_naming_it(writer, shared_dir, pack_as_a_user):
    tree = os.path.join(shared_dir, "tree")
    os.makedirs(os.path.join(tree, "closed", "inside"))
    os.chmod(os.path.join(tree, "closed"), 0)
    said = pack_as_a_user(tree, writer, os.path.join(shared_dir, "lib"))
    assert said.startswith("PackError|%s|" % os.path.join(tree, "closed"))
    assert said.endswith("permission denied")


def test_a_readable_tree_packs_as_that_user(writer, shared_dir, pack_as_a_user):
    tree = os.path.join(shared_dir, "tree")
    with open(os.path.join(tree, "a"), "w") as handle:
        handle.write("a")
    assert pack_as_a_user(tree, writer, os.path.join(shared_dir, "lib")) == "packed by " + writer


def test_a_reader_that_goes_away_fails_pack(writer, tmp_path, monkeypatch):
    if writer == "python":
        monkeypatch.setattr(pack, "tar_program", lambda: None)
    with open(str(tmp_path / "big"), "wb") as handle:
        handle.write(os.urandom(4 << 20))
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    try:
        with pytest.raises(PackError) as caught:
            pack.pack(str(tmp_path), write_fd)
        assert caught.value.path == str(tmp_path)
    finally:
        os.close(write_fd)


def test_the_python_writer_is_used_without_gnu_tar(tmp_path, monkeypatch):
    monkeypatch.setattr(pack, "tar_program", lambda: None)
    (tmp_path / "f").write_text("x")
    assert pack.pack(str(tmp_path), os.open(os.devnull, os.O_WRONLY)) == "python"


def test_a_tar_that_is_not_gnu_tar_is_not_used(tmp_path, monkeypatch):
    fake = tmp_path / "tar"
    fake.write_text("#!/bin/sh\necho 'bsdtar 3.6.2 - libarchive 3.6.2'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert pack._find_gnu_tar() is None


def test_gnu_tar_complaints_become_errors_naming_the_path():
    said = ("tar: ./a b: Cannot open: Permission denied\n"
            "tar: Exiting with failure status due to previous errors\n")
    error = pack._tar_error("/base", 2, said)
    assert (error.path, error.why) == ("/base/a b", "cannot open: permission denied")
    error = pack._tar_error("/base", 1, "tar: ./log: file changed as we read it\n")
    assert (error.path, error.why) == ("/base/log", "file changed as we read it")
    error = pack._tar_error("/base", 2, "tar: -: Cannot write: Broken pipe\n")
    assert (error.path, error.why) == ("/base", "writing the archive: cannot write: broken pipe")
    error = pack._tar_error("/base", -13, "")
    assert "signal 13" in error.why


def test_pack_output_is_a_pax_archive(writer, tmp_path, monkeypatch):
    if writer == "python":
        monkeypatch.setattr(pack, "tar_program", lambda: None)
    (tmp_path / ("n" * 150)).write_text("long name")
    data = pack_to_bytes(str(tmp_path))
    assert b"path=./" + b"n" * 150 in data  # a pax record, not a GNU long name
    assert b"ustar\x0000" in data


def test_a_small_archive_is_not_padded_to_a_big_record(tmp_path, writer, monkeypatch):
    # GNU tar pads its last record: at 256 KiB records, podman's 200-byte
    # /etc/hosts crossed the tunnel as 256 KiB.
    if writer == "python":
        monkeypatch.setattr(pack, "tar_program", lambda: None)
    (tmp_path / "hosts").write_text("127.0.0.1 localhost\n" * 10)
    with tempfile.TemporaryFile() as out:
        pack.pack(str(tmp_path / "hosts"), out.fileno())
        assert os.fstat(out.fileno()).st_size <= 10240
    (tmp_path / "dir").mkdir()
    with tempfile.TemporaryFile() as out:
        pack.pack(str(tmp_path / "dir"), out.fileno())
        assert os.fstat(out.fileno()).st_size <= 10240


def test_in_memory_refuses_what_is_over_its_limit(tmp_path):
    (tmp_path / "many").mkdir()
    for index in range(40):
        (tmp_path / "many" / str(index)).write_text("")
    assert pack.in_memory(str(tmp_path / "many"), 10000) is None  # 40 headers
    assert pack.in_memory(str(tmp_path / "many"), 1 << 20) is not None
    assert pack.in_memory(str(tmp_path / "missing"), 1 << 20) is None
