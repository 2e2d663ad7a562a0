"""The scheduler on a fake clock: exactly-once across replicas, skew, restarts, DST, catch-up.

Every test shares one real MemoryBackend between replicas and moves FakeClocks by hand; no
test sleeps. The figures follow reliability.md S1–S5 and R4.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone, tzinfo
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from taskkit import (
    BackendUnavailable,
    CronSchedule,
    DuplicationPolicy,
    FakeClock,
    Kit,
    MemoryBackend,
    OnlyEarliest,
    OnlyLatest,
    RegularSchedule,
    Schedule,
    ScheduleEntry,
    ScheduleError,
    Task,
    TaskState,
)
from taskkit._scheduler import Scheduler, scheduled_task_id
from taskkit.schedule import normalize_entries

from .conftest import wait_until
from .handlers import RecordingHandler

UTC = timezone.utc
JST = timezone(timedelta(hours=9), "JST")
NY = ZoneInfo("America/New_York")

#: 14:55:07 UTC: ten minutes from here cross one hour boundary (00:00 in Tokyo).
T0 = datetime(2024, 5, 1, 14, 55, 7, tzinfo=UTC).timestamp()


def entry(key: str, schedule: Schedule, group: str = "g") -> ScheduleEntry:
    return ScheduleEntry(key, schedule, group, key, b'"data"')


S1_ENTRIES = [
    entry("every5", RegularSchedule(seconds=set(range(0, 60, 5)))),
    entry("every10", RegularSchedule(seconds=set(range(0, 60, 10)))),
    entry("at00", RegularSchedule(seconds=0)),
    entry("at30", RegularSchedule(seconds=30)),
    entry("hourly_jst", RegularSchedule(seconds=0, minutes=0, tzinfo=JST)),
]


def all_points(schedule: Schedule, start: float, end: float, tz: tzinfo = UTC) -> list[float]:
    found, t = [], start
    while (nxt := schedule.next_after(t, tz)) is not None and nxt <= end:
        found.append(nxt)
        t = nxt
    return found


class Fired:
    """Collects every task a set of replicas fired, with the true time it happened."""

    def __init__(self, true_clock: FakeClock) -> None:
        self.true_clock = true_clock
        self.tasks: list[tuple[Task, float]] = []

    def __call__(self, task: Task) -> None:
        self.tasks.append((task, self.true_clock.time()))

    def points(self, key: str) -> list[float]:
        return sorted(
            t.scheduled for t, _ in self.tasks if t.name == key and t.scheduled is not None
        )

    def assert_no_duplicates(self) -> None:
        ids = Counter(t.id for t, _ in self.tasks)
        assert [i for i, n in ids.items() if n > 1] == []
        pairs = Counter((t.name, t.scheduled) for t, _ in self.tasks)
        assert [p for p, n in pairs.items() if n > 1] == []


class Replicas:
    """N schedulers sharing one backend, each with its own (possibly skewed) clock."""

    def __init__(
        self,
        entries: Sequence[ScheduleEntry],
        skews: Sequence[float] = (0.0, 0.0, 0.0),
        start: float = T0,
        tz: tzinfo | None = None,
    ) -> None:
        self.true = FakeClock(start)
        self.backend = MemoryBackend(clock=self.true)
        self.entries = entries
        self.skews = list(skews)
        self.tz = tz
        self.fired = Fired(self.true)
        self.clocks = [FakeClock(start + skew) for skew in skews]
        self.replicas = [self.make(i) for i in range(len(skews))]

    def make(self, index: int) -> Scheduler:
        return Scheduler(
            self.backend,
            "main",
            self.entries,
            tzinfo=self.tz,
            clock=self.clocks[index],
            on_fired=self.fired,
        )

    def recreate(self, index: int) -> None:
        self.replicas[index] = self.make(index)

    def set(self, now: float) -> None:
        self.true.set(now)
        for clock, skew in zip(self.clocks, self.skews):
            clock.set(now + skew)

    def tick_all(self) -> list[float | None]:
        return [replica.tick() for replica in self.replicas]

    def step(self, seconds: float = 1.0) -> None:
        self.set(self.true.time() + seconds)
        self.tick_all()


# --------------------------------------------------------------------------- S1, S2, S4


def test_s1_three_replicas_fire_each_point_exactly_once() -> None:
    sim = Replicas(S1_ENTRIES)
    sim.tick_all()
    for _ in range(600):
        sim.step()
    sim.fired.assert_no_duplicates()
    end = T0 + 600
    counts = {e.key: len(sim.fired.points(e.key)) for e in S1_ENTRIES}
    assert counts == {"every5": 120, "every10": 60, "at00": 10, "at30": 10, "hourly_jst": 1}
    for e in S1_ENTRIES:  # no misses: exactly the schedule's points in (T0, T0 + 600]
        assert sim.fired.points(e.key) == all_points(e.schedule, T0, end)
    # every firing is on time (the step that reached it) and is in the backend
    for task, fired_at in sim.fired.tasks:
        assert task.scheduled is not None and 0 <= fired_at - task.scheduled < 1
        outcome = sim.backend.get_outcome(task.id)
        assert outcome is not None and outcome.state is TaskState.QUEUED
        assert task.due == task.scheduled and task.group == "g" and task.data == b'"data"'
    assert len(sim.backend.tasks()) == 201


def test_s2_replica_dropped_and_recreated_every_30_seconds() -> None:
    sim = Replicas(S1_ENTRIES)
    sim.tick_all()
    for step in range(1, 601):
        if step % 30 == 0:
            sim.recreate((step // 30) % 3)
        sim.step()
    sim.fired.assert_no_duplicates()
    for e in S1_ENTRIES:
        assert sim.fired.points(e.key) == all_points(e.schedule, T0, T0 + 600)


def test_s2_every_replica_restarted_in_turn_with_gaps() -> None:
    """Rolling restarts where each replica is down for 10 s: the others cover for it."""
    sim = Replicas(S1_ENTRIES)
    sim.tick_all()
    down: dict[int, int] = {}
    for step in range(1, 601):
        if step % 30 == 0:
            down[(step // 30) % 3] = step + 10
        sim.set(T0 + step)
        for index, replica in enumerate(sim.replicas):
            if index in down:
                if step < down[index]:
                    continue
                del down[index]
                sim.recreate(index)
                replica = sim.replicas[index]
            replica.tick()
    sim.fired.assert_no_duplicates()
    for e in S1_ENTRIES:
        assert sim.fired.points(e.key) == all_points(e.schedule, T0, T0 + 600)


@pytest.mark.parametrize("skew", [3.0, 30.0])
def test_s4_skewed_clocks_never_duplicate_or_miss(skew: float) -> None:
    sim = Replicas(S1_ENTRIES, skews=(-skew, 0.0, skew))
    sim.tick_all()
    for step in range(1, 601):
        if step % 30 == 0:  # S2 on top: the replica that is ahead is restarted too
            sim.recreate((step // 30) % 3)
        sim.step()
    sim.fired.assert_no_duplicates()
    for e in S1_ENTRIES:
        fired = sim.fired.points(e.key)
        assert all(T0 - skew < p <= T0 + 600 + skew for p in fired)
        # No misses once the entry has a mark: an unbroken run of the schedule's points
        # through the end of the run. (Before the first mark exists, a replica whose clock
        # lags may fire a point the others count as already passed; they collapse the gap
        # by the duplication policy, once.)
        settled = [p for p in fired if p > T0 + skew]
        assert settled == all_points(e.schedule, T0 + skew, settled[-1])
        assert set(all_points(e.schedule, T0 + skew, T0 + 600 - skew)) <= set(settled)
    for task, fired_at in sim.fired.tasks:  # no point fires before point - max skew
        assert task.scheduled is not None and fired_at >= task.scheduled - skew


def test_s3_a_paused_replicas_late_write_is_rejected() -> None:
    """Replica A stalls inside put_scheduled; B fires meanwhile; A's write then loses."""
    clock = FakeClock(T0)
    memory = MemoryBackend(clock=clock)
    entered, release = threading.Event(), threading.Event()

    class Stalling(MemoryBackend):
        def put_scheduled(self, task: Task, scheduler: str, key: str, point: float) -> bool:
            entered.set()
            release.wait(10)
            return memory.put_scheduled(task, scheduler, key, point)

        def get_schedule_mark(self, scheduler: str, key: str) -> float | None:
            return memory.get_schedule_mark(scheduler, key)

    fired_a: list[Task] = []
    fired_b: list[Task] = []
    every5 = [entry("every5", RegularSchedule(seconds=set(range(0, 60, 5))))]
    a = Scheduler(Stalling(clock=clock), "main", every5, clock=clock, on_fired=fired_a.append)
    b = Scheduler(memory, "main", every5, clock=clock, on_fired=fired_b.append)
    a.tick()
    b.tick()
    clock.set(T0 + 3)  # 14:55:10, a point
    results: list[float | None] = []
    paused = threading.Thread(target=lambda: results.append(a.tick()))
    paused.start()
    assert entered.wait(5)
    for _ in range(20):  # A is frozen for 20 s while B carries on
        clock.advance(1)
        b.tick()
    release.set()
    paused.join(5)
    assert not paused.is_alive()
    assert fired_a == []
    assert [t.scheduled - T0 for t in fired_b if t.scheduled] == [3, 8, 13, 18, 23]


# --------------------------------------------------------------------------- S5: DST


def run_until(sim: Replicas, end: float) -> None:
    """Advance the shared clock straight to each next point the replicas report."""
    wakes = sim.tick_all()
    while True:
        upcoming = [w for w in wakes if w is not None]
        if not upcoming or min(upcoming) > end:
            return
        sim.set(min(upcoming))
        wakes = sim.tick_all()


def local(points: Sequence[float], tz: tzinfo = NY) -> list[str]:
    return [datetime.fromtimestamp(p, tz).isoformat() for p in points]


@pytest.mark.parametrize(
    "schedules",
    [
        {
            "hourly": RegularSchedule(minutes=0),
            "daily0230": RegularSchedule(minutes=30, hours=2),
            "daily0130": RegularSchedule(minutes=30, hours=1),
        },
        {
            "hourly": CronSchedule("0 * * * *"),
            "daily0230": CronSchedule("30 2 * * *"),
            "daily0130": CronSchedule("30 1 * * *"),
        },
    ],
    ids=["regular", "cron"],
)
def test_s5_dst_in_new_york_across_both_transitions(schedules: dict[str, Schedule]) -> None:
    entries = [entry(key, schedule) for key, schedule in schedules.items()]
    for first_day, hours in (((2025, 3, 8), 23), ((2025, 11, 1), 25)):
        year, month, day = first_day
        start = datetime(year, month, day, tzinfo=NY).timestamp()
        end = datetime(year, month, day + 2, tzinfo=NY).timestamp()
        sim = Replicas(entries, start=start, tz=NY)
        run_until(sim, end)
        sim.fired.assert_no_duplicates()
        hourly = sim.fired.points("hourly")
        # each absolute hour fires once: 24 on the first day, 23 or 25 on the second
        assert len(hourly) == 24 + hours and hourly[-1] == end
        assert {b - a for a, b in pairwise(hourly)} == {3600.0}
        daily = local(sim.fired.points("daily0230"))
        early = local(sim.fired.points("daily0130"))
        if hours == 23:
            assert daily == ["2025-03-08T02:30:00-05:00", "2025-03-09T03:00:00-04:00"]
            assert early == ["2025-03-08T01:30:00-05:00", "2025-03-09T01:30:00-05:00"]
        else:
            assert daily == ["2025-11-01T02:30:00-04:00", "2025-11-02T02:30:00-05:00"]
            assert early == ["2025-11-01T01:30:00-04:00", "2025-11-02T01:30:00-04:00"]


def test_s5_one_second_steps_through_fall_back_with_three_replicas() -> None:
    every_minute = entry("minutely", RegularSchedule())
    daily = entry("daily0130", RegularSchedule(minutes=30, hours=1))
    start = datetime(2025, 11, 2, 0, 50, tzinfo=NY).timestamp()
    sim = Replicas([every_minute, daily], start=start, tz=NY)
    sim.tick_all()
    for _ in range(int(2.5 * 3600)):  # 00:50 EDT to 02:20 EST: the repeated hour included
        sim.step()
    sim.fired.assert_no_duplicates()
    minutes = sim.fired.points("minutely")
    assert len(minutes) == 150 and {b - a for a, b in pairwise(minutes)} == {60.0}
    assert local(sim.fired.points("daily0130")) == ["2025-11-02T01:30:00-04:00"]


# --------------------------------------------------------------------------- catch-up


def outage_scenario(policy: DuplicationPolicy, replicas: int) -> tuple[Replicas, float, list[Task]]:
    """Run 60 s, stop every replica for 2 h, restart them; return what the restart fired."""
    e5 = entry("every5", RegularSchedule(seconds=set(range(0, 60, 5)), duplication_policy=policy))
    em = entry("minutely", RegularSchedule(duplication_policy=policy))
    sim = Replicas([e5, em], skews=(0.0,) * replicas)
    sim.tick_all()
    for _ in range(60):
        sim.step()
    before = len(sim.fired.tasks)
    last_fired = sim.fired.points("every5")[-1]
    sim.set(T0 + 60 + 2 * 3600 + 2.5)
    sim.replicas = [sim.make(i) for i in range(replicas)]  # restarted processes: no memory
    sim.tick_all()
    return sim, last_fired, [t for t, _ in sim.fired.tasks[before:]]


@pytest.mark.parametrize("replicas", [1, 3])
def test_only_latest_fires_one_point_the_latest_missed(replicas: int) -> None:
    sim, _, caught_up = outage_scenario(OnlyLatest(), replicas)
    now = sim.true.time()  # 16:56:09.5
    assert sorted((t.name, t.scheduled) for t in caught_up) == [
        ("every5", now - 4.5),  # 16:56:05, the latest missed point
        ("minutely", now - 9.5),  # 16:56:00
    ]
    for _ in range(60):  # and then on time again, no second catch-up
        sim.step()
    sim.fired.assert_no_duplicates()
    after = [p for p in sim.fired.points("every5") if p > now]
    assert after == all_points(RegularSchedule(seconds=set(range(0, 60, 5))), now, now + 60)


@pytest.mark.parametrize("replicas", [1, 3])
def test_only_earliest_fires_one_point_the_earliest_missed(replicas: int) -> None:
    sim, last_fired, caught_up = outage_scenario(OnlyEarliest(), replicas)
    now = sim.true.time()
    every5 = [t for t in caught_up if t.name == "every5"]
    assert [t.scheduled for t in every5] == [last_fired + 5]
    assert every5[0].due == last_fired + 5  # due in the past: runs at once
    minutely = [t.scheduled for t in caught_up if t.name == "minutely"]
    assert minutely == [T0 + 53 + 60]  # 14:57:00, the first minute after 14:56:00
    for _ in range(60):  # the other missed points stay skipped
        sim.step()
    sim.fired.assert_no_duplicates()
    assert [p for p in sim.fired.points("every5") if last_fired + 5 < p <= now] == []
    after = [p for p in sim.fired.points("every5") if p > now]
    assert len(after) == 12


class Counting:
    """A Schedule wrapper that counts how often it is asked."""

    def __init__(self, inner: RegularSchedule) -> None:
        self.inner = inner
        self.duplication_policy = inner.duplication_policy
        self.calls = 0

    def next_after(self, t: float, tz: tzinfo) -> float | None:
        self.calls += 1
        return self.inner.next_after(t, tz)

    def previous_at_or_before(self, t: float, tz: tzinfo) -> float | None:
        self.calls += 1
        return self.inner.previous_at_or_before(t, tz)


def test_catch_up_after_a_month_does_not_enumerate_missed_points() -> None:
    schedule = Counting(RegularSchedule(seconds=None))  # every second
    clock = FakeClock(T0)
    backend = MemoryBackend(clock=clock)
    fired: list[Task] = []
    scheduler = Scheduler(
        backend, "main", [entry("s", schedule)], clock=clock, on_fired=fired.append
    )
    scheduler.tick()
    clock.advance(1)
    scheduler.tick()
    assert [t.scheduled for t in fired] == [T0 + 1]
    clock.advance(30 * 86400)  # 2.6 million missed points
    schedule.calls = 0
    assert scheduler.tick() == clock.time() + 1
    assert [t.scheduled for t in fired] == [T0 + 1, clock.time()]
    assert schedule.calls <= 3
    assert backend.get_schedule_mark("main", "s") == clock.time()


def test_first_start_fires_nothing_old_and_begins_after_now() -> None:
    every5 = entry("every5", RegularSchedule(seconds=set(range(0, 60, 5))))
    start = T0 + 3  # 14:55:10, itself a point
    clock = FakeClock(start)
    fired: list[Task] = []
    scheduler = Scheduler(
        MemoryBackend(clock=clock), "main", [every5], clock=clock, on_fired=fired.append
    )
    assert scheduler.tick() == start + 5
    assert fired == []
    clock.advance(5)
    scheduler.tick()
    assert [t.scheduled for t in fired] == [start + 5]


def test_r4_wiped_backend_gives_at_most_one_catch_up_per_entry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sim = Replicas(S1_ENTRIES)
    sim.tick_all()
    for _ in range(60):
        sim.step()
    wiped = MemoryBackend(clock=sim.true)  # the server restarted without persistence
    for replica in sim.replicas:
        replica.backend = wiped
    newcomer = Scheduler(wiped, "main", S1_ENTRIES, clock=sim.true, on_fired=sim.fired)
    sim.replicas.append(newcomer)  # a process that started after the wipe knows nothing
    sim.set(T0 + 60 + 3600)  # and an hour passed
    before = len(sim.fired.tasks)
    with caplog.at_level(logging.WARNING, logger="taskkit.scheduler"):
        sim.tick_all()
    caught_up = Counter(t.name for t, _ in sim.fired.tasks[before:])
    assert caught_up == {"every5": 1, "every10": 1, "at00": 1, "at30": 1, "hourly_jst": 1}
    assert "vanished" in caplog.text
    for _ in range(30):
        sim.step()
    sim.fired.assert_no_duplicates()


# --------------------------------------------------------------------------- ids, validation


def test_task_ids_are_deterministic_and_safe() -> None:
    one = scheduled_task_id("main", "k", 1_700_000_000.0)
    assert one == scheduled_task_id("main", "k", 1_700_000_000)
    assert re.fullmatch(r"s[0-9a-f]{32}", one)
    others = {
        scheduled_task_id("main", "k", 1_700_000_001.0),
        scheduled_task_id("main", "k2", 1_700_000_000.0),
        scheduled_task_id("other", "k", 1_700_000_000.0),
        scheduled_task_id("mai", "nk", 1_700_000_000.0),
    }
    assert one not in others and len(others) == 4


def test_result_ttl_becomes_the_task_ttl() -> None:
    clock = FakeClock(T0)
    fired: list[Task] = []
    e = ScheduleEntry("k", RegularSchedule(seconds=None), "g", "n", b"1", result_ttl=60)
    scheduler = Scheduler(
        MemoryBackend(clock=clock), "main", [e], clock=clock, on_fired=fired.append
    )
    scheduler.tick()
    clock.advance(1)
    scheduler.tick()
    assert fired[0].ttl == 60 and fired[0].created == T0 + 1


@pytest.mark.parametrize(
    ("name", "entries", "message"),
    [
        ("", [], "scheduler name must not be empty"),
        (
            "main",
            [entry("a", RegularSchedule()), entry("a", RegularSchedule())],
            "duplicate entry key 'a'",
        ),
        ("main", [{"key": "a"}], "must be ScheduleEntry objects"),
    ],
)
def test_scheduler_validates_its_arguments(name: str, entries: Any, message: str) -> None:
    with pytest.raises(ScheduleError, match=re.escape(message)):
        Scheduler(MemoryBackend(), name, entries)


def test_default_clock_is_the_backends() -> None:
    clock = FakeClock(T0)
    fired: list[Task] = []
    scheduler = Scheduler(
        MemoryBackend(clock=clock),
        "main",
        [entry("e", RegularSchedule(seconds=None))],
        on_fired=fired.append,
    )
    assert scheduler.tick() == T0 + 1
    clock.advance(1)
    scheduler.tick()
    assert [t.created for t in fired] == [T0 + 1]


def test_default_zone_is_utc_and_the_kit_zone_applies() -> None:
    nine = entry("nine", RegularSchedule(minutes=0, hours=9))
    clock = FakeClock(datetime(2024, 5, 1, tzinfo=UTC).timestamp())
    utc = Scheduler(MemoryBackend(clock=clock), "main", [nine], clock=clock)
    jst = Scheduler(MemoryBackend(clock=clock), "main", [nine], tzinfo=JST, clock=clock)
    assert local([utc.tick() or 0], UTC) == ["2024-05-01T09:00:00+00:00"]
    assert local([jst.tick() or 0], JST) == ["2024-05-02T09:00:00+09:00"]  # now is 09:00 JST


# --------------------------------------------------------------------------- faults


class SimulatedStop(threading.Event):
    """A stop event for run() whose waits move a fake clock instead of sleeping."""

    def __init__(self, clock: FakeClock, waits: int) -> None:
        super().__init__()
        self.clock = clock
        self.limit = waits
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None, "run() must never wait without a bound"
        # whole milliseconds: run() subtracts its own (real) run time from each wait
        timeout = math.ceil(timeout * 1000) / 1000
        self.waits.append(timeout)
        self.clock.advance(timeout)
        if len(self.waits) >= self.limit:
            self.set()
        return self.is_set()


class Flaky(MemoryBackend):
    """Fails the first ``failures`` calls of one primitive."""

    def __init__(self, clock: FakeClock, method: str, failures: int) -> None:
        super().__init__(clock=clock)
        self.method = method
        self.failures = failures

    def _maybe_fail(self, method: str) -> None:
        if method == self.method and self.failures > 0:
            self.failures -= 1
            raise BackendUnavailable("connection refused")

    def now(self) -> float:
        self._maybe_fail("now")
        return super().now()

    def get_schedule_mark(self, scheduler: str, key: str) -> float | None:
        self._maybe_fail("get_schedule_mark")
        return super().get_schedule_mark(scheduler, key)


def test_run_backs_off_while_the_backend_clock_is_unreachable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock(T0)
    backend = Flaky(clock, "now", failures=4)
    fired: list[Task] = []
    scheduler = Scheduler(
        backend, "main", [entry("e", RegularSchedule(seconds=None))], on_fired=fired.append
    )
    stop = SimulatedStop(clock, waits=8)
    with caplog.at_level(logging.INFO, logger="taskkit.scheduler"):
        scheduler.run(stop)
    assert "reachable again" in caplog.text
    # An unreachable backend: back-off capped at 1 s, so firing resumes soon after its return
    # (issue 11: it had grown to 16 s).
    assert stop.waits[:4] == [0.5, 1.0, 1.0, 1.0]
    assert all(0.9 < w <= 1.0 for w in stop.waits[5:])  # then on the second
    assert len(fired) == 3
    # One line for the outage (tracebacks at DEBUG only), one when the backend is back.
    assert caplog.text.count("Traceback") == 0
    assert caplog.text.count("unreachable") == 1


def test_a_failing_entry_backs_off_without_holding_up_the_others() -> None:
    class Broken:
        duplication_policy = OnlyLatest()

        def next_after(self, t: float, tz: tzinfo) -> float | None:
            raise RuntimeError("bug in a custom schedule")

        def previous_at_or_before(self, t: float, tz: tzinfo) -> float | None:
            raise RuntimeError("bug in a custom schedule")

    clock = FakeClock(T0)
    fired: list[Task] = []
    scheduler = Scheduler(
        MemoryBackend(clock=clock),
        "main",
        [entry("broken", Broken()), entry("good", RegularSchedule(seconds=None))],
        clock=clock,
        on_fired=fired.append,
    )
    stop = SimulatedStop(clock, waits=30)
    scheduler.run(stop)
    assert [t.name for t in fired] == ["good"] * len(fired) and len(fired) >= 20


@pytest.mark.parametrize(
    "answer",
    [lambda t: t, lambda t: t - 5, lambda t: "soon", lambda t: float("nan"), lambda t: True],
    ids=["not-after", "backwards", "str", "nan", "bool"],
)
def test_an_inconsistent_custom_schedule_never_fires(
    answer: Callable[[float], Any], caplog: pytest.LogCaptureFixture
) -> None:
    class Weird:
        duplication_policy = OnlyLatest()

        def next_after(self, t: float, tz: tzinfo) -> Any:
            return answer(t)

        def previous_at_or_before(self, t: float, tz: tzinfo) -> float | None:
            return t

    clock = FakeClock(T0)
    fired: list[Task] = []
    scheduler = Scheduler(
        MemoryBackend(clock=clock),
        "main",
        [entry("w", Weird())],
        clock=clock,
        on_fired=fired.append,
    )
    with caplog.at_level(logging.WARNING, logger="taskkit.scheduler"):
        wake = scheduler.tick()
    assert fired == [] and wake == T0 + 0.5
    assert "ScheduleError" in caplog.text


def test_entry_recovers_after_get_schedule_mark_fails() -> None:
    clock = FakeClock(T0)
    backend = Flaky(clock, "get_schedule_mark", failures=2)
    fired: list[Task] = []
    scheduler = Scheduler(
        backend,
        "main",
        [entry("e", RegularSchedule(seconds=None))],
        clock=clock,
        on_fired=fired.append,
    )
    stop = SimulatedStop(clock, waits=6)
    scheduler.run(stop)
    assert fired and fired[0].scheduled is not None
    assert sorted(t.scheduled or 0 for t in fired) == [t.scheduled for t in fired]


def test_on_fired_errors_are_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(T0)
    backend = MemoryBackend(clock=clock)

    def explode(task: Task) -> None:
        raise RuntimeError("hook failed")

    scheduler = Scheduler(
        backend, "main", [entry("e", RegularSchedule(seconds=None))], clock=clock, on_fired=explode
    )
    scheduler.tick()
    clock.advance(1)
    with caplog.at_level(logging.ERROR, logger="taskkit.scheduler"):
        scheduler.tick()
    assert "on_fired raised" in caplog.text
    assert backend.get_schedule_mark("main", "e") == T0 + 1


def test_custom_policy_gets_the_two_extreme_missed_points() -> None:
    seen: list[tuple[list[datetime], datetime | None]] = []

    class Both:
        def __call__(self, points: list[datetime], last: datetime | None, /) -> list[datetime]:
            seen.append((points, last))
            return [*points, datetime(2000, 1, 1, tzinfo=UTC)]  # an invented point: ignored

    clock = FakeClock(T0 + 3)  # 14:55:10
    fired: list[Task] = []
    schedule = RegularSchedule(seconds=set(range(0, 60, 5)), tzinfo=JST, duplication_policy=Both())
    scheduler = Scheduler(
        MemoryBackend(clock=clock),
        "main",
        [entry("e", schedule)],
        clock=clock,
        on_fired=fired.append,
    )
    scheduler.tick()
    clock.advance(5)
    scheduler.tick()
    clock.advance(60)
    scheduler.tick()
    ((points, last),) = seen
    assert last is not None and last.timestamp() == T0 + 8 and last.tzinfo is JST
    assert [p.timestamp() for p in points] == [T0 + 13, T0 + 68]
    assert [t.scheduled for t in fired] == [T0 + 8, T0 + 13, T0 + 68]
    clock.advance(5)
    scheduler.tick()
    assert fired[-1].scheduled == T0 + 73  # the points in between stay skipped


# --------------------------------------------------------------------------- run()


def test_run_waits_until_the_next_point_and_caps_long_waits() -> None:
    clock = FakeClock(T0)  # 14:55:07
    scheduler = Scheduler(
        MemoryBackend(clock=clock),
        "main",
        [
            entry("every5", RegularSchedule(seconds=set(range(0, 60, 5)))),
            entry("yearly", CronSchedule("@yearly")),
        ],
        clock=clock,
    )
    stop = SimulatedStop(clock, waits=4)
    scheduler.run(stop)
    assert [round(w, 3) for w in stop.waits] == [3.0, 5.0, 5.0, 5.0]
    lonely = Scheduler(
        MemoryBackend(clock=clock), "main", [entry("yearly", CronSchedule("@yearly"))], clock=clock
    )
    stop = SimulatedStop(clock, waits=3)
    lonely.run(stop)
    assert stop.waits == [30.0, 30.0, 30.0]
    idle = Scheduler(MemoryBackend(clock=clock), "main", [], clock=clock, max_wait=7)
    stop = SimulatedStop(clock, waits=2)
    idle.run(stop)
    assert stop.waits == [7.0, 7.0]


def test_run_in_a_thread_stops_promptly_and_does_not_spin() -> None:
    clock = FakeClock(T0)  # frozen: the next point stays 3 s away
    ticks = []

    class Counted(Scheduler):
        def _tick(self, now: float) -> float | None:
            ticks.append(1)
            return super()._tick(now)

    scheduler = Counted(
        MemoryBackend(clock=clock),
        "main",
        [entry("e", RegularSchedule(seconds=set(range(0, 60, 5))))],
        clock=clock,
    )
    stop = threading.Event()
    thread = threading.Thread(target=scheduler.run, args=(stop,), daemon=True)
    thread.start()
    wait_until(lambda: ticks)
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert len(ticks) <= 2  # it slept on the event instead of looping


def test_kit_runtime_fires_schedules_end_to_end() -> None:
    """The worker runtime wires schedulers in: a 1-second entry runs through a real worker."""
    handler = RecordingHandler()
    kit = Kit(MemoryBackend(), handler, lease_seconds=2.0, control_interval=0.05)
    entries = {
        "s": [
            {
                "key": "tick",
                "group": "g",
                "name": "double",
                "data": 21,
                "schedule": RegularSchedule(seconds=None),
            }
        ]
    }
    handles = kit.start_processes(1, {"g": 1}, schedule_entries=entries)
    try:
        wait_until(lambda: handler.runs, timeout=10)
        task_id = handler.runs[0][0]
        assert task_id.startswith("s")
        assert kit.get_result(task_id).get(timeout=5) == 42
    finally:
        for handle in handles:
            handle.kill()
            handle.join(10)


# --------------------------------------------------------------------------- the docs' examples

DOCS = Path(__file__).resolve().parents[2] / "docs" / "scheduling.md"


def _python_blocks() -> list[str]:
    if not DOCS.exists():  # an sdist without the docs
        pytest.skip("docs/scheduling.md is not here")
    return re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.S)


def test_docs_entry_example_is_valid() -> None:
    class Handler(RecordingHandler):
        pass

    class StubKit:
        def start(self, **options: Any) -> None:
            self.options = options

    namespace: dict[str, Any] = {"Handler": Handler, "GROUP_NAME": "g", "kit": StubKit()}
    exec(_python_blocks()[0], namespace)  # our own documentation
    options = namespace["kit"].options
    entries = normalize_entries(options["schedule_entries"], Handler(), 1024)
    assert [e.key for e in entries["scheduler_name"]] == ["report", "cleanup"]
    assert entries["scheduler_name"][1].data == b"2" and options["tzinfo"].utcoffset(None)


def test_docs_custom_schedule_example_fires() -> None:
    block = next(b for b in _python_blocks() if "class EveryNSeconds" in b)
    namespace: dict[str, Any] = {}
    exec(block, namespace)  # our own documentation
    schedule = namespace["EveryNSeconds"](7)
    assert isinstance(schedule, Schedule)
    clock = FakeClock(T0)
    fired: list[Task] = []
    scheduler = Scheduler(
        MemoryBackend(clock=clock),
        "main",
        [entry("e", schedule)],
        clock=clock,
        on_fired=fired.append,
    )
    scheduler.tick()
    for _ in range(70):
        clock.advance(1)
        scheduler.tick()
    assert len(fired) == 10 and all((t.scheduled or 1) % 7 == 0 for t in fired)
