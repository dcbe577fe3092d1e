"""A tar stream read forward only, through one large buffer: the file
object tarfile parses headers from, and the source member data is copied
from straight into the files being written.

tarfile's own stream mode copies content through 16 KiB reads and keeps
every header in memory; here content moves in reads of up to 1 MiB and
tarfile sees a file that only ever seeks forward.
Python 3.6+, stdlib only.
"""
import io
import os

from scrun_rest import pipe_size

CHUNK = 1 << 20
BLOCK = 512
ZERO_BLOCK = bytes(BLOCK)
# tarfile reads a pax or GNU long-name header whole into memory: a real
# one is a few KiB (names, xattrs); a bigger one is an attack on memory.
MAX_HEADER = 8 << 20


class EndedEarly(Exception):
    """The stream ended inside the archive."""


class Unusable(Exception):
    """The stream is not an archive we read: its text says why."""


class StreamInput:
    """The bytes of `source` (an fd or a file object with readinto or
    read), at increasing offsets."""

    def __init__(self, source):
        self._readinto = _reader(source)
        self._buf = bytearray(CHUNK)
        self._view = memoryview(self._buf)
        self._start = 0
        self._end = 0
        self._offset = 0  # stream offset of _buf[_start]
        self.last_block_was_zero = False
        self.ended = False  # the source said end of file

    # The file-object face tarfile uses: read, tell, seek.

    def read(self, size=-1):
        if size is None or size < 0 or size > MAX_HEADER:
            raise Unusable("a header of more than %d MiB" % (MAX_HEADER >> 20))
        pieces = []
        wanted = size
        while wanted:
            if self._start == self._end and not self._fill():
                break
            take = min(wanted, self._end - self._start)
            pieces.append(bytes(self._view[self._start:self._start + take]))
            self._consume(take)
            wanted -= take
        data = b"".join(pieces)
        # A header read: tells an end-of-archive block from a stream cut off.
        self.last_block_was_zero = data == ZERO_BLOCK
        return data

    def tell(self):
        return self._offset

    def seek(self, offset, whence=io.SEEK_SET):
        if whence != io.SEEK_SET or offset < self._offset:
            raise Unusable("a member lies before the one read last")
        self.copy_to(None, offset - self._offset)
        return self._offset

    # What extraction uses.

    def copy_to(self, fd, size):
        """Write the next `size` bytes to fd (drop them when fd is None);
        EndedEarly when the stream has fewer."""
        while size:
            if self._start == self._end and not self._fill():
                raise EndedEarly()
            take = min(size, self._end - self._start)
            if fd is not None:
                _write_all(fd, self._view[self._start:self._start + take])
            self._consume(take)
            size -= take

    def drain(self):
        """Read to the end of the stream (the writer's record padding), so
        a tar writing into a pipe sees its whole output taken and exits 0."""
        while self._fill():
            self._consume(self._end - self._start)

    def _consume(self, count):
        self._start += count
        self._offset += count

    def _fill(self):
        self._start = self._end = 0
        count = self._readinto(self._view)
        self._end = count or 0
        if not self._end:
            self.ended = True
        return self._end > 0


def _reader(source):
    if isinstance(source, int):
        pipe_size.widen(source)  # each read can then fill the buffer
        return io.FileIO(source, "rb", closefd=False).readinto
    if hasattr(source, "readinto"):
        return source.readinto

    def readinto(view):
        data = source.read(len(view))
        view[:len(data)] = data
        return len(data)
    return readinto


def _write_all(fd, view):
    while view:
        written = os.write(fd, view)
        view = view[written:]
