"""JSON for the light commands (`state`, `kill`, `delete`) without `import json`.

`import json` pulls in `re` and `enum`: about 5 ms here, where `state` may
take only half a bare interpreter's start-up more (contrib/bench). Parsing
uses the same C scanner as json (`_json.make_scanner`); writing handles the
plain values a state file holds and matches `json.dumps` byte for byte.
Interpreters without `_json` fall back to json.
"""
try:
    import _json
except ImportError:  # not CPython
    _json = None


class _ScannerContext:
    """The attributes _json.make_scanner reads, with json's defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float  # "NaN", "Infinity", "-Infinity"
    memo = None


_scan = _json.make_scanner(_ScannerContext()) if _json is not None else None
_WHITESPACE = " \t\n\r"


def loads(text):
    """Like json.loads for a str; raises ValueError on malformed text."""
    if _scan is None:
        import json
        return json.loads(text)
    text = text.strip(_WHITESPACE)
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        raise ValueError("not a JSON document")
    if end != len(text):
        raise ValueError("extra data after the JSON document")
    return value


def load(handle):
    return loads(handle.read())


def dumps(value, indent=None):
    """Like json.dumps(value, indent=indent) for dicts, lists, str, numbers,
    bools and None; anything else raises TypeError."""
    if _json is None:
        import json
        return json.dumps(value, indent=indent)
    parts = []
    _encode(value, parts, "\n" if indent is not None else None, indent or 0)
    return "".join(parts)


def _encode(value, parts, newline, step):
    if isinstance(value, str):
        parts.append(_json.encode_basestring_ascii(value))
    elif value is None:
        parts.append("null")
    elif value is True:
        parts.append("true")
    elif value is False:
        parts.append("false")
    elif isinstance(value, int):
        parts.append(int.__repr__(value))
    elif isinstance(value, float):
        parts.append(_float(value))
    elif isinstance(value, dict):
        _container(parts, "{", "}", value.items(), newline, step, _member)
    elif isinstance(value, (list, tuple)):
        _container(parts, "[", "]", value, newline, step, _encode)
    else:
        raise TypeError("%s is not JSON serializable" % type(value).__name__)


def _member(item, parts, newline, step):
    key, value = item
    if not isinstance(key, str):
        raise TypeError("keys must be str, not %s" % type(key).__name__)
    parts.append(_json.encode_basestring_ascii(key))
    parts.append(": ")
    _encode(value, parts, newline, step)


def _container(parts, opening, closing, items, newline, step, encode_item):
    inner = newline + " " * step if newline is not None else None
    separator = "," + inner if inner is not None else ", "
    parts.append(opening)
    empty = True
    for item in items:
        if empty:
            empty = False
            if inner is not None:
                parts.append(inner)
        else:
            parts.append(separator)
        encode_item(item, parts, inner, step)
    if not empty and newline is not None:
        parts.append(newline)
    parts.append(closing)


def _float(value):
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)
