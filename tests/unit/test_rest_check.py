"""`scrun-rest check`: what it prints and its exit status."""
import base64
import io
import json
import pathlib

import pytest
import requests
import responses

from scrun_rest.readiness import run_check
from scrun_rest.config import Config
from scrun_rest.rest import versions

URL = "http://check.test:6820"
NOW = 1_700_000_000
FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "rest"


def token(exp=NOW + 7200, sun="alice"):
    part = lambda o: base64.urlsafe_b64encode(json.dumps(o).encode()).rstrip(b"=").decode()  # noqa
    return "%s.%s.c2ln" % (part({"alg": "HS256"}), part({"sun": sun, "exp": exp, "iat": NOW}))


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setattr("scrun_rest.rest.transport.time.sleep", lambda s: None)


def check(env_token=None, url=URL):
    out = io.StringIO()
    config = Config({"RestUrl": url} if url else {}, path="/etc/scrun-rest/scrun-rest.conf",
                    environ={})
    env = {"SLURM_JWT": env_token} if env_token else {}
    status = run_check(config, out=out, environ=env, clock=lambda: NOW)
    return status, out.getvalue()


def no_openapi(rsps):
    rsps.add("GET", URL + "/openapi/v3", status=404, body="nope", content_type="text/plain")


def serve(rsps, version):
    record = json.loads((FIXTURES / version / "ping.json").read_text())
    serve_pings_then(rsps, version, record["body"])
    token_probe(rsps, version, "job_unknown")
    return versions.release_of(version, record["body"])


def serve_pings_then(rsps, version, body):
    no_openapi(rsps)
    for newer in versions.NEWEST_FIRST[:versions.NEWEST_FIRST.index(version)]:
        rsps.add("GET", "%s/slurm/%s/ping" % (URL, newer), status=404, body="nope",
                 content_type="text/plain")
    rsps.add("GET", "%s/slurm/%s/ping" % (URL, version), json=body)
    rsps.add("GET", "%s/slurm/%s/ping" % (URL, version), json=body)


def token_probe(rsps, version, name):
    """check's GET job/TOKEN_PROBE_JOB_ID, answered with a fixture's body and status."""
    record = json.loads((FIXTURES / version / (name + ".json")).read_text())
    rsps.add("GET", "%s/slurm/%s/job/%d" % (URL, version, versions.TOKEN_PROBE_JOB_ID),
             json=record["body"], status=record["status"])


@pytest.mark.parametrize("version", ["v0.0.41", "v0.0.45"])
def test_ready(tmp_path, version):
    with responses.RequestsMock() as rsps:
        release = serve(rsps, version)
        status, text = check(token())
    assert status == 0
    assert "slurmrestd URL:      %s\n" % URL in text
    assert "API version:         %s\n" % version in text
    assert "slurmrestd release:  %s\n" % release in text
    assert "token user:          alice\n" in text
    assert "token expires:       2023-11-15T00:13:20Z (in 2 h 0 min)\n" in text
    assert "slurmctld:           vm UP (primary)\n" in text  # the testbed roots' host
    assert "token accepted:      yes, by slurmctld\n" in text
    assert text.endswith("ready to submit\n") and "problem" not in text
    assert token() not in text


def test_unreachable():
    with responses.RequestsMock() as rsps:
        rsps.add("GET", URL + "/openapi/v3", body=requests.exceptions.ConnectionError(
            "Max retries exceeded (Caused by NewConnectionError: Connection refused)"))
        status, text = check(token())
    assert status != 0
    assert "problem: slurmrestd at %s is unreachable: connection refused\n" % URL in text


def test_token_rejected():
    with responses.RequestsMock() as rsps:
        rsps.add("GET", URL + "/openapi/v3", status=401, body="Authentication failure")
        status, text = check(token())
    assert status != 0 and "problem: slurmrestd at %s rejected the token (HTTP 401)" % URL in text


def test_expired_token_still_checks_reachability():
    with responses.RequestsMock() as rsps:
        rsps.add("GET", URL + "/openapi/v3", status=401, body="Authentication failure")
        status, text = check(token(exp=NOW - 60))
    problems = [l for l in text.splitlines() if l.startswith("problem:")]
    assert status != 0 and len(problems) == 1
    assert "expired at 2023-11-14T22:12:20Z" in problems[0]


def test_expired_token_and_dead_server_are_two_problems():
    with responses.RequestsMock() as rsps:
        rsps.add("GET", URL + "/openapi/v3", body=requests.exceptions.ConnectionError(
            "NewConnectionError: Connection refused"))
        status, text = check(token(exp=NOW - 60))
    problems = [l for l in text.splitlines() if l.startswith("problem:")]
    assert status != 0 and len(problems) == 2 and "unreachable" in problems[1]


def test_no_supported_version():
    with responses.RequestsMock() as rsps:
        no_openapi(rsps)
        for version in versions.NEWEST_FIRST:
            rsps.add("GET", "%s/slurm/%s/ping" % (URL, version), status=404, body="nope")
        status, text = check(token())
    assert status != 0 and "serves none of the API versions" in text


def test_no_url_and_no_token():
    status, text = check(None, url=None)
    problems = [l for l in text.splitlines() if l.startswith("problem:")]
    assert status != 0 and len(problems) == 2
    assert "RestUrl is not set" in problems[0] and "no Slurm token" in problems[1]


def test_controller_down():
    body = {"meta": {}, "errors": [], "pings": [{"hostname": "ctl", "pinged": "DOWN",
                                                "mode": "primary"}]}
    with responses.RequestsMock() as rsps:
        no_openapi(rsps)
        rsps.add("GET", "%s/slurm/%s/ping" % (URL, versions.NEWEST), json=body)
        rsps.add("GET", "%s/slurm/%s/ping" % (URL, versions.NEWEST), json=body)
        token_probe(rsps, versions.NEWEST, "job_unknown")
        status, text = check(token())
    assert status != 0 and "slurmctld:           ctl DOWN (primary)" in text
    assert "cannot reach any slurmctld" in text


def test_newer_versions_are_named_in_one_line():
    record = json.loads((FIXTURES / "v0.0.45" / "ping.json").read_text())
    info = {"version": "Slurm-26.11.0&openapi/slurmctld",
            "x-slurm": {"release": "26.11.0",
                        "data_parsers": ["data_parser/v0.0.%d" % n for n in (43, 44, 45, 46)]}}
    with responses.RequestsMock() as rsps:
        rsps.add("GET", URL + "/openapi/v3", json={"info": info, "paths": {}})
        rsps.add("GET", URL + "/slurm/v0.0.45/ping", json=record["body"])
        token_probe(rsps, "v0.0.45", "job_unknown")
        status, text = check(token())
    assert status == 0 and "API version:         v0.0.45\n" in text
    [line] = [l for l in text.splitlines() if "v0.0.46" in l]
    assert line == ("newer API:           v0.0.46 served too, unknown to this scrun-rest; "
                    "v0.0.45 is the newest both know")


def test_check_discovers_afresh(tmp_path):
    """A cached version may predate an upgrade: check asks the server itself."""
    from scrun_rest.rest.cache import VersionCache, runtime_dir
    cache = VersionCache(runtime_dir({"XDG_RUNTIME_DIR": str(tmp_path)}))
    cache.put(URL, "v0.0.40", "23.11.10")
    assert cache.get(URL)["version"] == "v0.0.40"
    with responses.RequestsMock() as rsps:
        serve(rsps, "v0.0.44")
        status, text = check(token())
    assert status == 0 and "API version:         v0.0.44\n" in text


@pytest.mark.parametrize("version", ["v0.0.42", "v0.0.45"])
def test_a_refused_token_is_not_a_down_controller(version):
    """From 23.02 ping answers 200 with the controller DOWN (not responding) for a
    token slurmctld refuses: _op_handler_ping() dumps ping_all_controllers() and
    reports no error (src/plugins/openapi/slurmctld/diag.c at slurm-24-11-0-1 and
    slurm-26-05-0-1). check must not call that success nor blame slurmctld: the
    GET job it sends fails loudly (1007, HTTP 511 from 24.11)."""
    ping = json.loads((FIXTURES / version / "ping_bad_token.json").read_text())
    assert ping["status"] == 200
    with responses.RequestsMock() as rsps:
        serve_pings_then(rsps, version, ping["body"])
        token_probe(rsps, version, "job_bad_token")
        status, text = check(token())
    problems = [l for l in text.splitlines() if l.startswith("problem:")]
    assert status != 0 and "ready to submit" not in text
    assert problems == ["problem: slurmrestd at %s rejected the token (HTTP 511): "
                        "Unable to query JobId=%d; Protocol authentication error"
                        % (URL, versions.TOKEN_PROBE_JOB_ID)]


def test_minus_one_with_every_controller_down_names_both_causes():
    """23.02-24.05 answer -1 to GET job both when slurmctld refused the token (it hangs
    up) and when it cannot be reached (_handle_job_get() in
    src/plugins/openapi/v0.0.39/jobs.c at slurm-23-02-7-1)."""
    ping = json.loads((FIXTURES / "v0.0.39" / "ping_bad_token.json").read_text())
    with responses.RequestsMock() as rsps:
        serve_pings_then(rsps, "v0.0.39", ping["body"])
        token_probe(rsps, "v0.0.39", "job_bad_token")
        status, text = check(token())
    problems = [l for l in text.splitlines() if l.startswith("problem:")]
    assert problems == ["problem: slurmrestd at %s cannot reach any slurmctld, or slurmctld "
                        "refused the token (HTTP 500, error -1)" % URL]

