"""The anchor's TCP listener: authenticates every connection before use.

Handshakes run in worker threads so a peer that connects and says nothing
cannot stall the anchor or the real agent. With TunnelTls the TLS handshake
comes first, in the same thread, and the anchor gets the plain end of a
relay (tunnel/tls.py).

Before a peer has authenticated it is a stranger, and it gets little: one
deadline for the whole handshake (TLS and HMAC together, so a slow drip of
bytes cannot hold a slot), frames of a few KiB (wire.MAX_HANDSHAKE_FRAME),
a slot among MAX_PENDING of which one source address holds at most
MAX_PER_SOURCE (handshake_slots.py), and, whatever goes wrong, one
throttled log line and a TCP connection shut down at once.
"""
import logging
import random
import select
import socket
from concurrent.futures import CancelledError, ThreadPoolExecutor

from scrun_rest.anchor.accept_loop import AcceptLoop
from scrun_rest.anchor.handshake_slots import HandshakeSlots
from scrun_rest.errors import UserError
from scrun_rest.tunnel import wire

log = logging.getLogger("scrun_rest.anchor")
# For TLS and the HMAC handshake together; a real peer needs a round trip or two.
HANDSHAKE_DEADLINE = 5.0
MAX_PENDING = 32
MAX_PER_SOURCE = 8
# Rejections logged one by one; after that only every LOG_EVERY-th.
LOG_FIRST, LOG_EVERY = 20, 100


class TunnelServer:
    def __init__(self, loop, host, port_range, key_lookup, on_connection, tls_context=None,
                 keepalive_kinds=()):
        """keepalive_kinds: roles whose quiet links get TCP keepalive, so a
        peer cut off without a word is noticed (wire.keep_alive)."""
        self.loop = loop
        self.tls_context = tls_context
        self.keepalive_kinds = frozenset(keepalive_kinds)
        self.host = host
        self.port_range = port_range
        self.key_lookup = key_lookup
        self.on_connection = on_connection
        self.listener = None
        self.accepting = None
        self.port = None
        self.slots = HandshakeSlots(MAX_PENDING, MAX_PER_SOURCE)
        # conn -> a dup of its TCP socket, to end its handshake from here
        self.handles = {}
        # conn -> why we ended its handshake early
        self.dropped = {}
        self.rejected = 0
        # Dropped handshakes need a moment to notice: room for them too.
        self.pool = ThreadPoolExecutor(max_workers=2 * MAX_PENDING,
                                       thread_name_prefix="handshake")

    def start(self):
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        low, high = self.port_range
        ports = list(range(low, high + 1)) if low else [0]
        random.shuffle(ports)
        last_error = None
        for port in ports:
            try:
                listener.bind((self.host, port))
                break
            except OSError as exc:
                last_error = exc
        else:
            listener.close()
            raise UserError("cannot listen on %s ports %d-%d: %s" % (
                self.host, low, high, last_error.strerror if last_error else "no port"))
        listener.listen(64)
        self.listener = listener
        self.port = listener.getsockname()[1]
        self.accepting = AcceptLoop(self.loop, listener, self._accepted, "tunnel").start()

    @property
    def address(self):
        return ("[%s]:%d" if ":" in self.host else "%s:%d") % (self.host, self.port)

    def close(self):
        if self.accepting is not None:
            self.accepting.stop()
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        self.pool.shutdown(wait=False)

    def _accepted(self, conn, peer):
        if len(self.handles) >= 2 * MAX_PENDING:
            conn.close()  # even the dropped handshakes have not noticed yet
            return
        handle = conn.dup()  # out of fds: AcceptLoop closes conn and pauses
        for victim in self.slots.admit(conn, peer[0]):
            self._drop(victim, "dropped unfinished to make room")
        self.handles[conn] = handle
        expiry = self.loop.call_later(HANDSHAKE_DEADLINE, self._expire, conn)
        future = self.pool.submit(self._handshake, conn)
        future.add_done_callback(lambda done: self.loop.call_soon_threadsafe(
            self._handshake_done, conn, peer, done, expiry))

    def _expire(self, conn):
        if self.slots.may_drop(conn):
            self._drop(conn, "handshake unfinished after %g s" % HANDSHAKE_DEADLINE)

    def _drop(self, conn, why):
        """End an unfinished handshake: its thread sees the socket end."""
        self.slots.release(conn)
        self.dropped[conn] = why
        _shut(self.handles[conn])

    def _handshake(self, conn):
        # Per read, in case the deadline's callback is late; it ends it sooner.
        conn.settimeout(HANDSHAKE_DEADLINE)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        plain = tcp = conn

        def verified():
            self.slots.verified(conn)

        try:
            if self.tls_context is not None:
                from scrun_rest.tunnel import tls
                # The client speaks first (its hello); a stranger may not.
                if _readable(conn, HANDSHAKE_DEADLINE):
                    self.slots.spoke(conn)
                plain = tls.wrap_server(conn, self.tls_context, HANDSHAKE_DEADLINE)
                plain.settimeout(HANDSHAKE_DEADLINE)
                # The anchor gets a socketpair end: probes belong on the TCP link.
                tcp = tls.relay_of(plain).secure
                role = wire.server_handshake(plain, self.key_lookup, verified)
            else:
                role = wire.server_handshake(_Heard(conn, lambda: self.slots.spoke(conn)),
                                             self.key_lookup, verified)
        except BaseException:
            plain.close()
            raise
        plain.settimeout(None)
        if role.get("kind") in self.keepalive_kinds:
            try:
                wire.keep_alive(tcp)
            except OSError as exc:
                log.debug("no keepalive on a %s link: %s", role.get("kind"), exc)
        return plain, role

    def _handshake_done(self, conn, peer, future, expiry):
        expiry.cancel()
        self.slots.release(conn)
        handle = self.handles.pop(conn)
        why = self.dropped.pop(conn, None)
        plain = None
        try:
            plain, role = future.result()
        except (Exception, CancelledError) as exc:
            # Whatever it was, the peer ends here: no traceback, one log line.
            why = why or _first_line(exc)
            _drop_tracebacks(exc)
        if why is not None:
            _shut(handle)  # even where a TLS relay holds the socket too
        handle.close()
        if why is not None:
            if plain is not None:
                plain.close()  # dropped just as it finished: it lost the race
            self._log_rejection(peer[0], why)
            return
        if self.listener is None:
            plain.close()
            return
        plain.setblocking(False)
        self.on_connection(plain, role, peer)

    def _log_rejection(self, source, why):
        self.rejected += 1
        if self.rejected <= LOG_FIRST or self.rejected % LOG_EVERY == 0:
            # An error, so that the default log level keeps this trace of
            # a possible attack.
            log.error("rejected a tunnel connection from %s: %s (%d so far)", source, why,
                      self.rejected)


def _readable(sock, timeout):
    poller = select.poll()  # not select(): fds past 1023 are fine
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(timeout * 1000))


class _Heard:
    """What server_handshake needs of a socket; notes the peer's first bytes."""

    def __init__(self, sock, heard):
        self.sock = sock
        self.heard = heard

    def sendall(self, data):
        self.sock.sendall(data)

    def recv(self, count):
        data = self.sock.recv(count)
        if data and self.heard is not None:
            self.heard()
            self.heard = None
        return data


def _shut(sock):
    """End the TCP connection itself, whoever else holds an fd of it (a TLS relay)."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _drop_tracebacks(exc):
    """ssl's wrap_socket, failing early (a peer reset as TLS begins), leaves
    the socket it took over open, held by its frame in a cycle with the
    exception: its fd would outlive the rejection until the next full GC."""
    while exc is not None:
        exc.__traceback__ = None
        exc = exc.__context__


def _first_line(exc):
    return str(exc).splitlines()[0][:200] if str(exc) else exc.__class__.__name__
