"""How srun's tasks start from the sources the job carries.

The job agent packs the module sources into the environment of each step;
TASK_BOOT, run with python's -c on every node, unpacks them and hands over
to the boot script (bootstrap.py), as the job script does. Python 3.6+.
"""
import base64
import json
import zlib

CODE_ENV = "SCRUN_REST_CODE"

# Stdlib only: no site-packages or PYTHON* variables to load (~3 ms).
TASK_FLAGS = ["-I", "-S"]
TASK_BOOT = (
    "import os,sys,json,zlib,base64;"
    "S=json.loads(zlib.decompress(base64.b64decode(os.environ.pop('%s'))).decode());"
    "exec(compile(S['@boot'],'<scrun-rest boot>','exec'),"
    "{'__name__':'__scrun_boot__','SOURCES':S,'PARAMS':None})" % CODE_ENV
)


def pack_sources(sources):
    """Encode module sources for the environment of task shims."""
    blob = json.dumps(sources, separators=(",", ":")).encode("utf-8")
    return base64.b64encode(zlib.compress(blob, 9)).decode("ascii")


def task_argv(python):
    """The command line that starts a task with `python` (after srun's --)."""
    return [python] + TASK_FLAGS + ["-c", TASK_BOOT, "task"]
