"""Which of the container's paths the nodes may need a copy of.

The container reads its rootfs and the sources of its bind mounts (podman's
/etc/hosts and the like, the user's volumes) at paths of the submit host.
Each such path is an item: used in place on the node, or copied through
the tunnel into the task's scratch dir (agent/bundle_fetch.py), and what
the container changed in it copied back afterwards (bundle_server.py).

BundleTransfer=never uses every path in place, as before transfer existed;
always copies every path outside SharedPaths; auto (the default) copies
unless the node sees the same content at the same path, which the node
finds out itself from the item's probe (bundle/tree_probe.py). A path
under SharedPaths is always used in place and never probed.
"""
import base64
import os

from scrun_rest.errors import UserError

MODES = ("auto", "always", "never")
ROOTFS_ID = 0
# Sources the node has of its own: device nodes, kernel filesystems.
NODE_OWN_PREFIXES = ("/dev", "/proc", "/sys")
SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
# A bind source this small travels in the setup message itself: podman's
# /etc/hosts, resolv.conf, hostname and /dev/shm would each cost a dial, a
# TLS handshake, a tar and a round trip otherwise. All of them together
# stay far below the tunnel's largest message (wire.MAX_FRAME).
INLINE_LIMIT = 64 << 10
INLINE_TOTAL = 1 << 20


class Item:
    """One path: what it is for, and where it ends up in the config."""

    def __init__(self, item_id, path, what, writeback, mount_index=None):
        self.id, self.path, self.what = item_id, path, what
        self.writeback, self.mount_index = writeback, mount_index

    def message(self, probe, inline=None):
        fields = {"id": self.id, "path": self.path, "what": self.what,
                  "file": not os.path.isdir(self.path), "writeback": self.writeback}
        if probe is not None:
            fields["probe"] = probe
        if inline is not None:
            fields["inline"] = base64.b64encode(inline).decode("ascii")
        return fields


class BundlePlan:
    def __init__(self, mode, shared_paths, volume_limit):
        self.mode, self.shared_paths, self.volume_limit = mode, shared_paths, volume_limit

    @classmethod
    def from_config(cls, config):
        mode = (config.get("BundleTransfer") or "auto").lower()
        if mode not in MODES:
            raise UserError("BundleTransfer=%s is not one of %s" % (
                config.get("BundleTransfer"), ", ".join(MODES)))
        shared = [os.path.normpath(p.strip()) for p in
                  (config.get("SharedPaths") or "").split(",") if p.strip()]
        for path in shared:
            if not path.startswith("/"):
                raise UserError("SharedPaths: %s is not an absolute path" % path)
        if config.get("NodeCacheLimit"):
            parse_size("NodeCacheLimit", config.get("NodeCacheLimit"))  # refused here
        return cls(mode, shared, parse_size("VolumeCopyLimit",
                                            config.get("VolumeCopyLimit") or "1G"))

    def is_shared(self, path):
        path = os.path.normpath(path)
        return any(path == prefix or path.startswith(prefix.rstrip("/") + "/")
                   for prefix in self.shared_paths)

    def items(self, config, rootfs, rootfs_in_place=False):
        """The items to offer the nodes, for a config with an absolute rootfs.
        rootfs_in_place: scrun.lua staged the rootfs where the nodes see it."""
        if self.mode == "never":
            return []
        found = []
        if not rootfs_in_place and not self.is_shared(rootfs):
            readonly = bool((config.get("root") or {}).get("readonly"))
            found.append(Item(ROOTFS_ID, rootfs, "rootfs", writeback=not readonly))
        for index, mount in enumerate(config.get("mounts") or []):
            source = mount.get("source") or ""
            if not is_bind(mount) or self.is_shared(source) or _node_own(source):
                continue
            readonly = "ro" in (mount.get("options") or [])
            found.append(Item(index + 1, source, "volume", writeback=not readonly,
                              mount_index=index))
        return found

    def check_volumes(self, config, rootfs):
        """Refuse, before a job exists, what cannot reach the container:
        a bind source that is missing, not a file or directory, or over
        VolumeCopyLimit."""
        from scrun_rest.bundle import tree_probe
        for item in self.items(config, rootfs):
            if item.what != "volume":
                continue
            mount = config["mounts"][item.mount_index]
            where = "the volume %s (mounted at %s)" % (item.path, mount.get("destination"))
            kind = _kind(item.path)
            if kind is None:
                raise UserError("%s does not exist on the submit host" % where)
            if kind not in ("dir", "file"):
                raise UserError("%s is a %s: only files and directories can be copied to "
                                "the nodes (add its directory to SharedPaths if the nodes "
                                "see it)" % (where, kind))
            if tree_probe.size(item.path, self.volume_limit) > self.volume_limit:
                size = tree_probe.size(item.path, 1 << 62)
                raise UserError(
                    "%s holds %s, more than VolumeCopyLimit=%s lets us copy to the nodes: "
                    "raise the limit, or add a prefix the nodes share to SharedPaths"
                    % (where, human_size(size), format_size(self.volume_limit)))

    def offered(self, config, rootfs, rootfs_in_place=False):
        """The setup message's bundle list: the items with their probes."""
        from scrun_rest.bundle import pack, tree_probe
        probe = None
        offered = []
        inline_left = INLINE_TOTAL
        for item in self.items(config, rootfs, rootfs_in_place):
            if self.mode == "auto":
                probe = tree_probe.digest(item.path)
                if probe is None:
                    # Unreadable here: the error comes when it is packed.
                    probe = "unreadable"
            inline = None
            if item.what != "rootfs":
                inline = pack.in_memory(item.path, min(INLINE_LIMIT, inline_left))
                inline_left -= len(inline or b"")
            offered.append(item.message(probe, inline))
        return offered


def is_bind(mount):
    options = mount.get("options") or []
    return mount.get("type") == "bind" or "bind" in options or "rbind" in options


def _node_own(source):
    return any(source == p or source.startswith(p + "/") for p in NODE_OWN_PREFIXES)


def _kind(path):
    import stat
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    for test, name in ((stat.S_ISDIR, "dir"), (stat.S_ISREG, "file"),
                       (stat.S_ISSOCK, "socket"), (stat.S_ISFIFO, "fifo"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device")):
        if test(mode):
            return name
    return "special file"


def parse_size(key, text):
    number, unit = text.strip(), ""
    if number[-1:].upper() in SIZE_UNITS:
        number, unit = number[:-1], number[-1:].upper()
    try:
        value = int(number) * SIZE_UNITS[unit]
    except ValueError:
        raise UserError("%s=%s is not a size (like 500M or 2G)" % (key, text))
    if value < 0:
        raise UserError("%s=%s is below 0" % (key, text))
    return value


def human_size(value):
    for unit in ("T", "G", "M", "K"):
        if value >= SIZE_UNITS[unit]:
            return "%.1f%s" % (value / SIZE_UNITS[unit], unit)
    return "%d bytes" % value


def format_size(value):
    for unit in ("T", "G", "M", "K"):
        if value >= SIZE_UNITS[unit] and value % SIZE_UNITS[unit] == 0:
            return "%d%s" % (value // SIZE_UNITS[unit], unit)
    return str(value)
