"""The pipes a create/start container gets instead of its stream sockets
(agent/pipes.py): bytes arrive intact, EOF travels, and a container whose
output nobody reads can still be killed (a waiting splice(2) would hold
the pipe's lock and leave it in uninterruptible sleep)."""
import hashlib
import os
import socket
import subprocess
import sys
import time

import pytest

from scrun_rest.agent import pipes


@pytest.fixture
def connection():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    near = socket.create_connection(listener.getsockname())
    far, _ = listener.accept()
    listener.close()
    yield near, far
    near.close()
    far.close()


def test_output_arrives_whole_and_ends_with_eof(connection, tmp_path):
    near, far = connection
    data = os.urandom(8 << 20)
    (tmp_path / "data").write_bytes(data)
    pipe = pipes.OutputPipe(near)
    near.close()
    writer = subprocess.Popen(["cat", str(tmp_path / "data")], stdout=pipe.fd)
    pipe.given()
    received = b"".join(iter(lambda: far.recv(1 << 20), b""))
    assert writer.wait() == 0
    assert hashlib.sha256(received).digest() == hashlib.sha256(data).digest()


def test_input_arrives_whole_and_ends_with_eof(connection):
    near, far = connection
    data = os.urandom(8 << 20)
    pipe = pipes.InputPipe(far)
    far.close()
    reader = subprocess.Popen([sys.executable, "-c", "import hashlib, sys; "
                               "print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())"],
                              stdin=pipe.fd, stdout=subprocess.PIPE)
    pipe.given()
    near.sendall(data)
    near.shutdown(socket.SHUT_WR)
    assert reader.communicate(timeout=30)[0].strip().decode() == hashlib.sha256(data).hexdigest()


def state_of(pid):
    with open("/proc/%d/stat" % pid) as handle:
        return handle.read().rsplit(")", 1)[1].split()[0]


def test_a_writer_nobody_reads_can_still_be_killed(connection):
    near, _far = connection  # _far never reads: the socket fills up
    pipe = pipes.OutputPipe(near)
    writer = subprocess.Popen(["cat", "/dev/zero"], stdout=pipe.fd)
    pipe.given()
    time.sleep(1)
    assert state_of(writer.pid) != "D", "the writer sleeps uninterruptibly"
    writer.kill()
    assert writer.wait(timeout=5) == -9


def test_a_reader_waiting_for_input_can_still_be_killed(connection):
    near, far = connection  # near never writes
    pipe = pipes.InputPipe(far)
    reader = subprocess.Popen(["cat"], stdin=pipe.fd, stdout=subprocess.DEVNULL)
    pipe.given()
    time.sleep(0.5)
    assert state_of(reader.pid) != "D"
    reader.kill()
    assert reader.wait(timeout=5) == -9
