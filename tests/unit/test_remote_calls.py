"""Lua's remote_command through the agent: answers by call id."""
import asyncio
import threading

from scrun_rest.anchor.remote_calls import NOT_CONNECTED, RemoteCalls
from scrun_rest.tunnel import messages


class FakeAgent:
    """AgentLink's interface: sends are checked against the message table."""

    def __init__(self):
        self.closed = False
        self.sent = []

    def send(self, kind, **fields):
        self.sent.append(messages.make(messages.ANCHOR_TO_AGENT, kind, **fields))


def test_answers_reach_the_call_with_their_id():
    async def scenario():
        agent = FakeAgent()
        calls = RemoteCalls(asyncio.get_running_loop(), lambda: agent, lambda: {"A": "1"})
        first = asyncio.ensure_future(calls.run("echo one"))
        second = asyncio.ensure_future(calls.run("echo two"))
        await asyncio.sleep(0)
        assert [(m["script"], m["env"]) for m in agent.sent] == [
            ("echo one", {"A": "1"}), ("echo two", {"A": "1"})]
        calls.done({"id": agent.sent[1]["id"], "status": 3, "output": "two\n"})
        calls.done({"id": agent.sent[0]["id"], "status": 0, "output": "one\n"})
        calls.done({"id": 12345, "status": 0})  # unknown ids are ignored
        return await first, await second

    assert asyncio.run(scenario()) == ((0, "one\n"), (3, "two\n"))


def test_without_an_agent_the_call_fails_at_once():
    async def scenario():
        return await RemoteCalls(asyncio.get_running_loop(), lambda: None, dict).run("true")

    assert asyncio.run(scenario()) == (1, NOT_CONNECTED)


def test_a_lost_agent_releases_waiting_calls_from_a_worker_thread():
    async def scenario():
        agent = FakeAgent()
        calls = RemoteCalls(asyncio.get_running_loop(), lambda: agent, dict)
        results = []
        worker = threading.Thread(target=lambda: results.append(calls.run_blocking("sleep 9")))
        worker.start()
        for _ in range(500):   # up to 5 s: a call that never leaves fails, not hangs
            if agent.sent:
                break
            await asyncio.sleep(0.01)
        assert agent.sent, "the call never reached the agent"
        calls.fail_all("the job's agent disconnected")
        await asyncio.get_running_loop().run_in_executor(None, worker.join, 5)
        return results

    assert asyncio.run(scenario()) == [(1, "the job's agent disconnected")]
