"""`ps [--format json|table] ID`: docker asks for the container's pids.

The container's processes live on a compute node; the one local process
that stands for them is the anchor.
"""
import json
import sys

from scrun_rest.anchor import spool as spoolmod
from scrun_rest.cli import args
from scrun_rest.cli.common import load_container
from scrun_rest.errors import UserError

SPEC = args.Spec(values=("--format",), aliases={"-f": "--format"},
                 positionals=(1, 1), stop_at_positional=True)


def run(argv, globals_):
    parsed = args.parse(argv, SPEC, "ps")
    container = load_container(globals_, parsed.positionals[0])
    state = container.state
    running = container.status != spoolmod.STOPPED
    pids = [state["pid"]] if running and state.get("pid") else []
    fmt = parsed.get("--format", "table")
    if fmt == "json":
        sys.stdout.write(json.dumps(pids) + "\n")
    elif fmt == "table":
        sys.stdout.write("PID\n" + "".join("%d\n" % pid for pid in pids))
    else:
        raise UserError("ps: --format must be json or table")
    return 0
