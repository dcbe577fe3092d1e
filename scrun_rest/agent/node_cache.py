"""The user's file cache on this node: a rootfs made of files it holds is
rebuilt here without crossing the tunnel again.

Files are kept by the sha256 of their content (objects/AB/ABCD...), each
checked against its name when it arrives, and never handed to a container:
a container's rootfs gets copies (the unpacker writes them), so nothing a
container does can change the cache. One lock serialises the users of the
cache on this node: eight containers of a new image starting at once fetch
it once, and none sees a half-written object. Every rootfs built notes the
objects it used (uses/MANIFEST-DIGEST); past NodeCacheLimit the objects of
the least recently used rootfs go first. Python 3.6+, stdlib only.
"""
import errno
import fcntl
import hashlib
import json
import os
import shutil
import stat
import tempfile

from scrun_rest.bundle import manifest, safe_extract
from scrun_rest.bundle.errors import ExtractError

DEFAULT_LIMIT = 10 << 30


class CacheUnusable(ValueError):
    """The cache dir is not this user's private dir; the text says why."""


SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def from_settings(settings):
    """The cache NodeCache and NodeCacheLimit ask for, or None for none."""
    path = settings.get("NodeCache") or default_dir()
    if path.lower() in ("no", "none", "off"):
        return None
    text = (settings.get("NodeCacheLimit") or "").strip().upper()
    try:
        unit = text[-1:] if text[-1:] in SIZE_UNITS else ""
        limit = int(text[:len(text) - len(unit)]) * SIZE_UNITS[unit] if text else DEFAULT_LIMIT
    except ValueError:
        limit = DEFAULT_LIMIT
    return NodeCache(path, limit)


def default_dir():
    return "/var/tmp/scrun-rest-cache-%d" % os.getuid()


class NodeCache:
    def __init__(self, path, limit=DEFAULT_LIMIT):
        self.path, self.limit = path, limit
        self.lock_fd = None

    # -- the dir and its lock --------------------------------------------------
    def open(self):
        """Make or check the cache dir (ours, 0700, not a link), and lock it."""
        try:
            os.mkdir(self.path, 0o700)
        except FileExistsError:
            pass
        info = os.lstat(self.path)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() \
                or stat.S_IMODE(info.st_mode) & 0o077:
            raise CacheUnusable("%s is not a private directory of this user's" % self.path)
        for sub in ("objects", "uses", "incoming"):
            try:
                os.mkdir(os.path.join(self.path, sub), 0o700)
            except FileExistsError:
                pass
        self.lock_fd = os.open(os.path.join(self.path, "lock"),
                               os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.lock_fd, fcntl.LOCK_EX)
        self._clear_incoming()

    def close(self):
        if self.lock_fd is not None:
            os.close(self.lock_fd)  # the lock goes with it
            self.lock_fd = None

    def _clear_incoming(self):
        """What a killed fetch left (we hold the lock: nobody is writing)."""
        incoming = os.path.join(self.path, "incoming")
        for name in os.listdir(incoming):
            shutil.rmtree(os.path.join(incoming, name), ignore_errors=True)

    # -- objects -----------------------------------------------------------------
    def object_path(self, digest):
        return os.path.join(self.path, "objects", digest[:2], digest)

    def missing(self, entries):
        """{digest: name} of the manifest's files the cache lacks."""
        return {digest: name for digest, name in manifest.digests(entries).items()
                if not os.path.isfile(self.object_path(digest))}

    def receive(self, source, wanted):
        """Unpack the archive of the wanted files (by name) from `source` and
        take each in under its digest, checked. ExtractError if one is
        missing or not what its digest says."""
        staging = tempfile.mkdtemp(dir=os.path.join(self.path, "incoming"))
        try:
            safe_extract.extract(source, staging)
            for digest, name in wanted.items():
                self._take_in(os.path.join(staging, name), digest, name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _take_in(self, path, digest, name):
        try:
            if not stat.S_ISREG(os.lstat(path).st_mode):
                raise ExtractError(name, "not a regular file in the archive")
            if manifest.file_digest(path) != digest:
                raise ExtractError(name, "its content is not what the manifest says")
            target = self.object_path(digest)
            os.makedirs(os.path.dirname(target), 0o700, exist_ok=True)
            os.chmod(path, 0o600)
            os.rename(path, target)
        except FileNotFoundError:
            raise ExtractError(name, "missing from the archive")
        except OSError as err:
            if err.errno in (errno.ENOSPC, errno.EDQUOT):
                raise ExtractError(self.path, "no space left for the cache")
            raise

    # -- rootfs ------------------------------------------------------------------
    def build(self, entries, dest):
        """Make the tree the manifest describes in dest, from held files."""
        return safe_extract.extract_members(manifest.members(entries, self.object_path), dest)

    def note_use(self, entries):
        """This rootfs was built now: its objects are the newest in use."""
        key = hashlib.sha256(manifest.encode(entries)).hexdigest()
        path = os.path.join(self.path, "uses", key)
        with open(path, "w") as handle:
            json.dump(sorted(manifest.digests(entries)), handle)
        return key

    def evict(self, keep):
        """Past the limit, drop the least recently used rootfs's objects
        (never those of `keep`, the use just noted)."""
        uses_dir = os.path.join(self.path, "uses")
        uses = sorted(os.listdir(uses_dir),
                      key=lambda name: os.lstat(os.path.join(uses_dir, name)).st_mtime)
        while self._size() > self.limit and uses and uses[0] != keep:
            os.unlink(os.path.join(uses_dir, uses.pop(0)))
            referenced = set()
            for name in uses:
                with open(os.path.join(uses_dir, name)) as handle:
                    referenced.update(json.load(handle))
            for digest in self._objects():
                if digest not in referenced:
                    os.unlink(self.object_path(digest))

    def _objects(self):
        base = os.path.join(self.path, "objects")
        return [name for sub in os.listdir(base) for name in os.listdir(os.path.join(base, sub))]

    def _size(self):
        return sum(os.lstat(self.object_path(d)).st_size for d in self._objects())
