"""Passing file descriptors over unix sockets (SCM_RIGHTS): the pty master
to a console socket, an exec client's stdio to the anchor.

Stdlib only and cheap to import: `exec` and the anchor both use it.
"""
import array
import socket

_INT_SIZE = array.array("i").itemsize


def send(sock, data, fds):
    """Send data with fds riding on its first byte."""
    if not fds:
        sock.sendall(data)
        return
    ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())]
    sent = sock.sendmsg([data], ancillary)
    if sent < len(data):
        sock.sendall(data[sent:])


def receive(sock, size, max_fds):
    """(data, fds) of one recvmsg; data is b"" at the end of the stream."""
    data, ancillary, _, _ = sock.recvmsg(size, socket.CMSG_SPACE(max_fds * _INT_SIZE))
    fds = array.array("i")
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[:len(payload) - len(payload) % _INT_SIZE])
    return data, list(fds)
