"""Why a job ended, in words for the user, from Slurm's own account.

Asked only after a fault (the agent went silent, Slurm signalled the job):
the happy path never polls REST.
"""
import asyncio
import signal

from scrun_rest.errors import UserError

# v0.0.38/39 show COMPLETING instead of the base state (CANCELLED, TIMEOUT,
# ...) until the job's processes are gone: how often and how fast to ask again.
FATE_TRIES = 8
FATE_PAUSE = 0.5

WORDS = {
    "CANCELLED": "Slurm cancelled job %s",
    "TIMEOUT": "job %s reached its time limit",
    "NODE_FAIL": "job %s ended: its node failed",
    "PREEMPTED": "job %s was preempted",
    "OUT_OF_MEMORY": "job %s ran out of memory",
    "DEADLINE": "job %s reached its deadline",
}


async def ask(fetch, job_id, job_signal=None):
    """fetch() is a coroutine returning the job's REST record."""
    for _ in range(FATE_TRIES):
        try:
            info = await fetch()
        except UserError as exc:
            return "lost contact with job %s (%s)" % (job_id, exc)
        if info.state.name != "COMPLETING":
            break
        await asyncio.sleep(FATE_PAUSE)
    if not info.state.is_terminal and job_signal:
        return "Slurm sent signal %d (%s) to job %s, which is %s" % (
            job_signal, signal_name(job_signal), job_id, info.state.name)
    if not info.state.is_terminal:
        # The job lives on (we lost it, not Slurm); the anchor cancels it.
        return "job %s is still %s" % (job_id, info.state.name)
    text = WORDS.get(info.state.name, "job %s ended as " + info.state.name)
    return (text % job_id) + state_reason(info)


def signal_name(number):
    try:
        return signal.Signals(number).name
    except ValueError:
        return "signal %d" % number


def state_reason(info):
    """Slurm's reason for the job's state, as a suffix; '' when none."""
    text = getattr(info, "state_reason", None)
    return " (%s)" % text if text and text != "None" else ""
