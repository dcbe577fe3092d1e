"""Lua's remote_command: a script the agent runs on every node of the job.

Each call waits for the agent's answer by call id. Lua runs in a worker
thread (stage_in/stage_out block), so it enters through run_blocking.
"""
import asyncio
import itertools

NOT_CONNECTED = "the job's agent is not connected"


class RemoteCalls:
    def __init__(self, loop, agent, env):
        """agent() is the agent's connection or None; env() the variables
        the script gets (the job's SCRUN_* output variables)."""
        self._loop = loop
        self._agent = agent
        self._env = env
        self._pending = {}
        self._ids = itertools.count(1)

    async def run(self, script):
        """(exit status, output) of script on the job's nodes."""
        agent = self._agent()
        if agent is None or agent.closed:
            return 1, NOT_CONNECTED
        call_id = next(self._ids)
        future = self._loop.create_future()
        self._pending[call_id] = future
        agent.send("remote", id=call_id, script=script, env=self._env())
        return await future

    def run_blocking(self, script):
        """run() for a worker thread."""
        return asyncio.run_coroutine_threadsafe(self.run(script), self._loop).result()

    def done(self, message):
        """The agent's answer to one call."""
        future = self._pending.pop(message.get("id"), None)
        if future is not None and not future.done():
            future.set_result((int(message.get("status", 1)), message.get("output", "")))

    def fail_all(self, text):
        """The agent is gone: no answer will come to calls still waiting."""
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_result((1, text))
