"""`state ID`: the OCI state as pure JSON on stdout, nothing on stderr."""
import sys

from scrun_rest import lean_json
from scrun_rest.anchor import spool as spoolmod
from scrun_rest.cli import args
from scrun_rest.cli.common import load_container
from scrun_rest.oci.state_doc import state_document


def run(argv, globals_):
    parsed = args.parse(argv, args.Spec(), "state")
    container = load_container(globals_, parsed.positionals[0])
    state, status = container.state, container.status
    pid = state.get("pid") if isinstance(state.get("pid"), int) else 0
    bundle = state.get("bundle") if isinstance(state.get("bundle"), str) else "/"
    if status not in spoolmod.ORDER or (status != spoolmod.STOPPED and pid <= 0) \
            or not bundle.startswith("/"):
        # A damaged state file: the container cannot be running.
        status, pid = spoolmod.STOPPED, 0
    document = state_document(container.id, status, pid, bundle, state.get("annotations"),
                              str(state.get("ociVersion") or "1.0.2"))
    sys.stdout.write(lean_json.dumps(document, indent=2) + "\n")
    return 0
