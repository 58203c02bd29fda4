"""``--log-format text|json``: how a long-running command writes its log lines.

``text`` (the default) is what fleetlearn always wrote: Rich progress for people,
plain log lines. ``json`` is for a log collector (Docker, Kubernetes, Loki...): one
JSON object a line on stderr, nothing else there::

    {"time": "2026-12-02T03:09:03.412+00:00", "level": "INFO",
     "logger": "fleetlearn.training.progress", "message": "...", "run_id": "3f2a9c01b7de"}

Every record goes through one stderr handler on the root logger: fleetlearn's,
uvicorn's (``uvicorn.error``, ``uvicorn.access``, by :func:`uvicorn_log_config`),
Ray's (:func:`route_ray_logs`) and Python warnings. The JSON is written by
python-json-logger's orjson formatter (orjson is already the API's encoder); the
context ids come from :mod:`fleetlearn.logs._context`.
"""

from __future__ import annotations

import io
import logging
import logging.config
import os
import re
import sys
import threading
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.orjson import OrjsonFormatter

from fleetlearn.errors import ConfigError
from fleetlearn.logs._context import CONTEXT_FIELDS

__all__ = ["LOG_FORMATS", "LOG_FORMAT_ENV", "JsonFormatter", "active_log_format",
           "configure_logging", "logging_config", "resolve_log_format", "route_ray_logs",
           "stdout_as_logs", "uvicorn_log_config"]

LOG_FORMATS = ("text", "json")
#: Read when ``--log-format`` is not given (the compose stack sets it to json).
LOG_FORMAT_ENV = "FLEETLEARN_LOG_FORMAT"
#: The text format of ``fleetlearn serve``'s log lines (as before json existed).
TEXT_FORMAT = "%(asctime)s %(levelname)s %(message)s"
_LEVELS = ("debug", "info", "warning", "error", "critical")

_active = {"format": "text"}


def resolve_log_format(flag: str | None) -> str:
    """The log format to use: ``flag`` when given, else ``$FLEETLEARN_LOG_FORMAT``,
    else ``text``.

    Raises
    ------
    ConfigError
        A value that is neither ``text`` nor ``json``, naming where it came from.

    Examples
    --------
    >>> resolve_log_format("JSON")
    'json'
    """
    if flag is not None:
        where, value = "--log-format option", flag
    else:
        where, value = f"{LOG_FORMAT_ENV} variable", os.environ.get(LOG_FORMAT_ENV, "")
        if not value.strip():
            return "text"
    if value.strip().lower() not in LOG_FORMATS:
        raise ConfigError(f"The {where} must be one of {', '.join(LOG_FORMATS)}. "
                          f"Got {value!r} instead.")
    return value.strip().lower()


def active_log_format() -> str:
    """The format :func:`configure_logging` set in this process (``text`` before)."""
    return _active["format"]


class JsonFormatter(OrjsonFormatter):
    """python-json-logger's orjson formatter with fleetlearn's field names and order:
    ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message``, the context ids, then
    any ``extra=`` fields; a traceback is one string field, ``exc_info``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            "{levelname}{name}{message}", style="{",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
            # uvicorn's coloured copy of its message: the plain one is enough here.
            reserved_attrs=[*RESERVED_ATTRS, "color_message"],
            **kwargs)

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        first = ("time", "level", "logger", "message", *CONTEXT_FIELDS)
        ordered = {key: log_data[key] for key in first if key in log_data}
        ordered.update((k, v) for k, v in log_data.items() if k not in ordered)
        return ordered


def logging_config(fmt: str, level: str = "info", *, uvicorn: bool = False,
                   text_format: str = TEXT_FORMAT) -> dict[str, Any]:
    """The :func:`logging.config.dictConfig` of a format: one stderr handler on the root.

    ``uvicorn=True`` adds uvicorn's loggers (``uvicorn``, ``uvicorn.error``,
    ``uvicorn.access``), sent to the same handler. Existing loggers stay enabled.
    """
    if level.lower() not in _LEVELS:
        raise ConfigError(f"The log level must be one of {', '.join(_LEVELS)}. "
                          f"Got {level!r} instead.")
    formatter: dict[str, Any] = ({"()": JsonFormatter} if fmt == "json"
                                 else {"format": text_format})
    config: dict[str, Any] = {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "context": {"()": "fleetlearn.logs._context.ContextFilter"},
            "access": {"()": "fleetlearn.logs._context.AccessFields"},
        },
        "formatters": {"fleetlearn": formatter},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                                "formatter": "fleetlearn", "filters": ["context", "access"]}},
        "root": {"handlers": ["stderr"], "level": level.upper()},
    }
    if uvicorn:
        config["loggers"] = {
            name: {"handlers": [], "propagate": True, "level": level.upper()}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")}
    return config


def uvicorn_log_config(fmt: str, level: str = "info") -> dict[str, Any] | None:
    """``log_config`` for :func:`uvicorn.run`: None (uvicorn's own) in text mode; in json
    mode the same handler as fleetlearn's, so uvicorn's lines are JSON too."""
    if fmt != "json":
        return None
    return logging_config(fmt, level, uvicorn=True)


def configure_logging(fmt: str, level: str = "info", *, text: bool = True) -> None:
    """Set this process's logging to ``fmt`` (``text`` or ``json``).

    In json mode every record, Python warnings included, goes to stderr as one JSON
    object a line. In text mode, ``text=False`` leaves logging as Python has it (what
    ``fleetlearn train`` always did); ``text=True`` writes ``TEXT_FORMAT`` lines.
    """
    _active["format"] = fmt
    # Its migrations' INFO lines say nothing a user acts on (serve always hid them).
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if fmt == "json":
        logging.config.dictConfig(logging_config(fmt, level))
        logging.captureWarnings(True)
        route_ray_logs()
        # An exception nobody caught: its traceback as one record, not as text lines.
        sys.excepthook = _log_uncaught
        threading.excepthook = _log_uncaught_in_thread
    elif text:
        logging.config.dictConfig(logging_config(fmt, level))


def _log_uncaught(kind: type[BaseException], value: BaseException, tb: Any) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, tb)
        return
    logging.getLogger("fleetlearn").critical("%s: %s", kind.__name__, value,
                                             exc_info=(kind, value, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    logging.getLogger("fleetlearn").critical(
        "%s in thread %s: %s", args.exc_type.__name__,
        args.thread.name if args.thread else "?", args.exc_value,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback))


_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class _LineLogger(io.TextIOBase):
    """A text stream whose every line becomes a log record (ANSI colours dropped)."""

    def __init__(self, logger: str) -> None:
        self.logger = logging.getLogger(logger)
        self.pending = ""
        self.lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self.lock:
            lines = (self.pending + text).split("\n")
            self.pending = lines.pop()
        for line in lines:
            plain = _ANSI_RE.sub("", line).rstrip()
            if plain:
                self.logger.info(plain)
        return len(text)

    def flush(self) -> None:
        with self.lock:
            line, self.pending = self.pending, ""
        if line.strip():
            self.logger.info(_ANSI_RE.sub("", line).rstrip())


def stdout_as_logs() -> None:
    """In json mode, anything printed to ``sys.stdout`` becomes a log record (logger
    ``stdout``): for commands whose stdout is no output of theirs (``serve``), where
    Ray prints notices of its own ("(raylet) Task ... failed"). A no-op in text mode."""
    if _active["format"] == "json" and not isinstance(sys.stdout, _LineLogger):
        sys.stdout = _LineLogger("stdout")


def route_ray_logs() -> None:
    """In json mode, Ray's loggers write through fleetlearn's handler.

    Ray gives its ``ray`` logger a handler of its own (plain text on stderr, not
    propagated) when it is imported, and Ray Serve may add one to ``ray.serve``;
    both are replaced by the root's JSON handler. Called again after ``ray.init`` and
    ``serve.start``, which may set them up anew. A no-op in text mode.
    """
    if _active["format"] != "json":
        return
    # Propagated to the root's handler rather than given it: ray.init sets the
    # formatter of every handler on 'ray' (setup_logger), which would clobber ours.
    for name in ("ray", "ray.serve"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True
