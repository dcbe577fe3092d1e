"""runc-compatible command lines: `--x=v` and `--x v`, global options first.

Hand-rolled rather than argparse: it must accept runc's quirks (options
after positionals, `--rootless` with or without a value) and stay cheap to
import for `state`.
"""
from scrun_rest.errors import UserError


class Spec:
    """The options one command takes."""

    def __init__(self, values=(), flags=(), repeat=(), aliases=None, positionals=(1, 1),
                 stop_at_positional=False):
        self.values = set(values)
        self.flags = set(flags)
        self.repeat = set(repeat)
        self.aliases = dict(aliases or {})
        self.positionals = positionals
        self.stop_at_positional = stop_at_positional


GLOBAL = Spec(
    values=("--cgroup-manager", "-f", "--log", "--log-format", "--root", "--criu"),
    flags=("--debug", "--systemd-cgroup", "--usage", "--version", "--help"),
    repeat=("-v",),
    aliases={"-V": "--version", "-h": "--help"},
)


class Parsed:
    def __init__(self):
        self.options = {}
        self.positionals = []

    def get(self, name, default=None):
        return self.options.get(name, default)


def parse(argv, spec, command="scrun-rest", stop_at_command=False):
    """Split argv by spec; with stop_at_command the first positional ends it."""
    parsed = Parsed()
    index = 0
    while index < len(argv):
        arg = argv[index]
        index += 1
        if arg == "--":
            parsed.positionals.extend(argv[index:])
            break
        if not arg.startswith("-") or arg == "-":
            parsed.positionals.append(arg)
            if stop_at_command or (spec.stop_at_positional and
                                   len(parsed.positionals) >= spec.positionals[0]):
                parsed.positionals.extend(argv[index:])
                break
            continue
        name, has_value, value = arg.partition("=")
        name = spec.aliases.get(name, name)
        if name == "--rootless":
            # runc takes a value (true|false|auto); scrun ignores it either way.
            if not has_value and index < len(argv) and argv[index] in ("true", "false", "auto"):
                index += 1
            continue
        if name in spec.values:
            if not has_value:
                if index >= len(argv):
                    raise UserError("%s: option %s needs a value" % (command, name))
                value = argv[index]
                index += 1
            parsed.options[name] = value
        elif name in spec.flags:
            if has_value and value.lower() not in ("true", "false", "1", "0"):
                raise UserError("%s: option %s takes no value" % (command, name))
            parsed.options[name] = not has_value or value.lower() in ("true", "1")
        elif name in spec.repeat:
            parsed.options.setdefault(name, []).append(value if has_value else True)
        elif _stacked_verbosity(arg, spec):
            parsed.options.setdefault("-v", []).extend([True] * (len(arg) - 1))
        else:
            raise UserError("%s: unknown option %s" % (command, _short(name)))
    low, high = spec.positionals
    count = len(parsed.positionals)
    if not stop_at_command and not spec.stop_at_positional and not low <= count <= high:
        if count < low:
            raise UserError("%s: missing container id" % command if low == 1
                            else "%s: needs %d arguments" % (command, low))
        raise UserError("%s: unexpected argument %s" % (command, _short(parsed.positionals[high])))
    if spec.stop_at_positional and count < low:
        raise UserError("%s: missing container id" % command)
    return parsed


def _stacked_verbosity(arg, spec):
    return "-v" in spec.repeat and len(arg) > 2 and set(arg[1:]) == {"v"}


def _short(text):
    text = text.replace("\n", "\\n").replace("\0", "\\0")
    return text if len(text) <= 40 else text[:37] + "..."
