"""Slurm JWTs for slurmrestd: where they come from and when they run out.

The token text is a credential: it never goes into argv, log records or
exception messages. Only its claims (user, expiry) are ever shown.
"""
import base64
import binascii
import datetime
import json
import logging
import os
import pwd
import re
import stat
import subprocess
import time

from . import owners
from .config import real_uid
from .errors import UserError

log = logging.getLogger("scrun_rest.auth")

# A token with less than this left is renewed (or refused): a request that
# starts with it could otherwise fail half way through a container's life.
RENEW_MARGIN = 60
COMMAND_TIMEOUT = 30

# Anything shaped like a JWT, to scrub it from text we did not write.
_JWT_LIKE = re.compile(r"[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")


def utc_iso(epoch):
    """Epoch seconds as 2024-05-01T12:00:00Z."""
    moment = datetime.datetime.fromtimestamp(int(epoch), tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def scrub(text):
    """Text with anything token-shaped replaced, for messages from others."""
    return _JWT_LIKE.sub("<token>", text or "")


def parse_token_text(text, origin):
    """The token in `text`: a bare token or the SLURM_JWT=... line of scontrol."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    for line in lines:
        if line.startswith("export "):
            line = line[len("export "):].strip()
        if line.startswith("SLURM_JWT="):
            return _checked(line[len("SLURM_JWT="):].strip().strip("'\""), origin)
    if len(lines) != 1:
        raise UserError("%s holds %s; expected one token or a SLURM_JWT=... line"
                        % (origin, "nothing" if not lines else "%d lines" % len(lines)))
    return _checked(lines[0], origin)


def _checked(token, origin):
    if not token or any(c.isspace() for c in token):
        raise UserError("%s does not hold a usable token" % origin)
    return token


def token_claims(token, origin="the token"):
    """The claims of a JWT, read without checking its signature (slurmctld does that)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise UserError("%s is not a JWT (expected three dot-separated parts)" % origin)
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError):
        raise UserError("%s is not a JWT (its claims do not decode)" % origin)
    if not isinstance(claims, dict):
        raise UserError("%s is not a JWT (its claims are not an object)" % origin)
    return claims


def read_private_file(path, what, any_owner=False):
    """Bytes of a file that only its owner may read and change; refuse anything looser.

    The owner must be the caller or root, else it could swap the file:
    another user's token would run our containers as their jobs. any_owner
    lifts that for root reading Slurm's key, which SlurmUser owns.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise UserError("cannot open %s %s: %s" % (what, path, exc.strerror or exc))
    try:
        problem = _loose(path, os.fstat(fd), any_owner)
        if problem:
            raise UserError("%s %s %s" % (what, path, problem))
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise UserError("cannot read %s %s: %s" % (what, path, exc.strerror or exc))
    finally:
        os.close(fd)


def _loose(path, info, any_owner):
    """Why a secret file's mode, owner or directory lets others at it; None if nothing."""
    mode = stat.S_IMODE(info.st_mode)
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        return "is readable by others (mode %03o); run: chmod 600 %s" % (mode, path)
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        return "is writable by others (mode %03o); run: chmod 600 %s" % (mode, path)
    if not any_owner and info.st_uid not in (os.geteuid(), 0):
        return "belongs to %s, not to you or root, so they could replace it" % owners.describe(info.st_uid)
    directory = os.path.dirname(os.path.abspath(path))
    dir_mode = stat.S_IMODE(os.stat(directory).st_mode)
    # In a sticky dir (/tmp) others cannot rename or remove our file; the
    # dir's owner is not checked: in rootless podman root's dirs show as nobody.
    if dir_mode & (stat.S_IWGRP | stat.S_IWOTH) and not dir_mode & stat.S_ISVTX:
        return ("is in %s, which others can write (mode %03o), so they could replace it"
                % (directory, dir_mode))
    return None


def _running_as_root():
    """Really root: not the mapped root of a rootless podman user namespace."""
    return os.geteuid() == 0 and real_uid() == 0


class _Token:
    """One token with the claims we use."""

    def __init__(self, text, origin):
        claims = token_claims(text, origin)
        self.text = text
        self.origin = origin
        self.user = claims.get("sun") or claims.get("username")
        exp = claims.get("exp")
        if isinstance(exp, bool) or not isinstance(exp, (int, float)):
            raise UserError("%s has no expiry (exp claim); slurmctld refuses such tokens" % origin)
        self.expires_at = int(exp)

    def fresh(self, now):
        return self.expires_at - now > RENEW_MARGIN


class TokenSource:
    """The caller's Slurm token from the first configured source that has a fresh one.

    Sources, in order: $SLURM_JWT, JwtFile, JwtCommand, JwtKeyFile. The last
    two can make new tokens, so a long-lived anchor renews through them.
    """

    def __init__(self, config, environ=None, clock=time.time):
        self._config = config
        self._env = os.environ if environ is None else environ
        self._clock = clock
        self._current = None

    # -- public ------------------------------------------------------------

    def token(self):
        now = self._clock()
        if self._current is not None and self._current.fresh(now):
            return self._current.text
        stale = None
        for origin, load in self._sources():
            candidate = load()
            if candidate.fresh(now):
                if self._current is None or self._current.text != candidate.text:
                    log.debug("using the Slurm token from %s (user %s, expires %s)",
                              origin, candidate.user, utc_iso(candidate.expires_at))
                self._current = candidate
                return candidate.text
            log.debug("the Slurm token from %s expires %s; trying the next source",
                      origin, utc_iso(candidate.expires_at))
            stale = stale or candidate
        if stale is None:
            raise UserError("no Slurm token: set SLURM_JWT (from `scontrol token`) or "
                            "JwtFile, JwtCommand or JwtKeyFile in %s"
                            % (getattr(self._config, "path", None) or "scrun-rest.conf"))
        verb = "expired" if stale.expires_at <= now else "expires"
        raise UserError("the Slurm token from %s %s at %s and cannot be renewed; "
                        "get a new one with `scontrol token`"
                        % (stale.origin, verb, utc_iso(stale.expires_at)))

    @property
    def user(self):
        self.token()
        return self._current.user

    @property
    def expires_at(self):
        self.token()
        return self._current.expires_at

    @property
    def origin(self):
        self.token()
        return self._current.origin

    # -- sources -----------------------------------------------------------

    def _sources(self):
        """(origin, loader) for each configured source, in priority order."""
        if self._env.get("SLURM_JWT"):
            yield "SLURM_JWT", lambda: self._from_text(self._env["SLURM_JWT"], "SLURM_JWT")
        path = self._config.get("JwtFile")
        if path:
            origin = "JwtFile %s" % path
            yield origin, lambda: self._from_text(
                read_private_file(path, "JwtFile").decode("utf-8", "replace"), origin)
        command = self._config.get("JwtCommand")
        if command:
            yield "JwtCommand", lambda: self._from_command(command)
        key_file = self._config.get("JwtKeyFile")
        if key_file:
            yield "JwtKeyFile %s" % key_file, lambda: self._mint(key_file)

    def _from_text(self, text, origin):
        return _Token(parse_token_text(text, origin), origin)

    def _from_command(self, command):
        # Run through the shell like Slurm runs its own *Command settings; the
        # token comes back on stdout, never through argv.
        try:
            done = subprocess.run(["/bin/sh", "-c", command], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  timeout=COMMAND_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise UserError("JwtCommand did not finish within %d s" % COMMAND_TIMEOUT)
        except OSError as exc:
            raise UserError("cannot run JwtCommand: %s" % exc)
        if done.returncode != 0:
            detail = scrub(done.stderr.decode("utf-8", "replace")).strip().splitlines()
            raise UserError("JwtCommand failed with exit status %d%s" % (
                done.returncode, (": " + detail[-1][:200]) if detail else ""))
        return self._from_text(done.stdout.decode("utf-8", "replace"), "JwtCommand")

    def _mint(self, key_file):
        # Root reads Slurm's own key, owned by SlurmUser: whoever owns the
        # cluster's key can mint any token already, so no owner is a risk.
        key = read_private_file(key_file, "JwtKeyFile", any_owner=_running_as_root())
        if not key:
            raise UserError("JwtKeyFile %s is empty" % key_file)
        lifespan = self._config.get_int("JwtLifespan", minimum=2 * RENEW_MARGIN)
        user = self._config.get("JwtUser") or _login_name()
        try:
            import jwt  # only minting needs pyjwt; keep light commands light
        except ImportError:
            raise UserError("JwtKeyFile needs the Python package pyjwt")
        now = int(self._clock())
        text = jwt.encode({"sun": user, "iat": now, "exp": now + lifespan}, key,
                          algorithm="HS256")
        if isinstance(text, bytes):  # pyjwt 1.x
            text = text.decode("ascii")
        return _Token(text, "JwtKeyFile %s" % key_file)


def _login_name():
    uid = real_uid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        raise UserError("uid %d has no user name; set JwtUser" % uid)
