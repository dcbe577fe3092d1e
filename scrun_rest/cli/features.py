"""`features`: what this runtime supports, as the OCI features document."""
import json
import sys

from scrun_rest.cli import args

FEATURES = {
    "ociVersionMin": "1.0.0",
    "ociVersionMax": "1.0.2",
    "hooks": [],
    "mountOptions": [],
    "linux": {
        "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"],
        "capabilities": [],
        "cgroup": {"v1": False, "v2": False, "systemd": False, "systemdUser": False},
        "seccomp": {"enabled": True},
        "apparmor": {"enabled": False},
        "selinux": {"enabled": False},
    },
    "annotations": {"org.opencontainers.runc.checkpoint.enabled": "false"},
}


def run(argv, globals_):
    args.parse(argv, args.Spec(positionals=(0, 0)), "features")
    sys.stdout.write(json.dumps(FEATURES, indent=2) + "\n")
    return 0
