"""NodeCopies.localize: config.json with the node's copies in place
(agent/bundle_fetch.py)."""
import os

from scrun_rest.agent import bundle_fetch


class FakeStatvfs:
    def __init__(self, f_flag):
        self.f_flag = f_flag


def copies_of(tmp_path, items):
    copies = bundle_fetch.NodeCopies(items, str(tmp_path), "n1")
    copies.fetched = [(item, str(tmp_path / "bundle" / str(item["id"]))) for item in items]
    return copies


CONFIG = {"root": {"path": "/host/rootfs"}, "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/w", "type": "bind", "source": "/host/dir", "options": ["rbind", "ro"]},
    {"destination": "/x", "type": "bind", "source": "/host/x", "options": ["rbind", "exec"]},
]}
ITEMS = [{"id": 0, "path": "/host/rootfs", "what": "rootfs", "file": False},
         {"id": 2, "path": "/host/dir", "what": "volume", "file": False},
         {"id": 3, "path": "/host/x", "what": "volume", "file": False}]


def test_a_copy_on_a_nosuid_nodev_noexec_scratch_keeps_those_flags(tmp_path, monkeypatch):
    # A user namespace may not drop them: runc's read-only remount of /w
    # would fail with EPERM without them.
    monkeypatch.setattr(os, "statvfs", lambda path: FakeStatvfs(
        os.ST_NOSUID | os.ST_NODEV | os.ST_NOEXEC))
    config = copies_of(tmp_path, ITEMS).localize(CONFIG)
    proc, volume, other = config["mounts"]
    assert volume["source"] == str(tmp_path / "bundle" / "2")
    assert volume["options"] == ["rbind", "ro", "nosuid", "nodev", "noexec"]
    # What the mount asks for itself stays as it is.
    assert other["options"] == ["rbind", "exec", "nosuid", "nodev"]
    assert proc == CONFIG["mounts"][0]
    assert config["root"]["path"] == str(tmp_path / "bundle" / "0")
    assert CONFIG["mounts"][1]["options"] == ["rbind", "ro"]


def test_a_scratch_without_such_flags_leaves_the_options_alone(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "statvfs", lambda path: FakeStatvfs(0))
    config = copies_of(tmp_path, ITEMS).localize(CONFIG)
    assert [m.get("options") for m in config["mounts"]] == \
        [None, ["rbind", "ro"], ["rbind", "exec"]]


def test_an_inline_item_is_unpacked_without_a_stream(tmp_path):
    import base64
    from scrun_rest.bundle import pack
    source = tmp_path / "hosts"
    source.write_text("10.0.0.1 db\n")
    item = {"id": 1, "path": str(source), "what": "volume", "file": True, "writeback": True,
            "inline": base64.b64encode(pack.in_memory(str(source), 1 << 16)).decode()}
    copies = bundle_fetch.NodeCopies([item], str(tmp_path / "task"), "n1")
    sent = []

    def dial(*args, **kwargs):
        raise AssertionError("dialled %s" % (kwargs,))

    copies.fetch(dial, lambda kind, **fields: sent.append((kind, fields)), lambda *a: None)
    assert sent == [("fetch", {"items": [1]})]  # the anchor still expects its write-back
    config = copies.localize({"mounts": [{"type": "bind", "source": str(source),
                                          "destination": "/etc/hosts"}]})
    with open(config["mounts"][0]["source"]) as handle:
        assert handle.read() == "10.0.0.1 db\n"
    assert 1 in copies.snapshots
