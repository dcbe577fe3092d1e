"""Glue the commands share: finding a container by id, signal names."""
from scrun_rest.container import Container


def load_container(globals_, container_id):
    return Container.load(globals_.resolved_root(), container_id)


def parse_signal(text):
    """SIGTERM, TERM, term or 15; anything else is an error."""
    import signal  # not at the top: it imports enum, and `state` needs neither
    from scrun_rest.errors import UserError
    value = str(text).strip()
    if value.isascii() and value.isdigit():  # "\u00b2".isdigit() too, but int() refuses it
        number = int(value)
        if not 1 <= number <= signal.SIGRTMAX:
            raise UserError("invalid signal %s" % value[:20])
        return number
    name = value.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    number = getattr(signal.Signals, name, None) if name.isidentifier() else None
    if number is None:
        raise UserError("invalid signal %s" % value[:20])
    return int(number)
