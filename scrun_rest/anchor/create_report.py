"""How the forked anchor tells the waiting `create` how it went: both halves.

One message (tunnel/messages.py ANCHOR_TO_CREATE) over a pipe, then the
pipe closes: created, pending (create returns while the job pends) or
failed with the exit code and the reason. A pipe that closes without a
message means the anchor died before it could say anything.
"""
import os

from scrun_rest.tunnel import messages, wire

CREATED, PENDING, FAILED = "created", "pending", "failed"


class Reporter:
    """The anchor's half: the first report counts, later ones are dropped."""

    def __init__(self, fd):
        self._fd = fd
        self.reported = False

    def send(self, kind, **fields):
        if self.reported:
            return
        self.reported = True
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.write(fd, wire.encode(messages.make(messages.ANCHOR_TO_CREATE, kind, **fields)))
        except OSError:
            pass  # create is gone (killed by its caller): nobody to tell
        finally:
            os.close(fd)

    def failed(self, code, error):
        self.send(FAILED, code=int(code), error=str(error))


def receive(fd):
    """create's half: the anchor's report, or None if it died without one."""
    reader = wire.FrameReader()
    try:
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            for message in reader.feed(chunk):
                return messages.check(messages.ANCHOR_TO_CREATE, message)
    except (wire.TunnelError, messages.ProtocolError):
        return None
    finally:
        os.close(fd)
