"""oci.conf(5) on the compute side: the node's own file and its patterns.

Python 3.6+, stdlib only.
"""
import os
import re

from scrun_rest import conf_lines

NODE_OCI_CONF = "/etc/slurm/oci.conf"
RUNTIME_KEYS = ("RunTimeRun", "RunTimeCreate", "RunTimeStart", "RunTimeQuery",
                "RunTimeKill", "RunTimeDelete", "RunTimeExec")


class PatternError(ValueError):
    pass


def parse(text):
    """{lowercase key: value}; a malformed line is skipped, as the node's
    file is not ours to refuse."""
    return conf_lines.by_lowercase_key(text)


def read_node_conf(path=NODE_OCI_CONF):
    """The node's oci.conf as {lowercase key: value}, or None when absent."""
    try:
        with open(path) as handle:
            return parse(handle.read())
    except (OSError, UnicodeDecodeError):
        return None


def merge(submit_settings, node_conf):
    """Settings for this node: the node's oci.conf wins when present.

    When the node names any runtime command, its set replaces ours whole, so
    a create/start configuration is never mixed with our run pattern.
    """
    merged = dict(submit_settings)
    if not node_conf:
        return merged
    canonical = {key.lower(): key for key in merged}
    for key in RUNTIME_KEYS:
        canonical.setdefault(key.lower(), key)
    if any(key.lower() in node_conf for key in RUNTIME_KEYS):
        for key in RUNTIME_KEYS:
            merged.pop(key, None)
    for lower, value in node_conf.items():
        merged[canonical.get(lower, lower)] = value
    return merged


def quote_all(args):
    return " ".join(quote(arg) for arg in args)


def quote(value):
    """One shell word that stands for value, whatever it holds."""
    return "'" + str(value).replace("'", "'\\''") + "'"


def quote_inside(value, quoting):
    """value as shell text within the pattern's own quoting at that point
    (None, "'" or '"'), so a site that quotes %r itself still gets one word."""
    value = str(value)
    if quoting == "'":
        return value.replace("'", "'\\''")
    if quoting == '"':
        return re.sub(r'([\\"$`])', r"\\\1", value)
    return quote(value)


def expand(pattern, values):
    """Replace oci.conf's %-letters; values maps each letter to its text.

    The result runs through /bin/sh -c, and values come from the user and
    the image (a rootfs path, a bundle): each lands as literal text, never
    as shell syntax. %@ is already a list of quoted arguments."""
    out = []
    quoting = None
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "%":
            if index + 1 >= len(pattern):
                raise PatternError("pattern %r ends with a lone %%" % pattern)
            letter = pattern[index + 1]
            if letter == "%":
                out.append("%")
            elif letter == "@" and letter in values:
                out.append(values[letter])  # quoted argument by argument
            elif letter in values:
                out.append(quote_inside(values[letter], quoting))
            else:
                raise PatternError("pattern %r uses unknown %%%s" % (pattern, letter))
            index += 2
            continue
        if char == "\\" and quoting != "'" and pattern[index + 1:index + 2] not in ("", "%"):
            # An escaped character, a quote included, leaves the quoting as it is.
            out.append(pattern[index:index + 2])
            index += 2
            continue
        if quoting is None and char in "'\"":
            quoting = char
        elif char == quoting:
            quoting = None
        out.append(char)
        index += 1
    return "".join(out)


def container_name(values):
    """Slurm's container id for a task, %n.%u.%j.%s.%t, as plain text."""
    return ".".join(str(values[letter]) for letter in "nujst")


def pattern_values(bundle, rootfs, env_file, spool_dir, args, task_pid, runtime_root):
    """The %-letters for the task this process runs (from srun's environment).

    Slurm's letters, and %R, ours: the runtime root (agent/runtime_root.py)."""
    import pwd
    uid = os.getuid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    env = os.environ
    return {
        "@": quote_all(args), "b": bundle, "e": env_file,
        "j": env.get("SLURM_JOB_ID", "0"), "m": spool_dir,
        "n": env.get("SLURMD_NODENAME") or env.get("SLURM_TOPOLOGY_ADDR") or os.uname()[1],
        "p": str(task_pid), "r": rootfs, "R": runtime_root,
        "s": env.get("SLURM_STEP_ID", "0"), "t": env.get("SLURM_PROCID", "0"),
        "u": user, "U": str(uid),
    }
