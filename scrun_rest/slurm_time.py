"""Slurm's time strings, as time_str2mins() reads them."""
import re

INFINITE = -1
_UNLIMITED = ("-1", "infinite", "unlimited")
_DAYS = re.compile(r"^(\d+)-(\d+)(?::(\d+)(?::(\d+))?)?$")
_CLOCK = re.compile(r"^(\d+)(?::(\d+)(?::(\d+))?)?$")


def to_minutes(text):
    """Minutes for a Slurm time string; INFINITE (-1) for unlimited.

    Formats: days-hours[:minutes[:seconds]], hours:minutes:seconds,
    minutes[:seconds], -1, INFINITE, UNLIMITED. Seconds round up, as Slurm
    does. Raises ValueError for anything else.
    """
    value = str(text).strip()
    if value.lower() in _UNLIMITED:
        return INFINITE
    match = _DAYS.match(value)
    if match:
        days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
        return _round_up(((days * 24 + hours) * 60 + minutes) * 60 + seconds)
    match = _CLOCK.match(value)
    if not match:
        raise ValueError("not a Slurm time: %r" % value[:40])
    first, second, third = match.groups()
    if third is not None:
        seconds = (int(first) * 60 + int(second)) * 60 + int(third)
    elif second is not None:
        seconds = int(first) * 60 + int(second)
    else:
        seconds = int(first) * 60
    return _round_up(seconds)


def _round_up(seconds):
    return (seconds + 59) // 60
