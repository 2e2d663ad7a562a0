"""The taskkit 0.2 README's code, run unchanged on the in-memory backend.

The README's program (handler, schedule entries, worker arguments, first task) has one copy
for the core, Redis and Django suites: :mod:`taskkit_testing.readme`.
"""

from __future__ import annotations

import threading

import pytest
from taskkit import RegularSchedule, ResultGetTimedOut, ScheduleEntry, make_kit
from taskkit.schedule import normalize_entries
from taskkit_testing.readme import (
    FOO_RESULT,
    GROUP_NAME,
    Handler,
    initiate_foo,
    schedule_entries,
    worker_options,
)


@pytest.mark.slow
def test_start_processes_initiate_and_get() -> None:
    kit = make_kit("memory://", Handler())
    processes = kit.start_processes(**worker_options(3), daemon=True)
    try:
        result = initiate_foo(kit, delay=0.2)
        try:
            value = result.get(timeout=10)
        except ResultGetTimedOut:
            raise AssertionError("the task did not run") from None
        assert value == FOO_RESULT
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
        kit.start(**worker_options(3, schedule_entries=schedule_entries(Handler())))
        finished.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert kit.initiate_task(GROUP_NAME, "bar", "bar done").get(timeout=10) == "bar done"
    kit.send_shutdown_event()
    assert finished.wait(10), "kit.start returned after the shutdown event"


def test_both_entry_forms_are_encoded_by_the_handler() -> None:
    entries = normalize_entries(schedule_entries(Handler()), Handler(), 1024 * 1024)
    [first, second] = entries["scheduler_name"]
    assert first.data == b'"SOME DATA"', "the ScheduleEntry: encoded by the README's code"
    assert second == ScheduleEntry(
        "test3", RegularSchedule(seconds={0}, minutes={30}), GROUP_NAME, "test3", b"2"
    ), "the dict form: encoded by the kit with the handler"
    assert entries["another_scheduler"] == []
