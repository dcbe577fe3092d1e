"""The anchor's side of bundle transfer: send the items a task fetches,
apply what it sends back.

A task says which items (bundle_plan.py) its node lacks ("fetch"), then
dials one "bundle-ID" stream for each: we write a tar archive of the item
into it from a thread (bundle/pack.py: the tar program writes straight
into the socket). After the container ends it reports, per writeback
item, what the container deleted and how many entries changed
("changes"); a "writeback-ID" stream then brings those entries, which we
apply to the item's path here. The container's exit is reported only
once every write-back is applied or has failed in words.
"""
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
import time

from scrun_rest.tunnel import messages

log = logging.getLogger("scrun_rest.anchor")
# A write-back stream that stays silent this long is a lost node.
STREAM_SILENCE = 120.0
BUNDLE_PREFIX, CACHED_PREFIX, WRITEBACK_PREFIX = "bundle-", "cached-", "writeback-"


def is_transfer_stream(stream):
    return stream.startswith((BUNDLE_PREFIX, CACHED_PREFIX, WRITEBACK_PREFIX))


class TaskTransfer:
    """One task's fetches and write-backs."""

    def __init__(self, offered, node, notify, state_root):
        """notify(message): send the task a message (from any thread);
        state_root: where the digests of rootfs files are remembered."""
        self.offered = {item["id"]: item for item in offered}
        self.node, self.notify, self.state_root = node, notify, state_root
        self.fetched = set()
        self.sent = set()
        self.reports = {}          # item id -> (deleted, changed count)
        self.receiving = set()     # write-back streams that came
        self.written = set()       # write-backs applied (or failed)
        self.failures = []         # lines for the user
        self.waiting = {}          # stream -> (item, socket) come before its message
        self.done = threading.Condition()

    def fetch(self, ids):
        unknown = [i for i in ids if i not in self.offered]
        if unknown:
            return "asked for unknown bundle items %s" % unknown
        self.fetched.update(ids)
        self._serve_waiting()
        return None

    def report_changes(self, item_id, deleted, changed):
        item = self.offered.get(item_id)
        if item_id not in self.fetched or not item["writeback"] or item_id in self.reports:
            return "reported changes of item %d it did not fetch for write-back" % item_id
        self.reports[item_id] = (deleted, changed)
        if changed:
            self._serve_waiting()  # its stream brings the rest
            return None
        if deleted:
            threading.Thread(target=self._write_back, args=(item, None), daemon=True).start()
        else:
            self._applied(item_id, None)
        return None

    def accept(self, stream, sock):
        """A transfer stream: True if it was expected (and is now served,
        or waits for the control message that makes it expected)."""
        kind, _, number = stream.partition("-")
        item = self.offered.get(int(number)) if number.isdigit() else None
        if item is None:
            return False
        # Served from a thread (and by tar itself): the loop's sockets are
        # non-blocking.
        sock.setblocking(True)
        if self._serve(stream, item, sock):
            return True
        if stream in self.waiting or not self._may_come_later(stream, item):
            return False
        # The task sends "fetch" or "changes" on its control link, then
        # dials: the dial can get here first.
        self.waiting[stream] = (item, sock)
        return True

    def _serve(self, stream, item, sock):
        if stream.startswith((BUNDLE_PREFIX, CACHED_PREFIX)):
            cached = stream.startswith(CACHED_PREFIX)
            if item["id"] not in self.fetched or item["id"] in self.sent or \
                    (cached and item["what"] != "rootfs"):
                return False
            self.sent.add(item["id"])
            threading.Thread(target=self._send_cached if cached else self._send,
                             args=(item, sock), daemon=True).start()
            return True
        report = self.reports.get(item["id"])
        if not (report and report[1]) or item["id"] in self.receiving:
            return False
        self.receiving.add(item["id"])
        threading.Thread(target=self._write_back, args=(item, sock), daemon=True).start()
        return True

    def _may_come_later(self, stream, item):
        if stream.startswith(WRITEBACK_PREFIX):
            return item["writeback"] and item["id"] not in self.reports
        return item["id"] not in self.fetched and \
            (stream.startswith(BUNDLE_PREFIX) or item["what"] == "rootfs")

    def _serve_waiting(self):
        for stream, (item, sock) in list(self.waiting.items()):
            if self._serve(stream, item, sock):
                del self.waiting[stream]

    def close_waiting(self):
        """The task's link ended: the messages these streams wait for
        will not come."""
        for _, sock in self.waiting.values():
            _close(sock)
        self.waiting.clear()

    # -- threads -----------------------------------------------------------
    def _send(self, item, sock):
        from scrun_rest.bundle import pack
        error = None
        try:
            pack.pack(item["path"], sock.fileno())
        except pack.PackError as exc:
            error = "cannot copy %s to node %s: %s" % (exc.path, self.node, exc.why)
            log.error("%s", error)
        except OSError as exc:
            # The task went away mid-transfer (it says why), or we failed.
            error = "cannot copy %s to node %s: %s" % (item["path"], self.node, exc)
            log.warning("%s", error)
        finally:
            _close(sock)
        self.notify(messages.make(messages.ANCHOR_TO_TASK, "bundle_sent", item=item["id"],
                                  error=error))

    def _send_cached(self, item, sock):
        """The rootfs for a node with a cache: its manifest, then only the
        files the node asks for (agent/node_cache.py)."""
        from scrun_rest.anchor import digest_index
        from scrun_rest.bundle import manifest, pack
        error = None
        try:
            entries = digest_index.rootfs_manifest(self.state_root, item["path"])
            encoded = manifest.encode(entries)
            manifest.send_blob(sock, encoded)
            names = json.loads(manifest.recv_blob(sock).decode("utf-8"))
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise ValueError("the wanted list is not a list of names")
            if names:
                pack.pack_paths(item["path"], names, sock.fileno())
            sizes = {entry[manifest.NAME]: entry[manifest.SIZE] for entry in entries}
            log.info("rootfs for node %s: a manifest of %d bytes, then %d of %d bytes "
                     "(%d files) the node's cache lacked", self.node, len(encoded),
                     sum(sizes.get(name, 0) for name in names), sum(sizes.values()),
                     len(names))
        except pack.PackError as exc:
            error = "cannot copy %s to node %s: %s" % (exc.path, self.node, exc.why)
            log.error("%s", error)
        except (OSError, ValueError, EOFError) as exc:
            error = "cannot copy %s to node %s: %s" % (item["path"], self.node, exc)
            log.warning("%s", error)
        finally:
            _close(sock)
        self.notify(messages.make(messages.ANCHOR_TO_TASK, "bundle_sent", item=item["id"],
                                  error=error))

    def _write_back(self, item, sock):
        deleted, _ = self.reports[item["id"]]
        try:
            if sock is not None:
                sock.settimeout(STREAM_SILENCE)
            apply_changes(item, deleted, sock)
            error = None
        except Exception as exc:  # anything: the user must hear of it
            error = "the container's changes to %s were not copied back: %s" % (
                item["path"], _why(exc))
            log.error("%s", error)
        finally:
            if sock is not None:
                _close(sock)
        self._applied(item["id"], error)

    def _applied(self, item_id, error):
        with self.done:
            self.written.add(item_id)
            if error:
                self.failures.append(error)
            self.done.notify_all()

    # -- the end -------------------------------------------------------------
    def unreported(self):
        """Writeback items fetched whose changes never came (node lost)."""
        return [self.offered[i]["path"] for i in sorted(self.fetched)
                if self.offered[i]["writeback"] and i not in self.reports]

    def unapplied(self):
        """Writeback items fetched whose changes are not (yet) applied."""
        return [self.offered[i]["path"] for i in sorted(self.fetched)
                if self.offered[i]["writeback"] and i not in self.written]

    def wait_applied(self, timeout, link_closed):
        """Block until every reported write-back is applied (a thread).
        link_closed(): the task's link is gone, so a write-back whose
        stream has not come never will."""
        def settled():
            if link_closed():
                for item_id in set(self.reports) - self.receiving - self.written:
                    self.written.add(item_id)
                    self.failures.append(
                        "the container's changes to %s on node %s were not copied back: "
                        "its task ended before sending them" % (
                            self.offered[item_id]["path"], self.node))
            return set(self.reports) <= self.written
        deadline = time.monotonic() + timeout
        with self.done:
            # Woken by each write-back applied; the link's end needs a look.
            while not settled():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.done.wait(min(left, 0.5))
            return True


def settle(links, timeout=3600.0):
    """Once a session's tasks ended: wait for their write-backs, and say
    what did not come back (a thread: it blocks)."""
    lines = []
    for link in links:
        transfer = link.transfer
        if transfer is None or not link.started:
            continue
        if not transfer.wait_applied(timeout, lambda: link.conn.closed):
            lines.append("gave up waiting for the container's changes from node %s after "
                         "%.0f s" % (link.node, timeout))
        lines += transfer.failures
        lines += ["the container's changes to %s on node %s were not copied back: the "
                  "node's task ended without sending them" % (path, link.node)
                  for path in transfer.unreported()]
    return lines


def abandoned(links):
    """A session that ends before its tasks said how they ended (its
    agent's node lost, the anchor interrupted): which write-backs did not
    happen. Nothing waits for them."""
    lines = []
    for link in links:
        transfer = link.transfer
        if transfer is None or not link.started:
            continue
        lines += transfer.failures
        lines += ["the container's changes to %s on node %s were not copied back: the "
                  "container ended without them" % (path, link.node)
                  for path in transfer.unapplied()]
    return lines


def apply_changes(item, deleted, sock):
    """Apply a write-back to the item's path on this host, never through a
    link: deletions first, then the new and changed entries."""
    from scrun_rest.bundle import safe_extract, tree_changes
    path = item["path"]
    if not item.get("file"):
        tree_changes.apply_deletions(path, deleted)
        if sock is not None:
            safe_extract.extract(sock.makefile("rb"), path, on_host=True)
        return
    if deleted:
        raise ValueError("a mounted file cannot lose entries")
    # A mounted file: only its own content may come back, whatever the
    # archive holds beside it.
    staging = tempfile.mkdtemp(prefix=".scrun-rest-writeback-",
                               dir=os.path.dirname(path))
    try:
        safe_extract.extract(sock.makefile("rb"), staging, on_host=True)
        copy_into(os.path.join(staging, os.path.basename(path)), path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def copy_into(source, target):
    """The new content of a mounted file, written into the file itself
    (its inode stays: podman may have it mounted elsewhere too)."""
    src = os.open(source, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        dst = os.open(target, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW)
        try:
            with os.fdopen(os.dup(dst), "wb") as out:
                while True:
                    chunk = os.read(src, 1 << 20)
                    if not chunk:
                        break
                    out.write(chunk)
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _why(exc):
    text = getattr(exc, "why", None) or str(exc) or exc.__class__.__name__
    path = getattr(exc, "path", None)
    return "%s: %s" % (path, text) if path and path not in text else text


def _close(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
