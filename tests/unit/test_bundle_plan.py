"""Which paths the nodes are offered copies of (anchor/bundle_plan.py)."""
import os
import socket

import pytest

from scrun_rest.anchor.bundle_plan import BundlePlan, parse_size
from scrun_rest.config import Config
from scrun_rest.errors import UserError
from scrun_rest.tunnel import messages


def plan(**values):
    return BundlePlan.from_config(Config(values))


def bind(source, destination, *options):
    return {"type": "bind", "source": source, "destination": destination,
            "options": ["rbind"] + list(options)}


@pytest.fixture
def container(tmp_path):
    rootfs = tmp_path / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    (rootfs / "bin" / "sh").write_text("#!")
    hosts = tmp_path / "userdata" / "hosts"
    hosts.parent.mkdir()
    hosts.write_text("127.0.0.1 localhost\n")
    data = tmp_path / "data"
    data.mkdir()
    (data / "in.txt").write_text("input")
    config = {"root": {"path": str(rootfs)}, "mounts": [
        {"type": "proc", "source": "proc", "destination": "/proc"},
        bind(str(hosts), "/etc/hosts"),
        bind(str(data), "/data", "ro"),
        bind("/dev/fuse", "/dev/fuse"),
    ]}
    return config, str(rootfs), tmp_path


def test_auto_offers_the_rootfs_and_every_bind_source_with_a_probe(container):
    config, rootfs, base = container
    offered = plan().offered(config, rootfs)
    assert [(i["id"], i["what"], i["path"]) for i in offered] == [
        (0, "rootfs", rootfs), (2, "volume", str(base / "userdata" / "hosts")),
        (3, "volume", str(base / "data"))]
    assert all(i["probe"] for i in offered)
    for item in offered:
        messages.check(messages.ANCHOR_TO_TASK, messages.make(
            messages.ANCHOR_TO_TASK, "setup", mode="run", config=config, key="00",
            streams=[], env={}, settings={}, bundle=[item]))


def test_read_only_mounts_and_rootfs_are_not_written_back(container):
    config, rootfs, _ = container
    config["root"]["readonly"] = True
    offered = {i["id"]: i for i in plan().offered(config, rootfs)}
    assert not offered[0]["writeback"] and not offered[3]["writeback"]
    assert offered[2]["writeback"] and offered[2]["file"] and not offered[3]["file"]


def test_always_offers_without_probes_and_never_offers_nothing(container):
    config, rootfs, _ = container
    assert all("probe" not in i for i in plan(BundleTransfer="always").offered(config, rootfs))
    assert plan(BundleTransfer="never").offered(config, rootfs) == []


def test_shared_prefixes_are_used_in_place_and_match_whole_components(container):
    config, rootfs, base = container
    offered = plan(SharedPaths="%s/userdata, %s/dat" % (base, base)).offered(config, rootfs)
    assert [i["id"] for i in offered] == [0, 3]  # /dat is not a prefix of /data


def test_a_rootfs_staged_by_lua_stays_where_lua_put_it(container):
    config, rootfs, _ = container
    assert [i["id"] for i in plan().offered(config, rootfs, rootfs_in_place=True)] == [2, 3]


def test_an_unknown_mode_or_relative_shared_path_is_refused():
    with pytest.raises(UserError, match="BundleTransfer=sometimes"):
        plan(BundleTransfer="sometimes")
    with pytest.raises(UserError, match="not an absolute path"):
        plan(SharedPaths="home")


def test_a_volume_over_the_limit_is_refused_naming_it_its_size_and_the_limit(container):
    config, rootfs, base = container
    (base / "data" / "big").write_bytes(b"x" * 3000)
    with pytest.raises(UserError) as caught:
        plan(VolumeCopyLimit="2K").check_volumes(config, rootfs)
    text = str(caught.value)
    assert str(base / "data") in text and "/data" in text
    assert "3005" in text or "2.9K" in text or "3K" in text, text
    assert "VolumeCopyLimit=2K" in text and "SharedPaths" in text
    plan(VolumeCopyLimit="2K", SharedPaths=str(base / "data")).check_volumes(config, rootfs)
    plan(VolumeCopyLimit="4K").check_volumes(config, rootfs)


def test_a_volume_that_cannot_be_copied_is_an_error_naming_it(container, tmp_path):
    config, rootfs, _ = container
    path = str(tmp_path / "sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    config["mounts"].append(bind(path, "/run/app.sock"))
    with pytest.raises(UserError, match="sock .*mounted at /run/app.sock.* is a socket"):
        plan().check_volumes(config, rootfs)
    listener.close()
    os.unlink(path)
    with pytest.raises(UserError, match="does not exist"):
        plan().check_volumes(config, rootfs)


@pytest.mark.parametrize("text, value", [("0", 0), ("512", 512), ("2k", 2048),
                                         ("1G", 1 << 30), ("3T", 3 << 40)])
def test_sizes(text, value):
    assert parse_size("X", text) == value


def test_a_bad_size_names_the_setting():
    with pytest.raises(UserError, match="VolumeCopyLimit=lots"):
        parse_size("VolumeCopyLimit", "lots")


def test_small_bind_sources_travel_inline_and_the_rootfs_never_does(container):
    import base64
    import io
    from scrun_rest.bundle import safe_extract
    config, rootfs, base = container
    offered = {i["id"]: i for i in plan(BundleTransfer="always").offered(config, rootfs)}
    assert "inline" not in offered[0]
    assert messages.make(messages.ANCHOR_TO_TASK, "setup", mode="run", config={}, key="k",
                         streams=[], env={}, settings={}, bundle=list(offered.values()))
    for item_id, name in ((2, "hosts"), (3, "in.txt")):
        out = base / ("unpacked-%d" % item_id)
        out.mkdir()
        safe_extract.extract(io.BytesIO(base64.b64decode(offered[item_id]["inline"])), str(out))
        assert os.listdir(str(out)) == [name]


def test_a_bind_source_too_big_or_too_many_goes_by_its_own_stream(container, monkeypatch):
    from scrun_rest.anchor import bundle_plan
    config, rootfs, base = container
    with open(str(base / "data" / "big"), "wb") as handle:
        handle.write(os.urandom(bundle_plan.INLINE_LIMIT))
    offered = {i["id"]: i for i in plan(BundleTransfer="always").offered(config, rootfs)}
    assert "inline" in offered[2] and "inline" not in offered[3]
    # Past the total, the rest go by stream too.
    monkeypatch.setattr(bundle_plan, "INLINE_TOTAL", 100)
    offered = plan(BundleTransfer="always").offered(config, rootfs)
    assert not [i for i in offered if "inline" in i]
