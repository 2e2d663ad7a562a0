"""Log formats (``taskkit.logformat``): the JSON formatter, ``configure_logging``, the choice a
fresh worker interpreter inherits, and ``taskkit worker --log-format json`` as a real process.

Worker processes started with fork and spawn on Redis and PostgreSQL:
``integration/test_observability.py``.
"""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from taskkit import ConfigurationError
from taskkit.logformat import (
    ENVIRONMENT_KEY,
    TASK_FIELDS,
    JsonFormatter,
    apply_inherited_logging,
    configure_logging,
)

from .conftest import wait_until


def _record(msg: str = "hello %s", *args: object, **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord(
        "app.part", logging.WARNING, __file__, 1, msg, args or ("you",), None
    )
    record.__dict__.update(extra)
    return record


def _json(record: logging.LogRecord) -> dict[str, Any]:
    line = JsonFormatter().format(record)
    assert "\n" not in line
    value: dict[str, Any] = json.loads(line)
    return value


# --------------------------------------------------------------------------- the formatter


def test_a_record_is_one_object_with_the_fixed_fields() -> None:
    entry = _json(_record())
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "app.part"
    assert entry["message"] == "hello you"
    assert entry["process"] == os.getpid()
    assert entry["time"].endswith("+00:00") and "T" in entry["time"]
    assert "exception" not in entry and "stack" not in entry


def test_extra_fields_are_kept_and_the_task_fields_among_them() -> None:
    task = dict(zip(TASK_FIELDS, ("t1", "mail", "send", 2, 0.25)))
    entry = _json(_record(**task, tenant="acme"))
    assert {key: entry[key] for key in TASK_FIELDS} == task
    assert entry["tenant"] == "acme"


def test_values_json_cannot_hold_are_written_as_text() -> None:
    loop: list[Any] = []
    loop.append(loop)
    entry = _json(_record(path=Path("/tmp/x"), loop=loop))
    assert entry["path"] == "/tmp/x"
    assert entry["loop"] == "[[...]]"


def test_an_extra_named_like_a_fixed_field_is_left_out() -> None:
    entry = _json(_record(level="mine", time="mine", logger="mine"))
    assert (entry["level"], entry["logger"]) == ("WARNING", "app.part")
    assert entry["time"] != "mine"


def test_a_multi_line_message_and_an_exception_stay_on_one_line() -> None:
    try:
        raise KeyError("missing")
    except KeyError:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "two\nlines", None, sys.exc_info()
        )
    record.stack_info = "Stack (most recent call last):\n  here"
    entry = _json(record)
    assert entry["message"] == "two\nlines"
    assert (
        entry["exception"].startswith("Traceback") and "KeyError: 'missing'" in entry["exception"]
    )
    assert "here" in entry["stack"]


# --------------------------------------------------------------------------- configure_logging


@pytest.fixture
def clean_logging() -> Iterator[None]:
    """Root handlers, level, Python's stderr hooks and the recorded choice, as they were."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    hooks = (sys.excepthook, threading.excepthook, sys.unraisablehook)
    recorded = os.environ.pop(ENVIRONMENT_KEY, None)
    yield
    configure_logging("text", force=True)  # undoes the json hooks
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    sys.excepthook, threading.excepthook, sys.unraisablehook = hooks
    os.environ.pop(ENVIRONMENT_KEY, None)
    if recorded is not None:
        os.environ[ENVIRONMENT_KEY] = recorded


def test_json_logging_writes_json_lines_from_the_level_on(clean_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("json", "WARNING", stream=stream, force=True)
    logging.getLogger("a").info("not shown")
    logging.getLogger("a").warning("shown", extra={"task_id": "t9"})
    (line,) = stream.getvalue().splitlines()
    assert json.loads(line)["task_id"] == "t9"
    assert os.environ[ENVIRONMENT_KEY] == f"json {logging.WARNING}"


def test_text_logging_is_the_familiar_line(clean_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("text", "INFO", stream=stream, force=True)
    logging.getLogger("a.b").info("plain")
    assert stream.getvalue().rstrip().endswith(" INFO a.b: plain")


def test_an_existing_setup_is_left_alone_unless_forced(clean_logging: None) -> None:
    root = logging.getLogger()
    mine = logging.NullHandler()
    root.addHandler(mine)
    configure_logging("json", stream=io.StringIO())
    assert mine in root.handlers
    assert ENVIRONMENT_KEY not in os.environ
    configure_logging("json", stream=io.StringIO(), force=True)
    assert root.handlers != [] and mine not in root.handlers


@pytest.mark.parametrize(
    ("log_format", "level"), [("xml", "INFO"), ("json", "LOUD"), ("json", 1.5)]
)
def test_bad_choices_are_refused_and_change_nothing(
    clean_logging: None, log_format: str, level: Any
) -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    with pytest.raises(ConfigurationError):
        configure_logging(log_format, level, force=True)
    assert root.handlers == before and ENVIRONMENT_KEY not in os.environ


def test_json_mode_routes_what_python_prints_by_itself(clean_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("json", stream=stream, force=True)

    def crash() -> None:
        raise RuntimeError("in a thread")

    thread = threading.Thread(target=crash, name="crasher")
    thread.start()
    thread.join()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("careful", UserWarning, stacklevel=1)
    sys.excepthook(ValueError, ValueError("uncaught"), None)
    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert entries[0]["message"] == "uncaught exception in thread crasher"
    assert "RuntimeError: in a thread" in entries[0]["exception"]
    assert "careful" in entries[1]["message"] and entries[1]["logger"] == "py.warnings"
    assert entries[2]["level"] == "CRITICAL" and "ValueError: uncaught" in entries[2]["exception"]
    # And back: text mode restores Python's own hooks.
    configure_logging("text", stream=io.StringIO(), force=True)
    assert threading.excepthook is threading.__excepthook__
    assert sys.excepthook is sys.__excepthook__


# --------------------------------------------------------------------------- fresh interpreters


def _fresh_interpreter(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != ENVIRONMENT_KEY}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


INHERIT = """
    import logging
    from taskkit.logformat import apply_inherited_logging
    apply_inherited_logging()
    logging.getLogger("child").info("from the child", extra={"task_id": "t1"})
"""


@pytest.mark.slow
def test_a_fresh_interpreter_applies_the_recorded_choice() -> None:
    done = _fresh_interpreter(INHERIT, **{ENVIRONMENT_KEY: f"json {logging.INFO}"})
    assert done.returncode == 0, done.stderr
    (line,) = done.stderr.splitlines()
    assert json.loads(line)["task_id"] == "t1"


@pytest.mark.slow
def test_without_a_recorded_choice_nothing_is_set_up() -> None:
    done = _fresh_interpreter(INHERIT)
    assert done.returncode == 0 and done.stderr == ""  # INFO is below the last resort's level


def test_in_a_configured_process_the_inherited_choice_changes_nothing(clean_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("text", stream=stream, force=True)
    os.environ[ENVIRONMENT_KEY] = f"json {logging.INFO}"
    apply_inherited_logging()  # a forked worker: it has the parent's handler already
    logging.getLogger("a").warning("still text")
    assert stream.getvalue().rstrip().endswith("WARNING a: still text")


# --------------------------------------------------------------------------- taskkit worker

APP = """
    import taskkit

    kit = taskkit.Kit(taskkit.MemoryBackend(), lease_seconds=2.0, control_interval=0.05)

    @kit.task(group="g", retries=0)
    def ok() -> str:
        return "fine"

    @kit.task(group="g", retries=0)
    def broken() -> None:
        raise KeyError("missing")

    # The memory backend lives in the worker's process: the app queues its own work.
    OK = ok.delay()
    BROKEN = broken.delay()
"""


@pytest.mark.slow
def test_taskkit_worker_log_format_json_writes_only_json_lines(tmp_path: Path) -> None:
    (tmp_path / "jsonapp.py").write_text(textwrap.dedent(APP))
    proc = subprocess.Popen(
        [sys.executable, "-m", "taskkit", "--app", "jsonapp:kit", "worker", "--log-format", "json"],
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != ENVIRONMENT_KEY},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    assert proc.stderr is not None
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)  # type: ignore[arg-type]
    reader.start()
    try:
        wait_until(lambda: any("(g/" in line and "failed" in line for line in lines), timeout=30)
        wait_until(lambda: any("succeeded" in line for line in lines), timeout=30)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        reader.join(10)
    entries = [json.loads(line) for line in lines]  # every line parses
    outcomes = {
        e["message"].split(" in ")[0].rsplit(" ", 1)[-1]: e for e in entries if "task_id" in e
    }
    failed, succeeded = outcomes["failed"], outcomes["succeeded"]
    assert (failed["level"], failed["logger"], failed["task_group"]) == (
        "ERROR",
        "taskkit.worker",
        "g",
    )
    assert failed["task_attempt"] == 1 and failed["task_duration"] >= 0
    assert "KeyError: 'missing'" in failed["exception"]
    assert succeeded["level"] == "INFO" and set(TASK_FIELDS) <= set(succeeded)
