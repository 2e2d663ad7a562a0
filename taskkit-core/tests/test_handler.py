"""The default retry is bounded, and "retry only these exceptions" is one line (issue 11,
defect 3).

Before: a handler that did not override ``get_retry_interval`` retried every exception 20
times with delays up to an hour, and nothing narrowed which exceptions were retried.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from taskkit import ExponentialBackoff, Failed, Kit, MemoryBackend, NoRetry, Task, TaskHandler
from taskkit.retry import is_retryable


def task(retry_count: int = 0) -> Task:
    now = time.time()
    return Task("t", "g", "n", b"null", now, now, retry_count=retry_count)


class Plain(TaskHandler):
    def handle(self, task: Task) -> Any:
        raise KeyError("bug")


class OnlyConnections(Plain):
    retry_on = (ConnectionError,)


class NotKeyErrors(Plain):
    retry_unless = KeyError


class OldStyle(Plain):
    """taskkit 0.2: get_retry_interval decides alone, whatever the new attributes say."""

    retry_on = (ConnectionError,)

    def get_retry_interval(self, task: Task, exception: Exception) -> float | None:
        return 0.01 if task.retry_count < 3 else None


def test_the_default_gives_up_within_minutes() -> None:
    policy = ExponentialBackoff()
    delays = [policy.next_interval(task(n), KeyError()) for n in range(10)]
    taken = [d for d in delays if d is not None]
    assert len(taken) == 5 and delays[5:] == [None] * 5  # five retries, then it fails
    assert all(d > 0 for d in taken)
    assert sum(taken) <= 160  # about 2.5 minutes at most (the old default: hours)
    # The handler's default policy is that one.
    assert Plain().get_retry_interval(task(5), KeyError()) is None
    assert Plain().get_retry_interval(task(4), KeyError()) is not None


def test_retry_on_is_one_line_on_the_handler() -> None:
    handler = OnlyConnections()
    assert handler.get_retry_interval(task(), KeyError("bug")) is None
    assert handler.get_retry_interval(task(), ConnectionResetError()) is not None
    unless = NotKeyErrors()
    assert unless.get_retry_interval(task(), KeyError("bug")) is None
    assert unless.get_retry_interval(task(), ValueError()) is not None


def test_retry_on_is_a_field_of_the_policy() -> None:
    policy = ExponentialBackoff(retry_on=(ConnectionError, TimeoutError), retry_unless=())
    assert policy.next_interval(task(), KeyError()) is None
    assert policy.next_interval(task(), TimeoutError()) is not None
    single = ExponentialBackoff(retry_on=OSError, retry_unless=FileNotFoundError)
    assert single.retry_on == (OSError,) and single.retry_unless == (FileNotFoundError,)
    assert single.next_interval(task(), FileNotFoundError()) is None
    assert single.next_interval(task(), PermissionError()) is not None
    assert is_retryable(KeyError(), (LookupError,), (IndexError,))
    assert not is_retryable(IndexError(), (LookupError,), (IndexError,))
    assert NoRetry().next_interval(task(), KeyError()) is None


@pytest.mark.parametrize("bad", ["ConnectionError", (ConnectionError, 3), int])
def test_bad_retry_on_is_refused(bad: Any) -> None:
    with pytest.raises(TypeError, match="retry_on"):
        ExponentialBackoff(retry_on=bad)


def _runs(handler: TaskHandler) -> tuple[int, str]:
    backend = MemoryBackend()
    kit = Kit(backend, handler, lease_seconds=2.0, control_interval=0.05)
    handles = kit.start_processes(1, {"g": 1})
    try:
        result = kit.initiate_task("g", "n", None)
        with pytest.raises(Failed) as info:
            result.get(timeout=10)
        return info.value.task.retry_count, info.value.message
    finally:
        for handle in handles:
            handle.kill()
            handle.join(10)


def test_a_worker_fails_an_exception_outside_retry_on_at_once() -> None:
    retries, message = _runs(OnlyConnections())
    assert retries == 0 and "KeyError: 'bug'" in message


def test_an_overridden_get_retry_interval_behaves_as_in_0_2() -> None:
    retries, message = _runs(OldStyle())
    assert retries == 3 and "KeyError: 'bug'" in message
