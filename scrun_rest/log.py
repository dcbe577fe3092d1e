"""Logging as podman, docker and scrun(1) users expect it.

Levels are scrun's (quiet..debug5). Destinations: the `--log` file in text or
JSON (docker reads line-delimited JSON and takes the last `level:error`
line; podman reads the error's `msg`), stderr only when asked, syslog when
asked. The anchor never writes logs into the container's stderr unless
SCRUN_STDERR_DEBUG asks for it.
"""
import datetime
import json
import logging
import os

from scrun_rest.errors import UserError

LEVELS = {
    "quiet": logging.CRITICAL + 10, "fatal": logging.CRITICAL, "error": logging.ERROR,
    "info": logging.INFO, "verbose": logging.INFO - 1, "debug": logging.DEBUG,
    "debug2": logging.DEBUG - 1, "debug3": logging.DEBUG - 2,
    "debug4": logging.DEBUG - 3, "debug5": logging.DEBUG - 4,
}
ORDER = tuple(LEVELS)  # quietest first
DEFAULT_LEVEL = "error"
# Settings read from create's environment and config.json's process.env.
VARIABLES = ("SCRUN_DEBUG", "SCRUN_STDERR_DEBUG", "SCRUN_SYSLOG_DEBUG", "SCRUN_FILE_DEBUG",
             "SCRUN_LOG_FILE")
for _name, _number in LEVELS.items():
    if logging.getLevelName(_number).startswith("Level "):
        logging.addLevelName(_number, _name.upper())


def parse_level(value, variable):
    level = LEVELS.get(str(value).strip().lower())
    if level is None:
        raise UserError("%s=%s is not one of %s" % (variable, value, "|".join(LEVELS)))
    return level


class JsonFormatter(logging.Formatter):
    def format(self, record):
        return json.dumps({
            "level": _json_level(record.levelno),
            "msg": record.getMessage() + (
                "\n" + self.formatException(record.exc_info) if record.exc_info else ""),
            "time": rfc3339(record.created),
        })


def _json_level(number):
    if number >= logging.ERROR:
        return "error"
    if number >= logging.WARNING:
        return "warning"
    if number >= logging.INFO:
        return "info"
    return "debug"


def rfc3339(timestamp):
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


class TextFormatter(logging.Formatter):
    def __init__(self):
        super().__init__("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")


class LogSettings:
    """Where and how much to log, from flags and SCRUN_*_DEBUG variables."""

    def __init__(self, log_file=None, log_format="text", verbosity=0, debug=False,
                 variables=None):
        variables = variables or {}
        if log_format not in ("text", "json"):
            raise UserError("--log-format=%s is not json or text" % log_format)
        if not log_file and variables.get("SCRUN_LOG_FILE"):
            log_file = variables["SCRUN_LOG_FILE"]
            if not os.path.isabs(log_file):
                raise UserError("SCRUN_LOG_FILE=%s is not an absolute path" % log_file[:80])
        self.log_file = log_file
        self.log_format = log_format
        # Each -v is one level more than scrun's default (error): info, verbose, debug...
        index = ORDER.index(DEFAULT_LEVEL) + verbosity
        if debug:
            index = max(index, ORDER.index("debug"))
        base = LEVELS[ORDER[min(index, len(ORDER) - 1)]]
        if "SCRUN_DEBUG" in variables:
            base = parse_level(variables["SCRUN_DEBUG"], "SCRUN_DEBUG")
        self.file_level = base
        self.stderr_level = None
        self.syslog_level = None
        if "SCRUN_FILE_DEBUG" in variables:
            self.file_level = parse_level(variables["SCRUN_FILE_DEBUG"], "SCRUN_FILE_DEBUG")
        if "SCRUN_STDERR_DEBUG" in variables:
            self.stderr_level = parse_level(variables["SCRUN_STDERR_DEBUG"],
                                            "SCRUN_STDERR_DEBUG")
        if "SCRUN_SYSLOG_DEBUG" in variables:
            self.syslog_level = parse_level(variables["SCRUN_SYSLOG_DEBUG"],
                                            "SCRUN_SYSLOG_DEBUG")

    def to_dict(self):
        return dict(self.__dict__)

    def effective_file(self, default_file=None):
        return self.log_file or default_file

    def apply(self, default_file=None, stderr_fd=2):
        """Install handlers on the scrun_rest logger (and Python's warnings).

        Our stderr is usually the container's: nothing may reach it through
        logging's last resort or a printed warning unless SCRUN_STDERR_DEBUG
        asks for it.
        """
        logger = logging.getLogger("scrun_rest")
        warnings = logging.getLogger("py.warnings")
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            handler.close()
        for handler in list(warnings.handlers):
            warnings.removeHandler(handler)
        logger.propagate = False
        warnings.propagate = False
        logging.captureWarnings(True)
        levels = [self.file_level]
        path = self.log_file or default_file
        formatter = JsonFormatter() if self.log_format == "json" else TextFormatter()
        if path and self.file_level < LEVELS["quiet"]:
            handler = _private_file_handler(path)
            handler.setFormatter(formatter)
            handler.setLevel(self.file_level)
            logger.addHandler(handler)
        if self.stderr_level is not None and self.stderr_level < LEVELS["quiet"]:
            handler = logging.StreamHandler(os.fdopen(os.dup(stderr_fd), "w", buffering=1))
            handler.setFormatter(TextFormatter())
            handler.setLevel(self.stderr_level)
            logger.addHandler(handler)
            levels.append(self.stderr_level)
        if self.syslog_level is not None and self.syslog_level < LEVELS["quiet"]:
            from logging.handlers import SysLogHandler
            try:
                handler = SysLogHandler(address="/dev/log")
                handler.setFormatter(logging.Formatter("scrun-rest[%(process)d]: %(message)s"))
                handler.setLevel(self.syslog_level)
                logger.addHandler(handler)
                levels.append(self.syslog_level)
            except OSError:
                pass
        if not logger.handlers:
            logger.addHandler(logging.NullHandler())
        for handler in logger.handlers:
            warnings.addHandler(handler)
        logger.setLevel(min(levels))
        return logger


def _private_file_handler(path):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    return logging.StreamHandler(os.fdopen(fd, "a", buffering=1))


def record_error(settings, text):
    """The failure line podman and docker read back from --log.

    podman parses the whole file as one JSON object, docker takes its last
    `level: error` line: when the anchor already logged this very error as
    the last line, it is not written twice.
    """
    if not settings or not settings.log_file:
        return
    if _last_error(settings.log_file, settings.log_format) == " ".join(text.split()):
        return
    try:
        fd = os.open(settings.log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a") as handle:
            if settings.log_format == "json":
                handle.write(json.dumps({"level": "error", "msg": text,
                                         "time": rfc3339(_now())}) + "\n")
            else:
                handle.write("%s error: %s\n" % (rfc3339(_now()), text))
    except OSError:
        pass


def _last_error(path, log_format):
    """The message of the file's last line if it is an error, spaces squeezed."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 65536))
            lines = handle.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    last = lines[-1] if lines else ""
    if log_format == "json":
        try:
            entry = json.loads(last)
        except ValueError:
            return None
        if not isinstance(entry, dict) or entry.get("level") != "error":
            return None
        return " ".join(str(entry.get("msg", "")).split())
    if " ERROR " in last and ": " in last:
        return " ".join(last.split(": ", 1)[1].split())
    if " error: " in last:
        return " ".join(last.split(" error: ", 1)[1].split())
    return None


def _now():
    import time
    return time.time()
