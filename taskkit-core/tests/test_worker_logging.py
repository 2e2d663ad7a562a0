"""Workers log every task outcome, and store tracebacks of the handler's frames only (issue 11,
defects 3 and 8).

Before: a task retried six times logged nothing at all, and a stored traceback opened with
about eight frames of the worker and pluggy before the handler's first line.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
from taskkit import Failed, Kit, MemoryBackend, Task, TaskHandler

from .conftest import wait_until

EXTRA_KEYS = ("task_id", "task_group", "task_name", "task_attempt", "task_duration")


def _nested_lookup(data: dict[str, Any]) -> Any:
    return data["missing"]


class OutcomeHandler(TaskHandler):
    """``ok`` succeeds; ``flaky`` fails twice with KeyError, then succeeds; ``broken`` fails
    for good inside a nested function."""

    def handle(self, task: Task) -> Any:
        if task.name == "ok":
            return "fine"
        if task.name == "flaky":
            if task.retry_count < 2:
                raise KeyError("not yet")
            return "third time"
        if task.name == "broken":
            return _nested_lookup({})
        return None

    def get_retry_interval(self, task: Task, exception: Exception) -> float | None:
        return 0.01 if task.name == "flaky" else None


@pytest.fixture
def worker_kit() -> Iterator[Kit]:
    kit = Kit(MemoryBackend(), OutcomeHandler(), lease_seconds=2.0, control_interval=0.05)
    handles = kit.start_processes(1, {"g": 2})
    yield kit
    for handle in handles:
        handle.kill()
        handle.join(10)


def _task_records(caplog: pytest.LogCaptureFixture, task_id: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "task_id", None) == task_id]


def test_each_outcome_is_logged_with_the_task_fields(
    worker_kit: Kit, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="taskkit.worker")
    ok = worker_kit.initiate_task("g", "ok", None)
    flaky = worker_kit.initiate_task("g", "flaky", None)
    broken = worker_kit.initiate_task("g", "broken", None)
    assert ok.get(timeout=5) == "fine"
    assert flaky.get(timeout=5) == "third time"
    with pytest.raises(Failed):
        broken.get(timeout=5)
    # The outcome is logged as it is decided; the result may be read a moment before.
    wait_until(lambda: len(_task_records(caplog, broken.task_id)) == 1)

    (succeeded,) = _task_records(caplog, ok.task_id)
    assert succeeded.levelno == logging.INFO and "succeeded" in succeeded.getMessage()
    for key in EXTRA_KEYS:
        assert hasattr(succeeded, key), key
    assert (succeeded.task_group, succeeded.task_name, succeeded.task_attempt) == ("g", "ok", 1)  # type: ignore[attr-defined]
    assert isinstance(succeeded.task_duration, float) and succeeded.task_duration >= 0  # type: ignore[attr-defined]

    flaky_records = _task_records(caplog, flaky.task_id)
    assert [r.levelno for r in flaky_records] == [logging.WARNING, logging.WARNING, logging.INFO]
    assert [r.task_attempt for r in flaky_records] == [1, 2, 3]  # type: ignore[attr-defined]
    retried = flaky_records[0]
    message = retried.getMessage()
    # The delay and a one-line exception; no traceback for a retry.
    assert "retrying in 0.0s" in message and "KeyError: 'not yet'" in message, message
    assert "\n" not in message and retried.exc_info is None

    (failed,) = _task_records(caplog, broken.task_id)
    assert failed.levelno == logging.ERROR and failed.exc_info is not None
    logged = "".join(traceback.format_exception(*failed.exc_info))
    assert "_nested_lookup" in logged and "KeyError: 'missing'" in logged


def test_a_dead_letter_is_logged_as_an_error_with_the_task_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = MemoryBackend()
    kit = Kit(backend, OutcomeHandler(), lease_seconds=2.0, max_deliveries=1)
    result = kit.initiate_task("g", "ok", None)
    # One delivery whose worker vanished (its lease expires): the next claim dead-letters it.
    backend.claim("g", "gone", 1, 0.01, 1)
    caplog.set_level(logging.INFO, logger="taskkit.worker")
    handles = kit.start_processes(1, {"g": 1})
    try:
        wait_until(lambda: _task_records(caplog, result.task_id))
    finally:
        for handle in handles:
            handle.kill()
            handle.join(10)
    (record,) = _task_records(caplog, result.task_id)
    assert record.levelno == logging.ERROR and "dead letter" in record.getMessage()
    assert record.task_name == "ok"  # type: ignore[attr-defined]


def test_stored_traceback_starts_at_the_handler(worker_kit: Kit) -> None:
    result = worker_kit.initiate_task("g", "broken", None)
    with pytest.raises(Failed) as info:
        result.get(timeout=5)
    stored = info.value.message
    assert stored.startswith("Traceback (most recent call last):"), stored
    frames = [line for line in stored.splitlines() if line.lstrip().startswith("File ")]
    assert frames, stored
    assert "in handle" in frames[0], stored  # the handler's frame comes first
    assert any("in _nested_lookup" in frame for frame in frames), stored
    assert not any("pluggy" in frame for frame in frames), stored
    assert not any("taskkit/_worker.py" in frame for frame in frames), stored
    assert not any("taskkit/_builtin.py" in frame for frame in frames), stored
    assert stored.rstrip().endswith("KeyError: 'missing'"), stored
