"""The taskkit 0.2 README's code, run unchanged on the in-memory backend."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from taskkit import (
    RegularSchedule,
    ResultGetTimedOut,
    ScheduleEntriesCompatMapping,
    ScheduleEntry,
    make_kit,
)
from taskkit.schedule import normalize_entries

# The README's handler: one copy for the core, Redis and Django suites.
from taskkit_testing.readme import GROUP_NAME, Handler


def _schedule_entries() -> ScheduleEntriesCompatMapping:
    return {
        "scheduler_name": [
            ScheduleEntry(
                key="every-half-hour",
                group=GROUP_NAME,
                name="bar",
                data=Handler().encode_data(GROUP_NAME, "bar", "SOME DATA"),
                schedule=RegularSchedule(seconds={0}, minutes={0, 30}),
            ),
            {
                "key": "at-30",
                "group": GROUP_NAME,
                "name": "bar",
                "data": 2,
                "schedule": RegularSchedule(seconds={0}, minutes={30}),
            },
        ],
        "another_scheduler": [],
    }


@pytest.mark.slow
def test_start_processes_initiate_and_get() -> None:
    kit = make_kit("memory://", Handler())
    processes = kit.start_processes(
        num_processes=3, num_worker_threads_per_group={GROUP_NAME: 3}, daemon=True
    )
    try:
        result = kit.initiate_task(
            GROUP_NAME, "foo", dict(some_data=1), due=datetime.now() + timedelta(seconds=0.2)
        )
        try:
            value = result.get(timeout=10)
        except ResultGetTimedOut:
            raise AssertionError("the task did not run") from None
        assert value == {"doubled": 2}
    finally:
        kit.send_shutdown_event()
        for process in processes:
            process.join(10)
            assert not process.is_alive()


@pytest.mark.slow
def test_start_blocks_until_shutdown_with_schedule_entries() -> None:
    kit = make_kit("memory://", Handler())
    finished = threading.Event()

    def run() -> None:
        kit.start(
            num_processes=3,
            num_worker_threads_per_group={GROUP_NAME: 3},
            schedule_entries=_schedule_entries(),
            tzinfo=timezone(timedelta(hours=9), "JST"),
        )
        finished.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert kit.initiate_task(GROUP_NAME, "bar", "bar done").get(timeout=10) == "bar done"
    kit.send_shutdown_event()
    assert finished.wait(10), "kit.start returned after the shutdown event"


def test_dict_entries_are_encoded_by_the_handler() -> None:
    entries = normalize_entries(_schedule_entries(), Handler(), 1024 * 1024)
    [first, second] = entries["scheduler_name"]
    assert first.data == b'"SOME DATA"'
    assert second.data == b"2"
    assert entries["another_scheduler"] == []
