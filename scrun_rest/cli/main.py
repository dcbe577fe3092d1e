"""scrun-rest: the runc-compatible entry point.

Each command lives in its own module and is imported only when used, so
`state`, `kill` and `delete` never load requests, jsonschema, lupa or jwt.
"""
import os
import sys

from scrun_rest.cli import args
from scrun_rest.errors import UserError

COMMANDS = {
    "create": "scrun_rest.cli.create",
    "start": "scrun_rest.cli.start",
    "state": "scrun_rest.cli.state",
    "kill": "scrun_rest.cli.kill",
    "delete": "scrun_rest.cli.delete",
    "exec": "scrun_rest.cli.exec_",
    "ps": "scrun_rest.cli.ps",
    "features": "scrun_rest.cli.features",
    "check": "scrun_rest.cli.check",
}

USAGE = """usage: scrun-rest [global options] COMMAND [options] ID

Runs OCI containers as Slurm jobs through slurmrestd.

commands:
  create   create a container (submits its Slurm job)
  start    start the container's process
  state    print the OCI state of a container as JSON
  kill     send a signal to the container (default SIGTERM)
  delete   remove a stopped container, --force stops it first
  exec     run another process in a running container
  ps       list the container's processes (JSON)
  features print the OCI features document
  check    check slurmrestd, the token and the API version

global options: --root DIR, --log FILE, --log-format json|text, --debug, -v,
  -f FILE (config), --cgroup-manager, --systemd-cgroup, --rootless (ignored),
  -V/--version, --usage
"""


class Globals:
    """Global options every command sees."""

    def __init__(self, parsed):
        self.root = parsed.get("--root")
        self.log_file = parsed.get("--log")
        self.log_format = parsed.get("--log-format", "text")
        self.debug = bool(parsed.get("--debug"))
        self.verbosity = len(parsed.get("-v", []))
        self.config_file = parsed.get("-f")
        self.active_log_settings = None

    def resolved_root(self):
        from scrun_rest.anchor.spool import default_root
        return os.path.abspath(self.root) if self.root else default_root()

    def log_settings(self, variables=None):
        from scrun_rest.log import LogSettings
        settings = LogSettings(self.log_file, self.log_format, self.verbosity, self.debug,
                               variables)
        # report_error records a failure where this command logged (create
        # may log to SCRUN_LOG_FILE from config.json).
        self.active_log_settings = settings
        return settings


def print_version():
    import scrun_rest
    sys.stdout.write("scrun-rest version %s\nspec: 1.0.2\n" % scrun_rest.__version__)


MAX_ERROR = 400


def _abridged(word, limit=60):
    return word if len(word) <= limit else word[:40] + "..." + word[-12:]


def report_error(text, globals_=None):
    """One line on stderr (podman shows it), and the --log line docker reads."""
    text = " ".join(str(text).split("\n"))
    # Control characters from argv or paths (\x1e counts as a line break,
    # \x1b drives the terminal) are shown escaped, never emitted.
    text = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)
    if len(text) > MAX_ERROR:
        # A 1000-character id or path must not drown the message.
        text = " ".join(_abridged(word) for word in text.split(" "))
    settings = getattr(globals_, "active_log_settings", None)
    if globals_ is not None and (globals_.log_file or settings is not None):
        try:
            from scrun_rest.log import record_error
            record_error(settings or globals_.log_settings(), text)
        except UserError:
            pass
    try:
        # podman prefixes the runtime's path itself.
        sys.stderr.write("%s\n" % text)
        sys.stderr.flush()
    except (OSError, ValueError):
        # podman may close our stderr first (state); the exit code still tells.
        pass


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    globals_ = None
    try:
        parsed = args.parse(argv, args.GLOBAL, stop_at_command=True)
        if parsed.get("--version"):
            print_version()
            return 0
        if parsed.get("--usage") or parsed.get("--help") or not parsed.positionals:
            sys.stdout.write(USAGE)
            return 0 if parsed.get("--usage") or parsed.get("--help") else 1
        globals_ = Globals(parsed)
        command, rest = parsed.positionals[0], parsed.positionals[1:]
        module_name = COMMANDS.get(command)
        if module_name is None:
            raise UserError("unknown command %r (see scrun-rest --usage)" % command[:40])
        if globals_.config_file:
            os.environ["SCRUN_REST_CONF"] = globals_.config_file
        module = __import__(module_name, fromlist=["run"])
        return module.run(rest, globals_)
    except UserError as exc:
        report_error(exc, globals_)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
