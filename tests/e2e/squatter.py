"""Another user sitting where a careless anchor's agent would dial.

Run as that user: python3 squatter.py ADDRESS TARGET LOW HIGH SECONDS.
Holds ADDRESS:P for every port P in LOW..HIGH it can bind, relays whatever
connects to TARGET:P (where the anchor might really listen; - relays
nothing), and prints a
JSON line with the ports held, then, after SECONDS or SIGTERM, one with the
connections it got and whether the bytes it relayed held the anchor's
welcome (the task key in clear).
Stdlib only.
"""
import json
import select
import signal
import socket
import sys
import threading
import time


def relay(peer, target, port, seen):
    if target == "-":
        peer.close()  # only counted
        return
    try:
        anchor = socket.create_connection((target, port), timeout=3)
    except OSError:
        peer.close()
        return
    ends = {peer: anchor, anchor: peer}
    try:
        while ends:
            ready, _, _ = select.select(list(ends), [], [], 10)
            if not ready:
                return
            for sock in ready:
                data = sock.recv(65536)
                if not data:
                    return
                if sock is anchor and b"welcome" in data:
                    seen["welcome"] = True
                ends[sock].sendall(data)
    except OSError:
        pass
    finally:
        peer.close()
        anchor.close()


def main():
    address, target = sys.argv[1], sys.argv[2]
    low, high, seconds = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    ending = []
    signal.signal(signal.SIGTERM, lambda *_: ending.append(True))
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    listeners, seen = {}, {"connections": 0, "welcome": False}
    for port in range(low, high + 1):
        sock = socket.socket(family, socket.SOCK_STREAM)
        # As the anchor does: a port's old connections in TIME_WAIT do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError:
            sock.close()
            continue
        sock.listen(16)
        listeners[sock] = port
    print(json.dumps({"held": sorted(listeners.values())}), flush=True)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not ending:
        try:
            ready, _, _ = select.select(list(listeners), [], [], 0.5)
        except InterruptedError:
            continue
        for sock in ready:
            peer, _ = sock.accept()
            seen["connections"] += 1
            threading.Thread(target=relay, args=(peer, target, listeners[sock], seen),
                             daemon=True).start()
    time.sleep(0.5)
    print(json.dumps(seen), flush=True)


if __name__ == "__main__":
    main()
