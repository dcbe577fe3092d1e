"""This node's copies of the container's files (bundle transfer).

The setup lists the container's paths a node may lack (its rootfs, the
sources of its bind mounts: anchor/bundle_plan.py). For each, this node
either sees the same content at that path (the item's probe matches: the
path is used in place) or asks for a copy. A copy arrives as a tar archive
on a stream of its own and is unpacked into the task's private scratch
dir, which config.json then names. After the container, what it changed
in a writeback item goes back the same way. Python 3.6+, stdlib only.
"""
import base64
import io
import json
import os
import socket

from scrun_rest.bundle import manifest, pack, safe_extract, tree_changes, tree_probe


# How long a node whose copy broke off waits for the anchor's reason.
ANCHOR_REASON_WAIT = 2.0


class TransferFailed(Exception):
    """A copy this node needs did not arrive whole; the text says why."""


class NodeCopies:
    def __init__(self, items, workdir, node, cache=None):
        """cache: the user's NodeCache on this node, for the rootfs."""
        self.items = items
        self.cache = cache
        self.base = os.path.join(workdir, "bundle")
        self.node = node
        self.fetched = []          # (item, local root)
        self.snapshots = {}        # item id -> tree_changes.snapshot

    def needed(self):
        """The items this node must be sent: those without a probe, and
        those whose content here is not what the submit host has."""
        return [item for item in self.items
                if item.get("probe") is None or tree_probe.digest(item["path"]) != item["probe"]]

    def fetch(self, dial, send, receive):
        """Bring every needed item over; raises TransferFailed.
        receive(timeout=None): the anchor's next message on the control
        link, or None (the link ended, or nothing came in time)."""
        needed = self.needed()
        if not needed:
            return
        send("fetch", items=[item["id"] for item in needed])
        for item in needed:
            root = os.path.join(self.base, str(item["id"]))
            try:
                os.makedirs(root, 0o700)
            except OSError as exc:
                raise TransferFailed(self._failed(item, exc))
            if item.get("inline") is not None:
                self._unpack_inline(item, root)
            else:
                self._fetch_stream(item, root, dial, receive)
            self.fetched.append((item, root))
            if item["writeback"]:
                self.snapshots[item["id"]] = tree_changes.snapshot(root)

    def _fetch_stream(self, item, root, dial, receive):
        cached = item["what"] == "rootfs" and self.cache is not None
        try:
            sock = dial("data", stream="%s-%d" % ("cached" if cached else "bundle", item["id"]))
        except OSError as exc:
            raise TransferFailed(self._failed(item, exc))
        try:
            if cached:
                self._through_cache(sock, root, receive, item)
            else:
                safe_extract.extract(sock.makefile("rb"), root)
                self._confirmed(item, receive)
        except (safe_extract.ExtractError, OSError, ValueError, EOFError) as exc:
            # A stream cut short on the anchor's side: its word says why.
            raise TransferFailed(self._anchor_reason(item, receive) or self._failed(item, exc))
        finally:
            sock.close()

    def _unpack_inline(self, item, root):
        try:
            safe_extract.extract(io.BytesIO(base64.b64decode(item["inline"])), root)
        except (safe_extract.ExtractError, OSError, ValueError) as exc:
            raise TransferFailed(self._failed(item, exc))

    def _through_cache(self, sock, root, receive, item):
        """The rootfs by manifest: only the files the cache lacks cross the
        tunnel, and the tree is built from the cache."""
        entries = manifest.decode(manifest.recv_blob(sock))
        cache = self.cache
        cache.open()  # waits while another task of ours fills it
        try:
            wanted = cache.missing(entries)
            manifest.send_blob(sock, json.dumps(sorted(wanted.values())).encode("utf-8"))
            if wanted:
                cache.receive(sock.makefile("rb"), wanted)
            self._confirmed(item, receive)
            cache.build(entries, root)
            cache.evict(cache.note_use(entries))
        finally:
            cache.close()

    def _confirmed(self, item, receive):
        """Wait for the anchor's word that the archive is whole."""
        while True:
            message = receive()
            if message is None:
                raise TransferFailed("lost the anchor while copying %s to node %s" % (
                    item["path"], self.node))
            if message["t"] == "abort":
                raise TransferFailed("the container was deleted before it started")
            if message["t"] == "bundle_sent" and message["item"] == item["id"]:
                if message.get("error"):
                    raise TransferFailed(message["error"])
                return
            # Signals and window sizes wait for the runtime (task.py).

    def _anchor_reason(self, item, receive):
        """The anchor's error for this item, if it sends one soon."""
        message = receive(ANCHOR_REASON_WAIT)
        while message is not None and message["t"] != "bundle_sent":
            message = receive(ANCHOR_REASON_WAIT)
        if message is not None and message["item"] == item["id"]:
            return message.get("error")
        return None

    def _failed(self, item, exc):
        return "cannot copy %s to node %s: %s" % (item["path"], self.node, describe(exc))

    def local_rootfs(self):
        """Where the rootfs copy is, or None when it is used in place."""
        for item, root in self.fetched:
            if item["what"] == "rootfs":
                return root
        return None

    def localize(self, config):
        """config.json with the copies in place of the submit host's paths."""
        config = dict(config)
        mounts = [dict(mount) for mount in config.get("mounts") or []]
        for item, root in self.fetched:
            local = os.path.join(root, os.path.basename(item["path"])) if item["file"] else root
            if item["what"] == "rootfs":
                config["root"] = dict(config.get("root") or {}, path=local)
            elif 0 < item["id"] <= len(mounts):
                mounts[item["id"] - 1]["source"] = local
                keep_locked_flags(mounts[item["id"] - 1], local)
        if mounts:
            config["mounts"] = mounts
        return config

    def write_back(self, dial, send):
        """Send what the container changed in each writeback copy. Returns
        the lines to log for those that could not be sent."""
        problems = []
        for item, root in self.fetched:
            if not item["writeback"]:
                continue
            try:
                changed, deleted = tree_changes.changes(root, self.snapshots[item["id"]])
            except OSError as exc:
                problems.append("cannot list the changes to %s: %s" % (item["path"], exc))
                continue
            send("changes", item=item["id"], deleted=deleted, changed=len(changed))
            if not changed:
                continue
            try:
                sock = dial("data", stream="writeback-%d" % item["id"])
            except OSError as exc:
                problems.append("cannot send the changes to %s: %s" % (item["path"], exc))
                continue
            try:
                pack.pack_paths(root, changed, sock.fileno())
            except (pack.PackError, OSError) as exc:
                problems.append("cannot send the changes to %s: %s" % (
                    item["path"], describe(exc)))
            finally:
                try:
                    sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                sock.close()
        return problems


# Flags of the scratch filesystem a user namespace may not drop from a bind
# of it (the kernel locks them): a remount of the bind that leaves them out,
# as runc's for a read-only volume, fails with EPERM. The bind has them
# anyway, so naming them changes nothing else.
LOCKED_FLAGS = ((os.ST_NOSUID, "nosuid", "suid"), (os.ST_NODEV, "nodev", "dev"),
                (os.ST_NOEXEC, "noexec", "exec"))


def keep_locked_flags(mount, path):
    """Add to a bind mount of a copy the locked flags of the copy's
    filesystem (a node's /tmp is often nosuid,nodev), unless it says
    otherwise itself."""
    try:
        flags = os.statvfs(path).f_flag
    except OSError:
        return
    options = mount.get("options") or []
    added = [name for bit, name, opposite in LOCKED_FLAGS
             if flags & bit and name not in options and opposite not in options]
    if added:
        mount["options"] = list(options) + added


def describe(exc):
    """An error in words, with the path it concerns once."""
    why = getattr(exc, "why", None)
    path = getattr(exc, "path", None)
    if why is None:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        path = getattr(exc, "filename", None)
    return "%s: %s" % (path, why) if path and path not in why else why
