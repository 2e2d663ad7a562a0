"""The value objects: tasks (epoch times, aware datetimes, copies) and task states."""

from __future__ import annotations

import dataclasses
import pickle
from datetime import datetime, timedelta, timezone

import pytest
from taskkit import Task, TaskState
from taskkit._task import DEFAULT_TTL

JST = timezone(timedelta(hours=9))
T = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc).timestamp()


def test_epoch_times_read_as_aware_datetimes_in_any_zone() -> None:
    task = Task("t", "g", "n", b"null", due=T + 60, created=T, scheduled=T)
    assert task.due_dt(timezone.utc) == datetime(2026, 3, 1, 12, 1, tzinfo=timezone.utc)
    assert task.created_dt(JST) == datetime(2026, 3, 1, 21, 0, tzinfo=JST)
    assert task.scheduled_dt(JST) == datetime(2026, 3, 1, 21, 0, tzinfo=JST)
    assert task.due_dt().timestamp() == T + 60, "local time by default, same instant"


def test_a_task_no_scheduler_made_has_no_schedule_point() -> None:
    assert Task("t", "g", "n", b"null", T, T).scheduled_dt(timezone.utc) is None


def test_the_defaults_of_a_new_task() -> None:
    task = Task("t", "g", "n", b"null", T, T)
    assert (task.retry_count, task.deliveries, task.timeout) == (0, 0, None)
    assert task.ttl == DEFAULT_TTL == 7 * 24 * 3600


def test_evolve_is_a_changed_copy_of_a_frozen_task() -> None:
    task = Task("t", "g", "n", b"null", T, T)
    later = task.evolve(retry_count=2, due=T + 5)
    assert (later.retry_count, later.due, later.id) == (2, T + 5, "t")
    assert (task.retry_count, task.due) == (0, T)
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.retry_count = 1  # type: ignore[misc]


def test_a_task_survives_pickling_into_a_worker_process() -> None:
    task = Task("t", "g", "n", b"\x00data", T, T, scheduled=T, retry_count=1, timeout=3.0)
    assert pickle.loads(pickle.dumps(task)) == task


@pytest.mark.parametrize(
    ("state", "finished"),
    [
        (TaskState.QUEUED, False),
        (TaskState.RUNNING, False),
        (TaskState.SUCCEEDED, True),
        (TaskState.FAILED, True),
        (TaskState.DISCARDED, True),
        (TaskState.DEAD, True),
        (TaskState.CANCELLED, True),
    ],
)
def test_a_finished_state_is_one_a_task_never_leaves_on_its_own(
    state: TaskState, finished: bool
) -> None:
    assert state.finished is finished


def test_every_state_is_covered_and_stored_as_its_lowercase_name() -> None:
    assert {s.value for s in TaskState} == {s.name.lower() for s in TaskState}
    assert len(TaskState) == 7
    assert TaskState("running") is TaskState.RUNNING == "running"
