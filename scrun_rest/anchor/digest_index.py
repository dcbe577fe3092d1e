"""The sha256 of the files a rootfs manifest names, remembered between
containers (bundle/manifest.py), so that the second container of an image
reads none of its files to describe them.

A file is known by (inode, size, mtime, ctime): an image's layers never
change, and whatever rewrites a file gets it a new ctime from the kernel,
which nothing a user or an image sets can put back. The index is a small
SQLite file in the runtime's state root, the user's own (0600); several
anchors share it, and a broken one is just rebuilt.
"""
import logging
import os
import sqlite3

from scrun_rest.bundle import manifest

log = logging.getLogger("scrun_rest.anchor")
INDEX_NAME = ".digests.sqlite"
# Rows beyond this are forgotten, oldest first: a bound on its size.
MAX_ROWS = 500000


class DigestIndex:
    def __init__(self, state_root):
        self.path = os.path.join(state_root, INDEX_NAME)
        self.db = None
        self.new = []
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            os.close(fd)
            self.db = sqlite3.connect(self.path, timeout=10)
            self.db.execute("CREATE TABLE IF NOT EXISTS digests (ino INTEGER, size INTEGER, "
                            "mtime INTEGER, ctime INTEGER, digest TEXT, "
                            "PRIMARY KEY (ino, size, mtime, ctime))")
        except (OSError, sqlite3.Error) as exc:
            log.warning("no digest index at %s (%s): every file is read", self.path, exc)
            self.db = None

    def digest_of(self, path, st):
        key = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if self.db is not None:
            try:
                row = self.db.execute("SELECT digest FROM digests WHERE ino=? AND size=? "
                                      "AND mtime=? AND ctime=?", key).fetchone()
            except sqlite3.Error:
                row = None
            if row:
                return row[0]
        digest = manifest.file_digest(path)
        self.new.append(key + (digest,))
        return digest

    def save(self):
        if self.db is None or not self.new:
            return
        try:
            with self.db:
                self.db.executemany("INSERT OR REPLACE INTO digests VALUES (?, ?, ?, ?, ?)",
                                    self.new)
                self.db.execute("DELETE FROM digests WHERE rowid <= (SELECT MAX(rowid) "
                                "FROM digests) - ?", (MAX_ROWS,))
        except sqlite3.Error as exc:
            log.warning("cannot update the digest index %s: %s", self.path, exc)
        self.new = []

    def close(self):
        if self.db is not None:
            self.db.close()


def rootfs_manifest(state_root, rootfs):
    """The manifest of a rootfs (bundle/manifest.py), its files' digests
    remembered in the state root."""
    index = DigestIndex(state_root)
    try:
        entries = manifest.build(rootfs, index.digest_of)
        index.save()
    finally:
        index.close()
    return entries
