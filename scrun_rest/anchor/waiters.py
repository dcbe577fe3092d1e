"""Control requests that wait for a moment in the container's life.

`start` waits until the process runs, `delete` until the container is
stopped. Once the moment has come (or can no longer come), later callers
get the outcome at once.
"""
import asyncio


class Moment:
    def __init__(self):
        self.waiters = []
        self.outcome = None   # ("value", v) or ("error", exc) once it came

    async def wait(self):
        if self.outcome is None:
            waiter = asyncio.get_event_loop().create_future()
            self.waiters.append(waiter)
            return await waiter
        kind, value = self.outcome
        if kind == "error":
            raise value
        return value

    def arrived(self, value=None):
        self._settle(("value", value))

    def failed(self, error):
        self._settle(("error", error))

    def _settle(self, outcome):
        if self.outcome is not None:
            return  # the first outcome stands
        self.outcome = outcome
        for waiter in self.waiters:
            if not waiter.done():
                if outcome[0] == "error":
                    waiter.set_exception(outcome[1])
                else:
                    waiter.set_result(outcome[1])
        self.waiters = []
