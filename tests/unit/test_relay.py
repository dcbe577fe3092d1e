"""The anchor's relay (anchor/relay.py): bytes between sockets and pipes,
spliced or copied, intact, with EOF once, bounded memory and a clean stop."""
import asyncio
import hashlib
import os
import socket
import threading

from scrun_rest.anchor import relay

SIZE = 24 << 20


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 60))


def produce(sock, data):
    def send():
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
    threading.Thread(target=send, daemon=True).start()


def consume(fd):
    """Read fd to EOF in a thread; the result's digest and length."""
    result = {}

    def read():
        digest, total = hashlib.sha256(), 0
        while True:
            data = os.read(fd, 1 << 20)
            if not data:
                break
            digest.update(data)
            total += len(data)
        result.update(digest=digest.digest(), total=total)
    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread, result


def socket_to_pipe():
    """The usual rig: a peer writes into `near`; the relay reads `far` and
    writes into a pipe through `sink` (non-blocking write end)."""
    loop = asyncio.get_running_loop()
    near, far = socket.socketpair()
    far.setblocking(False)
    read_end, write_end = os.pipe()
    relay.set_nonblocking(write_end)
    return loop, near, far, read_end, write_end, relay.Sink(loop, write_end)


def test_socket_to_pipe_is_spliced_and_arrives_whole():
    async def main():
        loop, near, far, read_end, write_end, sink = socket_to_pipe()
        ended = []
        done = asyncio.Event()

        def on_eof():
            ended.append(True)
            sink.close_after_drain(lambda: (os.close(write_end), done.set()))
        source = relay.Source(loop, far.fileno(), sink, on_eof)
        assert source.splicing
        data = os.urandom(SIZE)
        thread, result = consume(read_end)
        produce(near, data)
        await done.wait()
        await loop.run_in_executor(None, thread.join)
        assert ended == [True]
        assert result == {"digest": hashlib.sha256(data).digest(), "total": SIZE}
    run(main())


def test_pipe_to_socket_arrives_whole():
    async def main():
        loop = asyncio.get_running_loop()
        near, far = socket.socketpair()
        far.setblocking(False)
        read_end, write_end = os.pipe()
        relay.set_nonblocking(read_end)
        sink = relay.Sink(loop, far.fileno())
        done = asyncio.Event()
        relay.Source(loop, read_end, sink,
                     lambda: sink.close_after_drain(lambda: (far.shutdown(socket.SHUT_WR),
                                                             done.set())))
        data = os.urandom(SIZE)
        thread, result = consume(near.fileno())

        def write():
            with os.fdopen(write_end, "wb") as handle:
                handle.write(data)
        threading.Thread(target=write, daemon=True).start()
        await done.wait()
        await loop.run_in_executor(None, thread.join)
        assert result == {"digest": hashlib.sha256(data).digest(), "total": SIZE}
    run(main())


def test_labelled_output_is_copied_line_by_line():
    async def main():
        loop, near, far, read_end, write_end, sink = socket_to_pipe()
        done = asyncio.Event()
        source = relay.Source(loop, far.fileno(), sink,
                              lambda: sink.close_after_drain(lambda: (os.close(write_end),
                                                                      done.set())),
                              transform=relay.LineLabeller(3))
        assert not source.splicing
        produce(near, b"a\nb\nc")
        await done.wait()
        assert os.read(read_end, 100) == b"3: a\n3: b\n3: c"
    run(main())


def test_a_stopped_source_never_reads_again():
    async def main():
        loop, near, far, read_end, write_end, sink = socket_to_pipe()
        ended = []
        source = relay.Source(loop, far.fileno(), sink, lambda: ended.append(True))
        near.sendall(b"x" * (relay.BULK_READ * 2))  # a bulk read: the source rests
        await asyncio.sleep(0.05)
        source.stop()
        near.sendall(b"more")
        near.shutdown(socket.SHUT_WR)
        await asyncio.sleep(relay.BULK_PAUSE * 10)
        assert not source.reading and not ended
        assert len(os.read(read_end, 1 << 20)) == relay.BULK_READ * 2
    run(main())


def test_a_full_pipe_pauses_the_source_and_holds_no_data():
    async def main():
        loop, near, far, read_end, write_end, sink = socket_to_pipe()  # nobody reads it
        source = relay.Source(loop, far.fileno(), sink, lambda: None)
        near.setblocking(False)
        try:
            while True:
                near.send(b"y" * 65536)
                await asyncio.sleep(0)
        except BlockingIOError:
            pass
        await asyncio.sleep(0.1)
        assert not source.reading
        assert sink.queued == 0
        source.stop()
    run(main())


def test_a_labelled_line_without_end_is_cut_at_the_cap():
    """Output without newlines must not grow the anchor's memory."""
    labeller = relay.LineLabeller(2)
    cap = relay.MAX_LABELLED_LINE
    out = b"".join(labeller(b"z" * 4096) for _ in range(3 * cap // 4096 + 1))
    assert out == (b"2: " + b"z" * cap + b"\n") * 3
    assert len(labeller.partial) == 4096
    assert labeller(b"a\nb") == b"2: " + b"z" * 4096 + b"a\n"
    assert labeller.flush() == b"2: b"
