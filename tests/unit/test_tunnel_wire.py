"""The tunnel handshake: both sides prove the secret without sending it."""
import socket
import threading

import pytest

from scrun_rest.tunnel import wire

SECRET = b"s" * 32


def _pair():
    return socket.socketpair()


def _serve(sock, lookup, result):
    try:
        result["role"] = wire.server_handshake(sock, lookup)
    except wire.TunnelError as exc:
        result["error"] = str(exc)
        # As the anchor does: a failed peer is dropped.
        sock.shutdown(socket.SHUT_RDWR)


def run_handshake(client_key, server_key, role=None, lookup=None):
    server, client = _pair()
    result = {}
    lookup = lookup or (lambda r: server_key)
    thread = threading.Thread(target=_serve, args=(server, lookup, result))
    thread.start()
    try:
        wire.client_handshake(client, client_key, role or {"kind": "agent"})
        result["client"] = "ok"
    except wire.TunnelError as exc:
        result["client"] = str(exc)
    finally:
        client.close()
    thread.join(5)
    server.close()
    return result


def test_matching_secret_authenticates_both_sides():
    result = run_handshake(SECRET, SECRET, {"kind": "task", "task": 3})
    assert result["client"] == "ok"
    assert result["role"] == {"kind": "task", "task": 3}


def test_wrong_secret_is_rejected_by_the_server():
    result = run_handshake(b"x" * 32, SECRET)
    assert result["error"] == "bad credentials"
    assert result["client"] != "ok"


def test_refused_role_gets_nothing():
    result = run_handshake(SECRET, SECRET, lookup=lambda role: None)
    assert "refused" in result["error"]


def test_secret_never_crosses_the_wire():
    server, client = _pair()
    captured = []
    original_send = wire.send

    def spy(sock, message):
        captured.append(wire.encode(message))
        original_send(sock, message)

    wire.send = spy
    try:
        thread = threading.Thread(target=_serve, args=(server, lambda r: SECRET, {}))
        thread.start()
        wire.client_handshake(client, SECRET, {"kind": "agent"})
        thread.join(5)
    finally:
        wire.send = original_send
        client.close()
        server.close()
    blob = b"".join(captured)
    assert SECRET not in blob and SECRET.hex().encode() not in blob


def test_an_impostor_server_is_detected_by_the_client():
    server, client = _pair()

    def fake_anchor():
        wire.send(server, {"v": wire.PROTOCOL_VERSION, "nonce": "00" * wire.NONCE_BYTES})
        wire.recv(server)
        wire.send(server, {"mac": "0" * 64})

    thread = threading.Thread(target=fake_anchor)
    thread.start()
    with pytest.raises(wire.TunnelError, match="failed to prove"):
        wire.client_handshake(client, SECRET, {"kind": "agent"})
    thread.join(5)
    client.close()
    server.close()


def test_frame_reader_splits_and_joins_frames():
    data = wire.encode({"t": "a"}) + wire.encode({"t": "b", "n": 2})
    reader = wire.FrameReader()
    assert reader.feed(data[:3]) == []
    assert reader.feed(data[3:]) == [{"t": "a"}, {"t": "b", "n": 2}]


def test_oversized_and_malformed_frames_are_errors():
    reader = wire.FrameReader()
    with pytest.raises(wire.TunnelError):
        reader.feed((wire.MAX_FRAME + 1).to_bytes(4, "big"))
    with pytest.raises(wire.TunnelError):
        wire.FrameReader().feed((2).to_bytes(4, "big") + b"[]")


def test_keep_alive_bounds_both_silence_and_unacknowledged_data():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        wire.keep_alive(sock)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 5
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == \
            wire.USER_TIMEOUT_MS
    finally:
        sock.close()


# Handshake frames are a few hundred bytes: a header announcing more is
# refused before any body is read (both sides), and never waited for.
BIG_HEADER = wire.HEADER.pack(5000)


def test_the_anchor_refuses_a_big_handshake_answer_at_its_header():
    server, client = _pair()
    server.settimeout(2)
    client.sendall(BIG_HEADER)  # and no body: a wait for it would time out
    with pytest.raises(wire.TunnelError, match="too large"):
        wire.server_handshake(server, lambda role: SECRET)
    server.close()
    client.close()


def test_the_agent_refuses_a_big_greeting_at_its_header():
    server, client = _pair()
    client.settimeout(2)
    server.sendall(BIG_HEADER)
    with pytest.raises(wire.TunnelError, match="too large"):
        wire.client_handshake(client, SECRET, {"kind": "agent"})
    server.close()
    client.close()


def test_deeply_nested_json_is_a_protocol_error():
    """1 KB of "[[[" raised RecursionError, past every handler that expects
    TunnelError; the anchor then logged a traceback per connection."""
    nested = b"[" * 4000
    with pytest.raises(wire.TunnelError, match="nests too deeply"):
        wire.decode(nested)
    with pytest.raises(wire.TunnelError, match="nests too deeply"):
        wire.FrameReader().feed(wire.HEADER.pack(len(nested)) + nested)
    server, client = _pair()
    server.settimeout(2)
    client.sendall(wire.HEADER.pack(len(nested)) + nested)
    with pytest.raises(wire.TunnelError, match="nests too deeply"):
        wire.server_handshake(server, lambda role: SECRET)
    server.close()
    client.close()
