"""RestClient against replayed slurmrestd answers: discovery, operations, errors, retries."""
import json
import logging
import pathlib

import pytest
import requests
import responses
from responses import matchers

from scrun_rest.config import Config
from scrun_rest.rest import (AuthRejected, JobNotFound, JobState, RestClient, RestError,
                             RestUnreachable, UnsupportedField)
from scrun_rest.rest import transport as transport_module
from scrun_rest.rest import versions
from scrun_rest.rest.cache import CACHE_LIFETIME, VersionCache
from scrun_rest.rest.transport import Transport, normalise_url

URL = "http://rest.test:6820"
FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "rest"
ALL = versions.NEWEST_FIRST
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdW4iOiJhbGljZSIsImV4cCI6OTk5OTk5OTk5OX0.c2VjcmV0LXNpZ25hdHVyZQ"


def fixture(version, name):
    return json.loads((FIXTURES / version / (name + ".json")).read_text())


def fixture_versions(name):
    return [v for v in ALL if (FIXTURES / v / (name + ".json")).exists()]


def path_job_id(record):
    """The job id of a recorded GET or DELETE job/{id}."""
    return int(record["path"].rsplit("/", 1)[1])


# Hand-built answers of releases no live server here runs (see their notes).
OLDER_RELEASES = ("_23.11", "_24.05")


class FakeTokens:
    user = "alice"
    expires_at = 9999999999

    def token(self):
        return TOKEN


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def make_client(tmp_path, clock):
    def make(url=URL, version=None, values=None):
        cache = VersionCache(str(tmp_path))
        if version:
            cache.put(normalise_url(url), version)
        config = Config(dict({"RestUrl": url}, **(values or {})), environ={})
        transport = Transport(url, timeout=30.0, ca_file=config.get("RestCaFile"),
                              sleep=clock.sleep, clock=clock)
        return RestClient(config, FakeTokens(), cache=cache, transport=transport)
    return make


def replay(rsps, record, url=URL):
    """Register one recorded answer with responses."""
    kwargs = {}
    if record.get("query"):
        kwargs["match"] = [matchers.query_param_matcher(
            {k: str(v) for k, v in record["query"].items()})]
    body = record["body"]
    text = json.dumps(body) if not isinstance(body, str) else body
    rsps.add(record["method"], url + record["path"], body=text, status=record["status"],
             content_type=record["content_type"] or "text/plain", **kwargs)


def no_openapi(rsps, url=URL):
    """/openapi/v3 tells nothing (a proxy that hides it), so discovery pings."""
    rsps.add("GET", url + "/openapi/v3", body="Unable find requested URL", status=404,
             content_type="text/plain")


def openapi(rsps, served, release=None, url=URL, status=200):
    """An /openapi/v3 document listing `served` the 25.05+ way (info.x-slurm).

    26.05.5 writes each entry as {"plugin": "v0.0.43", "flags": ["NONE"]}."""
    info = {"version": "Slurm-%s&openapi/slurmctld" % (release or "25.11.7"),
            "x-slurm": {"data_parsers": [{"plugin": v, "flags": ["NONE"]} for v in served]}}
    if release:
        info["x-slurm"]["release"] = release
    rsps.add("GET", url + "/openapi/v3", json={"openapi": "3.0.3", "info": info, "paths": {}},
             status=status)


def serve_version(rsps, version, url=URL):
    """No OpenAPI document, newer versions 404 as text, this one answers ping."""
    no_openapi(rsps, url)
    for newer in ALL[:ALL.index(version)]:
        rsps.add("GET", "%s/slurm/%s/ping" % (url, newer), body="Unable find requested URL",
                 status=404, content_type="text/plain")
    replay(rsps, fixture(version, "ping"), url)


# -- discovery -----------------------------------------------------------------------

@pytest.mark.parametrize("version", fixture_versions("ping"))
def test_discovery_probes_newest_first(make_client, version, tmp_path):
    with responses.RequestsMock() as rsps:
        serve_version(rsps, version)
        client = make_client()
        assert client.api_version == version
        assert client.requests_made == ALL.index(version) + 2
        probed = [c.request.url.split("/")[4] for c in rsps.calls[1:]]
        assert probed == list(ALL[:ALL.index(version) + 1])
        release = versions.release_of(version, fixture(version, "ping")["body"])
        assert client.release == release and client.info() == release
        assert client.requests_made == ALL.index(version) + 2  # info() needed no request
    cached = VersionCache(str(tmp_path)).get(URL)
    assert cached["version"] == version and cached["release"] == release


def test_cached_version_needs_no_probe(make_client):
    with responses.RequestsMock() as rsps:
        replay(rsps, job_4242("v0.0.41", "job_running"))
        client = make_client(version="v0.0.41")
        assert client.job(4242).state is JobState.RUNNING
        assert client.requests_made == 1


def test_cached_version_that_404s_is_probed_again_once(make_client, tmp_path):
    with responses.RequestsMock() as rsps:
        rsps.add("GET", URL + "/slurm/v0.0.39/job/4242", body="Unable find requested URL",
                 status=404, content_type="text/plain")
        serve_version(rsps, "v0.0.42")
        replay(rsps, job_4242("v0.0.42", "job_running"))
        client = make_client(version="v0.0.39")
        assert client.job(4242).state is JobState.RUNNING
        assert client.api_version == "v0.0.42"
    assert VersionCache(str(tmp_path)).get(URL)["version"] == "v0.0.42"


def test_no_known_version(make_client):
    with responses.RequestsMock() as rsps:
        no_openapi(rsps)
        for version in ALL:
            rsps.add("GET", "%s/slurm/%s/ping" % (URL, version), status=404, body="nope")
        with pytest.raises(RestError, match="serves none of the API versions"):
            make_client().api_version


def test_discovery_in_one_request_from_the_paths(make_client, tmp_path):
    """22.05's /openapi/v3 (recorded live) names its versions only in paths."""
    record = fixture("v0.0.38", "openapi")
    assert "x-slurm" not in record["body"]["info"]
    with responses.RequestsMock() as rsps:
        replay(rsps, record)
        client = make_client()
        assert client.api_version == "v0.0.38" and client.requests_made == 1
        assert client.release is None and client.newer_versions == ()
    assert VersionCache(str(tmp_path)).get(URL)["version"] == "v0.0.38"


def test_discovery_from_x_slurm_data_parsers(make_client):
    with responses.RequestsMock() as rsps:
        openapi(rsps, ["v0.0.42", "v0.0.43", "v0.0.44", "v0.0.45"], release="26.05.5")
        client = make_client()
        assert client.api_version == "v0.0.45" and client.requests_made == 1
        assert client.release == "26.05.5"


def test_newer_versions_than_known_use_the_newest_known(make_client, caplog):
    caplog.set_level(logging.INFO, logger="scrun_rest")
    with responses.RequestsMock() as rsps:
        openapi(rsps, ["v0.0.43", "v0.0.44", "v0.0.45", "v0.0.46", "v0.0.47"])
        client = make_client()
        assert client.api_version == versions.NEWEST == "v0.0.45"
        assert client.newer_versions == ("v0.0.47", "v0.0.46")
    assert any("newer than scrun-rest knows; using v0.0.45" in r.getMessage()
               for r in caplog.records)


def test_only_unknown_versions_served(make_client):
    with responses.RequestsMock() as rsps:
        openapi(rsps, ["v0.0.36", "v0.0.37"])
        with pytest.raises(RestError, match="serves none of the API versions"):
            make_client().api_version


@pytest.mark.parametrize("status,body,content_type", [
    (404, "Unable find requested URL", "text/plain"),
    (200, "<html>proxy</html>", "text/html"),
    (200, '{"openapi": "3.0.3", "info": {}, "paths": {"/openapi": {}}}', "application/json"),
    (500, '{"errors": []}', "application/json"),
])
def test_discovery_falls_back_to_pings(make_client, status, body, content_type):
    with responses.RequestsMock() as rsps:
        rsps.add("GET", URL + "/openapi/v3", status=status, body=body, content_type=content_type)
        for newer in ALL[:ALL.index("v0.0.42")]:
            rsps.add("GET", "%s/slurm/%s/ping" % (URL, newer), status=404, body="nope")
        replay(rsps, fixture("v0.0.42", "ping"))
        assert make_client().api_version == "v0.0.42"


def test_cache_expires(make_client, tmp_path):
    cache = VersionCache(str(tmp_path), clock=lambda: 1000.0)
    cache.put(URL, "v0.0.40", "23.11.10")
    later = VersionCache(str(tmp_path), clock=lambda: 1000.0 + CACHE_LIFETIME + 1)
    assert VersionCache(str(tmp_path), clock=lambda: 1000.0 + CACHE_LIFETIME).get(URL)
    assert later.get(URL) is None
    assert VersionCache(str(tmp_path), clock=lambda: 900.0).get(URL) is None  # clock went back


def test_an_expired_cache_is_discovered_again(tmp_path, clock):
    stale = VersionCache(str(tmp_path), clock=lambda: 0.0)
    stale.put(URL, "v0.0.40", "23.11.10")
    config = Config({"RestUrl": URL}, environ={})
    transport = Transport(URL, sleep=clock.sleep, clock=clock)
    with responses.RequestsMock() as rsps:
        openapi(rsps, ["v0.0.42"], release="24.11.7")
        client = RestClient(config, FakeTokens(), cache=VersionCache(str(tmp_path)),
                            transport=transport)
        assert client.api_version == "v0.0.42"
    assert VersionCache(str(tmp_path)).get(URL)["release"] == "24.11.7"


def test_a_new_release_in_an_answer_means_discovering_again(make_client, tmp_path):
    """Cached v0.0.40 from 23.11; the server now runs 24.11 and also serves v0.0.42."""
    cache = VersionCache(str(tmp_path))
    cache.put(URL, "v0.0.40", "23.11.10")
    running = job_4242("v0.0.40", "job_running")
    running["body"]["meta"]["slurm"]["release"] = "24.11.7"
    with responses.RequestsMock() as rsps:
        replay(rsps, running)
        openapi(rsps, ["v0.0.40", "v0.0.41", "v0.0.42"], release="24.11.7")
        replay(rsps, job_4242("v0.0.42", "job_running"))
        client = make_client()
        assert client.job(4242).state is JobState.RUNNING
        assert VersionCache(str(tmp_path)).get(URL) is None
        assert client.job(4242).state is JobState.RUNNING
        assert client.api_version == "v0.0.42" and client.requests_made == 3


def test_discover_ignores_the_cache(make_client):
    with responses.RequestsMock() as rsps:
        openapi(rsps, ["v0.0.44"])
        client = make_client(version="v0.0.40")
        assert client.discover() == "v0.0.44" and client.requests_made == 1


# -- operations ------------------------------------------------------------------------

@pytest.mark.parametrize("version", fixture_versions("submit_ok"))
def test_submit_sends_the_versions_body(make_client, version):
    request = {"script": "#!/bin/sh\nexit 3\n", "environment": {"PATH": "/bin"},
               "name": "t", "time_limit": "INFINITE", "requeue": False}
    with responses.RequestsMock() as rsps:
        replay(rsps, fixture(version, "submit_ok"))
        job_id = make_client(version=version).submit(request)
        sent = rsps.calls[0].request
    assert job_id == fixture(version, "submit_ok")["body"]["job_id"]
    assert json.loads(sent.body) == versions.submit_body(version, request)
    assert sent.headers["Content-Type"] == "application/json"


def test_unsupported_field_fails_before_sending(make_client):
    with responses.RequestsMock() as rsps:
        client = make_client(version="v0.0.38")
        with pytest.raises(UnsupportedField) as info:
            client.submit({"script": "x", "environment": {"A": "b"}, "overcommit": True})
        with pytest.raises(UnsupportedField):
            client.check_request({"script": "x", "environment": {"A": "b"}, "overcommit": True})
        assert info.value.field == "overcommit" and not rsps.calls


@pytest.mark.parametrize("version", fixture_versions("submit_bad_partition"))
def test_submit_rejected(make_client, version):
    with responses.RequestsMock() as rsps:
        replay(rsps, fixture(version, "submit_bad_partition"))
        with pytest.raises(RestError) as info:
            make_client(version=version).submit({"script": "x", "environment": {"A": "b"}})
    assert info.value.slurm_errno == 2000 and info.value.http_status >= 400
    assert str(info.value).startswith("Slurm error 2000: ") and URL in str(info.value)
    assert "\n" not in str(info.value)


JOB_CASES = [
    ("job_completed_exit3", JobState.FAILED, 3, None),
    ("job_killed_sigterm", None, None, 15),
    ("job_signalled_term", None, None, 15),
    ("job_pending", JobState.PENDING, None, None),
    ("job_running", JobState.RUNNING, None, None),
    ("job_cancelled", JobState.CANCELLED, "any", "any"),
]


@pytest.mark.parametrize("version,name,state,status,signal", [
    (v,) + case for case in JOB_CASES for v in fixture_versions(case[0])])
def test_job_results(make_client, version, name, state, status, signal):
    record = fixture(version, name)
    job_id = record["body"]["jobs"][0]["job_id"]
    with responses.RequestsMock() as rsps:
        replay(rsps, record)
        info = make_client(version=version).job(job_id)
    assert info.job_id == job_id
    if state is not None:
        assert info.state is state
    if status != "any":
        assert (info.exit_status, info.exit_signal) == (status, signal)


@pytest.mark.parametrize("version,name", [
    (v, n) for n in ("job_unknown", "job_unknown_500") for v in fixture_versions(n)])
def test_unknown_job(make_client, version, name):
    record = fixture(version, name)
    with responses.RequestsMock() as rsps:
        replay(rsps, record)
        with pytest.raises(JobNotFound) as info:
            make_client(version=version).job(path_job_id(record))
    assert info.value.slurm_errno == 2017
    assert str(info.value).startswith("Slurm error 2017: Invalid job id specified")


@pytest.mark.parametrize("version,name", [
    (v, n) for n in ("delete_unknown",) + tuple("delete_unknown" + r for r in OLDER_RELEASES)
    for v in fixture_versions(n)])
def test_delete_unknown_job(make_client, version, name):
    record = fixture(version, name)
    with responses.RequestsMock() as rsps:
        replay(rsps, record)
        with pytest.raises(JobNotFound):
            make_client(version=version).cancel(path_job_id(record))


def bare_answers(version):
    return versions.delete_answer_is_bare(version, fixture(version, "signal_ok")["body"])


@pytest.mark.parametrize("version", [v for v in fixture_versions("signal_ok")
                                     if not bare_answers(v)])
def test_signal_and_cancel(make_client, version):
    signal_record = fixture(version, "signal_ok")
    job_id = path_job_id(signal_record)
    with responses.RequestsMock() as rsps:
        replay(rsps, signal_record)
        client = make_client(version=version)
        client.signal(job_id, "SIGTERM")
        assert rsps.calls[0].request.url.endswith("?signal=15")
    delete = fixture(version, "delete_ok")
    with responses.RequestsMock() as rsps:
        replay(rsps, delete)
        make_client(version=version).cancel(path_job_id(delete))
        assert "?" not in rsps.calls[0].request.url


def test_24_11_answers_every_delete_through_v40_v41_bare():
    """Recorded from 24.11.5: signal, cancel and unknown job alike, 200 and no status
    (the other tests of bare answers say what the client does then)."""
    for version in ("v0.0.40", "v0.0.41"):
        for name in ("signal_ok", "delete_ok", "delete_unknown_bare"):
            assert versions.delete_answer_is_bare(version, fixture(version, name)["body"])


@pytest.mark.parametrize("sig,number", [(15, 15), ("15", 15), ("TERM", 15), ("sigkill", 9),
                                        ("USR1", 10)])
def test_signal_spellings(make_client, sig, number):
    with responses.RequestsMock() as rsps:
        rsps.add("DELETE", URL + "/slurm/v0.0.44/job/5", json={"status": [], "errors": []},
                 match=[matchers.query_param_matcher({"signal": str(number)})])
        make_client(version="v0.0.44").signal(5, sig)


@pytest.mark.parametrize("sig", ["NOPE", 0, 200, "SIG_DFL", None])
def test_bad_signal(make_client, sig):
    with pytest.raises(RestError, match="not a signal"):
        make_client(version="v0.0.44").signal(5, sig)


@pytest.mark.parametrize("job_id", [0, -1, "x", None, True])
def test_bad_job_id(make_client, job_id):
    with pytest.raises(RestError, match="not a Slurm job id"):
        make_client(version="v0.0.44").job(job_id)


# -- auth -----------------------------------------------------------------------------

def test_headers_token_and_user_never_bearer(make_client):
    with responses.RequestsMock() as rsps:
        serve_version(rsps, "v0.0.42")
        make_client().api_version
        for call in rsps.calls:
            headers = call.request.headers
            assert headers["X-SLURM-USER-TOKEN"] == TOKEN
            assert headers["X-SLURM-USER-NAME"] == "alice"
            assert "Authorization" not in headers


@pytest.mark.parametrize("version,name", [
    (v, n) for n in ("bad_token", "no_auth", "expired_token") for v in fixture_versions(n)])
def test_rejected_token(make_client, version, name):
    record = fixture(version, name)
    with responses.RequestsMock() as rsps:
        replay(rsps, record)
        with pytest.raises(AuthRejected) as info:
            make_client(version=version).ping()
    assert info.value.http_status == record["status"]
    assert str(info.value).startswith("slurmrestd at %s rejected the token (HTTP %d)"
                                      % (URL, record["status"]))
    assert TOKEN not in str(info.value)


def test_auth_failure_during_discovery(make_client):
    with responses.RequestsMock() as rsps:
        rsps.add("GET", URL + "/openapi/v3", status=401, body="Authentication failure")
        with pytest.raises(AuthRejected, match=r"\(HTTP 401\)"):
            make_client().api_version
    with responses.RequestsMock() as rsps:
        no_openapi(rsps)
        rsps.add("GET", "%s/slurm/%s/ping" % (URL, versions.NEWEST), status=401,
                 body="Authentication failure")
        with pytest.raises(AuthRejected, match=r"\(HTTP 401\)"):
            make_client().api_version


# -- malformed answers -------------------------------------------------------------------

@pytest.mark.parametrize("status,body,content_type,match", [
    (200, "<html><body>Gateway</body></html>", "text/html", "unreadable answer"),
    (200, '{"jobs": [{"job_id": 1, "job_st', "application/json", "unreadable answer"),
    (200, "", "application/json", "unreadable answer"),
    (200, "[1, 2]", "application/json", "unreadable answer"),
    (200, '{"errors": [{"error_number": 9001, "error": "oops"}], "jobs": []}',
     "application/json", "Slurm error 9001: oops"),
    (500, "<html>Internal Server Error</html>", "text/html", "answered HTTP 500"),
    (418, "", "text/plain", "answered HTTP 418"),
])
def test_malformed_answers_are_rest_errors(make_client, status, body, content_type, match):
    with responses.RequestsMock() as rsps:
        rsps.add("GET", URL + "/slurm/v0.0.40/ping", status=status, body=body,
                 content_type=content_type)
        with pytest.raises(RestError, match=match) as info:
            make_client(version="v0.0.40").ping()
    assert "\n" not in str(info.value) and URL in str(info.value)


MALFORMED = [
    # status, body, content type, and the error a DELETE gets (None: done)
    (200, "not json at all", "application/json", "unreadable answer"),
    (200, '{"jobs": [{"job_id": 43, "job_st', "application/json", "unreadable answer"),
    (200, "<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html",
     "unreadable answer"),
    (500, "<html><body>Internal Server Error</body></html>", "text/html", "answered HTTP 500"),
    (200, '{"errors": [{"error_number": 9001, "error": "oops"}]}', "application/json",
     "Slurm error 9001: oops"),
    # No error list: nothing says the DELETE failed.
    (200, '{"errors": "not a list", "jobs": "nor this"}', "application/json", None),
    (200, '{"errors": [null, 5, {"error": null}]}', "application/json", "unknown error"),
    (200, "null", "application/json", "unreadable answer"),
]
OPERATIONS = [
    ("GET", "job/43", lambda c: c.job(43)),
    ("POST", "job/submit", lambda c: c.submit({"script": "x", "environment": {"A": "b"}})),
    ("DELETE", "job/43", lambda c: c.cancel(43)),
    ("DELETE", "job/43", lambda c: c.signal(43, "TERM")),
]


@pytest.mark.parametrize("method,op,call", OPERATIONS, ids=[o[2].__name__ + o[1] for o in
                                                           OPERATIONS])
@pytest.mark.parametrize("status,body,content_type,delete_error", MALFORMED)
def test_every_operation_turns_a_malformed_answer_into_one_rest_error(
        make_client, method, op, call, status, body, content_type, delete_error):
    """Never a KeyError or TypeError: one line that names the server."""
    with responses.RequestsMock() as rsps:
        rsps.add(method, URL + "/slurm/v0.0.38/" + op, status=status, body=body,
                 content_type=content_type)
        client = make_client(version="v0.0.38")
        if method == "DELETE" and delete_error is None:
            # Only DELETE may take a 200 with nothing usable as "done".
            call(client)
            return
        with pytest.raises(RestError, match=delete_error if method == "DELETE" else None) as info:
            call(client)
    assert "\n" not in str(info.value) and URL in str(info.value)


@pytest.mark.parametrize("payload", [
    {"jobs": [{"job_id": "43"}]}, {"jobs": None}, {}, {"jobs": [None, 5]},
])
def test_job_answer_without_the_job(make_client, payload):
    with responses.RequestsMock() as rsps:
        rsps.add("GET", URL + "/slurm/v0.0.44/job/43", json=payload)
        with pytest.raises(JobNotFound):
            make_client(version="v0.0.44").job(43)


@pytest.mark.parametrize("payload", [{"job_id": 0}, {"job_id": "12"}, {}])
def test_submit_answer_without_job_id(make_client, payload):
    with responses.RequestsMock() as rsps:
        rsps.add("POST", URL + "/slurm/v0.0.44/job/submit", json=payload)
        with pytest.raises(RestError, match="sent no job id"):
            make_client(version="v0.0.44").submit({"script": "x", "environment": {"A": "b"}})


def test_odd_job_fields_do_not_raise(make_client):
    entry = {"job_id": 7, "job_state": 12, "exit_code": "x", "start_time": "y",
             "nodes": 5, "name": None}
    with responses.RequestsMock() as rsps:
        rsps.add("GET", URL + "/slurm/v0.0.44/job/7", json={"jobs": [entry]})
        info = make_client(version="v0.0.44").job(7)
    assert info.state is JobState.UNKNOWN and info.start_time is None and info.nodes is None


# -- retries and timeouts ----------------------------------------------------------------

def refused():
    inner = ConnectionRefusedError(111, "Connection refused")
    return requests.exceptions.ConnectionError(
        "HTTPConnectionPool: Max retries exceeded (Caused by NewConnectionError("
        "'Failed to establish a new connection: [Errno 111] Connection refused'))", inner)


def test_get_retries_connection_errors_and_5xx(make_client, clock):
    with responses.RequestsMock() as rsps:
        url = URL + "/slurm/v0.0.44/job/4242"
        rsps.add("GET", url, body=refused())
        rsps.add("GET", url, status=503, body="busy")
        rsps.add("GET", url, status=502, body="<html>bad gateway</html>", content_type="text/html")
        replay(rsps, job_4242("v0.0.44", "job_running"))
        client = make_client(version="v0.0.44")
        assert client.job(4242).state is JobState.RUNNING
        assert client.requests_made == 4 and clock.slept == [0.25, 0.5, 1.0]


def test_down_server_is_reported_within_budget(make_client, clock):
    with responses.RequestsMock() as rsps:
        rsps.add("GET", URL + "/slurm/v0.0.44/ping", body=refused())
        client = make_client(version="v0.0.44")
        with pytest.raises(RestUnreachable) as info:
            client.ping()
    assert str(info.value) == "slurmrestd at %s is unreachable: connection refused" % URL
    assert info.value.http_status is None
    assert clock.now <= transport_module.RETRY_BUDGET < 15
    assert client.requests_made == len(clock.slept) + 1 >= 4


def test_persistent_503_gives_the_answer_after_budget(make_client, clock):
    with responses.RequestsMock() as rsps:
        rsps.add("GET", URL + "/slurm/v0.0.44/ping", status=503, body="busy")
        with pytest.raises(RestError, match="answered HTTP 503"):
            make_client(version="v0.0.44").ping()
    assert clock.now <= transport_module.RETRY_BUDGET


def test_submit_is_not_retried_after_read_timeout(make_client, clock):
    with responses.RequestsMock() as rsps:
        rsps.add("POST", URL + "/slurm/v0.0.44/job/submit",
                 body=requests.exceptions.ReadTimeout("read timed out"))
        client = make_client(version="v0.0.44")
        with pytest.raises(RestUnreachable, match="did not answer POST"):
            client.submit({"script": "x", "environment": {"A": "b"}})
        assert client.requests_made == 1 and clock.slept == []


@pytest.mark.parametrize("status", [502, 503, 504])
def test_submit_is_not_retried_after_gateway_errors(make_client, status):
    with responses.RequestsMock() as rsps:
        rsps.add("POST", URL + "/slurm/v0.0.44/job/submit", status=status, json={
            "errors": [{"error_number": 1001, "error": "Communication connection failure"}]})
        client = make_client(version="v0.0.44")
        with pytest.raises(RestError, match="Slurm error 1001"):
            client.submit({"script": "x", "environment": {"A": "b"}})
        assert client.requests_made == 1


def test_submit_is_retried_when_it_never_connected(make_client, clock):
    with responses.RequestsMock() as rsps:
        url = URL + "/slurm/v0.0.44/job/submit"
        rsps.add("POST", url, body=refused())
        rsps.add("POST", url, body=requests.exceptions.ConnectTimeout("connect timeout"))
        submitted = fixture("v0.0.44", "submit_ok")
        replay(rsps, submitted)
        client = make_client(version="v0.0.44")
        assert client.submit({"script": "x", "environment": {"A": "b"}}) == \
            submitted["body"]["job_id"]
        assert client.requests_made == 3


def test_submit_not_retried_when_connection_dropped_mid_request(make_client):
    with responses.RequestsMock() as rsps:
        dropped = requests.exceptions.ConnectionError(
            "('Connection aborted.', RemoteDisconnected('Remote end closed connection'))")
        rsps.add("POST", URL + "/slurm/v0.0.44/job/submit", body=dropped)
        client = make_client(version="v0.0.44")
        with pytest.raises(RestUnreachable, match="closed without an answer"):
            client.submit({"script": "x", "environment": {"A": "b"}})
        assert client.requests_made == 1


def test_timeouts_and_tls_options(make_client):
    with responses.RequestsMock() as rsps:
        rsps.add("GET", "https://rest.test/slurm/v0.0.44/ping", json={"pings": []})
        client = make_client(url="https://rest.test/", version="v0.0.44",
                             values={"RestCaFile": "/etc/ca.pem"})
        client.ping()
        kwargs = rsps.calls[0].request.req_kwargs
    assert kwargs["timeout"] == (5.0, 30.0)
    assert kwargs["verify"] == "/etc/ca.pem"
    assert client.url == "https://rest.test"


@pytest.mark.parametrize("url", ["ftp://x", "rest.test:6820", "unix:relative/sock", ""])
def test_bad_urls(url):
    with pytest.raises(RestError, match="RestUrl"):
        Transport(url)


# -- logging ---------------------------------------------------------------------------

def test_each_request_is_logged_without_headers(make_client, caplog):
    caplog.set_level(logging.DEBUG, logger="scrun_rest")
    with responses.RequestsMock() as rsps:
        serve_version(rsps, ALL[1])
        replay(rsps, job_4242(ALL[1], "signal_ok"))
        client = make_client()
        client.signal(4242, 15)
    lines = [r.getMessage() for r in caplog.records if r.name == "scrun_rest.rest"]
    assert lines[0].startswith("rest #1 GET /openapi/v3 -> 404 in ")
    assert any(l.startswith("rest #2 GET /slurm/%s/ping -> 404 in " % ALL[0]) for l in lines)
    assert any(l.startswith("rest #3 GET /slurm/%s/ping -> 200 in " % ALL[1]) for l in lines)
    assert any(l.startswith("rest #4 DELETE /slurm/%s/job/4242?signal=15 -> 200 in " % ALL[1])
               and l.endswith(" ms") for l in lines)
    for record in caplog.records:
        assert TOKEN not in record.getMessage() and "alice" not in record.getMessage()


def test_blackholed_host_is_reported_within_15_s(make_client, clock):
    timeouts = []

    def hang(request):
        connect = request.req_kwargs["timeout"][0]
        timeouts.append(connect)
        clock.now += connect
        raise requests.exceptions.ConnectTimeout("Connection to rest.test timed out")

    with responses.RequestsMock() as rsps:
        rsps.add_callback("GET", URL + "/slurm/v0.0.44/ping", callback=hang)
        with pytest.raises(RestUnreachable, match="unreachable: timed out connecting"):
            make_client(version="v0.0.44").ping()
    assert clock.now <= 13.0 and len(timeouts) >= 2 and max(timeouts) <= 5.0


def test_unnumbered_details_are_kept():
    """22.05 says "Unknown key" without a number and 9001 "Failure during parsing" with one."""
    record = fixture("v0.0.38", "submit_unknown_key")
    client = RestClient(Config({"RestUrl": URL}, environ={}), FakeTokens(),
                        cache=VersionCache(""), transport=Transport(URL))
    client._version = "v0.0.38"
    with responses.RequestsMock() as rsps:
        replay(rsps, record)
        with pytest.raises(RestError) as info:
            client.submit({"script": "x", "environment": {"A": "b"}})
    assert info.value.slurm_errno == 9001 and info.value.http_status == 400
    assert 'Unknown key "no_such_key"' in str(info.value)
    assert str(info.value).startswith("Slurm error 9001: ")


def test_v38_token_refusal_reads_as_auth():
    record = fixture("v0.0.38", "bad_token")
    assert record["status"] == 500  # 22.05 has no better way to say it
    client = RestClient(Config({"RestUrl": URL}, environ={}), FakeTokens(),
                        cache=VersionCache(""), transport=Transport(URL))
    client._version = "v0.0.38"
    with responses.RequestsMock() as rsps:
        replay(rsps, record)
        with pytest.raises(AuthRejected) as info:
            client.ping()
    assert str(info.value) == "slurmrestd at %s rejected the token (HTTP 500)" % URL


REFUSED_CALLS = [
    ("submit_bad_token", lambda c, job_id: c.submit({"script": "x", "environment": {"A": "b"}})),
    ("job_bad_token", lambda c, job_id: c.job(job_id)),
    ("delete_bad_token", lambda c, job_id: c.cancel(job_id)),
]


@pytest.mark.parametrize("version,name,call", [
    (v, n + r, c) for n, c in REFUSED_CALLS for r in ("",) + OLDER_RELEASES
    for v in fixture_versions(n + r)])
def test_token_refusal_reads_as_auth_for_every_call(make_client, version, name, call):
    """22.05 says it three ways: -1 from slurm_load_job, 5005 with and
    without a source. 23.02-24.05 likewise, since slurmctld hangs up on a
    token it refuses: 5005 from _job_post_submit() and _handle_job_delete(),
    -1 from _handle_job_get() (src/plugins/openapi/v0.0.39/jobs.c at
    slurm-23-02-7-1, src/plugins/openapi/slurmctld/jobs.c at slurm-23-11-10-1
    and slurm-24-05-8-1); from 24.11, 1007 with HTTP 511. None of them may
    read as 'no such job', or renewal and `check` cannot tell."""
    record = fixture(version, name)
    job_id = None if name.startswith("submit_bad_token") else path_job_id(record)
    with responses.RequestsMock() as rsps:
        replay(rsps, record)
        with pytest.raises(AuthRejected) as info:
            call(make_client(version=version), job_id)
    assert str(info.value).startswith("slurmrestd at %s rejected the token (HTTP %d)"
                                      % (URL, record["status"]))
    assert info.value.http_status == record["status"]


def test_zero_bytes_from_24_11_on_is_not_a_token_refusal(make_client):
    """From 24.11 slurmctld answers a refused token (1007/511), so a 5005 there is a
    lost connection, not a refusal."""
    record = fixture("v0.0.41", "delete_bad_token_24.05")
    record["body"]["meta"]["slurm"]["release"] = "24.11.7"
    with responses.RequestsMock() as rsps:
        replay(rsps, record)
        with pytest.raises(RestError) as info:
            make_client(version="v0.0.41").cancel(43)
    assert not isinstance(info.value, AuthRejected) and info.value.slurm_errno == 5005


def test_held_job_is_submitted_despite_errors(make_client):
    record = fixture("v0.0.38", "submit_held")
    assert record["body"]["errors"][0]["error_code"] == 2042  # as 22.05 really says it
    with responses.RequestsMock() as rsps:
        replay(rsps, record)
        client = make_client(version="v0.0.38")
        assert client.submit({"script": "x", "environment": {"A": "b"}, "hold": True}) == \
            record["body"]["job_id"]
    assert "held state" in client.last_submit_message


def test_cancel_of_a_finished_job_is_a_success(make_client):
    record = fixture("v0.0.38", "delete_finished")
    with responses.RequestsMock() as rsps:
        replay(rsps, record)
        make_client(version="v0.0.38").cancel(path_job_id(record))


# -- fixes from the source review ----------------------------------------------------------

def test_gpu_request_on_23_02_uses_the_colon_prefix(make_client):
    """23.02 parses only gres:gpu:N (gres_prepend_tres_type() in src/common/gres.h and
    slurm_opt.c at slurm-23-02-7-1; gres/ from 23.11): the prefix follows the
    release, which a ping tells when discovery did not."""
    request = {"script": "x", "environment": {"A": "b"}, "gpus_per_node": "1"}
    with responses.RequestsMock() as rsps:
        replay(rsps, fixture("v0.0.39", "ping"))  # meta: 23.02.7
        replay(rsps, fixture("v0.0.39", "submit_ok"))
        client = make_client(version="v0.0.39")
        assert client.submit(request) == 41
        sent = json.loads(rsps.calls[-1].request.body)
    assert sent["job"]["tres_per_node"] == "gres:gpu:1"
    with responses.RequestsMock() as rsps:
        ping = fixture("v0.0.39", "ping")
        ping["body"]["meta"]["Slurm"]["release"] = "23.11.10"
        replay(rsps, ping)
        replay(rsps, fixture("v0.0.39", "submit_ok"))
        make_client(version="v0.0.39").submit(request)
        assert json.loads(rsps.calls[-1].request.body)["job"]["tres_per_node"] == "gres/gpu:1"


@pytest.mark.parametrize("version", ["v0.0.39", "v0.0.40"])
def test_a_queued_job_with_an_error_is_submitted(make_client, version, caplog):
    """23.02 and 23.11.0 answer HTTP 500 with a real job id when slurmctld queued the
    job but returned a non-fatal code: _job_submit_rc() in
    src/plugins/openapi/v0.0.39/jobs.c (slurm-23-02-7-1) and in
    src/plugins/openapi/slurmctld/jobs.c (slurm-23-11-0-1) adds it as an error
    after dumping job_id; job_allocate() in src/slurmctld/job_mgr.c keeps such
    jobs pending. Raising would orphan a job that runs."""
    record = fixture(version, "submit_queued_error")
    assert record["status"] == 500 and record["body"]["job_id"] == 45
    caplog.set_level(logging.WARNING, logger="scrun_rest")
    with responses.RequestsMock() as rsps:
        replay(rsps, record)
        client = make_client(version=version)
        assert client.submit({"script": "x", "environment": {"A": "b"}}) == 45
    assert "partition configuration not available" in client.last_submit_message
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.getMessage().startswith("job 45 is queued, though slurmrestd reported: ")


@pytest.mark.parametrize("version", [v for v in fixture_versions("ping_bad_token")
                                     if (FIXTURES / v / "job_bad_token.json").exists()])
def test_ping_cannot_tell_a_refused_token_verify_token_can(make_client, version):
    """From 23.02 ping answers 200 with the controller DOWN for a refused token
    (_op_handler_ping() in src/plugins/openapi/v0.0.39/diag.c at slurm-23-02-7-1 and
    src/plugins/openapi/slurmctld/diag.c from slurm-23-11-0-1 dump
    ping_all_controllers() and report no error); GET job asks slurmctld."""
    with responses.RequestsMock() as rsps:
        replay(rsps, fixture(version, "ping_bad_token"))
        probe = fixture(version, "job_bad_token")
        probe["path"] = "/slurm/%s/job/%d" % (version, versions.TOKEN_PROBE_JOB_ID)
        replay(rsps, probe)
        client = make_client(version=version)
        assert not any(c.up for c in client.ping())
        with pytest.raises(AuthRejected):
            client.verify_token()


def test_verify_token_takes_no_such_job_as_accepted(make_client):
    record = fixture("v0.0.44", "job_unknown")
    record["path"] = "/slurm/v0.0.44/job/%d" % versions.TOKEN_PROBE_JOB_ID
    assert versions.TOKEN_PROBE_JOB_ID < 0x03FFFFFF  # MAX_JOB_ID: larger ids never reach slurmctld
    with responses.RequestsMock() as rsps:
        replay(rsps, record)
        make_client(version="v0.0.44").verify_token()


def test_v39_without_slurmdbd_falls_back_to_v38_when_pinging(make_client, tmp_path):
    """23.02's v0.0.39 fails every request with 7000 and HTTP 500 without a slurmdbd
    connection (init_connection() in src/plugins/openapi/v0.0.39/api.c at
    slurm-23-02-7-1); 23.02 also serves v0.0.38, which needs none."""
    with responses.RequestsMock() as rsps:
        no_openapi(rsps)
        for newer in ALL[:ALL.index("v0.0.39")]:
            rsps.add("GET", "%s/slurm/%s/ping" % (URL, newer), status=404, body="nope")
        replay(rsps, fixture("v0.0.39", "ping_no_slurmdbd"))
        replay(rsps, fixture("v0.0.38", "ping"))
        assert make_client().api_version == "v0.0.38"
    assert VersionCache(str(tmp_path)).get(URL)["version"] == "v0.0.38"


def test_v39_without_slurmdbd_falls_back_to_v38_after_openapi(make_client):
    """/openapi/v3 lists v0.0.39 as the newest; its first answer says 7000."""
    paths = {"/slurm/%s/ping" % v: {} for v in ("v0.0.37", "v0.0.38", "v0.0.39")}
    running = fixture("v0.0.38", "job_running")
    running["body"]["meta"]["Slurm"]["release"] = "23.02.7"  # 23.02 serving v0.0.38
    job_id = running["body"]["jobs"][0]["job_id"]
    failed = fixture("v0.0.39", "job_no_slurmdbd")
    failed["path"] = "/slurm/v0.0.39/job/%d" % job_id
    with responses.RequestsMock() as rsps:
        rsps.add("GET", URL + "/openapi/v3", json={"info": {"version": "Slurm-23.02.7"},
                                                    "paths": paths})
        replay(rsps, failed)
        replay(rsps, running)
        client = make_client()
        assert client.job(job_id).state is JobState.RUNNING
        assert client.api_version == "v0.0.38" and client.requests_made == 4
        assert client.release == "23.02.7"


def test_a_submit_that_queued_a_job_is_not_retried_on_another_version(make_client):
    """23.02's _op_handler_submit_job() (src/plugins/openapi/v0.0.39/jobs.c) submits even
    after init_connection() failed with 7000: a job id in that answer is a job."""
    record = fixture("v0.0.39", "submit_queued_error")
    record["body"]["errors"] = fixture("v0.0.39", "ping_no_slurmdbd")["body"]["errors"]
    with responses.RequestsMock() as rsps:
        replay(rsps, record)
        client = make_client(version="v0.0.39")
        assert client.submit({"script": "x", "environment": {"A": "b"}}) == 45
        assert client.requests_made == 1


def bare_delete(version):
    """24.11's answer to DELETE job/4242 through v0.0.40/41: 200, no errors, no status."""
    record = fixture(version, "delete_unknown_bare")
    record["path"] = "/slurm/%s/job/4242" % version
    return record


def job_4242(version, name):
    record = fixture(version, name)
    record["path"] = "/slurm/%s/job/4242" % version
    for job in record["body"].get("jobs") or ():
        job["job_id"] = 4242
    return record


@pytest.mark.parametrize("version", ["v0.0.40", "v0.0.41"])
def test_a_bare_delete_after_an_upgrade_is_asked_again_through_the_newest(make_client, version):
    """24.11's openapi/slurmctld signals through slurm_kill_jobs(), which succeeds and
    reports a job's own failure only in the answer's status list (_signal_job() and
    _handle_job_delete() in openapi/slurmctld jobs.c, slurm-24-11-0-1 to 25-11);
    v0.0.40/41 answers have none, so an unknown job there looks cancelled."""
    with responses.RequestsMock() as rsps:
        replay(rsps, bare_delete(version))
        openapi(rsps, ["v0.0.40", "v0.0.41", "v0.0.42"], release="24.11.7")
        replay(rsps, job_4242("v0.0.42", "delete_unknown"))
        client = make_client(version=version)
        with pytest.raises(JobNotFound):
            client.cancel(4242)
        assert client.api_version == "v0.0.42"


@pytest.mark.parametrize("name,params,outcome", [
    ("job_unknown", None, JobNotFound),
    ("job_running", None, "refused"),
    ("job_cancelled", None, None),
    ("job_running", 15, None),
])
def test_a_bare_delete_where_no_better_version_is_served(make_client, name, params, outcome):
    with responses.RequestsMock() as rsps:
        replay(rsps, bare_delete("v0.0.41"))
        openapi(rsps, ["v0.0.40", "v0.0.41"], release="24.11.7")
        replay(rsps, job_4242("v0.0.41", name))
        client = make_client(version="v0.0.41")
        call = (lambda: client.cancel(4242)) if params is None else (
            lambda: client.signal(4242, params))
        if outcome is None:
            call()
        elif outcome is JobNotFound:
            with pytest.raises(JobNotFound):
                call()
        else:
            with pytest.raises(RestError, match="the cancel was refused"):
                call()


def test_a_delete_before_24_11_is_taken_at_its_word(make_client):
    """24.05 reports slurm_kill_job()'s errno itself: no second request."""
    with responses.RequestsMock() as rsps:
        record = fixture("v0.0.41", "delete_ok_24.05")
        replay(rsps, record)
        client = make_client(version="v0.0.41")
        client.cancel(path_job_id(record))
        assert client.requests_made == 1
