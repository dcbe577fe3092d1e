"""A rootfs by manifest and the node's cache (bundle/manifest.py,
agent/node_cache.py, anchor/digest_index.py)."""
import json
import os
import socket
import threading

import pytest

from scrun_rest.agent import node_cache
from scrun_rest.anchor import digest_index
from scrun_rest.bundle import manifest, pack
from scrun_rest.bundle.errors import ExtractError


@pytest.fixture
def image(tmp_path):
    root = tmp_path / "image"
    (root / "bin").mkdir(parents=True)
    (root / "etc" / "empty").mkdir(parents=True)
    (root / "bin" / "tool").write_bytes(b"\x7fELF" + os.urandom(5000))
    (root / "bin" / "tool").chmod(0o755)
    os.link(str(root / "bin" / "tool"), str(root / "bin" / "same"))
    os.symlink("tool", str(root / "bin" / "alias"))
    (root / "etc" / "conf").write_text("a=1\n")
    (root / "etc" / "twin").write_text("a=1\n")   # the same content, stored once
    os.mkfifo(str(root / "etc" / "fifo"))
    for number, name in enumerate(("bin/tool", "etc/conf", "etc/empty", "etc", "bin")):
        os.utime(str(root / name), ns=(0, 1700000000123456789 + number))
    return str(root)


def tree(path):
    found = {}
    for base, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(base, name)
            info = os.lstat(full)
            key = os.path.relpath(full, path)
            if os.path.islink(full):
                found[key] = ("l", os.readlink(full))
            elif os.path.isfile(full):
                found[key] = ("f", oct(info.st_mode), open(full, "rb").read(), info.st_nlink)
            else:
                found[key] = ("o", oct(info.st_mode))
    return found


def mtimes(path):
    """Every entry's mtime to the nanosecond (a symlink's own)."""
    found = {}
    for base, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(base, name)
            found[os.path.relpath(full, path)] = os.lstat(full).st_mtime_ns
    return found


def fetch(cache, image, entries=None):
    """One node fetch over a socket pair, as bundle_server and bundle_fetch
    do it; returns the names the node asked for."""
    entries = entries or manifest.build(image)
    ours, theirs = socket.socketpair()
    asked = []

    def anchor():
        manifest.send_blob(ours, manifest.encode(entries))
        names = json.loads(manifest.recv_blob(ours))
        asked.extend(names)
        if names:
            pack.pack_paths(image, names, ours.fileno())
        ours.close()

    thread = threading.Thread(target=anchor)
    thread.start()
    got = manifest.decode(manifest.recv_blob(theirs))
    cache.open()
    try:
        wanted = cache.missing(got)
        manifest.send_blob(theirs, json.dumps(sorted(wanted.values())).encode())
        if wanted:
            cache.receive(theirs.makefile("rb"), wanted)
        thread.join()
        return got, asked
    finally:
        cache.close()
        theirs.close()


def test_a_tree_rebuilt_from_the_cache_is_the_tree(image, tmp_path):
    cache = node_cache.NodeCache(str(tmp_path / "cache"))
    entries, asked = fetch(cache, image)
    assert sorted(asked) == ["bin/same", "etc/conf"]  # tool: its link; twin: same bytes
    dest = tmp_path / "rootfs"
    dest.mkdir()
    cache.open()
    cache.build(entries, str(dest))
    cache.close()
    assert tree(str(dest)) == tree(image)
    assert mtimes(str(dest)) == mtimes(image)
    _, asked_again = fetch(cache, image)
    assert asked_again == []


def test_a_changed_file_of_the_same_size_and_mtime_is_fetched_again(image, tmp_path):
    # Reproducible builds give every file one mtime: only content tells.
    cache = node_cache.NodeCache(str(tmp_path / "cache"))
    fetch(cache, image)
    conf = os.path.join(image, "etc", "conf")
    info = os.stat(conf)
    with open(conf, "w") as handle:
        handle.write("a=2\n")
    os.utime(conf, ns=(info.st_atime_ns, info.st_mtime_ns))
    _, asked = fetch(cache, image)
    assert asked == ["etc/conf"]


def test_what_the_archive_brings_must_match_its_digest(image, tmp_path):
    cache = node_cache.NodeCache(str(tmp_path / "cache"))
    entries = manifest.build(image)
    for entry in entries:
        if entry[manifest.NAME] == "etc/conf":
            entry[manifest.MORE] = "0" * 64
    with pytest.raises(ExtractError, match="not what the manifest says"):
        fetch(cache, image, entries)
    assert not os.path.exists(cache.object_path("0" * 64))
    assert os.listdir(str(tmp_path / "cache" / "incoming")) == []


@pytest.mark.parametrize("entry", [
    ["../x", "f", 0o644, 1, 0, "0" * 64], ["/etc/passwd", "d", 0o755, 0, 0, ""],
    ["a", "f", 0o644, 1, 0, "not-a-digest"], ["a", "c", 0o644, 0, 0, ""], ["a", "d"]])
def test_a_hostile_manifest_is_refused(entry):
    with pytest.raises(ValueError):
        manifest.decode(manifest.encode([entry]))


def test_a_cache_dir_others_may_use_is_refused(tmp_path):
    path = tmp_path / "shared"
    path.mkdir(mode=0o777)
    path.chmod(0o777)
    with pytest.raises(node_cache.CacheUnusable, match="not a private directory"):
        node_cache.NodeCache(str(path)).open()
    os.symlink(str(tmp_path), str(tmp_path / "link"))
    with pytest.raises(node_cache.CacheUnusable):
        node_cache.NodeCache(str(tmp_path / "link")).open()


def test_past_the_limit_the_least_recently_used_rootfs_goes(image, tmp_path):
    cache = node_cache.NodeCache(str(tmp_path / "cache"), limit=6000)
    old, _ = fetch(cache, image)
    cache.open()
    old_use = cache.note_use(old)
    os.utime(os.path.join(cache.path, "uses", old_use), (1, 1))
    cache.close()
    other = tmp_path / "other"
    other.mkdir()
    (other / "big").write_bytes(os.urandom(4000))
    new, _ = fetch(cache, str(other))
    cache.open()
    cache.evict(cache.note_use(new))
    cache.close()
    assert os.path.exists(cache.object_path(manifest.digests(new).popitem()[0]))
    assert all(not os.path.exists(cache.object_path(d)) for d in manifest.digests(old))


def test_settings_choose_the_cache():
    assert node_cache.from_settings({"NodeCache": "no"}) is None
    cache = node_cache.from_settings({"NodeCache": "/x", "NodeCacheLimit": "2G"})
    assert (cache.path, cache.limit) == ("/x", 2 << 30)
    assert node_cache.from_settings({}).path == node_cache.default_dir()


def test_digests_are_remembered_by_inode_size_and_times(image, tmp_path):
    first = digest_index.rootfs_manifest(str(tmp_path), image)
    reads = []
    original = manifest.file_digest
    manifest.file_digest = lambda path: reads.append(path) or original(path)
    try:
        assert digest_index.rootfs_manifest(str(tmp_path), image) == first
        assert reads == []
        conf = os.path.join(image, "etc", "conf")
        with open(conf, "a") as handle:
            handle.write("more\n")
        digest_index.rootfs_manifest(str(tmp_path), image)
        assert reads == [conf.encode()]
    finally:
        manifest.file_digest = original
    assert os.stat(os.path.join(str(tmp_path), digest_index.INDEX_NAME)).st_mode & 0o077 == 0
