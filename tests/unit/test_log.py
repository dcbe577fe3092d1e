"""Log levels, formats and the error line podman and docker read back."""
import datetime
import json
import logging

import pytest

from scrun_rest import log
from scrun_rest.errors import UserError


@pytest.mark.parametrize("verbosity,debug,expected", [
    (0, False, "error"), (1, False, "info"), (2, False, "verbose"), (3, False, "debug"),
    (9, False, "debug5"), (20, False, "debug5"), (0, True, "debug"), (4, True, "debug2"),
])
def test_flags_raise_the_file_level(verbosity, debug, expected):
    settings = log.LogSettings(verbosity=verbosity, debug=debug)
    assert settings.file_level == log.LEVELS[expected]
    assert settings.stderr_level is None and settings.syslog_level is None


def test_variables_set_each_destination():
    settings = log.LogSettings(verbosity=3, variables={
        "SCRUN_DEBUG": "quiet", "SCRUN_STDERR_DEBUG": "debug2", "SCRUN_SYSLOG_DEBUG": "Info"})
    assert settings.file_level == log.LEVELS["quiet"]
    assert settings.stderr_level == log.LEVELS["debug2"]
    assert settings.syslog_level == log.LEVELS["info"]
    assert log.LogSettings(variables={"SCRUN_DEBUG": "info", "SCRUN_FILE_DEBUG": "debug5"}) \
        .file_level == log.LEVELS["debug5"]


@pytest.mark.parametrize("name", ["SCRUN_DEBUG", "SCRUN_STDERR_DEBUG", "SCRUN_SYSLOG_DEBUG",
                                  "SCRUN_FILE_DEBUG"])
def test_an_invalid_level_names_the_variable(name):
    with pytest.raises(UserError, match=name + "=loud"):
        log.LogSettings(variables={name: "loud"})


def test_log_file_from_the_variable_unless_given_by_flag():
    assert log.LogSettings(variables={"SCRUN_LOG_FILE": "/x/a.log"}).log_file == "/x/a.log"
    assert log.LogSettings("/y/b.log", variables={"SCRUN_LOG_FILE": "/x/a.log"}).log_file \
        == "/y/b.log"
    with pytest.raises(UserError, match="SCRUN_LOG_FILE"):
        log.LogSettings(variables={"SCRUN_LOG_FILE": "rel.log"})
    with pytest.raises(UserError, match="--log-format"):
        log.LogSettings(log_format="xml")


def _record(level, message):
    return logging.LogRecord("scrun_rest.x", level, __file__, 1, message, (), None)


def test_json_lines_have_level_msg_and_rfc3339_time():
    for level, word in ((logging.ERROR, "error"), (logging.WARNING, "warning"),
                        (logging.INFO, "info"), (log.LEVELS["verbose"], "debug"),
                        (log.LEVELS["debug5"], "debug")):
        record = _record(level, "a\nb")
        line = log.JsonFormatter().format(record)
        entry = json.loads(line)
        assert "\n" not in line
        assert entry["level"] == word and entry["msg"] == "a\nb"
        # What Go's time.Time (docker's shim) parses: RFC 3339 with a zone.
        parsed = datetime.datetime.strptime(entry["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
        moment = parsed.replace(tzinfo=datetime.timezone.utc).timestamp()
        assert abs(moment - record.created) < 0.001


def test_apply_writes_the_file_and_nothing_to_stderr(tmp_path, capfd):
    path = tmp_path / "anchor.log"
    settings = log.LogSettings(log_format="json", variables={"SCRUN_DEBUG": "debug",
                                                             "SCRUN_LOG_FILE": str(path)})
    logger = settings.apply()
    try:
        logging.getLogger("scrun_rest.test").debug("to the file")
        logging.getLogger("py.warnings").warning("a warning")
        for handler in logger.handlers:
            handler.flush()
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        assert [entry["msg"] for entry in lines] == ["to the file", "a warning"]
        assert capfd.readouterr().err == ""
        assert oct(path.stat().st_mode & 0o777) == "0o600"
    finally:
        log.LogSettings().apply()


def test_nothing_configured_still_keeps_stderr_clean(capfd):
    log.LogSettings(variables={"SCRUN_DEBUG": "quiet"}).apply()
    logging.getLogger("scrun_rest.test").error("nowhere")
    assert capfd.readouterr().err == ""


def test_stderr_only_when_asked(tmp_path, capfd):
    log.LogSettings(variables={"SCRUN_STDERR_DEBUG": "info"}).apply()
    try:
        logging.getLogger("scrun_rest.test").info("asked for")
        assert "asked for" in capfd.readouterr().err
    finally:
        log.LogSettings().apply()


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_the_error_is_recorded_once(tmp_path, log_format):
    """The anchor logged it; create must not repeat it (podman wants one object)."""
    path = tmp_path / "log"
    settings = log.LogSettings(str(path), log_format)
    logger = settings.apply()
    try:
        # JSON keeps a message with newlines on one line; text does not.
        message = "Slurm said\nno" if log_format == "json" else "Slurm said  no"
        logging.getLogger("scrun_rest.anchor").error(message)
        for handler in logger.handlers:
            handler.flush()
        log.record_error(settings, "Slurm said no")
        lines = path.read_text().splitlines()
        assert len(lines) == 1
        if log_format == "json":
            assert json.loads(path.read_text())["msg"] == "Slurm said\nno"
        log.record_error(settings, "something else")
        assert len(path.read_text().splitlines()) == 2
    finally:
        log.LogSettings().apply()


def test_record_error_alone_writes_one_json_object(tmp_path):
    path = tmp_path / "log"
    log.record_error(log.LogSettings(str(path), "json"), "bad partition")
    entry = json.loads(path.read_text())
    assert entry["level"] == "error" and entry["msg"] == "bad partition"
