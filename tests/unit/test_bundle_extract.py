"""safe_extract against archives we did not make: nothing appears, changes
or is followed outside the destination (bundle/safe_extract.py)."""
import errno
import io
import os
import resource
import stat
import subprocess
import tarfile

import pytest

from bundle_trees import (archive, dir_member, file_member, hardlink_member, listing,
                          symlink_member)
from scrun_rest.bundle import safe_extract
from scrun_rest.bundle.errors import ExtractError, why


@pytest.fixture
def place(tmp_path):
    """dest, and beside it a sentinel dir with a file an attack would reach."""
    dest = tmp_path / "dest"
    outside = tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    (outside / "x").write_text("original")
    return Place(str(tmp_path), str(dest), str(outside))


class Place:
    def __init__(self, top, dest, outside):
        self.top = top
        self.dest = dest
        self.outside = outside
        self.before = listing(outside)

    def extract(self, data, **options):
        return safe_extract.extract(io.BytesIO(data), self.dest, **options)

    def refused(self, data, words):
        with pytest.raises(ExtractError) as caught:
            self.extract(data)
        assert words in str(caught.value)
        return caught.value

    def untouched(self):
        assert listing(self.outside) == self.before
        assert sorted(os.listdir(self.top)) == ["dest", "outside"]


def text(path):
    with open(path) as handle:
        return handle.read()


def test_a_dotdot_name_is_refused(place):
    place.refused(archive(file_member("../outside/x", b"evil")), "'..' component")
    place.untouched()


def test_a_dotdot_deeper_in_the_name_is_refused(place):
    place.refused(archive(dir_member("a"), file_member("a/../../outside/x", b"evil")),
                  "'..' component")
    place.untouched()


def test_an_absolute_name_is_refused(place):
    name = os.path.join(place.outside, "abs")
    place.refused(archive(file_member(name, b"evil")), "absolute name")
    place.untouched()


def test_a_file_through_a_symlink_the_archive_made_is_refused(place):
    error = place.refused(archive(symlink_member("a", place.outside), file_member("a/x", b"evil")),
                          "a symlink is in the way at a")
    assert error.path == os.path.join(place.dest, "a/x")
    place.untouched()
    assert os.readlink(os.path.join(place.dest, "a")) == place.outside  # made, never followed


def test_a_chain_of_symlinks_to_parents_leads_nowhere(place):
    data = archive(dir_member("d"), symlink_member("d/up", ".."), symlink_member("d/up2", "up/.."),
                   file_member("d/up2/outside/y", b"evil"))
    place.refused(data, "a symlink is in the way at d/up2")
    place.untouched()


def test_a_directory_replaced_by_a_symlink_cannot_be_written_under(place):
    data = archive(dir_member("d"), file_member("d/keep"), symlink_member("d", place.outside),
                   file_member("d/x", b"evil"))
    place.refused(data, "a symlink is in the way at d")
    place.untouched()


def test_a_hard_link_to_an_absolute_path_is_refused(place):
    place.refused(archive(hardlink_member("passwd", "/etc/passwd")), "absolute name")
    place.untouched()
    assert os.listdir(place.dest) == []


def test_a_hard_link_out_through_dotdot_is_refused(place):
    place.refused(archive(hardlink_member("h", "../outside/x")), "'..' component")
    place.untouched()


def test_a_hard_link_through_a_symlink_is_refused(place):
    data = archive(symlink_member("a", place.outside), hardlink_member("h", "a/x"))
    place.refused(data, "not in the destination")
    place.untouched()
    assert os.lstat(os.path.join(place.outside, "x")).st_nlink == 1


def test_a_hard_link_to_a_symlink_links_the_symlink(place):
    place.extract(archive(symlink_member("s", os.path.join(place.outside, "x")),
                          hardlink_member("h", "s")))
    assert os.readlink(os.path.join(place.dest, "h")) == os.path.join(place.outside, "x")
    assert os.lstat(os.path.join(place.outside, "x")).st_nlink == 1
    place.untouched()


def test_a_symlink_already_in_dest_is_never_followed(place):
    os.symlink("../outside", os.path.join(place.dest, "link"))
    place.refused(archive(file_member("link/x", b"evil")), "a symlink is in the way at link")
    place.untouched()


def test_a_file_member_replaces_a_symlink_in_dest(place):
    os.symlink(os.path.join(place.outside, "x"), os.path.join(place.dest, "x"))
    place.extract(archive(file_member("x", b"new")))
    assert text(os.path.join(place.dest, "x")) == "new"
    assert not os.path.islink(os.path.join(place.dest, "x"))
    place.untouched()


def test_a_directory_member_replaces_a_symlink_in_dest(place):
    os.symlink("../outside", os.path.join(place.dest, "link"))
    place.extract(archive(dir_member("link"), file_member("link/x", b"new")))
    assert stat.S_ISDIR(os.lstat(os.path.join(place.dest, "link")).st_mode)
    place.untouched()


def test_overwriting_a_hard_link_to_an_outside_file_leaves_that_file(place):
    os.link(os.path.join(place.outside, "x"), os.path.join(place.dest, "x"))
    place.extract(archive(file_member("x", b"new")))
    assert text(os.path.join(place.dest, "x")) == "new"
    assert text(os.path.join(place.outside, "x")) == "original"


def test_a_file_member_replaces_a_directory_tree(place):
    os.makedirs(os.path.join(place.dest, "d", "deep"))
    os.symlink("../../outside", os.path.join(place.dest, "d", "deep", "out"))
    os.chmod(os.path.join(place.dest, "d", "deep"), 0o500)
    place.extract(archive(file_member("d", b"now a file")))
    assert stat.S_ISREG(os.lstat(os.path.join(place.dest, "d")).st_mode)
    place.untouched()


def test_a_huge_pax_header_is_refused_without_reading_it(place):
    header = tarfile.TarInfo("././@PaxHeader")
    header.type = tarfile.XHDTYPE
    header.size = 1 << 30
    data = header.tobuf(tarfile.USTAR_FORMAT) + b"9 a=b\n" * 100
    place.refused(data, "a header of more than 8 MiB")
    place.untouched()


def test_an_archive_cut_inside_a_file_names_the_file(place):
    data = archive(file_member("big", os.urandom(100000)))
    error = place.refused(data[:50000], "the archive ended early")
    assert error.path == os.path.join(place.dest, "big")


def _members_end(data):
    """Where the last member's data ends: the end-of-archive marker follows."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return max(m.offset_data + -(-m.size // 512) * 512 for m in tar.getmembers())


def test_an_archive_cut_between_members_ended_early(place):
    data = archive(file_member("a", b"x" * 512), file_member("b", b"y"))
    place.refused(data[:_members_end(data)], "the archive ended early")


def test_an_empty_stream_ended_early(place):
    place.refused(b"", "the archive ended early")


def test_garbage_is_not_an_archive(place):
    place.refused(os.urandom(4096), "not a usable tar archive")


def test_garbage_after_a_member_is_not_the_end(place):
    data = archive(file_member("a", b"x"))
    place.refused(data[:_members_end(data)] + b"\x01" * 1024, "not a usable tar archive")


def test_a_fifo_is_made(place):
    fields = {"name": "pipe", "type": tarfile.FIFOTYPE, "mode": 0o640}
    place.extract(archive((fields, None)))
    st = os.lstat(os.path.join(place.dest, "pipe"))
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640


def test_a_device_is_skipped_and_counted(place):
    fields = {"name": "null", "type": tarfile.CHRTYPE, "devmajor": 1, "devminor": 3}
    block = {"name": "sda", "type": tarfile.BLKTYPE, "devmajor": 8, "devminor": 0}
    stats = place.extract(archive((fields, None), (block, None), file_member("f")))
    assert stats["devices"] == 2 and stats["entries"] == 1
    assert os.listdir(place.dest) == ["f"]


def test_setuid_is_kept_on_the_node_and_stripped_on_the_host(place):
    data = archive(file_member("su", b"x", mode=0o6755), dir_member("shared", mode=0o2775))
    place.extract(data)
    assert stat.S_IMODE(os.lstat(os.path.join(place.dest, "su")).st_mode) == 0o6755
    place.extract(data, on_host=True)
    assert stat.S_IMODE(os.lstat(os.path.join(place.dest, "su")).st_mode) == 0o755
    assert stat.S_IMODE(os.lstat(os.path.join(place.dest, "shared")).st_mode) == 0o2775


def test_directory_modes_and_mtimes_are_set_after_their_content(place):
    data = archive(({"name": "ro", "type": tarfile.DIRTYPE, "mode": 0o555, "mtime": 1000}, None),
                   file_member("ro/inside"), ({"name": ".", "type": tarfile.DIRTYPE,
                                               "mode": 0o710, "mtime": 2000}, None))
    place.extract(data)
    st = os.lstat(os.path.join(place.dest, "ro"))
    assert (stat.S_IMODE(st.st_mode), st.st_mtime) == (0o555, 1000)
    assert os.listdir(os.path.join(place.dest, "ro")) == ["inside"]
    root = os.lstat(place.dest)
    assert (stat.S_IMODE(root.st_mode), root.st_mtime) == (0o710, 2000)


def test_a_deep_tree_costs_a_bounded_number_of_fds(place):
    deep = "/".join(["d"] * 300)
    data = archive(file_member(deep + "/file", b"deep"), file_member(deep + "/other"),
                   file_member("d/d/top"))
    open_before = len(os.listdir("/proc/self/fd"))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # Room for the 64 levels kept open and a few more, not for 300.
    resource.setrlimit(resource.RLIMIT_NOFILE, (open_before + 80, hard))
    try:
        place.extract(data)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert text(os.path.join(place.dest, deep, "file")) == "deep"
    assert len(os.listdir("/proc/self/fd")) == open_before


def test_a_member_that_is_not_a_directory_cannot_be_the_destination(place):
    place.refused(archive(file_member("./", b"x")), "names the destination")


def test_the_stream_is_drained_for_the_writer(place):
    data = archive(file_member("a")) + b"\0" * 100000
    stream = io.BytesIO(data)
    safe_extract.extract(stream, place.dest)
    assert stream.tell() == len(data)


@pytest.fixture
def tiny_tmpfs(tmp_path, unavailable):
    if os.geteuid() != 0:
        unavailable("mounting a 1 MiB tmpfs needs root")
    mount = tmp_path / "tiny"
    mount.mkdir()
    said = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    if said.returncode:
        unavailable("cannot mount a tmpfs: %s" % said.stdout.strip())
    yield str(mount)
    subprocess.check_call(["umount", str(mount)])


def test_a_full_disk_says_no_space_left_naming_the_file(tiny_tmpfs):
    data = archive(file_member("small", b"x"), file_member("too-big", os.urandom(2 << 20)))
    with pytest.raises(ExtractError) as caught:
        safe_extract.extract(io.BytesIO(data), tiny_tmpfs)
    assert caught.value.path == os.path.join(tiny_tmpfs, "too-big")
    assert caught.value.why == "no space left"
    assert str(caught.value) == "%s: no space left" % os.path.join(tiny_tmpfs, "too-big")


def test_a_full_disk_and_a_full_quota_are_said_plainly():
    assert why(OSError(errno.ENOSPC, "No space left on device")) == "no space left"
    assert why(OSError(errno.EDQUOT, "Disk quota exceeded")) == "disk quota exceeded"
    assert why(OSError(errno.EACCES, "Permission denied")) == "permission denied"
