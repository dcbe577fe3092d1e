"""Every task the anchor starts is supervised: a failure in any of them ends
the container with a clear error, never a hang (no Slurm needed: the REST
client is a stand-in, the tunnel and control socket are real)."""
import asyncio
import os

from scrun_rest.anchor import core, create_report, job_submission
from scrun_rest.anchor.anchor_setup import AnchorSetup
from scrun_rest.anchor.spool import Spool
from scrun_rest.anchor.supervisor import Supervisor
from scrun_rest.errors import UserError


class FakeRest:
    def __init__(self, submit=None, job=None):
        self._submit, self._job = submit, job
        self.cancelled = []
        self.requests_made = 0

    def submit(self, request):
        if isinstance(self._submit, Exception):
            raise self._submit
        return 5

    def job(self, job_id):
        raise self._job

    def cancel(self, job_id):
        self.cancelled.append(job_id)


def run_anchor(tmp_path, rest):
    read_end, write_end = os.pipe()
    spool = Spool(str(tmp_path / "root"), "c1")
    spool.create()
    setup = AnchorSetup(
        container_id="c1", bundle=str(tmp_path), config_doc={"root": {"path": "/r"}},
        config_file=str(tmp_path / "config.json"), spool=spool, root=spool.root,
        status_fd=write_end, stdio={}, job_request={"environment": {}},
        tunnel_host="127.0.0.1", make_rest_client=lambda: rest)
    anchor = core.Anchor(setup)
    code = asyncio.run(asyncio.wait_for(anchor.run(), 20))
    return code, create_report.receive(read_end), spool


def test_a_failed_submission_ends_the_container(tmp_path):
    code, report, spool = run_anchor(tmp_path, FakeRest(submit=RuntimeError("injected")))
    assert code == 1
    assert report["t"] == "failed" and report["code"] == 1
    assert report["error"] == ("internal error in the anchor (submission): "
                               "RuntimeError: injected")
    assert not spool.exists()       # create failed: nothing left behind


def test_a_failure_in_a_later_task_ends_the_container_too(tmp_path, monkeypatch):
    """The pending-job watch dies of a bug: before supervision the anchor
    waited for its agent forever."""
    monkeypatch.setattr(job_submission, "PENDING_POLL_DELAYS", (0.01,))
    rest = FakeRest(job=KeyError("injected"))
    code, report, spool = run_anchor(tmp_path, rest)
    assert code == 1
    assert report["t"] == "failed"
    assert "(pending-job watch): KeyError" in report["error"]
    assert rest.cancelled == [5]    # the job does not outlive its container
    assert not spool.exists()


def test_a_user_error_keeps_its_own_words(tmp_path):
    code, report, _ = run_anchor(tmp_path, FakeRest(submit=UserError("slurmrestd said no")))
    assert code == 1 and report["error"] == "slurmrestd said no"


def test_supervisor_reports_each_failure_and_ignores_cancellation():
    failures = []

    async def scenario():
        supervisor = Supervisor(asyncio.get_running_loop(),
                                lambda code, text: failures.append((code, text)))

        async def fail():
            raise ValueError("boom")

        async def wait():
            await asyncio.sleep(30)

        supervisor.start(fail(), "failing")
        supervisor.start(wait(), "waiting")
        await asyncio.sleep(0.01)
        assert supervisor.running == 1
        await supervisor.cancel_all()
        assert supervisor.running == 0

    asyncio.run(scenario())
    assert failures == [(1, "internal error in the anchor (failing): ValueError: boom")]

