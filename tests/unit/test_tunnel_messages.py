"""The message table: what each receiver accepts, and the anchor's links
ending cleanly (one log line, no traceback) on anything else."""
import asyncio
import logging
import socket

import pytest

from scrun_rest.anchor.agent_link import AgentLink
from scrun_rest.tunnel import messages, wire
from scrun_rest.tunnel.framed_async import FramedConnection
from scrun_rest.tunnel.messages import ProtocolError, check

LINKS = (messages.AGENT_TO_ANCHOR, messages.ANCHOR_TO_AGENT, messages.TASK_TO_ANCHOR,
         messages.ANCHOR_TO_TASK, messages.CLIENT_TO_ANCHOR, messages.ANCHOR_TO_CLIENT,
         messages.ANCHOR_TO_CREATE)


def test_a_valid_message_passes():
    message = {"t": "step_exit", "session": 0, "status": 3}
    assert check(messages.AGENT_TO_ANCHOR, message) is message


@pytest.mark.parametrize("message, words", [
    ({"t": "claimed"}, "unexpected message type 'claimed'"),
    ({"t": "welcome", "task_key": "ab", "settings": {}}, "unexpected message type"),
    ({"session": 1}, "unexpected message type"),
    ({"t": 7}, "unexpected message type"),
    ({"t": "step_exit", "session": 0}, "lacks 'status'"),
    ({"t": "step_exit", "session": "0", "status": 1}, "'session' is not of type int"),
    ({"t": "step_exit", "session": True, "status": 1}, "'session' is not of type int"),
    ({"t": "step_output", "session": 0, "line": ["x"]}, "'line' is not of type str"),
    ({"t": "started", "python": "3.11", "env": {"A": 1}, "identity": {}},
     "'env' is not of type str-map"),
    ({"t": "ping", "extra": 1}, "unknown fields 'extra'"),
])
def test_what_the_anchor_refuses_from_the_agent(message, words):
    with pytest.raises(ProtocolError) as refused:
        check(messages.AGENT_TO_ANCHOR, message)
    assert words in str(refused.value)


def test_optional_fields_may_be_absent_or_null():
    check(messages.TASK_TO_ANCHOR, {"t": "exit", "status": 0})
    check(messages.TASK_TO_ANCHOR, {"t": "exit", "status": 0, "error": None})
    with pytest.raises(ProtocolError):
        check(messages.TASK_TO_ANCHOR, {"t": "exit", "status": 0, "error": 5})


def test_make_checks_on_the_sending_side_and_drops_absent_options():
    assert messages.make(messages.ANCHOR_TO_TASK, "go", rows=None, cols=None) == {"t": "go"}
    with pytest.raises(ProtocolError):
        messages.make(messages.ANCHOR_TO_TASK, "go", rows="24")
    with pytest.raises(ProtocolError):
        messages.make(messages.ANCHOR_TO_TASK, "launch", session=0)


def test_every_type_is_a_name_with_known_field_kinds():
    kinds = {messages.INT, messages.STR, messages.BOOL, messages.OBJECT,
             messages.STR_LIST, messages.STR_MAP, messages.INT_PAIR, messages.INT_LIST,
             messages.ITEM_LIST}
    for link in LINKS + tuple(messages.ROLES.values()):
        for fields in (link.values() if link not in messages.ROLES.values() else [link]):
            assert all(kind.rstrip("?") in kinds for kind in fields.values())


def test_roles():
    role = {"kind": "data", "session": 0, "task": 1, "node": "n1", "step": "3", "job": "9",
            "stream": "stdout"}
    assert messages.check_role(role) == "data"
    with pytest.raises(ProtocolError):
        messages.check_role(dict(role, kind="root"))
    with pytest.raises(ProtocolError):
        messages.check_role(dict(role, task="1"))


def test_a_dispatcher_must_cover_its_table_exactly():
    handlers = {kind: (lambda message: message["t"]) for kind in messages.TASK_TO_ANCHOR}
    dispatch = messages.Dispatcher(messages.TASK_TO_ANCHOR, handlers)
    assert dispatch({"t": "prepared"}) == "prepared"
    with pytest.raises(ValueError):
        messages.Dispatcher(messages.TASK_TO_ANCHOR, dict(handlers, claimed=print))
    del handlers["exit"]
    with pytest.raises(ValueError):
        messages.Dispatcher(messages.TASK_TO_ANCHOR, handlers)


def test_an_oversize_frame_is_refused_before_it_is_read():
    reader = wire.FrameReader()
    with pytest.raises(wire.TunnelError):
        reader.feed(wire.HEADER.pack(wire.MAX_FRAME + 1) + b"{")


# -- the anchor's agent link ---------------------------------------------------
def serve_agent_link(frames):
    """What AgentLink.serve says after the agent sent these raw frames."""
    async def scenario():
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        seen = []
        handlers = {kind: seen.append for kind in messages.AGENT_TO_ANCHOR
                    if kind not in ("ping", "pong")}
        link = AgentLink(await FramedConnection.open(ours), 5, handlers)
        for frame in frames:
            theirs.sendall(frame)
        serving = asyncio.ensure_future(link.serve())
        await asyncio.sleep(0.05)
        theirs.close()
        why = await asyncio.wait_for(serving, 5)
        return why, seen, link.closed

    return asyncio.run(scenario())


def frame(body):
    return wire.HEADER.pack(len(body)) + body


@pytest.mark.parametrize("raw, words", [
    (frame(b'{"t":"claimed"}'), "unexpected message type 'claimed'"),
    (frame(b'{"t":"job_signal"}'), "lacks 'signal'"),
    (frame(b'{"t":"job_signal","signal":"TERM"}'), "not of type int"),
    (frame(b"[1,2]"), "not a JSON object"),
    (frame(b"\xff\xfe"), "not JSON"),
    (wire.HEADER.pack(wire.MAX_FRAME + 1), "too large"),
])
def test_the_agent_link_ends_cleanly_on_a_bad_message(raw, words, caplog):
    caplog.set_level(logging.DEBUG, logger="scrun_rest.anchor")
    good = wire.encode({"t": "job_signal", "signal": 15})
    why, seen, closed = serve_agent_link([good, raw, good])
    assert "broke the tunnel protocol" in why and words in why
    assert [message["signal"] for message in seen] == [15]   # nothing after the bad one
    assert closed
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is None


def test_the_agent_link_answers_pings_and_reports_a_plain_end():
    async def scenario():
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        handlers = {kind: print for kind in messages.AGENT_TO_ANCHOR
                    if kind not in ("ping", "pong")}
        link = AgentLink(await FramedConnection.open(ours), 5, handlers)
        theirs.sendall(wire.encode({"t": "ping"}))
        serving = asyncio.ensure_future(link.serve())
        await asyncio.sleep(0.05)
        answer = wire.recv(theirs)
        theirs.close()
        return answer, await asyncio.wait_for(serving, 5)

    answer, why = asyncio.run(scenario())
    assert answer == {"t": "pong"}
    assert why == "the job's agent disconnected"
