"""Framing and mutual authentication for the anchor <-> agent tunnel.

Runs on compute nodes inside the job script, so: stdlib only, Python 3.6+.

A control connection carries length-prefixed JSON messages. A data
connection carries raw bytes of one stream once the handshake is done, so the
container can write straight into the socket with no copy in Python.

Handshake (both sides prove they hold the secret; it never crosses the wire):
    server -> {"v": 1, "nonce": Ns}
    client -> {"nonce": Nc, "role": {...}, "mac": HMAC(k, "client" Ns Nc role)}
    server -> {"mac": HMAC(k, "server" Nc Ns role)}      (or closes)
The role says what the connection is for; it is inside the MAC so nobody can
replay a handshake under another role.
"""
import json
import os
import socket
import struct

# hashlib and hmac (OpenSSL: ~2.5 ms) are imported where a handshake needs
# them: `start`, `kill` and `delete` use the framing alone.

PROTOCOL_VERSION = 1
MAX_FRAME = 8 << 20
# Before authentication a peer is a stranger: its frames (a nonce, a role
# and a MAC, a few hundred bytes) must not make us buffer megabytes.
MAX_HANDSHAKE_FRAME = 4 << 10
HEADER = struct.Struct(">I")
NONCE_BYTES = 32


class TunnelError(Exception):
    """The peer broke the protocol or failed authentication."""


def encode(message):
    body = json.dumps(message, separators=(",", ":")).encode("utf-8")
    if len(body) > MAX_FRAME:
        raise TunnelError("message of %d bytes is too large" % len(body))
    return HEADER.pack(len(body)) + body


def send(sock, message):
    sock.sendall(encode(message))


def _recv_exact(sock, count):
    chunks = []
    while count:
        chunk = sock.recv(count)
        if not chunk:
            return None
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)


def recv(sock, limit=MAX_FRAME):
    """Read one message of at most limit bytes; None at a clean end of stream."""
    header = _recv_exact(sock, HEADER.size)
    if header is None:
        return None
    (length,) = HEADER.unpack(header)
    if length > limit:
        raise TunnelError("frame of %d bytes is too large" % length)
    body = _recv_exact(sock, length)
    if body is None:
        raise TunnelError("connection closed inside a frame")
    return decode(body)


def decode(body):
    try:
        message = json.loads(body.decode("utf-8"))
    except ValueError:
        raise TunnelError("frame is not JSON")
    except RecursionError:
        # A few KiB of "[[[[" exhaust the parser's stack.
        raise TunnelError("frame nests too deeply")
    if not isinstance(message, dict):
        raise TunnelError("frame is not a JSON object")
    return message


class FrameReader:
    """Incremental decoder for non-blocking sockets."""

    def __init__(self):
        self._buffer = bytearray()

    def feed(self, data):
        self._buffer += data
        messages = []
        while len(self._buffer) >= HEADER.size:
            (length,) = HEADER.unpack_from(self._buffer)
            if length > MAX_FRAME:
                raise TunnelError("frame of %d bytes is too large" % length)
            end = HEADER.size + length
            if len(self._buffer) < end:
                break
            messages.append(decode(bytes(self._buffer[HEADER.size:end])))
            del self._buffer[:end]
        return messages


def _mac(key, label, first, second, role):
    import hashlib
    import hmac
    text = json.dumps(role, sort_keys=True, separators=(",", ":")).encode("utf-8")
    data = label + b"\0" + first + second + b"\0" + text
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def _same(mac, expected):
    import hmac
    return hmac.compare_digest(str(mac), expected)


def _hex_nonce(value):
    try:
        nonce = bytes.fromhex(value)
    except (TypeError, ValueError):
        raise TunnelError("malformed nonce")
    if len(nonce) != NONCE_BYTES:
        raise TunnelError("malformed nonce")
    return nonce


def client_handshake(sock, key_for_role, role):
    """Authenticate to the anchor as `role`; raises TunnelError on failure."""
    hello = recv(sock, MAX_HANDSHAKE_FRAME)
    if not hello or hello.get("v") != PROTOCOL_VERSION:
        raise TunnelError("peer is not a scrun-rest anchor of protocol %d" % PROTOCOL_VERSION)
    server_nonce = _hex_nonce(hello.get("nonce"))
    client_nonce = os.urandom(NONCE_BYTES)
    send(sock, {"nonce": client_nonce.hex(), "role": role,
                "mac": _mac(key_for_role, b"client", server_nonce, client_nonce, role)})
    reply = recv(sock, MAX_HANDSHAKE_FRAME)
    expected = _mac(key_for_role, b"server", client_nonce, server_nonce, role)
    if not reply or not _same(reply.get("mac", ""), expected):
        raise TunnelError("the anchor failed to prove it holds the container secret")


def server_handshake(sock, key_lookup, on_verified=None):
    """Check a connecting peer; returns its role.

    key_lookup(role) returns the secret for that kind of role, or None when
    such a connection is not welcome (for example a second agent).
    on_verified() runs once the peer has proved itself, before our answer
    lets it believe it is in.
    """
    server_nonce = os.urandom(NONCE_BYTES)
    send(sock, {"v": PROTOCOL_VERSION, "nonce": server_nonce.hex()})
    answer = recv(sock, MAX_HANDSHAKE_FRAME)
    if not answer:
        raise TunnelError("peer closed during the handshake")
    client_nonce = _hex_nonce(answer.get("nonce"))
    role = answer.get("role")
    if not isinstance(role, dict):
        raise TunnelError("handshake without a role")
    key = key_lookup(role)
    if key is None:
        raise TunnelError("connection of kind %r refused" % str(role.get("kind"))[:20])
    expected = _mac(key, b"client", server_nonce, client_nonce, role)
    if not _same(answer.get("mac", ""), expected):
        raise TunnelError("bad credentials")
    if on_verified is not None:
        on_verified()
    send(sock, {"mac": _mac(key, b"server", client_nonce, server_nonce, role)})
    return role


# TCP keepalive for links that stay quiet for long (a task's control link):
# a probe after 5 quiet seconds, then every 2 s; four unanswered probes end
# the link, within about 13 s of the peer becoming unreachable.
KEEPALIVE = {"TCP_KEEPIDLE": 5, "TCP_KEEPINTVL": 2, "TCP_KEEPCNT": 4}
# Probes only run while nothing is in flight: a message sent just as the
# peer became unreachable would be retried for many minutes. This bounds
# unacknowledged data by the same time.
USER_TIMEOUT_MS = 1000 * (KEEPALIVE["TCP_KEEPIDLE"]
                          + KEEPALIVE["TCP_KEEPINTVL"] * KEEPALIVE["TCP_KEEPCNT"])


def keep_alive(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in KEEPALIVE.items():
        if hasattr(socket, name):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
    if hasattr(socket, "TCP_USER_TIMEOUT"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, USER_TIMEOUT_MS)


def dial(host, port, key, role, timeout=10.0, tls_pin=None, keepalive=False):
    """Connect and authenticate; returns a blocking socket ready for use.

    With tls_pin (the SHA-256 fingerprint of the anchor's certificate) the
    connection runs over TLS and the socket returned is the plain end of a
    relay (see tls.py). With keepalive, a peer that vanished without a word
    (a cut network, a dead host) ends the connection within KEEPALIVE's time.
    """
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if keepalive:
            keep_alive(sock)
        if tls_pin:
            from scrun_rest.tunnel import tls
            try:
                sock = tls.wrap_client(sock, tls_pin, timeout)
            except tls.PinMismatch as exc:
                raise TunnelError(str(exc))
            sock.settimeout(timeout)
        client_handshake(sock, key, role)
    except BaseException:
        sock.close()
        raise
    sock.settimeout(None)
    return sock


def dial_patiently(patience, host, port, key, role, anchor_place=None, **options):
    """dial(), again and again for `patience` seconds: the anchor may be
    briefly unreachable or busy dropping others' junk connections.

    A loopback host is dialled only from the anchor's own place (loopback.py)."""
    import time
    from scrun_rest.tunnel import loopback
    try:
        loopback.refuse_elsewhere(host, anchor_place)
    except loopback.ForeignLoopback as exc:
        raise TunnelError(str(exc))
    deadline = time.monotonic() + patience
    pause = 0.1
    while True:
        try:
            return dial(host, port, key, role, **options)
        except (OSError, TunnelError):
            if time.monotonic() + pause > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 2.0)
