"""The anchor's side of bundle transfer (anchor/bundle_server.py)."""
import threading
import time

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
