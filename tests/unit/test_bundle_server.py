"""What the user is told of write-backs that did not happen
(anchor/bundle_server.py settle and abandoned)."""
from scrun_rest.anchor import bundle_server

OFFERED = [{"id": 0, "path": "/store/rootfs", "what": "rootfs", "file": False,
            "writeback": True},
           {"id": 1, "path": "/home/u/out", "what": "volume", "file": False, "writeback": True},
           {"id": 2, "path": "/home/u/in", "what": "volume", "file": False, "writeback": False}]


class Link:
    def __init__(self, node, started=True):
        self.node, self.started = node, started
        self.transfer = bundle_server.TaskTransfer(OFFERED, node, lambda message: None)
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
