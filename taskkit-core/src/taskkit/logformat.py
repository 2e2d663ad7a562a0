"""Log formats for taskkit processes: ``text`` (the default) and ``json`` (one object a line).

``taskkit worker --log-format json`` (any command takes the option) writes each record to
stderr as one JSON object on one line, for log shippers that parse fields rather than text::

    {"time": "2026-05-01T09:30:00.125+00:00", "level": "WARNING", "logger": "taskkit.worker",
     "message": "task 5f3c... (mail/send, attempt 1) failed (KeyError: 'to'); retrying in 5.0s",
     "process": 4242, "task_id": "5f3c...", "task_group": "mail", "task_name": "send",
     "task_attempt": 1, "task_duration": 0.0031}

(shown wrapped here; each object is one line). The fields:

* ``time`` (ISO 8601, UTC, milliseconds), ``level``, ``logger``, ``message``, ``process``
  (the pid: tells worker processes apart);
* every ``extra`` field of the record, among them the task fields the worker sets on each
  task's records (:data:`TASK_FIELDS`); a value JSON cannot hold is written as its ``str``
  (a circular container as its ``repr``); an extra that has the name of one of the fields
  above is left out;
* ``exception``: the formatted traceback, when the record has one; ``stack`` for
  ``stack_info``.

In ``json`` mode, what Python would print to stderr on its own also becomes a record:
warnings (``logging.captureWarnings``), an uncaught exception in a thread or in the main
thread, and an "exception ignored" report; so every line of stderr parses.

Worker processes log the same way: a forked one inherits the handler, and one started with
``spawn`` or ``forkserver`` (a fresh interpreter) applies the choice that
:func:`configure_logging` recorded in its environment (:func:`apply_inherited_logging`, called
as the worker process starts).

Applications that set up logging themselves can use :class:`JsonFormatter` on their own
handlers.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from datetime import datetime, timezone
from types import TracebackType
from typing import IO, Any, Final

from .errors import ConfigurationError

__all__ = [
    "LOG_FORMATS",
    "TASK_FIELDS",
    "TEXT_FORMAT",
    "JsonFormatter",
    "apply_inherited_logging",
    "configure_logging",
]

#: The formats :func:`configure_logging` and ``--log-format`` accept.
LOG_FORMATS: Final = ("text", "json")
#: The line format of ``text``.
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: The ``extra`` fields of a task's records (see ``task_log_extra`` in the worker).
TASK_FIELDS: Final = ("task_id", "task_group", "task_name", "task_attempt", "task_duration")

#: Where :func:`configure_logging` leaves its choice for worker processes that start as a
#: fresh interpreter (``"json 20"``: format and level number). How the choice travels, not a
#: setting of its own.
ENVIRONMENT_KEY: Final = "_TASKKIT_LOGGING"

# The attributes every LogRecord has (and the two that formatting adds): anything else on a
# record came from ``extra``.
_RECORD_ATTRIBUTES: Final = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None))
) | {"message", "asctime"}

log = logging.getLogger("taskkit")


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON (the fields are listed in the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        extras = {
            key: value
            for key, value in vars(record).items()
            if key not in _RECORD_ATTRIBUTES and key not in entry and not key.startswith("_")
        }
        entry.update(extras)
        if record.exc_info and record.exc_info[0] is not None:
            # Cached on the record, as logging.Formatter does: other handlers reuse it.
            if not record.exc_text:
                record.exc_text = self.formatException(record.exc_info)
            entry["exception"] = record.exc_text
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        try:
            return json.dumps(entry, default=str)
        except ValueError:
            # A circular container in an extra: that one is written as its repr.
            entry.update({key: _encodable(value) for key, value in extras.items()})
            return json.dumps(entry, default=str)


def _encodable(value: object) -> object:
    try:
        json.dumps(value, default=str)
    except ValueError:
        return repr(value)
    return value


def configure_logging(
    log_format: str = "text",
    level: int | str = "INFO",
    *,
    stream: IO[str] | None = None,
    force: bool = False,
) -> None:
    """Log to ``stream`` (default: stderr) in ``log_format`` from ``level`` on, on the root
    logger, as :func:`logging.basicConfig` does: nothing changes when the root logger already
    has handlers, unless ``force`` (then they are removed first).

    The choice is also left in this process's environment, so worker processes started with
    ``spawn`` or ``forkserver`` apply it (:func:`apply_inherited_logging`).

    :param log_format: ``"text"`` or ``"json"`` (:data:`LOG_FORMATS`).
    :param level: a level name (``"INFO"``) or number.
    :param stream: where lines go.
    :param force: replace the root logger's handlers.
    :raises ConfigurationError: an unknown format or level; nothing is changed then.
    """
    if log_format not in LOG_FORMATS:
        raise ConfigurationError(
            f"log format must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}"
        )
    levelno = _level_number(level)
    root = logging.getLogger()
    if root.handlers and not force:
        return
    for existing in list(root.handlers):
        root.removeHandler(existing)
        existing.close()
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    root.addHandler(handler)
    root.setLevel(levelno)
    _route_stray_output(log_format == "json")
    os.environ[ENVIRONMENT_KEY] = f"{log_format} {levelno}"


def apply_inherited_logging() -> None:
    """Apply the logging choice a parent process made with :func:`configure_logging`.

    Called as a worker process starts. A forked process already has the parent's handlers
    (nothing changes then); a fresh interpreter (``spawn``, ``forkserver``) has none and gets
    the same format and level. Without a recorded choice (the parent set up logging some
    other way), nothing happens.
    """
    recorded = os.environ.get(ENVIRONMENT_KEY, "").split()
    if len(recorded) != 2:
        return
    log_format, level = recorded
    try:
        configure_logging(log_format, int(level) if level.isdigit() else level)
    except ConfigurationError:
        log.debug("ignoring the unusable %s=%r", ENVIRONMENT_KEY, " ".join(recorded))


def _level_number(level: int | str) -> int:
    if isinstance(level, bool) or not isinstance(level, (int, str)):
        raise ConfigurationError(f"log level must be a name or a number, not {level!r}")
    if isinstance(level, int):
        return level
    number = logging.getLevelName(level.upper())
    if not isinstance(number, int):
        raise ConfigurationError(f"unknown log level {level!r}")
    return number


# --------------------------------------------------------------------------- stray output


def _uncaught(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    log.critical("uncaught exception", exc_info=(exc_type, exc, tb))


def _uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return  # as the default hook: a thread that calls sys.exit() is no error
    name = args.thread.name if args.thread is not None else "?"
    exc_info = (args.exc_type, args.exc_value, args.exc_traceback)
    log.error("uncaught exception in thread %s", name, exc_info=exc_info)  # type: ignore[arg-type]


def _unraisable(unraisable: Any) -> None:
    exc_info = (unraisable.exc_type, unraisable.exc_value, unraisable.exc_traceback)
    what = unraisable.err_msg or "Exception ignored in"
    log.warning("%s: %r", what, unraisable.object, exc_info=exc_info)


def _route_stray_output(on: bool) -> None:
    """Send what Python prints to stderr by itself through logging (``json``), or stop."""
    if on:
        logging.captureWarnings(True)
        sys.excepthook = _uncaught
        threading.excepthook = _uncaught_in_thread
        sys.unraisablehook = _unraisable
        return
    # Back to Python's defaults, but only where ours were installed.
    if sys.excepthook is _uncaught:
        logging.captureWarnings(False)
        sys.excepthook = sys.__excepthook__
    if threading.excepthook is _uncaught_in_thread:
        threading.excepthook = threading.__excepthook__
    if sys.unraisablehook is _unraisable:
        sys.unraisablehook = sys.__unraisablehook__
