"""A requests adapter for slurmrestd listening on a unix socket (RestUrl=unix:/path)."""
import socket

import requests.adapters
import urllib3.connection
import urllib3.connectionpool
import urllib3.exceptions


class _UnixConnection(urllib3.connection.HTTPConnection):
    def __init__(self, *args, socket_path=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._socket_path = socket_path

    def _new_conn(self):
        # urllib3 1.26 and 2.x both build the socket here and handle the rest.
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if isinstance(self.timeout, (int, float)):
            sock.settimeout(self.timeout)
        try:
            sock.connect(self._socket_path)
        except socket.timeout:
            sock.close()
            raise urllib3.exceptions.ConnectTimeoutError(
                self, "timed out connecting to %s" % self._socket_path)
        except OSError as exc:
            sock.close()
            raise urllib3.exceptions.NewConnectionError(
                self, "cannot connect to %s: %s" % (self._socket_path, exc.strerror or exc))
        return sock


class _UnixPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _UnixConnection

    def __init__(self, socket_path, **kwargs):
        super().__init__("localhost", **kwargs)
        self.conn_kw["socket_path"] = socket_path


class UnixSocketAdapter(requests.adapters.HTTPAdapter):
    """Sends every request of the session it is mounted on to one socket."""

    def __init__(self, socket_path, **kwargs):
        super().__init__(max_retries=0, **kwargs)
        self._pool = _UnixPool(socket_path, maxsize=4)

    def get_connection(self, url, proxies=None):
        return self._pool

    def get_connection_with_tls_context(self, request, verify, proxies=None, cert=None):
        return self._pool

    def request_url(self, request, proxies):
        return request.path_url

    def close(self):
        self._pool.close()
        super().close()
