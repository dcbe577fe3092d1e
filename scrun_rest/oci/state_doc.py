"""The OCI state document and container id rules (stdlib only: `state` is hot)."""

from scrun_rest.errors import UserError

STATUSES = ("creating", "created", "running", "stopped")

# runc's rule, ^[\w+\-\.]+$ with Go's ASCII-only \w. A set, not a regex:
# importing `re` would cost `state` a quarter of its time budget.
ID_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                          "0123456789_+-.")
MAX_ID_LENGTH = 1024


def check_container_id(cid):
    """Return cid if runc would accept it as a container id, else raise UserError."""
    if not isinstance(cid, str):
        raise UserError("container id must be a string, not %s" % type(cid).__name__)
    if not cid:
        raise UserError("container id must not be empty")
    if len(cid) > MAX_ID_LENGTH:
        raise UserError("container id is too long (%d characters, at most %d)"
                        % (len(cid), MAX_ID_LENGTH))
    if cid in (".", ".."):
        # The id names a state directory; these would alias its parent.
        raise UserError("container id %r is not allowed" % cid)
    if not ID_CHARACTERS.issuperset(cid):
        bad = next(c for c in cid if c not in ID_CHARACTERS)
        raise UserError("container id %s contains %s; use only ASCII letters, digits and _ + - ."
                        % (_brief(cid), ascii(bad)))
    return cid


def state_document(container_id, status, pid, bundle, annotations=None, oci_version="1.0.2"):
    """Build the state document of runtime.md, as `state` prints it.

    pid must be positive while created or running; a stopped container shows
    pid 0, as runc and crun print. Annotations appear only when there are some.
    """
    if status not in STATUSES:
        raise ValueError("unknown container status %r" % (status,))
    if not isinstance(bundle, str) or not bundle.startswith("/"):
        raise ValueError("bundle must be an absolute path, got %r" % (bundle,))
    if status == "stopped":
        pid = 0
    elif status in ("created", "running"):
        if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
            raise ValueError("a %s container needs a pid > 0, got %r" % (status, pid))
    else:  # creating: the process may not exist yet
        pid = pid if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 else 0
    doc = {
        "ociVersion": oci_version,
        "id": container_id,
        "status": status,
        "pid": pid,
        "bundle": bundle,
    }
    if annotations:
        doc["annotations"] = dict(annotations)
    return doc


def _brief(text, limit=40):
    """ascii() of text, cut short: error lines must stay one short line."""
    shown = ascii(text[:limit])
    if len(text) <= limit and len(shown) <= limit + 2:
        return shown
    return shown[:limit + 1] + "..." + shown[0]
