"""The container's program, looked up inside its rootfs (oci/rootfs_lookup.py)."""
import os

import pytest

from scrun_rest.oci import rootfs_lookup


@pytest.mark.parametrize("args,expected", [
    (["sh"], None), (["/usr/bin/sh"], None), (["abs"], None),
    (["nope"], 127), (["/bin/nope"], 127), (["/bin/data"], 126), (["data"], 127),
])
def test_program_lookup_inside_the_rootfs(rootfs, args, expected):
    problem = rootfs_lookup.check_executable(rootfs, {"args": args, "env": ["PATH=/usr/bin"]})
    assert (problem[0] if problem else None) == expected


def test_lookup_does_not_escape_the_rootfs(rootfs):
    os.symlink("/../../../../bin/sh", os.path.join(rootfs, "bin", "escape"))
    assert rootfs_lookup.check_executable(rootfs, {"args": ["/bin/escape"]}) is None
    assert rootfs_lookup._resolve(rootfs, "/bin/escape").startswith(rootfs)
