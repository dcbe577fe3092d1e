"""The anchor's tunnel listener: which links it keeps probing."""
import asyncio
import socket

import pytest

from scrun_rest.anchor.tunnel_cert import make_server_context
from scrun_rest.anchor.tunnel_server import TunnelServer
from scrun_rest.tunnel import tls, wire

KEY = b"k" * 32


def probed(sock):
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1


@pytest.mark.parametrize("with_tls", [False, True])
def test_only_task_links_are_probed_on_their_tcp_socket(tmp_path, with_tls):
    """With TunnelTls the anchor holds a socketpair end: the probes must sit
    on the TCP connection behind it, or a cut-off task goes unnoticed."""
    context, pin = make_server_context(str(tmp_path)) if with_tls else (None, None)

    async def scenario():
        loop = asyncio.get_running_loop()
        arrived = asyncio.Queue()
        server = TunnelServer(loop, "127.0.0.1", (20000, 60000), lambda role: KEY,
                              lambda conn, role, peer: arrived.put_nowait((conn, role)),
                              tls_context=context, keepalive_kinds=("task",))
        server.start()
        found = {}
        clients = []
        try:
            for kind in ("task", "data"):
                clients.append(await loop.run_in_executor(None, lambda: wire.dial(
                    "127.0.0.1", server.port, KEY, {"kind": kind}, tls_pin=pin)))
                conn, role = await asyncio.wait_for(arrived.get(), 10)
                tcp = tls.relay_of(conn).secure if with_tls else conn
                found[role["kind"]] = (conn.family == socket.AF_INET, probed(tcp))
                conn.close()
        finally:
            server.close()
            for client in clients:
                client.close()
        return found

    found = asyncio.run(scenario())
    # Plain: the anchor's own socket is the TCP one; TLS: a socketpair end.
    assert found == {"task": (not with_tls, True), "data": (not with_tls, False)}


def test_a_role_outside_the_table_is_rejected_with_one_log_line(caplog):
    """The key lookup refuses a role tunnel/messages.py does not define (a
    task's session as a string): the peer is dropped, nothing escapes into
    asyncio's own exception handler, and the next peer is served."""
    from scrun_rest.tunnel import messages

    def key_for(role):
        messages.check_role(role)
        return KEY

    async def scenario():
        loop = asyncio.get_running_loop()
        escaped = []
        loop.set_exception_handler(lambda loop, context: escaped.append(context))
        arrived = asyncio.Queue()
        server = TunnelServer(loop, "127.0.0.1", (20000, 60000), key_for,
                              lambda conn, role, peer: arrived.put_nowait(role))
        server.start()
        good = {"kind": "task", "session": 0, "task": 0, "node": "n", "step": "1", "job": "2"}
        try:
            with pytest.raises((OSError, wire.TunnelError)):
                await loop.run_in_executor(None, lambda: wire.dial(
                    "127.0.0.1", server.port, KEY, dict(good, session="0"), timeout=5))
            client = await loop.run_in_executor(None, lambda: wire.dial(
                "127.0.0.1", server.port, KEY, good, timeout=5))
            role = await asyncio.wait_for(arrived.get(), 10)
            client.close()
        finally:
            server.close()
        return escaped, role, server.rejected

    escaped, role, rejected = asyncio.run(scenario())
    assert escaped == [] and rejected == 1 and role["session"] == 0
    assert [r.getMessage() for r in caplog.records
            if "rejected a tunnel connection" in r.getMessage()] != []
