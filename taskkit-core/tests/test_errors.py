"""Every exception taskkit raises on purpose: what it is, what it carries, what catches it."""

from __future__ import annotations

import pytest
from taskkit import (
    BackendUnavailable,
    Cancelled,
    ConfigurationError,
    DeadLettered,
    DiscardTask,
    Failed,
    InvalidTask,
    Kit,
    LeaseLost,
    MemoryBackend,
    NotFound,
    PayloadTooLarge,
    ResultGetPrevented,
    ResultGetTimedOut,
    ScheduleError,
    Task,
    TaskCancelled,
    TaskkitError,
    TaskTimeout,
    UnknownTask,
)

from .handlers import RecordingHandler

TASK = Task("t1", "mail", "send", b"null", 0.0, 0.0)


@pytest.mark.parametrize(
    ("error", "builtin"),
    [
        (ResultGetTimedOut, TimeoutError),
        (NotFound, LookupError),
        (InvalidTask, ValueError),
        (ConfigurationError, ValueError),
        (ScheduleError, ValueError),
        (BackendUnavailable, ConnectionError),
    ],
)
def test_each_error_is_also_the_builtin_callers_already_catch(
    error: type[Exception], builtin: type[Exception]
) -> None:
    assert issubclass(error, TaskkitError) and issubclass(error, builtin)


def test_the_errors_of_a_finished_task_are_failures() -> None:
    assert issubclass(Cancelled, Failed) and issubclass(DeadLettered, Failed)
    assert issubclass(PayloadTooLarge, InvalidTask)
    assert issubclass(LeaseLost, TaskkitError) and issubclass(ResultGetPrevented, TaskkitError)


def test_the_handlers_signals_are_not_taskkit_errors() -> None:
    # DiscardTask is raised by user code; UnknownTask stays a DiscardTask for 0.2's except.
    assert issubclass(UnknownTask, DiscardTask) and not issubclass(DiscardTask, TaskkitError)
    # The stop signals must pass through a handler's ``except Exception``.
    for stop in (TaskCancelled, TaskTimeout):
        assert issubclass(stop, BaseException) and not issubclass(stop, Exception)


def test_failed_carries_the_task_and_the_message() -> None:
    error = Failed(TASK, "Traceback: boom")
    assert (error.task, error.message) == (TASK, "Traceback: boom")
    assert str(error) == "task 't1' (mail/send) failed: Traceback: boom"


def test_not_found_carries_the_id_and_the_reason() -> None:
    error = NotFound("t1", "discarded: no use")
    assert (error.task_id, error.reason) == ("t1", "discarded: no use")
    assert str(error) == "task 't1': discarded: no use"
    assert NotFound("t2").reason == "not found"


def test_payload_too_large_carries_the_sizes() -> None:
    error = PayloadTooLarge("task data", 2048, 1024)
    assert (error.what, error.size, error.limit) == ("task data", 2048, 1024)
    assert str(error) == "task data is 2048 bytes, over the limit of 1024 bytes"


@pytest.mark.parametrize("stored", ["SystemExit: 3", "KeyboardInterrupt", "builtins.OSError"])
def test_a_stored_error_comes_back_as_failed_text_never_as_the_class_it_names(
    stored: str,
) -> None:
    backend = MemoryBackend()
    kit = Kit(backend, RecordingHandler())
    result = kit.initiate_task("g", "n", None)
    [claim] = backend.claim("g", "w", 1, 30.0, 3).claims
    backend.fail(claim, stored)
    with pytest.raises(Failed) as caught:
        result.get(0)
    assert type(caught.value) is Failed and caught.value.message == stored
