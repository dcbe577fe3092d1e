"""The anchor's end of the agent's control link: dispatch and heartbeat.

One link per container. Every message is checked against
tunnel/messages.py; one that is not in the table ends the link (logged
once), as does silence longer than four heartbeats.
"""
import asyncio
import logging
import time

from scrun_rest.tunnel import messages, wire

log = logging.getLogger("scrun_rest.anchor")


class AgentLink:
    def __init__(self, conn, heartbeat, handlers):
        """handlers: a handler per AGENT_TO_ANCHOR type but ping and pong."""
        self.conn = conn
        self.heartbeat_every = heartbeat
        self.heard = time.monotonic()
        self.silence = None  # seconds without a word, once that ended the link
        self.dispatch = messages.Dispatcher(messages.AGENT_TO_ANCHOR, dict(
            handlers, ping=lambda message: self.send("pong"), pong=lambda message: None))

    @property
    def closed(self):
        return self.conn.closed

    def send(self, kind, **fields):
        self.conn.send(messages.make(messages.ANCHOR_TO_AGENT, kind, **fields))

    def close(self):
        self.conn.close()

    async def serve(self):
        """Dispatch until the link ends; returns why it ended."""
        while True:
            try:
                message = await self.conn.recv()
                if message is None:
                    break
                self.heard = time.monotonic()
                self.dispatch(message)
            except (wire.TunnelError, messages.ProtocolError) as exc:
                log.error("the agent broke the protocol: %s", exc)
                self.conn.close()
                return "the job's agent broke the tunnel protocol (%s)" % exc
        self.conn.close()
        if self.silence:
            return "no word from the job's agent for %.0f s" % self.silence
        return "the job's agent disconnected"

    async def keep_alive(self):
        """Ping every heartbeat; a silent agent is as good as gone."""
        limit = max(4 * self.heartbeat_every, 10)
        while not self.conn.closed:
            await asyncio.sleep(self.heartbeat_every)
            if self.conn.closed:
                return
            self.send("ping")
            if time.monotonic() - self.heard > limit:
                log.warning("no word from the agent for %.0f s", limit)
                self.silence = limit
                self.conn.close()  # serve() wakes up and reports why
