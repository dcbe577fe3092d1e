"""Accepting on a listener without spinning or going deaf.

Used by the tunnel listener and the control socket. A listener with a
connection waiting stays readable, so an accept that failed for want of fds
(EMFILE, ENFILE) or memory, retried at once, spins the event loop; giving up
leaves the anchor deaf for good (kill, exec and start go through the control
socket). Instead the listener is left alone for a moment, while others close
theirs, and then read again.
"""
import errno
import logging
import time

log = logging.getLogger("scrun_rest.anchor")
OUT_OF_RESOURCES = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM))
# Only that connection failed (it was reset before we took it, or a
# firewall rule refused it): the next one may be fine.
ONE_CONNECTION = frozenset((errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.EINTR))
PAUSE = 0.2
# Accepts per wake-up, so that a busy listener leaves the loop time for the rest.
BATCH = 16
# At most one log line per this many seconds while pauses go on.
LOG_INTERVAL = 10.0


class AcceptLoop:
    """Calls on_client(sock, address) for every connection to a listening
    socket. An OSError from on_client (a dup() out of fds) closes that
    connection and counts as a failed accept."""

    def __init__(self, loop, listener, on_client, name):
        self.loop = loop
        self.listener = listener
        self.on_client = on_client
        self.name = name
        self.pauses = 0
        self._fd = None  # the one registered: fileno() is -1 once closed
        self._resume_handle = None
        self._logged_at = None

    def start(self):
        self.listener.setblocking(False)
        self._read()
        return self

    def stop(self):
        if self._resume_handle is not None:
            self._resume_handle.cancel()
            self._resume_handle = None
        if self._fd is not None:
            self.loop.remove_reader(self._fd)
            self._fd = None

    def _read(self):
        self._resume_handle = None
        if self.listener.fileno() >= 0:
            self._fd = self.listener.fileno()
            self.loop.add_reader(self._fd, self._ready)

    def _ready(self):
        for _ in range(BATCH):
            try:
                client, address = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if self.listener.fileno() < 0:
                    self.stop()
                    return
                if exc.errno in ONE_CONNECTION:
                    continue
                self._pause(exc)
                return
            try:
                self.on_client(client, address)
            except OSError as exc:
                client.close()
                self._pause(exc)
                return

    def _pause(self, exc):
        """Out of fds or memory, or an error we cannot place: never spin on it."""
        self.stop()
        self.pauses += 1
        now = time.monotonic()
        if self._logged_at is None or now - self._logged_at >= LOG_INTERVAL:
            self._logged_at = now
            log.warning("%s: cannot accept a connection (%s); pausing %.1f s (%d pauses so far)",
                        self.name, exc.strerror or exc, PAUSE, self.pauses)
        self._resume_handle = self.loop.call_later(PAUSE, self._read)
