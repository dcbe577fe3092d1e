"""HTTP to one slurmrestd: session, timeouts, bounded retries, request log.

Retries live here, not in callers. Idempotent calls retry connection
failures and 502/503/504 with backoff inside RETRY_BUDGET seconds so a dead
slurmrestd is reported quickly; submit retries only failures to connect,
since a request that reached the server may already have queued a job.

The token rides in a header, so it goes to RestUrl and nowhere else: a
redirect is an error, never followed, and a proxy is used only when
RestProxy names one (not from the environment). Answers are read streamed
and refused past MAX_RESPONSE, so a hostile server cannot fill our memory.
"""
import logging
import time
from urllib.parse import quote

import requests

from .errors import RestError, RestUnreachable
from .unixsocket import UnixSocketAdapter

log = logging.getLogger("scrun_rest.rest")

RETRY_BUDGET = 12.0          # seconds of retrying before giving up
BACKOFF = (0.25, 0.5, 1.0, 2.0, 4.0)
CONNECT_TIMEOUT = 5.0
RETRY_STATUSES = frozenset((502, 503, 504))
MAX_RESPONSE = 64 << 20      # bytes of one answer's body, after decoding
READ_CHUNK = 1 << 16

IDEMPOTENT = "idempotent"    # retry connection failures, timeouts, 502/503/504
CONNECT_ONLY = "connect"     # retry only when the request never reached the server


def normalise_url(url):
    """RestUrl without a trailing slash; unix:/path kept as written."""
    url = (url or "").strip()
    if url.startswith("unix:"):
        path = url[len("unix:"):]
        if path.startswith("//"):
            path = path[2:]
        if not path.startswith("/"):
            raise RestError("RestUrl=%s: a unix socket URL needs an absolute path "
                            "(unix:/path/to/socket)" % url)
        return "unix:" + path
    if not url.startswith(("http://", "https://")):
        raise RestError("RestUrl=%s is not an http://, https:// or unix:/ URL" % url)
    return url.rstrip("/")


def checked_proxy(proxy, url):
    """RestProxy as given, once it is a proxy URL that can apply to url."""
    if not proxy:
        return None
    if url.startswith("unix:"):
        raise RestError("RestProxy=%s cannot apply to RestUrl=%s (a unix socket)" % (proxy, url))
    if not proxy.startswith(("http://", "https://", "socks5://", "socks5h://")):
        raise RestError("RestProxy=%s is not an http://, https:// or socks5:// URL" % proxy)
    return proxy


def transport_for(config):
    """The Transport scrun-rest.conf describes."""
    return Transport(config.get("RestUrl"),
                     timeout=float(config.get_int("RestTimeout", minimum=1) or 30),
                     ca_file=config.get("RestCaFile"), proxy=config.get("RestProxy"))


class Transport:
    """One requests Session for one slurmrestd URL."""

    def __init__(self, url, timeout=30.0, ca_file=None, proxy=None, sleep=None, clock=None):
        self.url = normalise_url(url)
        proxy = checked_proxy(proxy, self.url)
        self.requests_made = 0
        self._sleep = sleep or time.sleep
        self._clock = clock or time.monotonic
        self._timeout = (min(CONNECT_TIMEOUT, timeout), timeout)
        self._session = requests.Session()
        # No .netrc, ambient credentials or *_PROXY variables: the only auth
        # is our token headers, and they go where RestUrl (or RestProxy) says.
        self._session.trust_env = False
        if self.url.startswith("unix:"):
            self._base = "http+unix://slurmrestd"
            self._session.mount("http+unix://", UnixSocketAdapter(self.url[len("unix:"):]))
        else:
            self._base = self.url
            if proxy:
                self._session.proxies = {"http": proxy, "https": proxy}
            if ca_file:
                self._session.verify = ca_file

    def close(self):
        self._session.close()

    def request(self, method, path, headers=None, params=None, body=None, retry=IDEMPOTENT):
        """The response to one call, after bounded retries; RestUnreachable if none."""
        started = self._clock()
        for delay in BACKOFF + (None,):
            # A connect timeout never outlasts the retry budget: a host that
            # drops packets is reported as quickly as one that refuses.
            left = RETRY_BUDGET - (self._clock() - started)
            timeout = (max(1.0, min(self._timeout[0], left)), self._timeout[1])
            try:
                response = self._send(method, path, headers, params, body, timeout)
            except requests.exceptions.RequestException as exc:
                if not _may_retry(exc, retry) or not self._wait(started, delay):
                    raise self._unreachable(method, path, exc)
                continue
            if 300 <= response.status_code < 400:
                raise self._redirected(method, path, response)
            if (retry == IDEMPOTENT and response.status_code in RETRY_STATUSES
                    and self._wait(started, delay)):
                continue
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(self, method, path, headers, params, body, timeout):
        self.requests_made += 1
        number = self.requests_made
        shown = path + ("?" + "&".join("%s=%s" % (k, quote(str(v), safe=""))
                                        for k, v in params.items()) if params else "")
        began = time.monotonic()
        try:
            response = self._session.request(method, self._base + path, headers=headers,
                                             params=params, json=body, timeout=timeout,
                                             allow_redirects=False, stream=True)
            self._read_body(method, path, response)
        except requests.exceptions.RequestException as exc:
            log.debug("rest #%d %s %s -> %s in %.0f ms", number, method, shown,
                      _reason(exc), (time.monotonic() - began) * 1000)
            raise
        log.debug("rest #%d %s %s -> %d in %.0f ms", number, method, shown,
                  response.status_code, (time.monotonic() - began) * 1000)
        return response

    def _read_body(self, method, path, response):
        """Read the body now, refusing one larger than MAX_RESPONSE."""
        chunks, size = [], 0
        try:
            for chunk in response.iter_content(READ_CHUNK):
                size += len(chunk)
                if size > MAX_RESPONSE:
                    raise RestError("slurmrestd at %s answered %s %s with more than %d MiB; "
                                    "refusing to read it" % (self.url, method, path,
                                                             MAX_RESPONSE >> 20),
                                    url=self.url, http_status=response.status_code)
                chunks.append(chunk)
        finally:
            response.close()
        # What response.content would hold had requests read it itself.
        response._content = b"".join(chunks)

    def _redirected(self, method, path, response):
        where = " ".join((response.headers.get("Location") or "nowhere").split())[:200]
        return RestError("slurmrestd at %s answered %s %s with a redirect (HTTP %d) to %s; "
                         "scrun-rest does not follow redirects: set RestUrl to the real "
                         "address" % (self.url, method, path, response.status_code, where),
                         url=self.url, http_status=response.status_code)

    def _wait(self, started, delay):
        """Sleep before the next attempt if the budget allows; False to give up."""
        if delay is None or self._clock() - started + delay + 1.0 > RETRY_BUDGET:
            return False
        self._sleep(delay)
        return True

    def _unreachable(self, method, path, exc):
        if isinstance(exc, requests.exceptions.ReadTimeout):
            # It got the request: a submit may have queued a job all the same.
            return RestUnreachable("slurmrestd at %s did not answer %s %s within %g s"
                                   % (self.url, method, path, self._timeout[1]), url=self.url)
        return RestUnreachable("slurmrestd at %s is unreachable: %s" % (self.url, _reason(exc)),
                               url=self.url)


def _may_retry(exc, retry):
    if retry == IDEMPOTENT:
        return isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout))
    return _never_sent(exc)


def _never_sent(exc):
    """True when the request cannot have reached slurmrestd."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if not isinstance(exc, requests.exceptions.ConnectionError):
        return False
    text = _chain_text(exc)
    return any(s in text for s in ("NewConnectionError", "Connection refused", "No such file",
                                   "Name or service not known", "cannot connect to"))


def _chain_text(exc):
    seen, parts = set(), []
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        parts.append("%s %s" % (type(exc).__name__, exc))
        args = getattr(exc, "args", ())
        inner = getattr(exc, "reason", None)
        if inner is None and args and isinstance(args[0], BaseException):
            inner = args[0]
        exc = inner or exc.__cause__ or exc.__context__
    return " | ".join(parts)


def _reason(exc):
    """A short human reason for a requests failure."""
    text = _chain_text(exc)
    lowered = text.lower()
    for needle, reason in (
            ("connection refused", "connection refused"),
            ("no such file", "no such socket"),
            ("name or service not known", "unknown host name"),
            ("temporary failure in name resolution", "cannot resolve the host name"),
            ("certificate verify failed", "TLS certificate verification failed"),
            ("sslerror", "TLS failure"),
            ("connecttimeout", "timed out connecting"),
            ("readtimeout", "no answer in time"),
            ("read timed out", "no answer in time"),
            ("timed out", "timed out"),
            ("remotedisconnected", "connection closed without an answer"),
            ("connection reset", "connection reset"),
            ("connection aborted", "connection closed without an answer"),
            ("permission denied", "permission denied"),
            ("network is unreachable", "network is unreachable"),
            ("no route to host", "no route to host"),
    ):
        if needle in lowered:
            return reason
    return type(exc).__name__
