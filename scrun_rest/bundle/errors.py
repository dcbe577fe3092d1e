"""The two errors of the bundle package, each naming the path it is about.

Python 3.6+, stdlib only.
"""
import errno
import os

# What a user reads for the errors a full or over-quota node gives; the
# rest keep the system's own words.
_PLAIN_WORDS = {
    errno.ENOSPC: "no space left",
    errno.EDQUOT: "disk quota exceeded",
}


def why(err):
    """The short reason an OSError gives, in words a user acts on."""
    if err.errno in _PLAIN_WORDS:
        return _PLAIN_WORDS[err.errno]
    if err.errno:
        return os.strerror(err.errno).lower()
    return str(err)


class BundleError(Exception):
    """A path and why it could not be moved: "PATH: WHY"."""

    def __init__(self, path, why):
        Exception.__init__(self, "%s: %s" % (path, why))
        self.path = path
        self.why = why


class PackError(BundleError):
    """A file or directory could not be archived."""


class ExtractError(BundleError):
    """An archive could not be unpacked, or would have reached outside."""
