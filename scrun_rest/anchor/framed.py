"""Tunnel control messages over asyncio streams."""
import asyncio

from scrun_rest.tunnel import wire

_HEADER = 4


class FramedConnection:
    """One control connection (agent or task): JSON frames both ways."""

    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer
        self.closed = False

    @classmethod
    async def open(cls, sock):
        reader, writer = await asyncio.open_connection(sock=sock, limit=wire.MAX_FRAME + 8)
        return cls(reader, writer)

    async def recv(self):
        """The next message, or None once the peer is gone."""
        try:
            header = await self.reader.readexactly(_HEADER)
            length = int.from_bytes(header, "big")
            if length > wire.MAX_FRAME:
                raise wire.TunnelError("frame of %d bytes is too large" % length)
            body = await self.reader.readexactly(length)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            return None
        return wire.FrameReader().feed(header + body)[0]

    def send(self, message):
        if self.closed:
            return
        try:
            self.writer.write(wire.encode(message))
        except (ConnectionError, OSError, RuntimeError):
            self.closed = True

    def close(self):
        if not self.closed:
            self.closed = True
            try:
                self.writer.close()
            except (ConnectionError, OSError, RuntimeError):
                pass
