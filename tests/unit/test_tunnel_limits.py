"""What a stranger can make the anchor's tunnel listener hold before it
authenticates (issue 15 items 2 and 5): threads, fds, time, log lines."""
import asyncio
import errno
import json
import logging
import os
import socket
import threading
import time

import pytest

from scrun_rest.anchor import tunnel_server
from scrun_rest.anchor.tunnel_cert import make_server_context
from scrun_rest.anchor.tunnel_server import TunnelServer
from scrun_rest.tunnel import tls, wire

KEY = b"k" * 32
ANY = {"kind": "data", "session": 0, "task": 0, "stream": "stdout"}


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return make_server_context(str(tmp_path_factory.mktemp("spool")))


def run_with_server(scenario, key_lookup=lambda role: KEY, tls_context=None):
    """asyncio.run(scenario(loop, server, arrived)) with a started server;
    returns (scenario's result, what escaped into asyncio's handler)."""
    async def main():
        loop = asyncio.get_running_loop()
        escaped = []
        loop.set_exception_handler(lambda loop, context: escaped.append(context))
        arrived = asyncio.Queue()
        server = TunnelServer(loop, "127.0.0.1", (20000, 60000), key_lookup,
                              lambda conn, role, peer: arrived.put_nowait((conn, role, peer)),
                              tls_context=tls_context)
        server.start()
        try:
            return await scenario(loop, server, arrived), escaped
        finally:
            server.close()
    return asyncio.run(main())


async def until(predicate, timeout):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return predicate()


def open_fds():
    return len(os.listdir("/proc/self/fd"))


def relay_threads():
    return sum(1 for thread in threading.enumerate() if thread.name == "tls-relay")


def read_frame(sock):
    (length,) = wire.HEADER.unpack(recv_exact(sock, wire.HEADER.size))
    return json.loads(recv_exact(sock, length))


def recv_exact(sock, count):
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        assert chunk, "the anchor hung up"
        data += chunk
    return data


def bad_mac_then_silence(port, source="127.0.0.1"):
    """TLS done, the greeting read, an answer with a made-up MAC, then nothing."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=5,
                                   source_address=(source, 0))
    peer = tls.client_context().wrap_socket(raw)
    read_frame(peer)
    peer.sendall(wire.encode({"nonce": "00" * wire.NONCE_BYTES, "role": ANY,
                              "mac": "0" * 64}))
    return peer


def test_rejected_tls_peers_leave_no_thread_or_fd(certificate):
    """50 peers that complete TLS, send a bad MAC and stay connected left 50
    relay threads and 100 fds in the anchor: enough of them and accept
    fails with EMFILE."""
    context, _ = certificate
    baseline_threads = relay_threads()

    async def scenario(loop, server, arrived):
        baseline_fds = open_fds()
        peers = []
        try:
            for _ in range(50):
                peers.append(await loop.run_in_executor(None, bad_mac_then_silence,
                                                        server.port))
            assert await until(lambda: server.rejected == 50, 10), server.rejected
            await until(lambda: relay_threads() == baseline_threads, 5)
            # The peers' own 50 sockets are in this process too.
            return relay_threads() - baseline_threads, open_fds() - baseline_fds - 50
        finally:
            for peer in peers:
                peer.close()

    (threads, fds), escaped = run_with_server(scenario, tls_context=context)
    assert escaped == []
    assert threads == 0
    assert fds <= 5, fds


class FailingAccept:
    """socket.socket.accept, failing with `error` for the next `count` calls
    on the listener with fd `fd`; counts every call on it."""

    def __init__(self, monkeypatch, error, count):
        self.real = socket.socket.accept
        self.fd = None
        self.error = error
        self.failures_left = count
        self.calls = 0
        failing = self

        def accept(sock):
            if sock.fileno() == failing.fd:
                failing.calls += 1
                if failing.failures_left:
                    failing.failures_left -= 1
                    raise OSError(failing.error, os.strerror(failing.error))
            return failing.real(sock)

        monkeypatch.setattr(socket.socket, "accept", accept)


def test_the_tunnel_listener_pauses_while_fds_run_out(monkeypatch, caplog):
    """EMFILE from accept made the listener's reader fire again at once:
    the loop spun (about 1,000 "accept failed" lines a second); a dup()
    failing the same way escaped the reader and leaked the connection."""
    failing = FailingAccept(monkeypatch, errno.EMFILE, 1000)
    real_dup = socket.socket.dup
    dups = {"fail": 1}

    def dup(sock):
        if dups["fail"] and sock.family == socket.AF_INET:
            dups["fail"] -= 1
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
        return real_dup(sock)

    async def scenario(loop, server, arrived):
        failing.fd = server.listener.fileno()
        waiting = socket.create_connection(("127.0.0.1", server.port))
        await asyncio.sleep(1.0)
        calls_while_failing = failing.calls
        failing.failures_left = 0
        monkeypatch.setattr(socket.socket, "dup", dup)
        try:
            # The one waiting gets the failing dup and is closed; a real peer
            # afterwards is served.
            waiting.settimeout(5)
            assert await loop.run_in_executor(None, waiting.recv, 10) == b""
            client = await loop.run_in_executor(None, lambda: wire.dial(
                "127.0.0.1", server.port, KEY, ANY, timeout=5))
            conn, role, _ = await asyncio.wait_for(arrived.get(), 10)
            conn.close()
            client.close()
        finally:
            waiting.close()
        return calls_while_failing

    with caplog.at_level(logging.WARNING, "scrun_rest.anchor"):
        calls, escaped = run_with_server(scenario)
    assert escaped == []
    # A pause of 0.2 s between tries: about 5 in a second, not thousands.
    assert 2 <= calls <= 12, calls
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) <= 2, [r.getMessage() for r in warnings[:5]]


def drip(port, use_tls=False):
    """A handshake answer byte by byte, 0.2 s apart, each well before any
    per-read timeout; with TLS, after 0.9 s of silence and then a TLS
    handshake at full speed. Returns when the anchor hangs up, with how
    long that took."""
    began = time.monotonic()
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        if use_tls:
            time.sleep(0.9)
            sock = tls.client_context().wrap_socket(sock)
        read_frame(sock)
        answer = wire.encode({"nonce": "00" * wire.NONCE_BYTES, "role": ANY, "mac": "0" * 64})
        for byte in answer:
            try:
                sock.sendall(bytes([byte]))
                sock.settimeout(0.2)
                if sock.recv(1) == b"":
                    break
            except socket.timeout:
                pass
            except OSError:
                break
        return time.monotonic() - began
    finally:
        sock.close()


@pytest.mark.parametrize("with_tls", [False, True])
def test_one_deadline_covers_the_whole_handshake(monkeypatch, certificate, with_tls):
    """The timeout was per read: a peer dripping a byte now and then held its
    slot (and a thread) for as long as it liked. TLS and HMAC share the one
    deadline: a budget each would let the TLS peer stay 1.9 s or more."""
    monkeypatch.setattr(tunnel_server, "HANDSHAKE_DEADLINE", 1.0, raising=False)
    monkeypatch.setattr(tunnel_server, "HANDSHAKE_TIMEOUT", 1.0, raising=False)
    context = certificate[0] if with_tls else None

    async def scenario(loop, server, arrived):
        return await loop.run_in_executor(None, lambda: drip(server.port, use_tls=with_tls))

    took, escaped = run_with_server(scenario, tls_context=context)
    assert escaped == []
    assert took < 1.7, took


def authenticated(port, source):
    sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    wire.client_handshake(sock, KEY, ANY)
    return sock


def idle(port, source):
    sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    read_frame(sock)
    return sock


def hung_up(sock):
    """Whether the anchor closed sock (read past any greeting to see)."""
    sock.settimeout(0.05)
    try:
        while sock.recv(4096):
            pass
        return True
    except socket.timeout:
        return False
    except OSError:
        return True


def test_one_source_holds_at_most_8_unfinished_handshakes():
    """20 idle connections from one address all kept their slots, pushing
    out other nodes' handshakes sooner; links that authenticated do not count."""
    async def scenario(loop, server, arrived):
        held = []
        try:
            # Authenticated links from 127.0.0.3 first: they hold no slot.
            for _ in range(10):
                held.append(await loop.run_in_executor(None, authenticated, server.port,
                                                       "127.0.0.3"))
                held.append((await asyncio.wait_for(arrived.get(), 10))[0])
            flood = [await loop.run_in_executor(None, idle, server.port, "127.0.0.2")
                     for _ in range(20)]
            neighbours = [await loop.run_in_executor(None, idle, server.port, "127.0.0.3")
                          for _ in range(8)]
            held += flood + neighbours
            await asyncio.sleep(0.5)
            return [hung_up(s) for s in flood], [hung_up(s) for s in neighbours], \
                [hung_up(s) for s in held[:20]]
        finally:
            for sock in held:
                sock.close()

    (flood, neighbours, links), escaped = run_with_server(scenario)
    assert escaped == []
    # The oldest 12 of the flood made room for its newer ones.
    assert flood == [True] * 12 + [False] * 8
    assert neighbours == [False] * 8
    assert links == [False] * 20


def nested_answer(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    read_frame(sock)
    body = b"[" * 4000
    sock.sendall(wire.HEADER.pack(len(body)) + body)
    sock.settimeout(5)
    try:
        return sock.recv(10)
    finally:
        sock.close()


def lookup_that_breaks(role):
    raise RuntimeError("a bug in the key lookup")


@pytest.mark.parametrize("how", ["nested JSON", "a lookup that raises"])
def test_every_failure_is_one_log_line_without_traceback(caplog, how):
    """RecursionError (1 KB of "[[[") or anything else outside the list of
    expected errors escaped into asyncio's handler with a full traceback,
    past the log throttle, and the connection was left open."""
    lookup = lookup_that_breaks if how == "a lookup that raises" else (lambda role: KEY)

    async def scenario(loop, server, arrived):
        if how == "nested JSON":
            got = await loop.run_in_executor(None, nested_answer, server.port)
        else:
            with pytest.raises((OSError, wire.TunnelError)):
                await loop.run_in_executor(None, lambda: wire.dial(
                    "127.0.0.1", server.port, KEY, ANY, timeout=5))
            got = b""
        await until(lambda: server.rejected == 1, 5)
        return got, server.rejected

    with caplog.at_level(logging.DEBUG):
        (got, rejected), escaped = run_with_server(scenario, key_lookup=lookup)
    assert escaped == [] and got == b"" and rejected == 1
    lines = [r for r in caplog.records if "rejected a tunnel connection" in r.getMessage()]
    assert len(lines) == 1
    assert all(r.exc_info is None for r in caplog.records), \
        [r.getMessage() for r in caplog.records if r.exc_info]



@pytest.mark.parametrize("with_tls", [False, True])
def test_silent_connections_go_before_one_that_has_spoken(certificate, with_tls):
    """Same address, as on the testbed and on a node whose user floods: a
    peer halfway through its handshake outlives a stream of newer silent
    connections, which displace each other."""
    context = certificate[0] if with_tls else None

    async def scenario(loop, server, arrived):
        def speaking():
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            if with_tls:
                sock = tls.client_context().wrap_socket(sock)
            read_frame(sock)
            sock.sendall(wire.encode({"nonce": "00" * wire.NONCE_BYTES})[:10])
            return sock
        talker = await loop.run_in_executor(None, speaking)
        await asyncio.sleep(0.2)
        silent = []
        try:
            for _ in range(20):
                silent.append(await loop.run_in_executor(
                    None, lambda: socket.create_connection(("127.0.0.1", server.port))))
            await asyncio.sleep(0.5)
            return hung_up(talker), sum(hung_up(s) for s in silent)
        finally:
            talker.close()
            for sock in silent:
                sock.close()

    (talker_dropped, silent_dropped), escaped = run_with_server(scenario, tls_context=context)
    assert escaped == []
    assert not talker_dropped
    assert silent_dropped == 13  # 21 for 8 slots: the talker keeps one


def test_peers_reset_as_tls_begins_leave_no_fd(certificate):
    """ssl's wrap_socket, failing early, leaves the socket it took over open
    in a cycle with its exception: until a full GC (which an idle anchor
    seldom runs) each such peer kept an fd."""
    import gc
    import struct
    context, _ = certificate

    async def scenario(loop, server, arrived):
        baseline = open_fds()
        for _ in range(30):
            sock = socket.create_connection(("127.0.0.1", server.port))
            # Linger 0: close sends a reset, as a dropped peer's kernel does.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        await until(lambda: server.rejected >= 30 and not server.handles, 10)
        await asyncio.sleep(0.2)
        return open_fds() - baseline, server.rejected

    gc.disable()
    try:
        (extra, rejected), escaped = run_with_server(scenario, tls_context=context)
    finally:
        gc.enable()
    assert escaped == [] and rejected == 30
    assert extra <= 2, extra
