"""Whether a loopback tunnel address can lead to the anchor.

127.0.0.1:P is the anchor's only on its own host, in its own network
namespace: on any other node (or another namespace of the same machine)
it reaches whoever listens on P there, and a dialler that went on would
hand its handshake to them. So the anchor sends where it runs along with
a loopback address, and a dialler anywhere else refuses before it dials.

Runs on compute nodes: stdlib only, Python 3.6+.
"""
import ipaddress
import os

BOOT_ID = "/proc/sys/kernel/random/boot_id"
NETWORK_NAMESPACE = "/proc/self/ns/net"


class ForeignLoopback(Exception):
    """A loopback address handed to a dialler on another host or namespace."""


def is_loopback(host):
    try:
        return ipaddress.ip_address(str(host).split("%", 1)[0]).is_loopback
    except ValueError:
        return False  # a name: the anchor hands out literal addresses


def this_place():
    """This host's boot and network namespace, or None where /proc cannot tell."""
    try:
        with open(BOOT_ID) as handle:
            boot = handle.read().strip()
        namespace = os.stat(NETWORK_NAMESPACE)
    except OSError:
        return None
    return "%s/%d:%d" % (boot, namespace.st_dev, namespace.st_ino)


def refuse_elsewhere(host, anchor_place):
    """Raise ForeignLoopback unless `host` may be dialled from here."""
    if not is_loopback(host):
        return
    here = this_place()
    if anchor_place and here == anchor_place:
        return
    raise ForeignLoopback(
        "the anchor's tunnel address %s is a loopback address and this node is not "
        "the submit host: set TunnelHost in scrun-rest.conf to an address the "
        "compute nodes reach" % host)
