"""scrun-rest.conf: parsing, defaults, lookup order and environment overrides."""
import os

import pytest

from scrun_rest.config import SYSTEM_CONF, Config, config_path, parse_conf_text
from scrun_rest.errors import UserError


def test_keys_are_case_insensitive_and_canonical():
    values = parse_conf_text("resturl=http://a:1\nRESTTIMEOUT=5\nJwtFile = /x\n")
    assert values == {"RestUrl": "http://a:1", "RestTimeout": "5", "JwtFile": "/x"}
    config = Config(values, environ={})
    assert config.get("resturl") == config.get("RestUrl") == "http://a:1"
    assert config.get_int("RESTtimeout") == 5


def test_comments_blank_lines_and_inline_comments():
    values = parse_conf_text("# a comment\n\n   # indented\nRestUrl=http://a:1 # trailing\n")
    assert values == {"RestUrl": "http://a:1"}


@pytest.mark.parametrize("line,value", [
    ('JwtCommand="scontrol token lifespan=600"', "scontrol token lifespan=600"),
    ("JwtCommand='echo a # not a comment'", "echo a # not a comment"),
    ('JwtCommand="a b" # comment after quotes', "a b"),
    ('SrunArgs="--x \\"y\\""', '--x "y"'),
])
def test_quoted_values(line, value):
    key = line.split("=", 1)[0]
    assert parse_conf_text(line)[key] == value


@pytest.mark.parametrize("text,message", [
    ("RestUrlx=1", "unknown setting 'RestUrlx'"),
    ("just words", "expected Key=Value"),
    ('JwtCommand="unterminated', "No closing quotation"),
    ('JwtCommand="a" "b"', "text after the quoted value"),
])
def test_errors_name_file_and_line(text, message):
    with pytest.raises(UserError) as info:
        parse_conf_text("RestUrl=x\n" + text, "/etc/x.conf")
    assert "/etc/x.conf:2:" in str(info.value) and message in str(info.value)


def test_defaults_and_empty_values():
    config = Config(parse_conf_text("JwtFile=\n"), environ={})
    assert config.get("RestTimeout") == "30"
    assert config.get("JwtFile") is None
    assert config.get("JwtFile", "d") == "d"
    assert config.get_int("JwtLifespan") == 86400


def test_get_int_and_bool_errors():
    config = Config({"RestTimeout": "soon", "TunnelTls": "maybe"}, environ={})
    with pytest.raises(UserError, match="RestTimeout=soon is not a whole number"):
        config.get_int("RestTimeout")
    with pytest.raises(UserError, match="TunnelTls=maybe"):
        config.get_bool("TunnelTls")
    with pytest.raises(UserError, match="below 60"):
        Config({"RestTimeout": "5"}, environ={}).get_int("RestTimeout", minimum=60)


def test_require_names_the_file():
    with pytest.raises(UserError, match="RestUrl is not set in /my.conf"):
        Config({}, path="/my.conf", environ={}).require("RestUrl")


def test_environment_overrides_the_file():
    config = Config({"RestUrl": "http://file:1"}, environ={"SCRUN_REST_URL": "http://env:2"})
    assert config.get("RestUrl") == "http://env:2"
    assert Config({"RestUrl": "http://file:1"}, environ={"SCRUN_REST_URL": ""}).get(
        "RestUrl") == "http://file:1"


def _write(path, text="RestUrl=http://x:1\n"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)
    return path


def test_lookup_order(tmp_path):
    home = tmp_path / "home"
    xdg = tmp_path / "xdg"
    env = {"HOME": str(home), "XDG_CONFIG_HOME": str(xdg)}
    assert config_path(env) == SYSTEM_CONF
    home_conf = _write(str(home / ".config/scrun-rest/scrun-rest.conf"))
    assert config_path(env) == home_conf  # XDG dir has no file: fall through to ~/.config
    xdg_conf = _write(str(xdg / "scrun-rest/scrun-rest.conf"))
    assert config_path(env) == xdg_conf
    explicit = str(tmp_path / "explicit.conf")
    assert config_path(dict(env, SCRUN_REST_CONF=explicit)) == explicit
    assert config_path({"HOME": str(home)}) == home_conf


def test_load_reads_the_found_file(tmp_path):
    path = _write(str(tmp_path / "c.conf"), "RestUrl=http://loaded:1\nRestTimeout=7\n")
    config = Config.load(environ={"SCRUN_REST_CONF": path})
    assert config.path == path
    assert config.get("RestUrl") == "http://loaded:1" and config.get_int("RestTimeout") == 7


def test_missing_explicit_file_is_an_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        Config.load(environ={"SCRUN_REST_CONF": str(tmp_path / "none.conf")})


def test_unreadable_file_is_a_user_error(tmp_path):
    path = tmp_path / "bin.conf"
    path.write_bytes(b"\xff\xfe\x00RestUrl")
    with pytest.raises(UserError, match="cannot read config file"):
        Config.load(str(path), environ={})


def test_the_file_may_set_scrun_input_variables():
    """The way for podman users to set those config.json may not."""
    config = Config(parse_conf_text("scrun_task_prolog=/opt/p\nSCRUN_DEBUG=debug\nJwtFile=/t\n"))
    assert config.input_variables() == {"SCRUN_TASK_PROLOG": "/opt/p", "SCRUN_DEBUG": "debug"}
    with pytest.raises(UserError, match="unknown setting 'SCRUN_NO_SUCH'"):
        parse_conf_text("SCRUN_NO_SUCH=1\n")
