"""`check`: is this host ready to submit containers through slurmrestd?"""
import sys

from scrun_rest.cli import args
from scrun_rest.config import Config


def run(argv, globals_):
    args.parse(argv, args.Spec(positionals=(0, 0)), "check")
    from scrun_rest.readiness import run_check
    return run_check(Config.load(), out=sys.stdout)
