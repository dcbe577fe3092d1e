"""wire.py's frames over asyncio streams: the anchor's end of agent and task
links. Not shipped to the nodes (the agent uses blocking sockets)."""
import asyncio

from scrun_rest.tunnel import wire


class FramedConnection:
    """One control connection (agent or task): JSON frames both ways."""

    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer
        self.closed = False

    @classmethod
    async def open(cls, sock):
        reader, writer = await asyncio.open_connection(
            sock=sock, limit=wire.MAX_FRAME + wire.HEADER.size)
        return cls(reader, writer)

    async def recv(self):
        """The next message; None once the peer is gone. A broken frame
        raises wire.TunnelError."""
        try:
            header = await self.reader.readexactly(wire.HEADER.size)
            (length,) = wire.HEADER.unpack(header)
            if length > wire.MAX_FRAME:
                raise wire.TunnelError("frame of %d bytes is too large" % length)
            body = await self.reader.readexactly(length)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            return None
        return wire.decode(body)

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
