"""`state ID`: the OCI state as pure JSON on stdout, nothing on stderr."""
import json
import sys

from scrun_rest.anchor import spool as spoolmod
from scrun_rest.cli import args
from scrun_rest.cli.common import open_spool
from scrun_rest.oci.state_doc import state_document


def run(argv, globals_):
    parsed = args.parse(argv, args.Spec(), "state")
    spool = open_spool(globals_, parsed.positionals[0])
    state = spool.read_state()
    status = spoolmod.effective_status(state)
    document = state_document(spool.id, status, state.get("pid") or 0,
                              state.get("bundle") or "/", state.get("annotations"),
                              state.get("ociVersion") or "1.0.2")
    sys.stdout.write(json.dumps(document, indent=2) + "\n")
    return 0
