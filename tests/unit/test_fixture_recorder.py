"""record.py, the recorder of the REST fixtures: choosing the version, tokens, README."""
import importlib.util
import json
import pathlib

import pytest
import responses

from scrun_rest.rest import versions

RECORD = pathlib.Path(__file__).parent / "fixtures" / "rest" / "record.py"
URL = "http://rec.test:7020"
SERVED = ("v0.0.42", "v0.0.41", "v0.0.40")  # as 24.11 serves them


@pytest.fixture(scope="module")
def record():
    spec = importlib.util.spec_from_file_location("record", RECORD)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def serve(rsps):
    """Pings of every version: SERVED answer, the rest 404 as slurmrestd does."""
    meta = {"slurm": {"release": "24.11.5"}}
    for version in versions.NEWEST_FIRST + ("v0.0.46",):
        url = "%s/slurm/%s/ping" % (URL, version)
        if version in SERVED:
            rsps.add("GET", url, json={"meta": meta, "pings": [], "errors": []})
        else:
            rsps.add("GET", url, status=404, body="Unable find requested URL",
                     content_type="text/plain")


def recorder(record, tmp_path):
    return record.Recorder(URL, "root", "not-a-token", str(tmp_path), "test server")


def test_an_older_version_gets_the_next_unserved_one_up(record, tmp_path):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        serve(rsps)
        rec = recorder(record, tmp_path)
        ping, unserved = rec.discover("v0.0.40")
    assert rec.version == "v0.0.40" and ping["path"] == "/slurm/v0.0.40/ping"
    assert unserved["path"] == "/slurm/v0.0.43/ping" and unserved["status"] == 404
    assert rec.source.startswith(record.LIVE + "Slurm 24.11.5's slurmrestd (test server) on ")


def test_the_default_is_the_newest_served(record, tmp_path):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        serve(rsps)
        rec = recorder(record, tmp_path)
        rec.discover()
    assert rec.version == "v0.0.42"


def test_an_unserved_version_is_refused(record, tmp_path):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        serve(rsps)
        with pytest.raises(SystemExit) as info:
            recorder(record, tmp_path).discover("v0.0.44")
    assert str(info.value) == ("%s does not serve v0.0.44; it serves %s"
                               % (URL, ", ".join(SERVED)))


def test_local_tokens_carry_what_auth_jwt_checks(record, tmp_path):
    jwt = pytest.importorskip("jwt")
    key = tmp_path / "jwt_hs256.key"
    key.write_bytes(b"k" * 32)
    token = record.key_minter(str(key))("scruntest", lifespan=60)
    claims = jwt.decode(token, b"k" * 32, algorithms=["HS256"])
    assert claims["sun"] == "scruntest" and claims["exp"] - claims["iat"] == 60


def test_readme_tells_recorded_from_hand_built(record, tmp_path):
    def put(name, status, note):
        (tmp_path / (name + ".json")).write_text(json.dumps({"status": status, "note": note}))
    put("ping", 200, "GET ping; " + record.LIVE + "Slurm 24.11.5's slurmrestd (x) on 2026-12-06")
    put("old_24.05", 500, "hand-built for Slurm 24.05")
    (tmp_path / "README.md").write_text("# old\n\n## Notes\n\nkept text\n")
    record.write_readme(str(tmp_path), "v0.0.41")
    text = (tmp_path / "README.md").read_text()
    assert "| `ping.json` | 200 | GET ping |" in text
    assert "Slurm 24.11.5's slurmrestd (x) on 2026-12-06." in text
    assert "- `old_24.05.json` (HTTP 500): hand-built for Slurm 24.05" in text
    assert text.endswith("## Notes\n\nkept text\n")
