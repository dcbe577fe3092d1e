"""RestClient against the live testbed slurmrestd (contrib/testbed).

Needs root (tokens are minted with `scontrol token`) and slurmrestd at
127.0.0.1:6820, or $SCRUN_REST_TEST_URL; skipped otherwise, failed under CI.
"""
import os
import shutil
import subprocess
import time

import pytest
import requests

from scrun_rest.auth import TokenSource
from scrun_rest.config import Config
from scrun_rest.rest import AuthRejected, JobNotFound, JobState, RestClient
from scrun_rest.rest.cache import VersionCache

pytestmark = pytest.mark.testbed

URL = os.environ.get("SCRUN_REST_TEST_URL", "http://127.0.0.1:6820")
UNKNOWN_JOB = 2147480000


def _skip_reason():
    try:
        requests.get(URL + "/", timeout=3)
    except requests.RequestException as exc:
        return "slurmrestd at %s does not answer (%s)" % (URL, type(exc).__name__)
    if not shutil.which("scontrol"):
        return "scontrol is not installed"
    if os.geteuid() != 0:
        return "minting tokens for other users needs root"
    return None


_REASON = _skip_reason()


@pytest.fixture(autouse=True, scope="module")
def require_rest(unavailable):
    if _REASON:
        unavailable(_REASON)


def mint(user, lifespan=3600):
    out = subprocess.run(["scontrol", "token", "username=%s" % user, "lifespan=%d" % lifespan],
                         check=True, stdout=subprocess.PIPE, universal_newlines=True).stdout
    return out.strip()  # the SLURM_JWT=... line, as a user would paste it


def client_for(token_text, tmp_path):
    config = Config({"RestUrl": URL}, environ={})
    tokens = TokenSource(config, environ={"SLURM_JWT": token_text})
    return RestClient(config, tokens, cache=VersionCache(str(tmp_path)))


@pytest.fixture
def root_client(tmp_path):
    with client_for(mint("root"), tmp_path) as client:
        yield client


@pytest.fixture
def user_client(tmp_path):
    if subprocess.run(["id", "scruntest"], stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL).returncode:
        pytest.skip("the testbed user scruntest does not exist")
    with client_for(mint("scruntest"), tmp_path) as client:
        yield client


def job_request(script, **fields):
    request = {"script": "#!/bin/sh\n" + script + "\n", "name": "scrun-rest-live",
               "environment": {"PATH": "/usr/bin:/bin"}, "current_working_directory": "/tmp",
               "standard_output": "/dev/null", "standard_error": "/dev/null",
               "standard_input": "/dev/null", "requeue": False, "time_limit": 2}
    request.update(fields)
    return request


def wait_for(client, job_id, done, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        info = client.job(job_id)
        if done(info):
            return info
        time.sleep(0.25)
    pytest.fail("job %d stuck in %s" % (job_id, info.state))


def terminal(info):
    return info.state.is_terminal


def test_version_and_ping(root_client):
    assert root_client.api_version.startswith("v0.0.")
    assert any(c.up for c in root_client.ping())
    assert root_client.info()


def test_exit_code_3(root_client):
    job_id = root_client.submit(job_request("exit 3"))
    info = wait_for(root_client, job_id, terminal)
    assert info.state is JobState.FAILED
    assert (info.exit_status, info.exit_signal) == (3, None)
    assert info.user_name == "root" and info.name == "scrun-rest-live"


def test_death_by_sigterm(root_client):
    job_id = root_client.submit(job_request("kill -TERM $$\nsleep 30"))
    info = wait_for(root_client, job_id, terminal)
    assert (info.exit_status, info.exit_signal) == (None, 15)


def test_signal_through_rest(root_client, tmp_path):
    # RUNNING comes before the batch script exists; a signal sent in between
    # is lost, so wait for the script itself to say it runs.
    marker = tmp_path / "running"
    job_id = root_client.submit(job_request("touch %s; sleep 60" % marker))
    deadline = time.time() + 60
    while not marker.exists() and time.time() < deadline:
        time.sleep(0.1)
    assert marker.exists()
    root_client.signal(job_id, "TERM")
    info = wait_for(root_client, job_id, terminal)
    assert info.exit_signal == 15 and info.exit_status is None


def test_cancel_pending_and_finished(root_client):
    job_id = root_client.submit(job_request("true", hold=True))
    assert root_client.job(job_id).state is JobState.PENDING
    root_client.cancel(job_id)
    assert wait_for(root_client, job_id, terminal).state is JobState.CANCELLED
    root_client.cancel(job_id)  # already finished: still a success


def test_requeue_false_is_honoured(root_client):
    job_id = root_client.submit(job_request("sleep 5"))
    try:
        assert root_client.job(job_id).raw.get("requeue") is False
    finally:
        root_client.cancel(job_id)


def test_unknown_job(root_client):
    with pytest.raises(JobNotFound) as info:
        root_client.job(UNKNOWN_JOB)
    assert info.value.slurm_errno == 2017
    with pytest.raises(JobNotFound):
        root_client.signal(UNKNOWN_JOB, 15)


def test_bad_token(tmp_path):
    good = mint("root").split("=", 1)[1]
    forged = good.rsplit(".", 1)[0] + "." + "A" * 43
    with client_for(forged, tmp_path) as client:
        with pytest.raises(AuthRejected) as info:
            client.ping()
        with pytest.raises(AuthRejected):
            client.verify_token()
    assert forged not in str(info.value) and good not in str(info.value)


def test_verify_token_accepts_a_good_one(root_client):
    root_client.verify_token()


def test_normal_user(user_client):
    job_id = user_client.submit(job_request("exit 0"))
    info = wait_for(user_client, job_id, terminal)
    assert info.user_name == "scruntest"
    assert info.state is JobState.COMPLETED and info.exit_status == 0
