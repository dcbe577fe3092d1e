"""The anchor's side of bundle transfer (anchor/bundle_server.py), and
what the user is told of write-backs that did not happen (settle and
abandoned)."""
import threading
import time
import types

from scrun_rest.anchor import bundle_server

ITEMS = [{"id": 0, "path": "/rootfs", "what": "rootfs", "file": False, "writeback": True},
         {"id": 2, "path": "/data", "what": "volume", "file": False, "writeback": False}]


def transfer():
    return bundle_server.TaskTransfer(ITEMS, "n1", lambda message: None, "/nonexistent")


def test_only_offered_items_fetched_read_write_may_come_back():
    offer = transfer()
    assert "unknown" in offer.fetch([0, 7])
    assert offer.fetch([0, 2]) is None
    assert "did not fetch for write-back" in offer.report_changes(2, [], 1)
    assert offer.report_changes(0, [], 0) is None
    assert "did not fetch" in offer.report_changes(0, [], 0)  # once only


def test_a_write_back_whose_stream_never_comes_ends_with_the_link():
    offer = transfer()
    offer.fetch([0])
    offer.report_changes(0, ["gone"], 3)
    closed = threading.Event()
    threading.Timer(0.3, closed.set).start()
    began = time.monotonic()
    assert offer.wait_applied(60, closed.is_set)
    assert time.monotonic() - began < 5
    assert offer.failures == ["the container's changes to /rootfs on node n1 were not copied "
                              "back: its task ended before sending them"]


def test_a_node_lost_before_reporting_is_named():
    offer = transfer()
    offer.fetch([0, 2])
    assert offer.unreported() == ["/rootfs"]  # /data went one way only


OFFERED = [{"id": 0, "path": "/store/rootfs", "what": "rootfs", "file": False,
            "writeback": True},
           {"id": 1, "path": "/home/u/out", "what": "volume", "file": False, "writeback": True},
           {"id": 2, "path": "/home/u/in", "what": "volume", "file": False, "writeback": False}]


class Link:
    def __init__(self, node, started=True):
        self.node, self.started = node, started
        self.conn = types.SimpleNamespace(closed=True)  # its task is gone
        self.transfer = bundle_server.TaskTransfer(OFFERED, node, lambda message: None,
                                                   "/nonexistent")
        assert self.transfer.fetch([0, 1, 2]) is None


def test_a_session_abandoned_names_every_write_back_not_applied():
    link = Link("n1")
    # The rootfs came back unchanged; the volume's changes never did.
    assert link.transfer.report_changes(0, [], 0) is None
    assert bundle_server.abandoned([link]) == [
        "the container's changes to /home/u/out on node n1 were not copied back: the "
        "container ended without them"]


def test_nothing_is_said_for_a_task_whose_container_never_started():
    assert bundle_server.abandoned([Link("n2", started=False)]) == []


def test_settle_names_what_a_task_that_ended_never_sent():
    links = [Link("n1"), Link("n2")]
    for item in (0, 1):
        assert links[0].transfer.report_changes(item, [], 0) is None
    assert bundle_server.settle(links, timeout=1) == [
        "the container's changes to %s on node n2 were not copied back: the node's task "
        "ended without sending them" % path for path in ("/store/rootfs", "/home/u/out")]


def _extracted(sock, dest):
    from scrun_rest.bundle import safe_extract
    dest.mkdir()
    with sock.makefile("rb") as source:
        safe_extract.extract(source, str(dest))
    return sorted(p.name for p in dest.iterdir())


def test_a_stream_dialled_before_its_fetch_arrived_is_served_once_it_does(tmp_path):
    # The task sends "fetch" on its control link and then dials: under load
    # the dial's handshake can end first (one run in a hundred did).
    import socket
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "f").write_text("x")
    sent = []
    offer = bundle_server.TaskTransfer(
        [{"id": 2, "path": str(tmp_path / "data"), "what": "volume", "file": False,
          "writeback": False}], "n1", sent.append, "/nonexistent")
    ours, theirs = socket.socketpair()
    assert offer.accept("bundle-2", ours)
    assert offer.fetch([2]) is None
    assert _extracted(theirs, tmp_path / "out") == ["f"]
    assert eventually(lambda: sent)
    assert sent[0]["t"] == "bundle_sent" and sent[0].get("error") is None


def test_a_write_back_dialled_before_its_report_is_applied_once_it_comes(tmp_path):
    import socket
    from scrun_rest.bundle import pack
    (tmp_path / "out").mkdir()
    (tmp_path / "node").mkdir()
    (tmp_path / "node" / "new").write_text("made on the node")
    offer = bundle_server.TaskTransfer(
        [{"id": 1, "path": str(tmp_path / "out"), "what": "volume", "file": False,
          "writeback": True}], "n1", lambda message: None, "/nonexistent")
    assert offer.fetch([1]) is None
    ours, theirs = socket.socketpair()
    assert offer.accept("writeback-1", ours)
    assert offer.report_changes(1, [], 1) is None
    pack.pack_paths(str(tmp_path / "node"), ["new"], theirs.fileno())
    theirs.shutdown(socket.SHUT_WR)
    assert offer.wait_applied(10, lambda: False)
    assert (tmp_path / "out" / "new").read_text() == "made on the node"
    assert offer.failures == []


def test_a_stream_still_waiting_when_its_link_ends_is_closed():
    import socket
    offer = transfer()
    ours, theirs = socket.socketpair()
    assert offer.accept("bundle-2", ours)
    assert not offer.accept("bundle-2", socket.socketpair()[0])  # one per item
    assert not offer.accept("cached-2", socket.socketpair()[0])  # a volume has no cache
    offer.close_waiting()
    theirs.settimeout(5)
    assert theirs.recv(1) == b""


def eventually(predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False
