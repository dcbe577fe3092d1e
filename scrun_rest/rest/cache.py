"""Remembers each slurmrestd URL's API version between commands.

podman runs the runtime once per verb, so discovering the version every
time would cost a request (or a round of pings) per `create`. The cache is
only a speed-up: any problem with it is logged and ignored.

An entry is trusted for CACHE_LIFETIME seconds (one hour) after it was
written, then discovered again. An upgrade that removes the cached version
is noticed at once (its paths answer a plain-text 404 and the client probes
again); the lifetime bounds how long an upgrade that keeps the old version
served (24.11 still serves v0.0.40) goes unnoticed, at the cost of one
discovery per URL and user per hour.
"""
import hashlib
import json
import logging
import os
import stat
import tempfile
import time

from ..config import real_uid

log = logging.getLogger("scrun_rest.rest")

CACHE_LIFETIME = 3600  # seconds an entry is trusted after it was written


def runtime_dir(environ=None, create=True):
    """$XDG_RUNTIME_DIR/scrun-rest-cache, else /run/user/UID/..., else a private temp dir.

    Not the container root (scrun-rest/): every name there is a container id.
    """
    env = os.environ if environ is None else environ
    uid = real_uid()
    candidates = []
    if env.get("XDG_RUNTIME_DIR"):
        candidates.append(os.path.join(env["XDG_RUNTIME_DIR"], "scrun-rest-cache"))
    candidates.append("/run/user/%d/scrun-rest-cache" % uid)
    candidates.append(os.path.join(tempfile.gettempdir(), "scrun-rest-cache-%d" % uid))
    for path in candidates:
        parent = os.path.dirname(path)
        if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
            continue
        if not create:
            return path
        if _private_dir(path):
            return path
    return None


def _private_dir(path):
    """Create path 0700 if missing; True if it is ours and private."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        log.debug("cannot create %s: %s", path, exc)
        return False
    try:
        info = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        log.debug("not using %s: not a directory of ours", path)
        return False
    if stat.S_IMODE(info.st_mode) & 0o077:
        try:
            os.chmod(path, 0o700)
        except OSError:
            return False
    return True


class VersionCache:
    """One small JSON file per URL: {"url", "version", "release", "saved"}."""

    def __init__(self, directory=None, lifetime=CACHE_LIFETIME, clock=time.time):
        self._dir = directory if directory is not None else runtime_dir()
        self._lifetime = lifetime
        self._clock = clock

    def _path(self, url):
        if not self._dir:
            return None
        digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
        return os.path.join(self._dir, "api-%s.json" % digest)

    def get(self, url):
        path = self._path(url)
        if not path:
            return None
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.debug("ignoring the version cache %s: %s", path, exc)
            return None
        if (not isinstance(data, dict) or data.get("url") != url
                or not isinstance(data.get("version"), str)):
            return None
        saved = data.get("saved")
        age = self._clock() - saved if isinstance(saved, (int, float)) else None
        # A clock that went back a minute or more is as untrustworthy as an old entry.
        if age is None or not -60 <= age <= self._lifetime:
            log.debug("the version cache for %s is stale; discovering again", url)
            return None
        return data

    def put(self, url, version, release=None):
        path = self._path(url)
        if not path:
            return
        data = {"url": url, "version": version, "release": release,
                "saved": int(self._clock())}
        try:
            fd, tmp = tempfile.mkstemp(dir=self._dir, prefix=".api-", suffix=".tmp")
            try:
                os.fchmod(fd, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    json.dump(data, handle)
                os.replace(tmp, path)
            except BaseException:
                _unlink(tmp)
                raise
        except OSError as exc:
            log.debug("cannot write the version cache %s: %s", path, exc)

    def forget(self, url):
        path = self._path(url)
        if path:
            _unlink(path)


def _unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass
