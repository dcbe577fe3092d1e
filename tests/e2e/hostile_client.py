"""What another user of the login node can try against a container's tunnel.

Run as that user: python3 hostile_client.py PORT [flood SECONDS] or
python3 hostile_client.py PORT swarm SECONDS HOST [tls]. Prints one JSON
object saying what each attempt got back. Stdlib only.
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


def swarm(host, port, seconds, with_tls, idle=200, junk=200, bad_tls=150):
    """Many strangers at once for a while: `idle` connections that say
    nothing, `junk` that send garbage, and with TLS `bad_tls` that complete
    TLS, send a made-up MAC and then keep quiet. Each kind opens again what
    the anchor drops. Prints "ready" once all have started."""
    import ssl
    deadline = time.monotonic() + seconds
    counts = {"idle": 0, "junk": 0, "bad_tls": 0, "bad_tls_done": 0, "errors": 0}
    lock = threading.Lock()

    def count(kind):
        with lock:
            counts[kind] += 1

    def hold(sock, alive=_alive):
        """Until the anchor hangs up (or the swarm ends)."""
        while time.monotonic() < deadline:
            sock.settimeout(max(0.1, min(1.0, deadline - time.monotonic())))
            try:
                if not sock.recv(4096):
                    return
            except socket.timeout:
                if not alive(sock):
                    return

    def keep_up(kind, once):
        while time.monotonic() < deadline:
            try:
                sock = socket.create_connection((host, port), timeout=5)
            except OSError:
                count("errors")
                time.sleep(0.1)
                continue
            try:
                count(kind)
                once(sock)
            except (OSError, ValueError):
                count("errors")
            finally:
                sock.close()
            time.sleep(0.02)

    def say_nothing(sock):
        hold(sock)

    def send_junk(sock):
        sock.sendall(b"\xff" * 64 + b"GET / HTTP/1.0\r\n\r\n")
        hold(sock)

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE

    def bad_mac(sock):
        secure = context.wrap_socket(sock)
        greeting = tls_hello(secure)
        role = {"kind": "data", "session": 0, "task": 0, "stream": "stdout"}
        secure.sendall(frame({"nonce": os.urandom(32).hex(), "role": role, "mac": "0" * 64}))
        if greeting:
            count("bad_tls_done")
        # Then silence: the anchor must end the connection itself.
        try:
            hold(secure, _alive_tls)
        finally:
            secure.close()

    threading.stack_size(256 << 10)
    kinds = [("idle", say_nothing)] * idle + [("junk", send_junk)] * junk
    if with_tls:
        kinds += [("bad_tls", bad_mac)] * bad_tls
    threads = [threading.Thread(target=keep_up, args=pair, daemon=True) for pair in kinds]
    for thread in threads:
        thread.start()
    print("ready", flush=True)
    for thread in threads:
        thread.join(max(0.1, deadline - time.monotonic() + 10))
    return counts


def tls_hello(secure):
    """hello() for an SSL socket, which takes no recv flags."""
    def exactly(count):
        data = b""
        while len(data) < count:
            chunk = secure.recv(count - len(data))
            if not chunk:
                return None
            data += chunk
        return data
    secure.settimeout(5)
    header = exactly(4)
    body = header and exactly(struct.unpack(">I", header)[0])
    return json.loads(body.decode()) if body else None


def _alive_tls(secure):
    secure.settimeout(0.01)
    try:
        return secure.recv(1) != b""
    except socket.timeout:
        return True
    except OSError:
        return False


def main():
    port = int(sys.argv[1])
    if sys.argv[2:3] == ["flood"]:
        print(json.dumps(flood(port, float(sys.argv[3]))))
        return
    if sys.argv[2:3] == ["swarm"]:
        print(json.dumps(swarm(sys.argv[4], port, float(sys.argv[3]), sys.argv[5:6] == ["tls"])))
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
