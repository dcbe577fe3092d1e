"""The words a user reads when Slurm, not the container, ended the job."""
import asyncio

from scrun_rest.anchor import job_fate
from scrun_rest.errors import UserError
from scrun_rest.rest.model import JobInfo, JobState


def info(state, reason=None):
    return JobInfo(job_id=7, name="x", state=JobState[state], state_reason=reason,
                   exit_status=None, exit_signal=None, start_time=None, end_time=None,
                   nodes=None, partition=None, user_name=None)


def ask(answers, job_signal=None):
    calls = []

    async def fetch():
        calls.append(1)
        answer = answers[min(len(calls), len(answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return asyncio.run(job_fate.ask(fetch, 7, job_signal)), len(calls)


def test_completing_is_asked_again_until_the_base_state_shows(monkeypatch):
    monkeypatch.setattr(job_fate, "FATE_PAUSE", 0)
    text, calls = ask([info("COMPLETING"), info("COMPLETING"), info("TIMEOUT")])
    assert (text, calls) == ("job 7 reached its time limit", 3)


def test_a_job_stuck_completing_is_asked_a_bounded_number_of_times(monkeypatch):
    monkeypatch.setattr(job_fate, "FATE_PAUSE", 0)
    text, calls = ask([info("COMPLETING")])
    assert calls == job_fate.FATE_TRIES
    assert text == "job 7 is still COMPLETING"


def test_slurm_s_reason_follows_the_words():
    assert ask([info("CANCELLED", "Prolog")])[0] == "Slurm cancelled job 7 (Prolog)"
    assert ask([info("CANCELLED", "None")])[0] == "Slurm cancelled job 7"


def test_unlisted_terminal_states_are_named():
    assert ask([info("BOOT_FAIL")])[0] == "job 7 ended as BOOT_FAIL"


def test_a_signal_to_a_running_job_is_named():
    assert ask([info("RUNNING")], job_signal=10)[0] == \
        "Slurm sent signal 10 (SIGUSR1) to job 7, which is RUNNING"
    assert ask([info("RUNNING")], job_signal=99)[0] == \
        "Slurm sent signal 99 (signal 99) to job 7, which is RUNNING"


def test_rest_failure_says_contact_was_lost():
    assert ask([UserError("slurmrestd is down")])[0] == \
        "lost contact with job 7 (slurmrestd is down)"
