"""Read a bundle's config.json and check documents against our OCI schemas.

Every failure is a one-line UserError that names the field as a JSON path,
e.g. ``config.json: process.args: 5 is not of type 'array'``. jsonschema is
imported only when a check runs, so commands such as `state` stay cheap.
"""

import functools
import itertools
import json
import os
import re
import stat
from pathlib import Path

from scrun_rest.errors import UserError

SCHEMA_DIR = Path(__file__).parent.parent / "schemas"

_MAX_MESSAGE = 400  # conmon forwards stderr; keep one short line
_MAX_VALUE = 80
_MAX_DIGITS = 4000  # below Python 3.11's int-parsing limit of 4300 digits
_MAX_CONFIG_BYTES = 64 << 20  # podman's are tens of KiB; refuse to slurp a disk image
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class _Reject(ValueError):
    """Raised by our json hooks for input that parses but is not JSON."""


def load_config(bundle_dir):
    """Return the parsed config.json of a bundle (not yet validated)."""
    try:
        bundle = os.fsdecode(bundle_dir)
    except TypeError:
        raise UserError("bundle must be a path, not %s" % type(bundle_dir).__name__) from None
    if not os.path.isdir(bundle):
        what = "is not a directory" if os.path.exists(bundle) else "does not exist"
        raise UserError(_one_line("bundle %s %s" % (_show(bundle), what)))
    path = os.path.join(bundle, "config.json")
    try:
        # stat first: opening a FIFO named config.json would block forever.
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise UserError("config.json in the bundle is not a regular file")
        if info.st_size > _MAX_CONFIG_BYTES:
            raise UserError("config.json is too large (%d bytes)" % info.st_size)
        with open(path, "rb") as f:
            raw = f.read(_MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise UserError(_one_line("no config.json in bundle %s" % _show(bundle))) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UserError("config.json: cannot read: %s" % reason) from None
    return parse_config(raw)


def parse_config(raw):
    """Parse config.json (bytes or str) into a dict, with one-line errors."""
    try:
        # utf-8-sig: a BOM is harmless, and we re-serialise before use anyway.
        text = raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw.lstrip("\ufeff")
    except UnicodeDecodeError as exc:
        raise UserError("config.json: not UTF-8 text (bad byte at offset %d)" % exc.start) from None
    if not text.strip():
        raise UserError("config.json is empty")
    try:
        doc = json.loads(text, parse_constant=_reject_constant, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        raise UserError("config.json: not valid JSON: %s at line %d column %d"
                        % (exc.msg, exc.lineno, exc.colno)) from None
    except _Reject as exc:
        raise UserError("config.json: not valid JSON: %s" % exc) from None
    except RecursionError:
        raise UserError("config.json: not usable: nested too deeply") from None
    if not isinstance(doc, dict):
        raise UserError("config.json must hold a JSON object, not %s" % _kind(doc))
    return doc


def validate_config(doc):
    """Raise UserError unless doc is a valid OCI config.json document."""
    _check(doc, "config", "config.json")


def validate_state(doc):
    """Raise UserError unless doc is a valid OCI state document."""
    _check(doc, "state", "state")


def _reject_constant(name):
    # Python accepts NaN and Infinity; JSON, and Go's decoder, do not.
    raise _Reject("%s is not a JSON value" % name)


def _parse_int(digits):
    if len(digits) > _MAX_DIGITS:
        raise _Reject("a number with %d digits" % len(digits))
    return int(digits)


@functools.lru_cache(maxsize=None)
def _validator(name):
    """A compiled validator for schemas/NAME.schema.json, built once."""
    try:
        from jsonschema import validators
    except ImportError:
        raise UserError("cannot check %s: the jsonschema package is not installed" % name) from None
    path = SCHEMA_DIR / ("%s.schema.json" % name)
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError("scrun-rest is installed without a usable %s: %s"
                        % (path.name, type(exc).__name__)) from None
    base = validators.validator_for(schema)
    # Go's decoder (runc, podman) rejects 5.0 where an integer is expected;
    # JSON Schema would accept it, so integers must be real ints here.
    checker = base.TYPE_CHECKER.redefine(
        "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool))
    return validators.extend(base, type_checker=checker)(schema)


def _check(doc, name, label):
    if not isinstance(doc, dict):
        raise UserError("%s must hold a JSON object, not %s" % (label, _kind(doc)))
    validator = _validator(name)
    try:
        from jsonschema.exceptions import best_match
        error = best_match(validator.iter_errors(doc))
        if error is None:
            return
        text = _describe(error)
    except RecursionError:
        text = "nested too deeply"
    except Exception as exc:  # noqa: BLE001 - a check must never end in a traceback
        text = "could not be checked (%s)" % type(exc).__name__
    raise UserError(_one_line("%s: %s" % (label, text)))


def _describe(error):
    """Turn a jsonschema error into 'path: what is wrong', bounded in size."""
    path = list(error.absolute_path)
    kind, value, inst = error.validator, error.validator_value, error.instance
    if kind == "required":
        missing = [key for key in value if isinstance(inst, dict) and key not in inst]
        return "missing required field %s" % _json_path(path + missing[:1])
    if "propertyNames" in error.relative_schema_path:
        what = "keys must not be empty"
    elif kind == "type":
        types = value if isinstance(value, list) else [value]
        what = "%s is not of type %s" % (_show(inst), " or ".join(repr(t) for t in types))
    elif kind == "enum":
        what = "%s is not one of %s" % (_show(inst), ", ".join(_show(v) for v in value))
    elif kind == "pattern":
        wanted = error.schema.get("description") or "matching %s" % _show(value)
        what = "%s is not %s" % (_show(inst), wanted)
    elif kind in ("minimum", "maximum"):
        side = "less" if kind == "minimum" else "greater"
        what = "%s is %s than the %s %s" % (_show(inst), side, kind, _show(value))
    elif kind == "minItems":
        what = "must not be empty" if value == 1 else "needs at least %s items" % value
    elif kind == "minLength":
        what = "must not be empty" if value == 1 else "needs at least %s characters" % value
    else:
        what = error.message[:_MAX_MESSAGE]
    where = _json_path(path)
    return "%s: %s" % (where, what) if where else what


def _json_path(parts):
    """process.args[0], annotations["io.podman.x"]: readable and unambiguous."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += "[%d]" % part
        elif isinstance(part, str) and _IDENT.match(part):
            out += ("." if out else "") + part
        else:
            out += "[%s]" % _show(part)
    return out


def _show(value):
    """A short JSON-like rendering of a value; never huge, never recursive."""
    text = _render(value, 2)
    return text if len(text) <= _MAX_VALUE else text[:_MAX_VALUE - 3] + "..."


def _render(value, depth):
    if value is True or value is False or value is None:
        return json.dumps(value)
    if isinstance(value, int):
        # str() of a huge int is slow, and refused past 4300 digits on 3.11.
        return str(value) if value.bit_length() < 256 else "a very large number"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        shown = json.dumps(value[:_MAX_VALUE], ensure_ascii=False)
        return shown if len(value) <= _MAX_VALUE else shown[:-1] + '..."'
    if isinstance(value, (list, tuple)):
        if not value or depth == 0:
            return "[]" if not value else "[...]"
        items = [_render(item, depth - 1) for item in value[:3]]
        return "[%s%s]" % (", ".join(items), ", ..." if len(value) > 3 else "")
    if isinstance(value, dict):
        if not value or depth == 0:
            return "{}" if not value else "{...}"
        items = ["%s: %s" % (_render(k, 0), _render(v, depth - 1))
                 for k, v in itertools.islice(value.items(), 3)]
        return "{%s%s}" % (", ".join(items), ", ..." if len(value) > 3 else "")
    return "<%s>" % type(value).__name__


def _kind(value):
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _one_line(text):
    """Escape newlines, control characters and lone surrogates; cap the length."""
    text = text[:_MAX_MESSAGE * 2]
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE - 3] + "..."
