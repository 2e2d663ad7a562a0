"""Scheduling: ``put_scheduled`` fires each schedule point exactly once, with no leader."""

from __future__ import annotations

import random
import threading
from collections import Counter
from datetime import timedelta, timezone

from taskkit import Backend, FakeClock, RegularSchedule, ScheduleEntry, Scheduler, Task, TaskState

from .._base import BackendPool, KitSettings, KitTestBase, Timing
from ..helpers import TaskMaker, outcome_of, violated

__all__ = ["SchedulingTests"]


def point_task(tasks: TaskMaker, scheduler: str, key: str, point: float) -> Task:
    """The task a scheduler makes for one point: its id derives from (scheduler, key, point)."""
    return tasks.one(task_id=f"{scheduler}.{key}.{point:.3f}", due=point, name=key).evolve(
        scheduled=point
    )


class SchedulingTests(KitTestBase):
    """The compare-and-set behind leaderless scheduler replicas."""

    def test_a_point_fires_once(self, backend: Backend, tasks: TaskMaker, timing: Timing) -> None:
        point = float(int(timing.now()))
        task = point_task(tasks, "sched-a", "every-5s", point)
        mark = backend.get_schedule_mark("sched-a", "every-5s")
        assert mark is None, violated("an entry that never fired has no schedule mark", got=mark)
        fired = backend.put_scheduled(task, "sched-a", "every-5s", point)
        assert fired is True, violated(
            "put_scheduled of a new point must fire it and answer True", got=fired
        )
        mark = backend.get_schedule_mark("sched-a", "every-5s")
        assert mark == point, violated("put_scheduled must advance the mark to the point", got=mark)
        again = backend.put_scheduled(task, "sched-a", "every-5s", point)
        assert again is False, violated("a schedule point was fired twice", got=again)
        outcome_of(
            backend,
            task.id,
            "a fired schedule point must store its task QUEUED, keeping the point",
            state=TaskState.QUEUED,
            task__scheduled=point,
        )

    def test_a_late_write_of_an_older_point_is_rejected(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        base = float(int(timing.now()))
        newer = point_task(tasks, "sched-a", "k", base + 10)
        older = point_task(tasks, "sched-a", "k", base)
        fired = backend.put_scheduled(newer, "sched-a", "k", base + 10)
        assert fired is True, violated(
            "put_scheduled of a new point must fire it and answer True", got=fired
        )
        assert backend.put_scheduled(older, "sched-a", "k", base) is False, violated(
            "a paused replica's late write of an older schedule point was accepted"
        )
        assert backend.get_outcome(older.id) is None, violated(
            "a rejected schedule point still stored its task"
        )
        assert backend.get_schedule_mark("sched-a", "k") == base + 10, violated(
            "a schedule mark moved backwards"
        )

    def test_an_existing_task_id_is_not_fired_again(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        point = float(int(timing.now()))
        task = point_task(tasks, "sched-a", "k", point)
        backend.put([task])
        assert backend.put_scheduled(task, "sched-a", "k", point) is False, violated(
            "put_scheduled fired a task whose id already existed"
        )
        assert backend.get_schedule_mark("sched-a", "k") is None, violated(
            "a put_scheduled that fired nothing advanced the mark"
        )

    def test_marks_are_kept_per_scheduler_and_entry(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        point = float(int(timing.now()))
        for scheduler, key in [("s1", "a"), ("s1", "b"), ("s2", "a")]:
            task = point_task(tasks, scheduler, key, point)
            assert backend.put_scheduled(task, scheduler, key, point) is True, violated(
                f"({scheduler}, {key}) did not fire: marks must be kept per scheduler and entry"
            )
        mark = backend.get_schedule_mark("s1", "c")
        assert mark is None, violated("an entry that never fired has no schedule mark", got=mark)

    def test_replicas_fire_each_point_exactly_once(
        self, backends: BackendPool, tasks: TaskMaker, timing: Timing, kit_settings: KitSettings
    ) -> None:
        points = [float(int(timing.now())) - 10_000 + 5 * i for i in range(kit_settings.size(60))]
        entries = [("replicated", "every-5s"), ("replicated", "every-5s-b")]
        replicas = [backends.new() for _ in range(3)]
        fired: Counter[tuple[str, float]] = Counter()
        lock = threading.Lock()
        start = threading.Barrier(len(replicas))
        errors: list[BaseException] = []

        def replica(backend: Backend) -> None:
            try:
                start.wait()
                for point in points:
                    for scheduler, key in entries:
                        task = point_task(tasks, scheduler, key, point)
                        if backend.put_scheduled(task, scheduler, key, point):
                            with lock:
                                fired[(key, point)] += 1
            except BaseException as exc:  # reported below; a thread must not die silently
                errors.append(exc)

        threads = [threading.Thread(target=replica, args=(b,)) for b in replicas]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(kit_settings.deadline(60.0))
        assert not errors, violated(
            "put_scheduled must not raise when replicas race", got=errors[0]
        )
        twice = {p: n for p, n in fired.items() if n > 1}
        assert not twice, violated(
            f"{len(twice)} schedule point(s) fired more than once by 3 replicas, "
            f"e.g. {next(iter(twice))}"
        )
        missed = [(k, p) for p in points for _, k in entries if fired[(k, p)] == 0]
        assert not missed, violated(f"{len(missed)} schedule point(s) never fired")
        for point in points[:3] + points[-3:]:
            for scheduler, key in entries:
                assert replicas[0].get_outcome(point_task(tasks, scheduler, key, point).id), (
                    violated("a fired schedule point stored no task")
                )

    def test_scheduler_replicas_fire_each_point_exactly_once(
        self, backends: BackendPool, group: str, kit_settings: KitSettings
    ) -> None:
        """Three ``taskkit`` schedulers share the backend; a fake clock moves in 1 s steps over
        ten simulated minutes (the reliability battery's S1)."""
        jst = timezone(timedelta(hours=9))
        schedules = {
            "every-5s": RegularSchedule(seconds=set(range(0, 60, 5))),
            "every-10s": RegularSchedule(seconds=set(range(0, 60, 10))),
            "minute-00": RegularSchedule(seconds=0),
            "minute-30": RegularSchedule(seconds=30),
            "hourly-jst": RegularSchedule(seconds=0, minutes=0, tzinfo=jst),
        }
        entries = [ScheduleEntry(key, sched, group, key, b"{}") for key, sched in schedules.items()]
        # Half a second past a round time five minutes before an hour: every point is
        # strictly between two ticks, and the window crosses one hour boundary.
        start = 1_700_000_000 // 3600 * 3600 + 3600 - 300 + 0.5
        minutes = 10
        clock = FakeClock(start)
        fired: Counter[tuple[str, float]] = Counter()
        lock = threading.Lock()

        def record(task: Task) -> None:
            with lock:
                fired[(task.name, task.scheduled or 0.0)] += 1

        replicas = [
            Scheduler(backends.new(), "conformance", entries, clock=clock, on_fired=record)
            for _ in range(3)
        ]
        order = random.Random(3)
        for _ in range(minutes * 60):
            for replica in order.sample(replicas, len(replicas)):
                replica.tick()
            clock.advance(1.0)
        for replica in order.sample(replicas, len(replicas)):
            replica.tick()
        end = clock.time()
        twice = {p: n for p, n in fired.items() if n > 1}
        assert not twice, violated(
            f"{len(twice)} schedule point(s) fired more than once by 3 replicas, e.g. {min(twice)}"
        )
        expected = {
            "every-5s": 120,
            "every-10s": 60,
            "minute-00": minutes,
            "minute-30": minutes,
            "hourly-jst": 1,
        }
        counts = Counter(key for key, _ in fired)
        assert dict(counts) == expected, violated(
            f"schedule points fired per entry {dict(counts)}, expected {expected}"
        )
        assert all(start < point <= end for _, point in fired), violated(
            "schedulers must fire only points within the time that passed"
        )
        stats = backends.primary.stats(group)
        assert stats.queued == sum(expected.values()), violated(
            "fired schedule points did not all store a task"
        )
