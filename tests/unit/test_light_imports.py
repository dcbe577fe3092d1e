"""The commands podman runs most often stay light.

podman calls `state` many times per container, and `kill`/`delete` at every
stop. They must not load the heavy dependencies (requests, jsonschema, lupa,
jwt), and `state` must not even load the stdlib modules that dominate its
start-up (re, enum, json...), or it cannot stay within 1.5x of a bare
`python -c pass` (contrib/bench/bench.py measures that; the README has the
numbers). Each command runs for real in a fresh interpreter, against a
spool directory made here, and reports what it imported.
"""
import json
import os
import subprocess
import sys

import pytest

HEAVY = {"requests", "jsonschema", "lupa", "jwt", "urllib3", "referencing"}
# Together about 10 ms of the ~12 ms `state` may take: see the module docstring.
STATE_MUST_NOT_LOAD = {"re", "enum", "json", "tempfile", "shlex", "socket", "signal",
                       "logging", "asyncio", "subprocess", "argparse"}
CID = "light-imports-test"

# Takes its list of modules before it imports json to report it (io is
# loaded at start-up anyway).
RUNNER = r"""
import io, sys
from scrun_rest.cli.main import main
stdout, sys.stdout = sys.stdout, io.StringIO()
code = main(sys.argv[1:])
printed, sys.stdout = sys.stdout.getvalue(), stdout
modules = sorted(sys.modules)
import json
print(json.dumps({"code": code, "printed": printed, "modules": modules}))
"""


def run_command(root, *argv):
    env = dict(os.environ, XDG_RUNTIME_DIR=str(root))
    result = subprocess.run([sys.executable, "-c", RUNNER, "--root", str(root)] + list(argv),
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    report["top"] = {name.split(".")[0] for name in report["modules"]}
    return report


def make_container(root, status, pid):
    spool = root / CID
    spool.mkdir(mode=0o700)
    (spool / "state.json").write_text(json.dumps({
        "ociVersion": "1.0.2", "id": CID, "status": status, "pid": pid,
        "bundle": "/tmp", "annotations": {"a": "b"}, "job_id": None,
        "exit_code": None, "owner": os.getuid(), "created": 0.5}))
    return spool


@pytest.fixture
def root(tmp_path):
    path = tmp_path / "root"
    path.mkdir(mode=0o700)
    return path


def test_state_prints_the_state_and_loads_nothing_heavy(root):
    make_container(root, "running", os.getpid())
    report = run_command(root, "state", CID)
    assert report["code"] == 0
    document = json.loads(report["printed"])
    assert document["status"] == "running" and document["pid"] == os.getpid()
    assert not report["top"] & HEAVY
    assert not report["top"] & STATE_MUST_NOT_LOAD, sorted(report["top"] & STATE_MUST_NOT_LOAD)


def test_state_output_is_runc_style_indented_json(root):
    make_container(root, "running", os.getpid())
    printed = run_command(root, "state", CID)["printed"]
    assert printed == json.dumps(json.loads(printed), indent=2) + "\n"


def test_kill_loads_nothing_heavy(root):
    # No anchor listens: kill fails after loading everything it needs.
    make_container(root, "running", os.getpid())
    report = run_command(root, "kill", CID, "CONT")
    assert report["code"] != 0
    assert "control" in " ".join(report["modules"])
    assert not report["top"] & HEAVY, sorted(report["top"] & HEAVY)


def test_delete_loads_nothing_heavy(root):
    spool = make_container(root, "stopped", 0)
    report = run_command(root, "delete", CID)
    assert report["code"] == 0
    assert not spool.exists()
    assert not report["top"] & HEAVY, sorted(report["top"] & HEAVY)


def test_delete_force_of_a_missing_container_loads_nothing_heavy(root):
    report = run_command(root, "delete", "--force", CID)
    assert report["code"] == 0
    assert not report["top"] & HEAVY, sorted(report["top"] & HEAVY)
