"""What another user of the login node can try against a container's tunnel.

Run as that user: python3 hostile_client.py PORT [flood SECONDS]. Prints one
JSON object saying what each attempt got back. Stdlib only.
"""
import json
import os
import socket
import struct
import sys
import threading
import time


def read_all(sock, limit=65536, timeout=3.0):
    """Everything the anchor sends until it closes or goes quiet."""
    sock.settimeout(timeout)
    data = b""
    try:
        while len(data) < limit:
            chunk = sock.recv(limit)
            if not chunk:
                return data, "closed"
            data += chunk
    except socket.timeout:
        return data, "quiet"
    except OSError as exc:
        return data, "error: %s" % exc
    return data, "limit"


def frame(obj):
    body = json.dumps(obj).encode()
    return struct.pack(">I", len(body)) + body


def hello(sock):
    """The anchor's first frame, if it sends one."""
    sock.settimeout(3)
    try:
        header = sock.recv(4, socket.MSG_WAITALL)
        if len(header) < 4:
            return None
        body = sock.recv(struct.unpack(">I", header)[0], socket.MSG_WAITALL)
        return json.loads(body.decode())
    except (OSError, ValueError):
        return None


def forged(port, role):
    """A handshake answer with a made-up MAC, as if we held the secret."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=3)
    greeting = hello(sock)
    sock.sendall(frame({"nonce": os.urandom(32).hex(), "role": role, "mac": "0" * 64}))
    # Then try to push data as if the stream were open.
    try:
        sock.sendall(b"INJECTED\n" * 10)
    except OSError:
        pass
    data, end = read_all(sock)
    sock.close()
    return {"hello": greeting, "after": data.decode("latin-1"), "end": end}


def garbage(port, payload):
    sock = socket.create_connection(("127.0.0.1", port), timeout=3)
    greeting = hello(sock)
    try:
        sock.sendall(payload)
    except OSError:
        pass
    data, end = read_all(sock)
    sock.close()
    return {"hello": greeting, "after": data.decode("latin-1"), "end": end}


def flood(port, seconds, count=48):
    """Idle connections that never finish a handshake, kept up for a while."""
    deadline = time.monotonic() + seconds
    held, opened = [], 0
    while time.monotonic() < deadline:
        held = [s for s in held if _alive(s)]
        while len(held) < count:
            try:
                held.append(socket.create_connection(("127.0.0.1", port), timeout=1))
                opened += 1
            except OSError:
                break
        time.sleep(0.05)
    for sock in held:
        sock.close()
    return {"opened": opened}


def _alive(sock):
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def main():
    port = int(sys.argv[1])
    if sys.argv[2:3] == ["flood"]:
        print(json.dumps(flood(port, float(sys.argv[3]))))
        return
    attempts = {
        "agent": (forged, {"kind": "agent", "job": "1", "host": "x"}),
        "task": (forged, {"kind": "task", "session": 0, "task": 0}),
        "stdin": (forged, {"kind": "data", "session": 0, "task": 0, "stream": "stdin"}),
        "garbage": (garbage, b"\xff" * 64 + b"GET / HTTP/1.0\r\n\r\n"),
        "huge_frame": (garbage, struct.pack(">I", 0xFFFFFFF0) + b"x" * 100),
    }
    results = {}

    def attempt(name, how, argument):
        results[name] = how(port, argument)

    threads = [threading.Thread(target=attempt, args=(name,) + pair)
               for name, pair in attempts.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
