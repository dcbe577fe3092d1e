"""`require 'json'` inside scrun.lua: a faithful round trip of config.json."""
import json
import os

import pytest

pytest.importorskip("lupa")

from scrun_rest.lua import json_module  # noqa: E402
from scrun_rest.lua.runtime import new_runtime  # noqa: E402

OCI = os.path.join(os.path.dirname(__file__), "fixtures", "oci")
LUA = os.path.join(os.path.dirname(__file__), "fixtures", "lua")


@pytest.fixture
def lua():
    runtime = new_runtime()
    json_module.install(runtime)

    def run(code, *args):
        return runtime.run(code, *args)
    run.runtime = runtime
    return run


def same(a, b):
    """Equal, with int and float told apart (1 is not 1.0) and key order ignored."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(same, a, b))
    return type(a) is type(b) and a == b


def roundtrip(lua, text):
    return lua("local json = require 'json'; return json.encode(json.decode(...))",
               text.encode()).decode()


CONFIGS = [os.path.join(OCI, name) for name in sorted(os.listdir(OCI)) if name.endswith(".json")]


@pytest.mark.parametrize("path", CONFIGS + [os.path.join(LUA, "podman_config.json")],
                         ids=os.path.basename)
def test_oci_configs_round_trip_exactly(lua, path):
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    back = roundtrip(lua, text)
    assert same(json.loads(text), json.loads(back))
    # key order survives too, so an edited config.json reads like the original
    assert list(json.loads(back)) == list(json.loads(text))


def test_empty_objects_and_arrays_keep_their_kind(lua):
    text = '{"annotations":{},"effective":[],"nested":{"a":[{}],"b":{"c":[]}}}'
    assert json.loads(roundtrip(lua, text)) == json.loads(text)
    assert roundtrip(lua, text) == text


def test_emptied_tables_keep_their_kind(lua):
    out = lua("""
        local json = require 'json'
        local t = json.decode('{"obj":{"k":1},"arr":[1,2]}')
        t.obj.k = nil
        table.remove(t.arr); table.remove(t.arr)
        return json.encode(t)""")
    assert json.loads(out) == {"obj": {}, "arr": []}


def test_tables_built_in_lua(lua):
    out = lua("""
        local json = require 'json'
        return json.encode({empty = {}, list = {1, 2, 3}, map = {a = 1},
                            holes = {[1] = 1, [3] = 3}, mixed = {1, x = 2},
                            obj = json.object(), arr = json.array({}),
                            nothing = json.null, yes = true, no = false})""")
    assert json.loads(out) == {"empty": [], "list": [1, 2, 3], "map": {"a": 1},
                               "holes": [1, None, 3], "mixed": {"1": 1, "x": 2},
                               "obj": {}, "arr": [], "nothing": None,
                               "yes": True, "no": False}


def test_integers_stay_integers(lua):
    out = lua("""
        local json = require 'json'
        local t = json.decode('{"a":1,"b":1.5,"c":1.0,"d":-7,"e":9007199254740993,'
                              .. '"f":18446744073709551615,"g":1e2}')
        t.h = 2^3
        t.i = t.a + 1
        return json.encode(t), math.type(t.a), math.type(t.b), t.e""")
    text, type_a, type_b, e = out
    assert b'"a":1,' in text and b'"c":1,' in text and b'"h":8' in text and b'"i":2' in text
    assert json.loads(text) == {"a": 1, "b": 1.5, "c": 1, "d": -7, "e": 9007199254740993,
                                "f": 18446744073709551615, "g": 100, "h": 8, "i": 2}
    assert (type_a, type_b, e) == (b"integer", b"float", 9007199254740993)


def test_unicode_and_escapes(lua):
    text = '{"s":"h\\u00e9llo \\u2603 \\ud83d\\ude00 \\"q\\" \\\\ \\n\\t","raw":"日本"}'
    back = roundtrip(lua, text)
    assert json.loads(back) == json.loads(text)
    length = lua("return #require('json').decode(...).raw", text.encode())
    assert length == len("日本".encode())


def test_non_utf8_bytes_pass_through(lua):
    out = lua("return require('json').encode({s = '\\255\\254'})")
    assert out == b'{"s":"\xff\xfe"}'


def test_nil_assignment_deletes_keys(lua):
    out = lua("""
        local json = require 'json'
        local c = json.decode('{"linux":{"uidMappings":[{"a":1}],"gidMappings":[],"x":1}}')
        c["linux"]["uidMappings"] = nil
        c["linux"]["gidMappings"] = nil
        return json.encode(c)""")
    assert json.loads(out) == {"linux": {"x": 1}}


def test_null_decodes_to_nil_and_json_null_encodes(lua):
    present, out = lua("""
        local json = require 'json'
        local t = json.decode('{"a":null,"b":[1,null,3]}')
        return t.a == nil, json.encode({a = json.null, b = t.b})""")
    assert present is True
    assert json.loads(out) == {"a": None, "b": [1, None, 3]}


def test_scalars_and_indent(lua):
    assert lua("return require('json').decode('5')") == 5
    assert lua("return require('json').decode('\"x\"')") == b"x"
    assert lua("return require('json').decode('null')") is None
    assert lua("return require('json').encode('x')") == b'"x"'
    assert lua("return require('json').encode({a={1}}, 2)") == b'{\n  "a": [\n    1\n  ]\n}'


@pytest.mark.parametrize("code,message", [
    ("return require('json').decode('{')", "json.decode: Expecting property name"),
    ("return require('json').decode(nil)", "json.decode: expected a string, got nil"),
    ("return require('json').encode({f = print})", "json.encode: cannot encode a function"),
    ("return require('json').encode({n = 0/0})", "json.encode: cannot encode nan"),
    ("local t = {}; t.t = t; return require('json').encode(t)", "nested"),
    ("return require('json').encode({[{}] = 1})", "cannot use a"),
])
def test_errors_are_lua_errors_with_a_position(lua, code, message):
    result = lua("local ok, err = pcall(function() %s end) return ok, err" % code)
    ok, err = result
    assert ok is False
    assert message in err.decode()


def test_json_null_is_read_only(lua):
    ok, err = lua("return pcall(function() table.insert(require('json').null, 1) end)")
    assert ok is False and b"cannot be modified" in err


def test_require_returns_the_same_module(lua):
    assert lua("return require('json') == require('json')") is True
