"""Optional TLS under the tunnel's HMAC handshake (TunnelTls=yes).

The anchor makes a self-signed certificate for each container; the agent
pins its SHA-256 fingerprint, which the job script carries, so no CA is
involved. The HMAC handshake then runs inside TLS, unchanged.

Callers keep plain sockets: every TLS connection gets one relay thread that
copies between it and one end of a socketpair, and the caller (or runc, as
its stdio) uses the other end. A single thread owns each SSL object, as
OpenSSL requires. Stdlib only, Python 3.6+ (it runs on compute nodes).
"""
import hashlib
import hmac
import select
import socket
import ssl
import threading
import time

CHUNK = 256 << 10
# A direction stops reading while this much waits to be written on.
HIGH_WATER = 1 << 20

_relays = []
_relays_lock = threading.Lock()


class PinMismatch(ssl.SSLError):
    """The peer's certificate is not the one the job script names."""


def fingerprint(der):
    return hashlib.sha256(der).hexdigest()


def _modern(context):
    if hasattr(context, "minimum_version"):  # Python 3.7+
        context.minimum_version = ssl.TLSVersion.TLSv1_2
    else:
        context.options |= ssl.OP_NO_SSLv3 | ssl.OP_NO_TLSv1 | ssl.OP_NO_TLSv1_1
    return context


def server_context(cert_file, key_file):
    context = _modern(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    context.load_cert_chain(cert_file, key_file)
    return context


def client_context():
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # The pinned fingerprint replaces CA and host name checks.
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return _modern(context)


def wrap_client(sock, pin, timeout):
    """TLS to the anchor, checked against the pin; returns a plain socket."""
    sock.settimeout(timeout)
    secure = client_context().wrap_socket(sock)
    try:
        der = secure.getpeercert(binary_form=True)
        if not der or not hmac.compare_digest(fingerprint(der), str(pin).lower()):
            raise PinMismatch("the anchor's TLS certificate is not the one this job expects")
    except BaseException:
        secure.close()
        raise
    return Relay(secure).start()


def wrap_server(sock, context, timeout):
    """TLS for an accepted connection; returns a plain socket."""
    sock.settimeout(timeout)
    return Relay(context.wrap_socket(sock, server_side=True)).start()


def relay_of(plain):
    """The relay behind a plain socket wrap_* returned, or None."""
    with _relays_lock:
        for relay in _relays:
            if relay.outer is plain:
                return relay
    return None


def drain(timeout):
    """Before the process exits: let every relay send what was written to it."""
    deadline = time.monotonic() + timeout
    with _relays_lock:
        relays = list(_relays)
    for relay in relays:
        try:
            relay.outer.shutdown(socket.SHUT_WR)
        except OSError:
            pass
    for relay in relays:
        relay.flushed.wait(max(0.0, deadline - time.monotonic()))


class Relay:
    """Copies between one TLS socket and a socketpair, in both directions.

    flushed is set once everything written to the plain end before its
    write side closed has left on the TLS connection. Once the plain end is
    closed for good (not just half-closed) nobody can read what the peer
    sends: the relay ends then, even if the peer stays silent, or every
    peer dropped before its handshake ended would keep a thread and two fds.
    """

    def __init__(self, secure):
        self.secure = secure
        self.outer, self.inner = socket.socketpair()
        self.flushed = threading.Event()
        self.up = bytearray()      # plain -> TLS
        self.down = bytearray()    # TLS -> plain
        self.plain_eof = False
        self.plain_closed = False
        self.tls_eof = False
        self.up_done = False
        self.down_done = False
        self.tls_wants_write = False   # a read needs the socket writable
        self.tls_wants_read = False    # a write needs the socket readable

    def start(self):
        self.secure.setblocking(False)
        self.inner.setblocking(False)
        with _relays_lock:
            _relays.append(self)
        threading.Thread(target=self._run, name="tls-relay", daemon=True).start()
        return self.outer

    def _run(self):
        poller = select.poll()
        try:
            while not (self.up_done and self.down_done):
                if self.secure.pending() and self._may_read_tls():
                    self._read_tls()
                else:
                    self._wait(poller)
                self._write_tls()
                self._write_plain()
                self._finish_directions()
        except OSError:
            pass
        finally:
            self.flushed.set()
            with _relays_lock:
                if self in _relays:
                    _relays.remove(self)
            for sock in (self.secure, self.inner):
                try:
                    sock.close()
                except OSError:
                    pass

    def _may_read_tls(self):
        return not self.tls_eof and len(self.down) < HIGH_WATER

    def _wait(self, poller):
        tls_events = 0
        if self._may_read_tls() or self.tls_wants_read:
            tls_events |= select.POLLIN
        if (self.up and not self.up_done and not self.tls_wants_read) or self.tls_wants_write:
            tls_events |= select.POLLOUT
        plain_events = 0
        if not self.plain_eof and len(self.up) < HIGH_WATER:
            plain_events |= select.POLLIN
        if self.down and not self.down_done:
            plain_events |= select.POLLOUT
        # Registered even with no events: poll reports a hang-up regardless.
        watch_plain = plain_events or not self.plain_closed
        for sock, events, watch in ((self.secure, tls_events, bool(tls_events)),
                                    (self.inner, plain_events, watch_plain)):
            try:
                poller.unregister(sock)
            except KeyError:
                pass
            if watch:
                poller.register(sock, events)
        for fd, events in poller.poll(1000):
            if fd == self.secure.fileno():
                self.tls_wants_read = False
                if events & (select.POLLIN | select.POLLHUP | select.POLLERR) or \
                        self.tls_wants_write:
                    self._read_tls()
            elif fd == self.inner.fileno():
                if events & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                    # A socketpair end hangs up only once its peer is closed.
                    self.plain_closed = True
                if events & (select.POLLIN | select.POLLHUP | select.POLLERR):
                    self._read_plain()

    def _read_tls(self):
        self.tls_wants_write = False
        while self._may_read_tls():
            try:
                data = self.secure.recv(CHUNK)
            except ssl.SSLWantReadError:
                return
            except ssl.SSLWantWriteError:
                self.tls_wants_write = True
                return
            except (ssl.SSLEOFError, ConnectionError):
                data = b""
            if not data:
                self.tls_eof = True
                return
            self.down += data

    def _read_plain(self):
        if self.plain_eof or len(self.up) >= HIGH_WATER:
            return
        try:
            data = self.inner.recv(CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except ConnectionError:
            data = b""
        if not data:
            self.plain_eof = True
            return
        self.up += data

    def _write_tls(self):
        while self.up and not self.up_done:
            try:
                sent = self.secure.send(bytes(self.up[:CHUNK]))
            except ssl.SSLWantWriteError:
                return
            except ssl.SSLWantReadError:
                self.tls_wants_read = True
                return
            except OSError:
                # The peer is gone: nothing more can reach it.
                self.up = bytearray()
                self.up_done = self.plain_eof = True
                self.flushed.set()
                return
            del self.up[:sent]

    def _write_plain(self):
        while self.down and not self.down_done:
            try:
                sent = self.inner.send(self.down[:CHUNK])
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # Our side stopped reading: drop what the peer sends.
                self.down = bytearray()
                self.down_done = self.tls_eof = True
                return
            del self.down[:sent]

    def _finish_directions(self):
        if self.plain_closed and not self.down_done:
            # Nobody will read it: stop waiting for the peer.
            self.down = bytearray()
            self.tls_eof = True
        if self.plain_eof and not self.up and not self.up_done:
            self.up_done = True
            try:
                # A TCP half-close: the peer reads EOF, we may still read.
                socket.socket.shutdown(self.secure, socket.SHUT_WR)
            except OSError:
                pass
            self.flushed.set()
        if self.tls_eof and not self.down and not self.down_done:
            self.down_done = True
            try:
                self.inner.shutdown(socket.SHUT_WR)
            except OSError:
                pass
