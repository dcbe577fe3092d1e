"""Fixtures the agent's unit tests share."""
import os

import pytest

# Any file the node has: a bind source the node lacks is an error now.
HOSTS_FILE = os.path.abspath(__file__)


@pytest.fixture
def podman_like_config():
    """A config.json as rootless podman writes it, with what a node must drop."""
    return {
        "ociVersion": "1.0.2-dev",
        "process": {"args": ["sh"], "cwd": "/", "env": ["PATH=/bin", "HOME=/root"],
                    "user": {"uid": 0, "gid": 0, "additionalGids": [10]},
                    "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1 << 40, "soft": 1 << 40}]},
        "root": {"path": "/rootfs"},
        "mounts": [{"destination": "/dev/pts", "type": "devpts", "source": "devpts",
                    "options": ["nosuid", "newinstance", "gid=5", "mode=0620"]},
                   {"destination": "/etc/hosts", "type": "bind", "source": HOSTS_FILE,
                    "options": ["bind"]}],
        "hooks": {"prestart": [{"path": "/usr/libexec/podman/hook"}]},
        "linux": {"namespaces": [{"type": "pid"}, {"type": "network", "path": "/run/netns/gone"}],
                  "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 65536}],
                  "cgroupsPath": "user.slice:libpod:x", "resources": {"pids": {"limit": 10}},
                  "sysctl": {"net.ipv4.ping_group_range": "0 2147483647"}},
    }


@pytest.fixture
def rootfs(tmp_path):
    (tmp_path / "bin").mkdir()
    (tmp_path / "usr").mkdir()
    os.symlink("../bin", tmp_path / "usr" / "bin")
    tool = tmp_path / "bin" / "busybox"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    os.symlink("busybox", tmp_path / "bin" / "sh")
    (tmp_path / "bin" / "data").write_text("x")
    os.symlink("/bin/sh", tmp_path / "bin" / "abs")
    return str(tmp_path)


# shared/ lies beside the repository (in CI, beside the fresh clone).
MAN_PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..",
                        "shared", "reference", "scrun.1.txt")


@pytest.fixture
def man_page(unavailable):
    """scrun(1) as text, from ../shared/reference/ beside the repository."""
    if not os.path.exists(MAN_PAGE):
        unavailable("%s is not beside this checkout" % os.path.normpath(MAN_PAGE))
    with open(MAN_PAGE, encoding="utf-8") as handle:
        return handle.read()
