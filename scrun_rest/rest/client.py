"""The slurmrestd client callers use: one object per RestUrl.

It picks the newest API version both it and the server know, authenticates
every request with the caller's token, and turns every answer into
normalised results or one of the exceptions in rest.errors. Version
differences are looked up in rest.versions, never decided here.

Discovery costs one request where the server allows it: GET /openapi/v3
lists the served versions (it checks the auth headers but asks nothing of
slurmctld). Where that fails it pings /slurm/vX/ping newest first. The
answer is cached per URL (rest.cache); a cached version that vanishes, or
an answer from a new Slurm release, makes the client discover again.
"""
import logging
import signal as signal_module
import threading

from ..auth import scrub
from . import versions
from .cache import VersionCache
from .errors import AuthRejected, JobNotFound, RestError
from .model import JobState
from .transport import CONNECT_ONLY, IDEMPOTENT, transport_for

log = logging.getLogger("scrun_rest.rest")


class RestClient:
    """Talks to the slurmrestd at config's RestUrl as the token's user."""

    def __init__(self, config, token_source, cache=None, transport=None):
        if transport is None:
            config.require("RestUrl")
            transport = transport_for(config)
        self._transport = transport
        self._tokens = token_source
        self._cache = cache if cache is not None else VersionCache()
        self._version = None
        self._discovering = threading.Lock()  # the anchor calls from worker threads
        self.url = transport.url
        self.release = None
        self.newer_versions = ()  # served, but newer than rest.versions knows
        self._unusable = set()  # served, but refusing every request here
        self.last_submit_message = None

    # -- state -------------------------------------------------------------

    @property
    def requests_made(self):
        """HTTP requests sent so far, retries and version probes included."""
        return self._transport.requests_made

    @property
    def api_version(self):
        """The API version in use ("v0.0.38"), discovered on first need."""
        if self._version is None:
            with self._discovering:
                if self._version is None:
                    self._discover(use_cache=True)
        return self._version

    def discover(self):
        """Find the API version afresh, ignoring the cache; the version."""
        with self._discovering:
            self._discover(use_cache=False)
        return self._version

    def close(self):
        self._transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- operations ----------------------------------------------------------

    def ping(self):
        """The controllers slurmrestd reaches, as [Controller]."""
        version, payload = self._call("GET", "ping")
        return versions.controllers(version, payload)

    def verify_token(self):
        """Raise AuthRejected unless slurmctld accepts the token.

        ping cannot tell: from 23.02 it answers 200 with the controller DOWN
        (not responding) for a refused token. GET job of an unlikely id asks
        slurmctld and fails loudly: "no such job" means the token passed.
        """
        try:
            self.job(versions.TOKEN_PROBE_JOB_ID)
        except JobNotFound:
            pass

    def info(self):
        """The Slurm release string ("22.05.8") if the server tells it, else None."""
        if self.release is None:
            self.ping()
        return self.release

    def submit(self, request):
        """Queue a batch job from a normalised request; its job id.

        Fields the server's API version cannot express raise UnsupportedField
        before anything is sent.
        """
        # An answer that carries a job id queued a job, whatever its HTTP status
        # and errors[]: 22.05 reports a held job as error 2042 with 200, and
        # 23.02 and 23.11.0 a job queued despite QOS_THRES, NODE_NOT_AVAIL,
        # RESERVATION_NOT_USABLE, REQUESTED_PART_CONFIG_UNAVAILABLE or
        # LICENSES_UNAVAILABLE with 500. Raising would orphan a job that runs.
        version, payload = self._call(
            "POST", "job/submit", retry=CONNECT_ONLY,
            body=lambda v: versions.submit_body(v, request, self._release_for(v, request)),
            accept=lambda v, p: versions.submitted_job_id(v, p) is not None)
        job_id = versions.submitted_job_id(version, payload)
        if job_id is None:
            raise RestError("slurmrestd at %s accepted the job but sent no job id" % self.url,
                            url=self.url)
        errors = [text for _, text in versions.errors_of(version, payload) if text]
        notes = [payload.get("job_submit_user_msg")] + errors
        notes = [n for n in notes if isinstance(n, str) and n]
        self.last_submit_message = "; ".join(notes) or None
        if errors:
            log.warning("job %d is queued, though slurmrestd reported: %s; it waits as any "
                        "pending job", job_id, self.last_submit_message)
        elif notes:
            log.info("job %d submitted: %s", job_id, self.last_submit_message)
        return job_id

    def check_request(self, request):
        """Raise UnsupportedField/InvalidField now if submit(request) could not be sent."""
        versions.submit_body(self.api_version, request, self.release)

    def job(self, job_id):
        """JobInfo for one job; JobNotFound once Slurm has forgotten it."""
        job_id = _job_id(job_id)
        version, payload = self._call("GET", "job/%d" % job_id, job_id=job_id)
        info = versions.job_info(version, payload, job_id)
        if info is None:
            raise self._not_found(job_id, None)
        return info

    def signal(self, job_id, signal):
        """Send a signal (number or name) to every process of the job."""
        job_id = _job_id(job_id)
        number = _signal_number(signal)
        self._delete(job_id, {"signal": number})

    def cancel(self, job_id):
        """Cancel the job (Slurm's default: SIGKILL to the whole job)."""
        self._delete(_job_id(job_id), None)

    # -- internals -------------------------------------------------------------

    def _release_for(self, version, request):
        """The Slurm release, asked for (one ping) only when the body depends on it."""
        if self.release is None and versions.release_needed(version, request):
            self.ping()
        return self.release

    def _delete(self, job_id, params, again=True):
        version, payload = self._call("DELETE", "job/%d" % job_id, job_id=job_id, params=params)
        for errno, text in versions.delete_failures(version, payload):
            if errno == versions.ERRNO_INVALID_JOB_ID:
                raise self._not_found(job_id, text)
            raise self._slurm_error(errno, text, "DELETE", "job/%d" % job_id, None)
        if versions.delete_answer_is_bare(version, payload, self.release):
            self._confirm_delete(job_id, params, version, again)

    def _confirm_delete(self, job_id, params, version, again):
        """A bare DELETE answer (v0.0.40/41 on 24.11+) proves nothing: ask again.

        A cached old version after an upgrade is the usual cause, so the same
        DELETE goes again through the newest version (a signal may thus arrive
        twice). Where none answers better, the job's state must show it.
        """
        log.info("slurmrestd at %s answered DELETE job/%d through %s without a status; "
                 "checking", self.url, job_id, version)
        if again and self.discover() != version:
            return self._delete(job_id, params, again=False)
        info = self.job(job_id)  # JobNotFound for an unknown job
        if params is None and not (info.state.is_terminal or info.state is JobState.COMPLETING):
            raise RestError("slurmrestd at %s answered the cancel of job %d without a status "
                            "and the job is still %s: the cancel was refused"
                            % (self.url, job_id, info.state.value), url=self.url)

    def _discover(self, use_cache):
        if use_cache:
            cached = self._cache.get(self.url)
            if (cached and cached["version"] in versions.SHAPES
                    and cached["version"] not in self._unusable):
                self._version, self.release = cached["version"], cached.get("release")
                return
        self.newer_versions = ()
        served = self._served_versions()
        if served is not None:
            known = [v for v in served if v in versions.SHAPES and v not in self._unusable]
            self.newer_versions = versions.newer_than_known(served)
            if self.newer_versions:
                log.info("slurmrestd at %s serves %s, newer than scrun-rest knows; using %s",
                         self.url, ", ".join(self.newer_versions),
                         known[0] if known else "none")
            if known:
                return self._settle(known[0], self.release, "its OpenAPI document")
        else:
            for version in versions.NEWEST_FIRST:
                if version in self._unusable:
                    continue
                response = self._send("GET", "/slurm/%s/ping" % version, None, None, IDEMPOTENT)
                if response.status_code == 404:
                    continue  # this version is not served here
                if self._unusable_here(version, _json_object(response)):
                    continue
                payload = self._check(version, response, "GET", "ping", None)
                return self._settle(version, versions.release_of(version, payload), "ping")
        raise RestError("slurmrestd at %s serves none of the API versions scrun-rest "
                        "speaks (%s to %s)" % (self.url, versions.NEWEST_FIRST[-1],
                                                versions.NEWEST_FIRST[0]), url=self.url)

    def _unusable_here(self, version, payload):
        """True (and remembered) if the answer says `version` cannot serve this server."""
        if not versions.version_unusable(version, payload):
            return False
        log.info("slurmrestd at %s cannot answer through API %s without slurmdbd; "
                 "using an older version", self.url, version)
        self._unusable.add(version)
        return True

    def _served_versions(self):
        """Versions GET /openapi/v3 lists, newest first; None if it tells nothing."""
        response = self._send("GET", "/openapi/v3", None, None, IDEMPOTENT)
        if versions.token_refused(versions.NEWEST, response.status_code, None):
            self._check(versions.NEWEST, response, "GET", "openapi/v3", None)
        document = _json_object(response) if response.status_code == 200 else None
        served = versions.served_versions(document) if document else []
        if not served:
            log.debug("slurmrestd at %s: no versions from /openapi/v3 (HTTP %d); pinging",
                      self.url, response.status_code)
            return None
        self.release = versions.openapi_release(document) or self.release
        return served

    def _settle(self, version, release, how):
        self._version, self.release = version, release
        self._cache.put(self.url, version, release)
        log.debug("slurmrestd at %s: API %s (from %s), Slurm %s", self.url, version, how,
                  release or "release unknown")

    def _note_release(self, version, payload):
        """Follow the release an answer names; a new one means an upgrade: discover again."""
        release = versions.release_of(version, payload)
        if not release or release == self.release:
            return
        if self.release and _series(release) != _series(self.release):
            log.info("slurmrestd at %s now runs Slurm %s (was %s); discovering its API "
                     "version again", self.url, release, self.release)
            self._cache.forget(self.url)
            self._version = None
        elif self._version:
            self._cache.put(self.url, self._version, release)
        self.release = release

    def _call(self, method, op, job_id=None, params=None, body=None, retry=IDEMPOTENT,
              accept=None):
        """(version, payload) of one operation; re-probes once if the version vanished."""
        for attempt in (1, 2):
            version = self.api_version
            data = body(version) if callable(body) else body
            response = self._send(method, "/slurm/%s/%s" % (version, op), params, data, retry)
            payload = _json_object(response)
            # A plain-text 404 means the path is not served: slurmrestd was
            # upgraded under a cached version. A version that cannot serve this
            # server at all is as good as gone. Find another one and retry,
            # unless the answer queued a job all the same.
            gone = response.status_code == 404 and not _is_json(response)
            kept = payload is not None and accept is not None and accept(version, payload)
            if attempt == 1 and (gone or (not kept and self._unusable_here(version, payload))):
                log.debug("slurmrestd at %s no longer serves %s; probing again", self.url, version)
                self._cache.forget(self.url)
                self._version = None
                self._discover(use_cache=False)
                if self._version != version:
                    continue
            payload = self._check(version, response, method, op, job_id, accept)
            self._note_release(version, payload)
            return version, payload
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(self, method, path, params, body, retry):
        headers = {"Accept": "application/json", "X-SLURM-USER-TOKEN": self._tokens.token()}
        # 22.05 needs the user name too; later releases take it if it matches.
        # Never add "Authorization: Bearer": 23.02+ reject both at once.
        user = self._tokens.user
        if user:
            headers["X-SLURM-USER-NAME"] = user
        return self._transport.request(method, path, headers=headers, params=params,
                                       body=body, retry=retry)

    def _check(self, version, response, method, op, job_id, accept=None):
        """The answer's JSON object, or the right exception.

        accept(version, payload) may declare an answer good despite its status and errors[].
        """
        status = response.status_code
        payload = _json_object(response)
        if payload is not None and accept and accept(version, payload):
            return payload
        errors = versions.errors_of(version, payload) if payload is not None else []
        errno = next((e for e, _ in errors if e), None)
        # Slurm often pairs a vague numbered error with a useful unnumbered one.
        text = "; ".join(_unique(t for _, t in errors)[:3]) or None
        for warning in (payload or {}).get("warnings") or ():
            log.debug("slurmrestd warning: %s", warning)
        if versions.token_refused(version, status, payload, self.release):
            # 22.05's own words for it ("slurmctld config is unable to load") mislead.
            detail = (": " + text) if text and errno != -1 else ""
            raise AuthRejected("slurmrestd at %s rejected the token (HTTP %d)%s"
                               % (self.url, status, detail), url=self.url,
                               http_status=status, slurm_errno=errno, text=text)
        if job_id is not None and (status == 404 or any(
                e == versions.ERRNO_INVALID_JOB_ID for e, _ in errors)):
            raise self._not_found(job_id, text, status)
        if status >= 400 or errors:
            if errors:
                raise self._slurm_error(errno, text, method, op, status)
            raise RestError("slurmrestd at %s answered HTTP %d to %s %s%s"
                            % (self.url, status, method, op, _excerpt(response)),
                            url=self.url, http_status=status, text=_body_text(response))
        if payload is None:
            raise RestError("slurmrestd at %s sent an unreadable answer to %s %s (HTTP %d, %s)%s"
                            % (self.url, method, op, status,
                               response.headers.get("Content-Type") or "no content type",
                               _excerpt(response)),
                            url=self.url, http_status=status, text=_body_text(response))
        return payload

    def _not_found(self, job_id, text, status=None):
        return JobNotFound("Slurm error %d: %s (job %d, slurmrestd at %s)"
                           % (versions.ERRNO_INVALID_JOB_ID, "Invalid job id specified",
                              job_id, self.url),
                           url=self.url, http_status=status,
                           slurm_errno=versions.ERRNO_INVALID_JOB_ID, text=text)

    def _slurm_error(self, errno, text, method, op, status):
        prefix = ("Slurm error %d: " % errno) if errno else ""
        return RestError("%s%s (slurmrestd at %s, %s %s)" % (prefix, text, self.url, method, op),
                         url=self.url, http_status=status, slurm_errno=errno, text=text)


def _series(release):
    """"24.11" of "24.11.5": releases of one series serve the same API versions."""
    return ".".join(str(release).split(".")[:2])


def _unique(items):
    seen = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def _job_id(job_id):
    try:
        number = int(job_id)
    except (TypeError, ValueError):
        number = 0
    if number <= 0 or isinstance(job_id, bool):
        raise RestError("%r is not a Slurm job id" % (job_id,))
    return number


def _signal_number(sig):
    """Signal as a number: 15, "15", "TERM", "SIGTERM" all give 15."""
    if isinstance(sig, int) and not isinstance(sig, bool) and 0 < sig < 128:
        return int(sig)
    text = str(sig).strip().upper()
    if text.isdigit() and 0 < int(text) < 128:
        return int(text)
    name = text if text.startswith("SIG") else "SIG" + text
    number = getattr(signal_module, name, None)
    if not isinstance(number, int) or name.startswith("SIG_"):
        raise RestError("%r is not a signal name or number" % (sig,))
    return int(number)


def _is_json(response):
    return "json" in (response.headers.get("Content-Type") or "").lower()


def _json_object(response):
    """The body as a dict, or None for anything else (HTML, truncated, empty)."""
    try:
        payload = response.json()
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def _body_text(response):
    try:
        return scrub(response.text)[:2000]
    except Exception:  # undecodable bytes: nothing worth showing
        return None


def _excerpt(response):
    text = " ".join((_body_text(response) or "").split())
    return (": " + text[:120]) if text else ""
