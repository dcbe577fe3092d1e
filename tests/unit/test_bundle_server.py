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
