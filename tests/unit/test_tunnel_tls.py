"""TunnelTls: TLS under the HMAC handshake, pinned by fingerprint, relayed to plain sockets."""
import hashlib
import os
import socket
import ssl
import threading
import time

import pytest

from scrun_rest.anchor.tunnel_cert import make_server_context
from scrun_rest.tunnel import tls, wire

KEY = b"k" * 32


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return make_server_context(str(tmp_path_factory.mktemp("spool")))


def accept_once(serve):
    """A listener on loopback whose first connection goes to serve(conn) in a
    thread; returns (port, thread)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def run():
        conn, _ = listener.accept()
        try:
            serve(conn)
        finally:
            listener.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread


def serve_once(context, role_box, handler):
    """A one-connection anchor: TLS, then the HMAC handshake, then handler(plain)."""
    def serve(conn):
        try:
            plain = tls.wrap_server(conn, context, 5)
            plain.settimeout(5)
            role_box["role"] = wire.server_handshake(plain, lambda role: KEY)
            plain.settimeout(None)
            handler(plain)
        except (OSError, wire.TunnelError) as exc:
            role_box["error"] = exc

    return accept_once(serve)


def served_certificate(context):
    """The DER certificate a TLS server with context hands a client."""
    def serve(conn):
        try:
            context.wrap_socket(conn, server_side=True).close()
        except OSError:
            conn.close()

    port, thread = accept_once(serve)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        with client.wrap_socket(sock) as secure:
            der = secure.getpeercert(binary_form=True)
    thread.join(10)
    return der


def test_certificate_files_do_not_outlive_the_context(tmp_path):
    context, pin = make_server_context(str(tmp_path))
    assert os.listdir(str(tmp_path)) == []
    # The pin is the fingerprint of the certificate the context serves.
    assert pin == hashlib.sha256(served_certificate(context)).hexdigest()


def test_both_directions_and_half_close_through_tls(certificate):
    context, pin = certificate
    payload = os.urandom(3 << 20)
    received = {}

    def echo_digest(plain):
        # Read to EOF (the client's half-close), then answer on the same socket.
        digest = hashlib.sha256()
        while True:
            chunk = plain.recv(1 << 16)
            if not chunk:
                break
            digest.update(chunk)
        plain.sendall(digest.hexdigest().encode())
        plain.close()

    port, thread = serve_once(context, received, echo_digest)
    sock = wire.dial("127.0.0.1", port, KEY, {"kind": "data"}, timeout=5, tls_pin=pin)
    assert sock.family == socket.AF_UNIX  # the plain end of the relay
    sock.sendall(payload)
    sock.shutdown(socket.SHUT_WR)
    answer = b""
    while True:
        chunk = sock.recv(100)
        if not chunk:
            break
        answer += chunk
    sock.close()
    thread.join(10)
    assert received["role"] == {"kind": "data"}
    assert answer.decode() == hashlib.sha256(payload).hexdigest()


def test_a_wrong_pin_is_refused_before_any_secret_is_used(certificate):
    context, pin = certificate
    box = {}
    port, thread = serve_once(context, box, lambda plain: plain.close())
    wrong = "0" * 64
    with pytest.raises(wire.TunnelError, match="certificate"):
        wire.dial("127.0.0.1", port, KEY, {"kind": "agent"}, timeout=5, tls_pin=wrong)
    thread.join(10)
    assert "role" not in box


def test_a_plain_client_gets_no_hello_from_a_tls_anchor(certificate):
    context, _ = certificate
    box = {}
    port, thread = serve_once(context, box, lambda plain: plain.close())
    with pytest.raises((wire.TunnelError, OSError)):
        wire.dial("127.0.0.1", port, KEY, {"kind": "agent"}, timeout=1)
    thread.join(10)
    assert "role" not in box and "error" in box


def test_drain_sends_what_was_written_before_exit(certificate):
    context, pin = certificate
    box = {}
    got = []

    def read_all(plain):
        data = b""
        while True:
            chunk = plain.recv(1 << 16)
            if not chunk:
                break
            data += chunk
        got.append(data)
        plain.close()

    port, thread = serve_once(context, box, read_all)
    sock = wire.dial("127.0.0.1", port, KEY, {"kind": "task"}, timeout=5, tls_pin=pin)
    sock.sendall(b"x" * 500000)
    tls.drain(10)
    thread.join(10)
    assert got == [b"x" * 500000]


def silent_tls_peer(port):
    """A peer that completes TLS, then says nothing and stays connected."""
    client = tls.client_context()
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    return client.wrap_socket(sock)


def test_the_relay_ends_when_its_plain_end_is_closed(certificate):
    """The anchor closes the plain end of a peer it rejects; a relay that
    waited for the peer's EOF stayed, with two fds, for as long as the peer
    kept quiet: one thread per rejected peer."""
    context, _ = certificate
    relays = []
    port, thread = accept_once(lambda conn: relays.append(
        tls.relay_of(tls.wrap_server(conn, context, 5))))
    peer = silent_tls_peer(port)
    thread.join(10)
    relay = relays[0]
    relay.outer.close()
    try:
        assert relay.flushed.wait(5)
        deadline = time.monotonic() + 5
        # It leaves the list, then closes its sockets.
        while (relay in tls._relays or relay.inner.fileno() != -1) and \
                time.monotonic() < deadline:
            time.sleep(0.02)
        assert relay not in tls._relays
        assert relay.secure.fileno() == -1 and relay.inner.fileno() == -1
        # The peer sees the end of the connection.
        peer.settimeout(5)
        assert peer.recv(10) == b""
    finally:
        peer.close()


def test_a_half_closed_plain_end_still_reads(certificate):
    """Ending at a hang-up must not end a stream whose plain end only
    stopped writing (a task's stdout sender, drain() at exit)."""
    context, _ = certificate
    relays = []
    port, thread = accept_once(lambda conn: relays.append(
        tls.wrap_server(conn, context, 5)))
    peer = silent_tls_peer(port)
    thread.join(10)
    plain = relays[0]
    try:
        plain.shutdown(socket.SHUT_WR)
        peer.settimeout(5)
        assert peer.recv(10) == b""  # the half-close reached the peer
        peer.sendall(b"still heard")
        plain.settimeout(5)
        assert plain.recv(100) == b"still heard"
    finally:
        plain.close()
        peer.close()
