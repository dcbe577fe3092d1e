"""The one literal address the anchor both listens on and hands its agent.

A name is resolved once, here: were the anchor to bind what the name gives
it (say the IPv4 address) and the node dial the name (whose IPv6 address
comes first), the node would reach whoever listens on that other address,
and another user may bind [::]:P while the anchor holds 0.0.0.0:P. A
wildcard is no better, since what it is advertised as is again a name.
"""
import socket
from urllib.parse import urlsplit

from scrun_rest.errors import UserError

WILDCARDS = ("", "0.0.0.0", "::", "*")


def choose(tunnel_host, rest_url):
    """The literal address for TunnelHost (a literal, a name, or unset)."""
    if tunnel_host and tunnel_host not in WILDCARDS:
        return _resolve(tunnel_host)
    address = _own_name_address()
    if address and not _is_loopback(address):
        return address
    # Debian maps the host name to a loopback address, which compute nodes
    # cannot dial: take the one this host reaches slurmrestd from. Failing
    # that, a loopback address serves a node that is this host, and any
    # other node refuses it (tunnel/loopback.py).
    return _address_towards(rest_url) or address or "127.0.0.1"


def _resolve(host):
    try:
        found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UserError("TunnelHost=%s does not resolve: %s" % (
            host, getattr(exc, "strerror", None) or exc))
    # The address a node's resolver tries first, as ours does.
    return found[0][4][0]


def _own_name_address():
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return None


def _is_loopback(address):
    from scrun_rest.tunnel.loopback import is_loopback
    return is_loopback(address)


def _address_towards(url):
    """Our source address for packets to the URL's host, or None (no packet is sent)."""
    try:
        parts = urlsplit(url or "")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return None
        family, _, _, _, target = socket.getaddrinfo(
            parts.hostname, parts.port or 443, type=socket.SOCK_DGRAM)[0]
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect(target)
            address = probe.getsockname()[0]
    except (OSError, ValueError, IndexError):
        return None
    return None if _is_loopback(address) else address
