"""The tunnel's address: one literal, bound and handed out; loopback only at home."""
import socket

import pytest

from scrun_rest.anchor import job_script, tunnel_address
from scrun_rest.anchor.tunnel_cert import make_server_context
from scrun_rest.anchor.tunnel_server import TunnelServer
from scrun_rest.config import Config
from scrun_rest.connection import SlurmConnection
from scrun_rest.errors import UserError
from scrun_rest.tunnel import loopback, wire


def _dual_stack(host, port, family=0, type=0, *rest):
    """A name that gives its IPv6 address first, as nodes on dual-stack hosts see."""
    assert host == "login.example"
    return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("2001:db8::5", 0, 0, 0)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.5", 0))]


def test_a_name_becomes_the_address_a_node_would_dial_first(monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", _dual_stack)
    connection = SlurmConnection(Config({"TunnelHost": "login.example"}, environ={}))
    # Binding the name's IPv4 address while the node dials its IPv6 one
    # would hand the agent to whoever holds [::]:P.
    assert connection.tunnel_host() == "2001:db8::5"


def test_a_literal_stays_as_it_is():
    assert tunnel_address.choose("192.0.2.7", None) == "192.0.2.7"
    assert tunnel_address.choose("::1", None) == "::1"


def test_a_name_that_does_not_resolve_is_one_clear_error():
    with pytest.raises(UserError, match="TunnelHost=no-such-host.invalid does not resolve"):
        tunnel_address.choose("no-such-host.invalid", None)


@pytest.mark.parametrize("wildcard", ["0.0.0.0", "::", ""])
def test_a_wildcard_is_chosen_like_no_setting(monkeypatch, wildcard):
    monkeypatch.setattr(tunnel_address, "_own_name_address", lambda: "127.0.1.1")
    monkeypatch.setattr(tunnel_address, "_address_towards", lambda url: "198.51.100.3")
    assert tunnel_address.choose(wildcard, "http://rest:6820") == "198.51.100.3"


def test_without_a_route_to_slurmrestd_the_address_is_loopback(monkeypatch):
    monkeypatch.setattr(tunnel_address, "_own_name_address", lambda: None)
    assert tunnel_address.choose(None, "unix:/run/slurmrestd.sock") == "127.0.0.1"


def test_the_listener_binds_exactly_the_chosen_literal():
    server = TunnelServer(None, "::1", (0, 0), lambda role: None, None)
    server.loop = _NoLoop()
    server.start()
    try:
        assert server.listener.family == socket.AF_INET6
        assert server.listener.getsockname()[0] == "::1"
        assert server.address == "[::1]:%d" % server.port
    finally:
        server.close()


class _NoLoop:
    def add_reader(self, *args):
        pass

    def remove_reader(self, *args):
        pass


def test_a_loopback_address_carries_where_the_anchor_runs():
    params = _params(job_script.build("c1", "127.0.0.1", 5000, "00" * 32))
    assert params["place"] == loopback.this_place()
    assert "place" not in _params(job_script.build("c1", "192.0.2.7", 5000, "00" * 32))


def _params(script):
    line = next(line for line in script.splitlines() if line.startswith("PARAMS = "))
    return eval(line[len("PARAMS = "):])


@pytest.mark.parametrize("place", [None, "another-boot/4:4026531992"])
def test_a_node_elsewhere_never_dials_a_loopback_address(monkeypatch, place):
    dialled = []
    monkeypatch.setattr(wire, "dial", lambda *args, **kw: dialled.append(args))
    with pytest.raises(wire.TunnelError, match="loopback address and this node is not"):
        wire.dial_patiently(30, "127.0.0.1", 5000, b"k" * 32, {"kind": "agent"},
                            anchor_place=place)
    assert dialled == []


def test_the_anchors_own_place_may_dial_loopback(monkeypatch):
    monkeypatch.setattr(wire, "dial", lambda *args, **kw: "linked")
    assert wire.dial_patiently(1, "::1", 5000, b"k" * 32, {"kind": "agent"},
                               anchor_place=loopback.this_place()) == "linked"
    assert wire.dial_patiently(1, "192.0.2.7", 5000, b"k" * 32, {"kind": "agent"}) == "linked"


def test_tls_is_on_unless_turned_off():
    assert Config({}, environ={}).get_bool("TunnelTls") is True


def test_tls_without_openssl_says_what_to_install(monkeypatch, tmp_path):
    from scrun_rest.anchor import tunnel_cert
    monkeypatch.setattr(tunnel_cert, "OPENSSL", "no-openssl-here")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UserError, match="needs the openssl command"):
        make_server_context(str(tmp_path))
    assert list(tmp_path.iterdir()) == []
