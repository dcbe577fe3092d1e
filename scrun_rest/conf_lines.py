"""Key=Value lines, as slurm.conf, oci.conf and scrun-rest.conf write them.

One grammar for the three files: blank lines and lines starting with # are
skipped; a value may be quoted as in a shell ("a b", 'a # b'), with a
comment after the closing quote, else it ends at " #". Keys come back as
written: callers compare them case-insensitively, as Slurm does.

Stdlib only, Python 3.6+: the agent reads the node's oci.conf and
slurm.conf with it, so it imports nothing of scrun_rest.
"""


class MalformedLine(ValueError):
    """A line that is not Key=Value; lineno counts from 1."""

    def __init__(self, lineno, reason):
        ValueError.__init__(self, "line %d: %s" % (lineno, reason))
        self.lineno = lineno
        self.reason = reason


def settings(text, skip_malformed=False):
    """Yield (lineno, key, value) for each Key=Value line, in file order.

    A malformed line raises MalformedLine when reached; with skip_malformed
    it is passed over instead, for files that are not ours to refuse.
    """
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            key, value = _split(line)
        except ValueError as exc:
            if skip_malformed:
                continue
            raise MalformedLine(lineno, str(exc))
        yield lineno, key, value


def by_lowercase_key(text):
    """{lowercase key: value}, malformed lines skipped; the last of a key wins."""
    return {key.lower(): value for _, key, value in settings(text, skip_malformed=True)}


def _split(line):
    if "=" not in line:
        raise ValueError("expected Key=Value, got %r" % line[:80])
    key, value = line.split("=", 1)
    return key.strip(), unquote(value.strip())


def unquote(value):
    """A value as written after '=', without its quotes or comment."""
    if value[:1] not in ("'", '"'):
        return value.split(" #", 1)[0].strip()
    import shlex  # not at the top: `state` loads this module and must stay light
    # comments=True: a quoted value may still carry a trailing # comment.
    parts = shlex.split(value, comments=True)
    if len(parts) != 1:
        raise ValueError("text after the quoted value")
    return parts[0]
