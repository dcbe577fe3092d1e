"""Every task the anchor starts has an owner, as in a trio nursery.

A task that raises anything but a UserError (which carries its own words
for the user) is a bug: the container ends with exit status 1 and one log
line naming the task, instead of the anchor waiting on `done` forever.
"""
import asyncio
import logging

from scrun_rest.errors import UserError

log = logging.getLogger("scrun_rest.anchor")


class Supervisor:
    def __init__(self, loop, on_failure):
        """on_failure(code, text) ends the container; it is called once per
        failed task and must tolerate being called while ending."""
        self._loop = loop
        self._on_failure = on_failure
        self._tasks = set()

    def start(self, coroutine, name):
        task = self._loop.create_task(coroutine)
        task.scrun_name = name
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task):
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is None:
            return
        if isinstance(error, UserError):
            self._on_failure(error.exit_code or 1, str(error))
            return
        log.error("anchor task %s failed", task.scrun_name,
                  exc_info=(type(error), error, error.__traceback__))
        self._on_failure(1, "internal error in the anchor (%s): %s: %s" % (
            task.scrun_name, type(error).__name__, error))

    @property
    def running(self):
        return len(self._tasks)

    async def cancel_all(self, keep=()):
        """Cancel what still runs (but `keep`, e.g. the caller itself)."""
        doomed = [task for task in self._tasks if task not in keep and not task.done()]
        for task in doomed:
            task.cancel()
        if doomed:
            await asyncio.wait(doomed, timeout=5)
