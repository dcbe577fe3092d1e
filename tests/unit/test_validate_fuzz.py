"""Property tests: whatever config.json holds, the user gets one line, never a traceback."""

import copy
import json
import re
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scrun_rest.errors import UserError
from scrun_rest.oci.state_doc import check_container_id
from scrun_rest.oci.validate import load_config, parse_config, validate_config, validate_state

BASE = json.loads((Path(__file__).parent / "fixtures" / "oci" / "docker-20.10.json").read_text())


def fuzz(examples):
    # No example database: runs stay reproducible and leave no .hypothesis/ behind.
    return settings(max_examples=examples, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def paths(node, prefix=()):
    """Every place in a document: object members and array items."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from paths(value, prefix + (index,))


BASE_PATHS = list(paths(BASE))[1:]

# Characters that break naive printing: controls, separators, lone surrogates.
NASTY = st.sampled_from(["\x00", "\n", "\r", "\t", "\x1b[31m", "\u2028", "\u202e", "\ud800",
                         "\udfff", "\U0001f600", "\ufeff", "é", '"', "\\"])
TEXT = st.one_of(
    st.text(max_size=20),
    st.lists(st.one_of(NASTY, st.characters()), max_size=20).map("".join),
)
HUGE_TEXT = st.builds(lambda ch, n: ch * n, st.sampled_from(["x", "/", "\ud800", "é\n"]),
                      st.integers(10_000, 400_000))
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), TEXT,
                    st.integers(min_value=2 ** 64 - 2, max_value=2 ** 200))
JSONISH = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)


def deep(depth, leaf):
    for i in range(depth):
        leaf = [leaf] if i % 2 else {"k": leaf}
    return leaf


DEEP = st.builds(deep, st.integers(1, 50_000), SCALARS)
DELETE = object()
REPLACEMENT = st.one_of(JSONISH, HUGE_TEXT, DEEP, st.just(DELETE))


def assert_one_line(error):
    text = str(error)
    assert type(error) is UserError
    assert text and text == text.strip() and len(text) <= 500
    assert all(c.isprintable() for c in text), repr(text)
    text.encode("utf-8")  # printable to stderr: no lone surrogates


def check(doc, validator=validate_config):
    try:
        validator(doc)
    except UserError as error:
        assert_one_line(error)


def mutate(doc, where, value):
    """doc with the value at where replaced (or removed); copies only that path."""
    key, rest = where[0], where[1:]
    node = copy.copy(doc)
    if rest:
        node[key] = mutate(doc[key], rest, value)
    elif value is DELETE:
        del node[key]
    else:
        node[key] = value
    return node


@fuzz(700)
@given(st.lists(st.tuples(st.sampled_from(BASE_PATHS), REPLACEMENT), min_size=1, max_size=3))
def test_mutated_configs_fail_in_one_line(changes):
    doc = BASE
    for where, value in changes:
        try:
            doc = mutate(doc, where, value)
        except (KeyError, IndexError, TypeError):
            pass  # an earlier change removed or replaced the parent of this one
    check(doc)


@fuzz(300)
@given(st.dictionaries(st.sampled_from(sorted(BASE) + ["x-vendor", ""]), JSONISH, max_size=6))
def test_top_level_fields_of_any_type(fields):
    check(dict(BASE, **fields))


@fuzz(250)
@given(st.one_of(JSONISH, DEEP))
def test_any_document(doc):
    check(doc)
    check(doc, validate_state)


MAPS = ("annotations", "sysctl", "unified", "rdma")  # maps whose values the schema types


def at(doc, where):
    for part in where:
        doc = doc[part]
    return doc


# Only objects: an unknown member of anything else means nothing.
OBJECT_PATHS = [where for where in paths(BASE)
                if isinstance(at(BASE, where), dict) and where[-1:] not in [(m,) for m in MAPS]]


@fuzz(150)
@given(st.sampled_from(OBJECT_PATHS), st.text(max_size=30), JSONISH)
def test_unknown_members_are_ignored(where, name, value):
    """Extensibility: an unknown member added to any object never fails validation."""
    validate_config(mutate(BASE, where + ("x-" + name,), value))


@pytest.fixture(scope="module")
def bundle():
    path = Path(tempfile.mkdtemp(prefix="scrun-fuzz-"))
    yield path
    shutil.rmtree(str(path))


def encoded_documents():
    def dump(doc, indent):
        return json.dumps(doc, indent=indent, ensure_ascii=False).encode("utf-8", "surrogatepass")
    return st.one_of(
        st.binary(max_size=200),
        st.builds(dump, JSONISH, st.sampled_from([None, 1])),
        st.builds(lambda n, end: b"[" * n + end,
                  st.integers(1, 200_000), st.sampled_from([b"", b"]"])),
        st.builds(lambda raw, cut: raw[:cut],  # truncated files
                  st.just(json.dumps(BASE).encode()), st.integers(0, 9000)),
    )


@fuzz(250)
@given(raw=encoded_documents())
def test_load_config_any_bytes(bundle, raw):
    (bundle / "config.json").write_bytes(raw)
    try:
        doc = load_config(bundle)
    except UserError as error:
        assert_one_line(error)
        return
    assert isinstance(doc, dict)
    check(doc)


@fuzz(150)
@given(st.tuples(st.sampled_from(BASE_PATHS), REPLACEMENT))
def test_parse_then_validate_round_trip(change):
    try:
        raw = json.dumps(mutate(BASE, *change)).encode("utf-8", "surrogatepass")
    except RecursionError:
        return  # too deep to write as a file in the first place
    try:
        check(parse_config(raw))
    except UserError as error:
        assert_one_line(error)


RUNC_ID = re.compile(r"[A-Za-z0-9_+\-.]+")


@fuzz(400)
@given(st.one_of(TEXT, HUGE_TEXT, st.from_regex(RUNC_ID, fullmatch=True), st.none(), st.integers()))
def test_container_ids(cid):
    expected = (isinstance(cid, str) and RUNC_ID.fullmatch(cid) is not None
                and cid not in (".", "..") and len(cid) <= 1024)
    try:
        assert check_container_id(cid) == cid
        assert expected
    except UserError as error:
        assert not expected
        assert_one_line(error)
        assert len(str(error)) < 150
