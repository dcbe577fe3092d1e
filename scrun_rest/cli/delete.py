"""`delete [--force] ID`: remove a stopped container; --force stops it first.

Idempotent with --force (podman's cleanup may run it twice). When the
anchor died before the job ended, the job is cancelled through REST.
"""
from scrun_rest.cli import args
from scrun_rest.container import Container, NotExist

SPEC = args.Spec(flags=("--force",), aliases={"-f": "--force"})


def run(argv, globals_):
    parsed = args.parse(argv, SPEC, "delete")
    force = bool(parsed.get("--force"))
    container_id = parsed.positionals[0]
    container = Container.find(globals_.resolved_root(), container_id)
    if container is None:
        if force:
            return 0
        raise NotExist(container_id)
    container.destroy(force)
    return 0
