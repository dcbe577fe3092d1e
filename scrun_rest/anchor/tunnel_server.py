"""The anchor's TCP listener: authenticates every connection before use.

Handshakes run in worker threads with a short timeout so a peer that
connects and says nothing cannot stall the anchor or the real agent. With
TunnelTls the TLS handshake comes first, in the same thread, and the anchor
gets the plain end of a relay (tunnel/tls.py).

A flood of connections that never finish their handshake must not lock the
real ones out: every pending handshake has its own thread (no queue behind
idle peers), and when MAX_PENDING are under way the oldest is dropped to
make room. A real peer finishes in a round trip, long before 32 newer
connections push it out.
"""
import logging
import random
import socket
from concurrent.futures import ThreadPoolExecutor

from scrun_rest.errors import UserError
from scrun_rest.tunnel import messages, wire

log = logging.getLogger("scrun_rest.anchor")
HANDSHAKE_TIMEOUT = 5.0
MAX_PENDING = 32
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
        self.port = None
        # conn -> (a dup to abort its handshake with, or None once aborted), oldest first
        self.pending = {}
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
        listener.setblocking(False)
        self.listener = listener
        self.port = listener.getsockname()[1]
        self.loop.add_reader(listener.fileno(), self._accept)

    @property
    def address(self):
        return ("[%s]:%d" if ":" in self.host else "%s:%d") % (self.host, self.port)

    def close(self):
        if self.listener is not None:
            self.loop.remove_reader(self.listener.fileno())
            self.listener.close()
            self.listener = None
        self.pool.shutdown(wait=False)

    def _accept(self):
        try:
            conn, peer = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            log.warning("accept failed: %s", exc)
            return
        live = [c for c, handle in self.pending.items() if handle is not None]
        if len(live) >= MAX_PENDING:
            self._abort(live[0])
        if len(self.pending) >= 2 * MAX_PENDING:
            conn.close()  # aborted handshakes have not even noticed yet
            return
        self.pending[conn] = conn.dup()
        future = self.pool.submit(self._handshake, conn)
        future.add_done_callback(
            lambda done: self.loop.call_soon_threadsafe(self._handshake_done, conn, peer, done))

    def _handshake(self, conn):
        conn.settimeout(HANDSHAKE_TIMEOUT)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tcp = conn
        if self.tls_context is not None:
            from scrun_rest.tunnel import tls
            conn = tls.wrap_server(conn, self.tls_context, HANDSHAKE_TIMEOUT)
            conn.settimeout(HANDSHAKE_TIMEOUT)
            # The anchor gets a socketpair end: probes belong on the TCP link.
            tcp = tls.relay_of(conn).secure
        try:
            role = wire.server_handshake(conn, self.key_lookup)
        except BaseException:
            conn.close()
            raise
        conn.settimeout(None)
        if role.get("kind") in self.keepalive_kinds:
            try:
                wire.keep_alive(tcp)
            except OSError as exc:
                log.debug("no keepalive on a %s link: %s", role.get("kind"), exc)
        return conn, role

    def _abort(self, conn):
        """Drop the oldest unfinished handshake: its thread sees the socket end."""
        handle, self.pending[conn] = self.pending[conn], None
        try:
            handle.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        handle.close()

    def _handshake_done(self, conn, peer, future):
        handle = self.pending.pop(conn, None)
        if handle is not None:
            handle.close()
        try:
            conn, role = future.result()
        except (OSError, wire.TunnelError, messages.ProtocolError, ValueError) as exc:
            self.rejected += 1
            if self.rejected <= LOG_FIRST or self.rejected % LOG_EVERY == 0:
                # An error, so that the default log level keeps this trace of
                # a possible attack.
                log.error("rejected a tunnel connection from %s: %s (%d so far)", peer[0],
                          _first_line(exc) or "dropped unfinished", self.rejected)
            conn.close()
            return
        if self.listener is None:
            conn.close()
            return
        conn.setblocking(False)
        self.on_connection(conn, role, peer)


def _first_line(exc):
    return str(exc).splitlines()[0][:200] if str(exc) else exc.__class__.__name__
