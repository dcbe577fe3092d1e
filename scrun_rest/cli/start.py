"""`start ID`: let the created container's process run."""
from scrun_rest.cli import args
from scrun_rest.cli.common import load_container


def run(argv, globals_):
    parsed = args.parse(argv, args.Spec(), "start")
    load_container(globals_, parsed.positionals[0]).start()
    return 0
