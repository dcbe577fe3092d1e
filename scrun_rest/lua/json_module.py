"""`require 'json'` for scrun.lua: json.encode(value) and json.decode(text).

It behaves like the common pure-Lua json.lua, so scripts written for scrun
(the man page's rsync example among them) run unchanged, and it round-trips
an OCI config.json faithfully:

* Objects and arrays keep their kind. Every decoded table carries a
  metatable saying which it was, so `{}` stays `{}` and `[]` stays `[]` even
  when empty; a decoded object also remembers its key order, so an edited
  config.json reads like the original. A table the script builds itself is
  an array when it is empty or its keys are 1..n, an object otherwise.
  json.object(t) and json.array(t) mark a table explicitly.
* Integers stay integers. A float with an integral value (Lua's `2^3` is
  8.0) is written as an integer, since Go's encoding/json rejects `8.0` for
  an integer field. Integers beyond Lua's 64-bit range (rlimits of
  18446744073709551615 in podman's configs) become floats in Lua and are
  written back with their exact original digits.
* Strings are bytes, passed through untouched (UTF-8 or not); \\u escapes
  decode to UTF-8.
* JSON null decodes to nil (assigning nil deletes a key), as in json.lua;
  json.null is a value that encodes as null.
"""
import json
import math

from scrun_rest.lua.runtime import pair, to_bytes, to_text

MAX_DEPTH = 500
_INT64 = (-2 ** 63, 2 ** 63)
_UINT64 = 2 ** 64

_LUA_SIDE = b"""
local py_decode, py_encode = ...
local setmetatable, type, error, tostring = setmetatable, type, error, tostring
local getmt = (debug and debug.getmetatable) or getmetatable
local rawget = rawget

local array_mt = {__jsontype = "array"}
local json = {}
json.null = setmetatable({}, {
  __jsontype = "null",
  __tostring = function() return "null" end,
  __newindex = function() error("json.null cannot be modified", 2) end,
})

local function new_object(keys)
  return setmetatable({}, {__jsontype = "object", __jsonorder = keys})
end

local function new_array()
  return setmetatable({}, array_mt)
end

local function info(t)
  local mt = getmt(t)
  if type(mt) ~= "table" then return nil end
  return rawget(mt, "__jsontype"), rawget(mt, "__jsonorder")
end

function json.decode(text)
  if type(text) ~= "string" then
    error("json.decode: expected a string, got " .. type(text), 2)
  end
  local ok, value = py_decode(text)
  if not ok then error("json.decode: " .. tostring(value), 2) end
  return value
end

function json.encode(value, indent)
  local ok, text = py_encode(value, indent)
  if not ok then error("json.encode: " .. tostring(text), 2) end
  return text
end

function json.object(t)
  t = t or {}
  if getmt(t) == nil then setmetatable(t, {__jsontype = "object"}) end
  return t
end

function json.array(t)
  t = t or {}
  if getmt(t) == nil then setmetatable(t, array_mt) end
  return t
end

package.preload["json"] = function() return json end
return json, new_object, new_array, info
"""


class EncodeError(ValueError):
    pass


class JsonModule:
    def __init__(self, runtime):
        self.runtime = runtime
        self.lua = runtime.lua
        self.big_integers = {}  # float seen in Lua -> the integer it was decoded from
        (self.table, self._new_object, self._new_array,
         self._info) = runtime.run(_LUA_SIDE, self._decode, self._encode)

    # -- decode: JSON text -> Lua values -------------------------------------
    def _decode(self, text):
        try:
            value = json.loads(to_text(text))
            return True, self.to_lua(value)
        except ValueError as exc:
            return False, to_bytes(str(exc))
        except RecursionError:
            return False, b"nested too deeply"
        except Exception as exc:  # never hand a Python exception object to Lua
            return False, to_bytes("%s: %s" % (type(exc).__name__, exc))

    def to_lua(self, value):
        if isinstance(value, dict):
            keys = [to_bytes(key) for key in value]
            table = self._new_object(self.lua.table_from(keys))
            for key, item in zip(keys, value.values()):
                if item is not None:
                    table[key] = self.to_lua(item)
            return table
        if isinstance(value, list):
            table = self._new_array()
            for index, item in enumerate(value, 1):
                if item is not None:
                    table[index] = self.to_lua(item)
            return table
        if isinstance(value, str):
            return to_bytes(value)
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, int) and not _INT64[0] <= value < _INT64[1]:
            approximate = float(value)
            self.big_integers[approximate] = value
            return approximate
        return value

    # -- encode: Lua values -> JSON text -------------------------------------
    def _encode(self, value, indent=None):
        try:
            document = self.to_python(value, 0)
            if isinstance(indent, (int, float)) and not isinstance(indent, bool) and indent > 0:
                indent = int(indent)
            else:
                indent = None
            separators = (",", ": ") if indent else (",", ":")
            text = json.dumps(document, ensure_ascii=False, indent=indent,
                              separators=separators, allow_nan=False)
            try:
                return True, text.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:
                return True, json.dumps(document, indent=indent, separators=separators,
                                        allow_nan=False).encode()
        except (EncodeError, ValueError) as exc:
            return False, to_bytes(str(exc))
        except RecursionError:
            return False, b"nested too deeply"
        except Exception as exc:
            return False, to_bytes("%s: %s" % (type(exc).__name__, exc))

    def to_python(self, value, depth):
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, bytes):
            return to_text(value)
        if isinstance(value, int):
            return value
        if isinstance(value, float):
            if math.isnan(value) or math.isinf(value):
                raise EncodeError("cannot encode %r as JSON" % value)
            if value in self.big_integers:
                return self.big_integers[value]
            if value.is_integer() and abs(value) < _UINT64:
                return int(value)
            return value
        if not self.runtime.is_table(value):
            kind = self.runtime.module.lua_type(value) or "userdata"
            raise EncodeError("cannot encode a %s" % kind)
        if depth >= MAX_DEPTH:
            raise EncodeError("tables nested more than %d deep (does a table contain "
                              "itself?)" % MAX_DEPTH)
        kind, order = pair(self._info(value))
        if kind == b"null":
            return None
        items = list(value.items())
        if kind != b"object" and _is_array(items):
            return self._array(items, depth)
        return self._object(items, order, depth)

    def _array(self, items, depth):
        if not items:
            return []
        by_index = dict(items)
        return [None if by_index.get(index) is None else
                self.to_python(by_index[index], depth + 1)
                for index in range(1, max(by_index) + 1)]

    def _object(self, items, order, depth):
        values = {}
        for key, item in items:
            values[_key(key)] = item
        result = {}
        if order is not None:
            for index in range(1, len(order) + 1):
                key = to_text(order[index])
                if key in values:
                    result[key] = self.to_python(values.pop(key), depth + 1)
        for key in sorted(values):
            result[key] = self.to_python(values[key], depth + 1)
        return result


def _is_array(items):
    """Keys 1..n, or few enough holes (at most half) to write them as null."""
    if not items:
        return True
    indexes = []
    for key, _ in items:
        if isinstance(key, bool) or not isinstance(key, int) or key < 1:
            return False
        indexes.append(key)
    return max(indexes) <= max(2 * len(indexes), 10)


def _key(key):
    if isinstance(key, bytes):
        return to_text(key)
    if isinstance(key, bool):
        raise EncodeError("cannot use a boolean as an object key")
    if isinstance(key, int):
        return str(key)
    if isinstance(key, float):
        return str(int(key)) if key.is_integer() else repr(key)
    raise EncodeError("cannot use a %s as an object key" % type(key).__name__)


def install(runtime):
    """Make `require 'json'` return the module; returns the JsonModule."""
    return JsonModule(runtime)
