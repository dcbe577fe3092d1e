"""`kill [--all] ID [SIGNAL]`: signal the container's process (default TERM).

--all is accepted as podman and runc spell it; the signal reaches the
container's process through its tasks either way.
"""
from scrun_rest.cli import args
from scrun_rest.cli.common import load_container, parse_signal

SPEC = args.Spec(flags=("--all",), aliases={"-a": "--all"}, positionals=(1, 2))
SIGTERM = 15


def run(argv, globals_):
    parsed = args.parse(argv, SPEC, "kill")
    signum = parse_signal(parsed.positionals[1]) if len(parsed.positionals) > 1 else SIGTERM
    load_container(globals_, parsed.positionals[0]).signal(signum)
    return 0
