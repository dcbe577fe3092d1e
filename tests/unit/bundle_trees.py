"""Trees, archives and comparisons the bundle tests share (test_bundle_*.py)."""
import hashlib
import io
import os
import stat
import tarfile
import threading

from scrun_rest.bundle import pack, safe_extract


def listing(root):
    """{relative path: what a copy must keep} of a tree: type, mode, size,
    mtime_ns, content digest or link target, and which entries share an
    inode (as the first name of that inode)."""
    paths = [root]
    for top, dirs, files in os.walk(root):
        dirs.sort()
        paths.extend(os.path.join(top, name) for name in sorted(dirs + files))
    found = {}
    first_name = {}
    for path in paths:
        rel = os.path.relpath(path, root)
        st = os.lstat(path)
        what = None
        if stat.S_ISREG(st.st_mode):
            with open(path, "rb") as handle:
                what = hashlib.sha256(handle.read()).hexdigest()
        elif stat.S_ISLNK(st.st_mode):
            what = os.readlink(path)
        inode = None
        if not stat.S_ISDIR(st.st_mode):
            inode = first_name.setdefault((st.st_dev, st.st_ino), rel)
        size = None if stat.S_ISDIR(st.st_mode) else st.st_size  # a dir's depends on the fs
        found[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), size,
                      st.st_mtime_ns, what, inode)
    return found


def without_root_times(found):
    """A listing less the root's mtime (what unpacking into an existing dir
    does not promise when the archive has no "." member)."""
    return {rel: entry if rel != "." else entry[:3] for rel, entry in found.items()}


def sample_tree(root):
    """A new dir at root holding a small tree with every kind of entry pack
    keeps; returns root."""
    os.makedirs(os.path.join(root, "dir", "sub"))
    os.mkdir(os.path.join(root, "empty"))
    _write(root, "dir/sub/data", os.urandom(300000))
    _write(root, "plain", b"hello\n")
    _write(root, "script", b"#!/bin/sh\necho hi\n", mode=0o755)
    _write(root, "setuid", b"x", mode=0o4755)
    _write(root, "private", b"secret", mode=0o600)
    _write(root, "empty-file", b"")
    os.link(os.path.join(root, "plain"), os.path.join(root, "dir", "hardlink"))
    os.symlink("plain", os.path.join(root, "rel-link"))
    os.symlink("/nonexistent/target", os.path.join(root, "abs-link"))
    os.symlink("../plain", os.path.join(root, "dir", "up-link"))
    os.mkfifo(os.path.join(root, "fifo"), 0o640)
    os.chmod(os.path.join(root, "dir", "sub"), 0o750)
    os.utime(os.path.join(root, "plain"), ns=(1500000000123456789, 1500000000123456789))
    os.utime(os.path.join(root, "empty"), ns=(1400000000000000001, 1400000000000000001))
    os.utime(os.path.join(root, "dir", "sub"), ns=(1300000000000000002, 1300000000000000002))
    os.utime(os.path.join(root, "rel-link"), ns=(1200000000000000003, 1200000000000000003),
             follow_symlinks=False)
    return root


def _write(root, rel, data, mode=0o644):
    path = os.path.join(root, rel)
    with open(path, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode)


def set_user_xattr(path, name, value):
    """True if the filesystem took it."""
    try:
        os.setxattr(path, name, value, follow_symlinks=False)
        return True
    except OSError:
        return False


def pack_to_bytes(path):
    """pack(path) into memory, through a pipe as on the wire."""
    return _through_pipe(lambda fd: pack.pack(path, fd))


def pack_paths_to_bytes(base, names):
    return _through_pipe(lambda fd: pack.pack_paths(base, names, fd))


def _through_pipe(write):
    read_fd, write_fd = os.pipe()
    errors = []

    def writer():
        try:
            write(write_fd)
        except Exception as err:  # reported by the caller
            errors.append(err)
        finally:
            os.close(write_fd)
    thread = threading.Thread(target=writer)
    thread.start()
    with os.fdopen(read_fd, "rb") as reader:
        data = reader.read()
    thread.join()
    if errors:
        raise errors[0]
    return data


def copy_through(src, dest, on_host=False):
    """pack src and extract the stream into dest, through a pipe."""
    read_fd, write_fd = os.pipe()
    errors = []

    def writer():
        try:
            pack.pack(src, write_fd)
        except Exception as err:
            errors.append(err)
        finally:
            os.close(write_fd)
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        stats = safe_extract.extract(read_fd, dest, on_host=on_host)
    finally:
        os.close(read_fd)
        thread.join()
    if errors:
        raise errors[0]
    return stats


def archive(*members):
    """Tar bytes of (TarInfo fields as a dict, data) pairs, written by
    tarfile as an attacker would: nothing checked."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for fields, data in members:
            info = tarfile.TarInfo(fields.pop("name"))
            for key, value in fields.items():
                setattr(info, key, value)
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def file_member(name, data=b"x", mode=0o644):
    return {"name": name, "mode": mode}, data


def dir_member(name, mode=0o755):
    return {"name": name, "type": tarfile.DIRTYPE, "mode": mode}, None


def symlink_member(name, target):
    return {"name": name, "type": tarfile.SYMTYPE, "linkname": target}, None


def hardlink_member(name, target):
    return {"name": name, "type": tarfile.LNKTYPE, "linkname": target}, None
