"""Names inside a tree (archive members, change lists) as the list of
components a dir-fd walk takes, refusing any that could leave the tree.

Components are bytes, so that any file name survives whatever the locale
(a node's Python 3.6 in the C locale would refuse non-ASCII str names).
Python 3.6+, stdlib only.
"""


def to_bytes(name):
    """A str name (undecodable bytes kept as surrogates) as the bytes it is."""
    if isinstance(name, bytes):
        return name
    return name.encode("utf-8", "surrogateescape")


def to_str(raw):
    """The bytes of a name as str, losslessly (the inverse of to_bytes)."""
    return raw.decode("utf-8", "surrogateescape")


def components(name):
    """The components of a relative name ("./a//b/" -> [b"a", b"b"]; "." ->
    []); ValueError with the reason for a name that is absolute, climbs
    with "..", or holds a NUL."""
    raw = to_bytes(name)
    if b"\0" in raw:
        raise ValueError("a NUL byte in the name")
    if raw.startswith(b"/"):
        raise ValueError("an absolute name")
    parts = [part for part in raw.split(b"/") if part and part != b"."]
    if b".." in parts:
        raise ValueError("a '..' component")
    return parts


def join(parts):
    """The relative name of a list of components, as str."""
    return to_str(b"/".join(parts)) if parts else "."
