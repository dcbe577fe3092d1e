"""oci.conf pattern values reach /bin/sh as literal text (agent/oci_conf.expand).

Each expanded command really runs through /bin/sh with printf, a harmless
program: the values must come back as they went in, and the commands that
hostile values would inject must leave no file behind.
"""
import os
import subprocess

import pytest

from scrun_rest.agent import oci_conf, runtime_hooks, task_bundle

LETTERS = "bejmnprstuU"
HOSTILE = [
    "/x;touch {side}",
    "$(touch {side})",
    "`touch {side}`",
    "/x';touch {side};'",
    '/x";touch {side};"',
    "/x\ntouch {side}",
    "/x\\';touch {side} #",
    "/x|touch {side}&",
]


@pytest.fixture
def side(tmp_path):
    """The file an injected command would create."""
    return str(tmp_path / "injected")


def words_of(command, cwd):
    """What printf saw: one line per argument."""
    result = subprocess.run(["/bin/sh", "-c", command], stdout=subprocess.PIPE,
                            cwd=cwd, check=True, universal_newlines=True)
    return result.stdout.split("\0")[:-1]


def values_with(letter, value):
    values = {name: "plain" for name in LETTERS}
    values["@"] = oci_conf.quote_all(["arg"])
    values[letter] = value
    return values


@pytest.mark.parametrize("letter", LETTERS)
@pytest.mark.parametrize("hostile", HOSTILE)
def test_every_letter_is_one_literal_argument(letter, hostile, side, tmp_path):
    value = hostile.format(side=side)
    command = oci_conf.expand("printf '%%s\\0' %" + letter, values_with(letter, value))
    assert words_of(command, str(tmp_path)) == [value]
    assert not os.path.exists(side)


@pytest.mark.parametrize("hostile", HOSTILE)
def test_values_inside_a_sites_own_quotes_stay_literal(hostile, side, tmp_path):
    """A site may have quoted %r itself: the value still is that one word."""
    value = hostile.format(side=side)
    pattern = "printf '%%s\\0' \"%r\" '%r' x\"-%r-\"y --root=/run/user/%U/ \\\"%r"
    command = oci_conf.expand(pattern, values_with("r", value))
    assert words_of(command, str(tmp_path)) == [
        value, value, "x-%s-y" % value, "--root=/run/user/plain/", '"' + value]
    assert not os.path.exists(side)


def test_the_argument_list_stays_a_list(side, tmp_path):
    args = ["a b", "c;touch %s" % side, "it's"]
    values = dict(values_with("r", "/r"), **{"@": oci_conf.quote_all(args)})
    command = oci_conf.expand("printf '%%s\\0' %@", values)
    assert words_of(command, str(tmp_path)) == args
    assert not os.path.exists(side)


def test_the_default_id_and_root_patterns_still_make_their_words(tmp_path):
    values = values_with("U", "2000")
    values.update(n="node1", u="alice", j="7", s="0", t="3")
    command = oci_conf.expand("printf '%%s\\0' --root=/run/user/%U/ %n.%u.%j.%s.%t", values)
    assert words_of(command, str(tmp_path)) == ["--root=/run/user/2000/", "node1.alice.7.0.3"]
    assert oci_conf.container_name(values) == "node1.alice.7.0.3"


def test_a_hostile_rootfs_path_reaches_the_runtime_as_one_argument(
        rootfs, podman_like_config, tmp_path, side):
    """The whole way a task builds its command, with a root.path an image
    or user chose."""
    # Run from tmp_path, the injected command would make `side` there.
    hostile = os.path.join(str(tmp_path), "images", "x;touch injected;y")
    os.mkdir(os.path.dirname(hostile))
    os.symlink(rootfs, hostile)
    workdir = tmp_path / "work"
    workdir.mkdir()
    setup = {"mode": "run", "config": dict(podman_like_config, root={"path": hostile}),
             "streams": ["stdout", "stderr"], "env": {}}
    settings = {"RunTimeRun": "printf '%%s\\0' %r -b %b"}
    plan, problem = task_bundle.prepare(setup, settings, str(workdir))
    assert problem is None
    assert words_of(plan.command, str(tmp_path)) == [hostile, "-b", str(workdir)]
    assert not os.path.exists(side)


def test_hooks_and_the_leftover_sweep_quote_their_values(tmp_path, side):
    """RunTimeKill/Delete/Query run with a task's values, or with those a
    dead task recorded in its container.json."""
    runtime_hooks.run({"RunTimeDelete": "touch %r"}, "RunTimeDelete",
                      values_with("r", "/nonexistent;touch %s" % side))
    assert not os.path.exists(side)
