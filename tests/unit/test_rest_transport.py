"""Unix-socket transport against a real local HTTP server, and the version cache."""
import http.server
import json
import os
import socketserver
import stat
import threading

import pytest

from scrun_rest.rest import RestUnreachable
from scrun_rest.rest.cache import VersionCache, runtime_dir
from scrun_rest.rest.transport import Transport, normalise_url


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"path": self.path, "user": self.headers.get("X-SLURM-USER-NAME"),
                           "host": self.headers.get("Host")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

    def address_string(self):
        return "unix"


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.fixture
def unix_server(tmp_path):
    path = str(tmp_path / "rest.sock")
    server = _UnixServer(path, _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield path
    server.shutdown()
    server.server_close()


def test_unix_socket_requests(unix_server):
    transport = Transport("unix:" + unix_server)
    try:
        for n in range(3):  # connections are reused or remade transparently
            response = transport.request("GET", "/slurm/v0.0.38/ping",
                                         headers={"X-SLURM-USER-NAME": "bob"},
                                         params={"n": n})
            assert response.status_code == 200
            assert response.json()["path"] == "/slurm/v0.0.38/ping?n=%d" % n
            assert response.json()["user"] == "bob"
        assert transport.requests_made == 3
        assert transport.url == "unix:" + unix_server
    finally:
        transport.close()


def test_missing_unix_socket_is_unreachable(tmp_path):
    transport = Transport("unix:%s/none.sock" % tmp_path, sleep=lambda s: None)
    with pytest.raises(RestUnreachable) as info:
        transport.request("GET", "/slurm/v0.0.38/ping")
    assert str(info.value) == (
        "slurmrestd at unix:%s/none.sock is unreachable: no such socket" % tmp_path)


def test_refused_tcp_is_unreachable():
    transport = Transport("http://127.0.0.1:9", sleep=lambda s: None)
    with pytest.raises(RestUnreachable, match="unreachable: connection refused"):
        transport.request("GET", "/x")
    assert transport.requests_made > 1


@pytest.mark.parametrize("url,normal", [
    ("unix:/run/slurmrestd.sock", "unix:/run/slurmrestd.sock"),
    ("unix:///run/slurmrestd.sock", "unix:/run/slurmrestd.sock"),
    ("http://h:6820/", "http://h:6820"),
    (" https://h/ ", "https://h"),
])
def test_normalise_url(url, normal):
    assert normalise_url(url) == normal


# -- cache and runtime dir ----------------------------------------------------------

def test_cache_round_trip_and_modes(tmp_path):
    cache = VersionCache(str(tmp_path))
    assert cache.get("http://a") is None
    cache.put("http://a", "v0.0.40", "23.11.10")
    cache.put("http://b", "v0.0.44", None)
    assert cache.get("http://a")["version"] == "v0.0.40"
    assert cache.get("http://a")["release"] == "23.11.10"
    assert cache.get("http://b")["version"] == "v0.0.44"
    files = [p for p in tmp_path.iterdir()]
    assert len(files) == 2 and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)
    cache.forget("http://a")
    assert cache.get("http://a") is None and cache.get("http://b")


def test_corrupt_cache_is_ignored(tmp_path):
    cache = VersionCache(str(tmp_path))
    cache.put("http://a", "v0.0.40")
    (path,) = list(tmp_path.iterdir())
    path.write_text("{not json")
    assert cache.get("http://a") is None
    cache.put("http://a", "v0.0.41")
    assert cache.get("http://a")["version"] == "v0.0.41"


def test_cache_without_directory_is_a_no_op():
    cache = VersionCache(directory="")
    cache.put("http://a", "v0.0.40")
    assert cache.get("http://a") is None


def test_runtime_dir_prefers_xdg(tmp_path):
    path = runtime_dir({"XDG_RUNTIME_DIR": str(tmp_path)})
    assert path == str(tmp_path / "scrun-rest-cache")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o700


def test_runtime_dir_tightens_a_loose_dir(tmp_path):
    loose = tmp_path / "scrun-rest-cache"
    loose.mkdir(mode=0o755)
    os.chmod(loose, 0o755)
    assert runtime_dir({"XDG_RUNTIME_DIR": str(tmp_path)}) == str(loose)
    assert stat.S_IMODE(loose.stat().st_mode) == 0o700


def test_runtime_dir_falls_back_to_private_temp(tmp_path, monkeypatch):
    monkeypatch.setenv("_CONTAINERS_ROOTLESS_UID", "4242")  # no /run/user/4242 here
    monkeypatch.setattr("tempfile.gettempdir", lambda: str(tmp_path))
    path = runtime_dir({"XDG_RUNTIME_DIR": str(tmp_path / "missing")})
    assert path == str(tmp_path / "scrun-rest-cache-4242")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o700


def test_runtime_dir_uses_the_real_uid(monkeypatch, tmp_path):
    monkeypatch.setenv("_CONTAINERS_ROOTLESS_UID", "4343")
    assert runtime_dir({}, create=False) in (
        "/run/user/4343/scrun-rest-cache", os.path.join(__import__("tempfile").gettempdir(),
                                                  "scrun-rest-cache-4343"))
