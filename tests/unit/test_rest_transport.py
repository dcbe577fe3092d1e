"""The transport against real local HTTP servers (unix and TCP), and the version cache."""
import gzip
import http.server
import json
import os
import re
import socketserver
import stat
import threading

import pytest

from scrun_rest.config import Config, canonical_key
from scrun_rest.rest import RestError, RestUnreachable
from scrun_rest.rest import transport as transport_module
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


# -- where the token may go, and how much may come back ---------------------------

class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers with the server's `answer(handler)`; records what it was asked."""

    def do_GET(self):
        self.server.seen.append((self.command, self.path, dict(self.headers)))
        self.server.answer(self)

    do_POST = do_GET

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    """Start local HTTP servers: make(answer) -> server with .url and .seen."""
    started = []

    def make(answer):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
        server.daemon_threads = True
        server.seen, server.answer = [], answer
        server.url = "http://127.0.0.1:%d" % server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.shutdown()
        server.server_close()


def _answer(handler, status=200, body=b"{}", headers=()):
    handler.send_response(status)
    for name, value in headers:
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_an_error_and_never_followed(http_server, status):
    elsewhere = http_server(_answer)
    rest = http_server(lambda h: _answer(h, status, b"", [("Location", elsewhere.url + "/x")]))
    transport = Transport(rest.url, sleep=lambda s: None)
    with pytest.raises(RestError) as info:
        transport.request("GET", "/slurm/v0.0.40/ping", headers={"X-SLURM-USER-TOKEN": "t"})
    assert str(info.value) == (
        "slurmrestd at %s answered GET /slurm/v0.0.40/ping with a redirect (HTTP %d) to "
        "%s/x; scrun-rest does not follow redirects: set RestUrl to the real address"
        % (rest.url, status, elsewhere.url))
    assert info.value.http_status == status
    assert elsewhere.seen == [] and len(rest.seen) == 1


def test_environment_proxies_are_not_used(http_server, monkeypatch):
    proxy = http_server(_answer)
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, proxy.url)
    transport = Transport("http://127.0.0.1:9", sleep=lambda s: None)
    with pytest.raises(RestUnreachable, match="connection refused"):
        transport.request("GET", "/x", headers={"X-SLURM-USER-TOKEN": "t"})
    assert proxy.seen == []


def test_rest_proxy_is_used_when_configured(http_server):
    proxy = http_server(_answer)
    config = Config({"RestUrl": "http://rest.test:6820", "RestProxy": proxy.url}, environ={})
    transport = transport_module.transport_for(config)
    assert transport.request("GET", "/x").status_code == 200
    assert [(m, p) for m, p, _ in proxy.seen] == [("GET", "http://rest.test:6820/x")]


@pytest.mark.parametrize("url,proxy,problem", [
    ("http://rest.test", "proxy.test:3128", "is not an http://, https:// or socks5:// URL"),
    ("unix:/run/rest.sock", "http://proxy.test:3128", "cannot apply to RestUrl=unix:"),
])
def test_a_bad_rest_proxy_is_refused(url, proxy, problem):
    with pytest.raises(RestError, match="RestProxy=%s %s" % (re.escape(proxy), re.escape(problem))):
        transport_module.transport_for(Config({"RestUrl": url, "RestProxy": proxy}, environ={}))


def _endless(handler):
    """A body with no length that never stops on its own."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.end_headers()
    try:
        for _ in range(1 << 12):
            handler.wfile.write(b" " * 65536)
    except OSError:
        pass  # the client hung up, as it should


def _gzip_bomb(handler):
    body = gzip.compress(b" " * (4 << 20))
    _answer(handler, body=body, headers=[("Content-Encoding", "gzip")])


@pytest.mark.parametrize("answer", [_endless, _gzip_bomb], ids=["endless", "gzip"])
def test_an_answer_past_the_cap_is_refused(http_server, monkeypatch, answer):
    monkeypatch.setattr(transport_module, "MAX_RESPONSE", 1 << 20, raising=False)
    rest = http_server(answer)
    transport = Transport(rest.url, sleep=lambda s: None)
    with pytest.raises(RestError) as info:
        transport.request("GET", "/slurm/v0.0.40/jobs")
    assert str(info.value) == ("slurmrestd at %s answered GET /slurm/v0.0.40/jobs with more "
                               "than 1 MiB; refusing to read it" % rest.url)
    assert info.value.http_status == 200 and len(rest.seen) == 1


def test_an_answer_within_the_cap_reads_whole(http_server, monkeypatch):
    monkeypatch.setattr(transport_module, "MAX_RESPONSE", 1 << 20, raising=False)
    body = json.dumps({"x": "y" * ((1 << 20) - 20)}).encode()
    rest = http_server(lambda h: _answer(h, body=body))
    response = Transport(rest.url).request("GET", "/x")
    assert response.content == body and response.json()["x"].startswith("yyy")


def test_rest_proxy_is_a_setting():
    assert canonical_key("restproxy") == "RestProxy"
