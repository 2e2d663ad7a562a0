"""Schedules: field semantics, cron, time zones and DST, validation, entries.

DST behaviour is checked against a brute-force model: every second (or every wall time) of
a window is tested against the fields, and the schedule's answers must equal the model's.
"""

from __future__ import annotations

import bisect
import pickle
import random
import subprocess
import sys
from datetime import datetime, timedelta, timezone, tzinfo
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from taskkit import (
    CronSchedule,
    OnlyEarliest,
    OnlyLatest,
    PayloadTooLarge,
    RegularSchedule,
    Schedule,
    ScheduleEntry,
    ScheduleError,
    TaskHandler,
)
from taskkit.plugins import registries
from taskkit.schedule import _gap_end, normalize_entries

UTC = timezone.utc
NY = ZoneInfo("America/New_York")
JST = timezone(timedelta(hours=9), "JST")


def ts(*args: int, tz: tzinfo = UTC, fold: int = 0) -> float:
    return datetime(*args, tzinfo=tz, fold=fold).timestamp()  # type: ignore[misc]


def local(t: float | None, tz: tzinfo = NY) -> str:
    assert t is not None
    return datetime.fromtimestamp(t, tz).isoformat()


def points(schedule: Schedule, start: float, end: float, tz: tzinfo = UTC) -> list[float]:
    """Every point in (start, end], by chaining next_after."""
    found: list[float] = []
    t = start
    while True:
        nxt = schedule.next_after(t, tz)
        if nxt is None or nxt > end:
            return found
        found.append(nxt)
        t = nxt


class Handler(TaskHandler):
    def handle(self, task: Any) -> Any:
        return None


# --------------------------------------------------------------------------- field semantics


class TestRegularScheduleFields:
    def test_default_fires_every_minute_at_second_zero(self) -> None:
        s = RegularSchedule()
        start = ts(2024, 5, 1, 12, 0, 30)
        assert points(s, start, start + 180) == [ts(2024, 5, 1, 12, m) for m in (1, 2, 3)]

    def test_one_second_granularity(self) -> None:
        s = RegularSchedule(seconds=None)
        start = ts(2024, 5, 1)
        assert points(s, start, start + 5) == [start + i for i in range(1, 6)]

    def test_star_none_int_and_set_are_equivalent_forms(self) -> None:
        assert RegularSchedule(seconds="*") == RegularSchedule(seconds=None)
        assert RegularSchedule(minutes=5) == RegularSchedule(minutes={5})
        assert RegularSchedule(minutes=[5, 10]) == RegularSchedule(minutes=frozenset({10, 5}))
        assert RegularSchedule(minutes=range(0, 60, 30)) == RegularSchedule(minutes={0, 30})
        s = RegularSchedule(seconds={0, 30}, minutes="*")
        assert s.seconds == {0, 30} and s.minutes == set(range(60))  # old attribute meaning

    def test_readme_example_twice_an_hour(self) -> None:
        s = RegularSchedule(seconds={0}, minutes={0, 30})
        start = ts(2024, 5, 1, 9, 10)
        assert points(s, start, start + 3 * 3600) == [
            ts(2024, 5, 1, 9, 30),
            ts(2024, 5, 1, 10, 0),
            ts(2024, 5, 1, 10, 30),
            ts(2024, 5, 1, 11, 0),
            ts(2024, 5, 1, 11, 30),
            ts(2024, 5, 1, 12, 0),
        ]

    def test_weekdays_count_from_monday_zero(self) -> None:
        s = RegularSchedule(minutes=0, hours=9, weekdays={0, 6})  # Monday and Sunday
        start = ts(2024, 4, 29)  # a Monday
        days = [
            datetime.fromtimestamp(p, UTC).strftime("%a %d")
            for p in points(s, start, start + 14 * 86400)
        ]
        assert days == ["Mon 29", "Sun 05", "Mon 06", "Sun 12"]

    def test_days_months_and_weekdays_alone(self) -> None:
        s = RegularSchedule(minutes=0, hours=0, days={1, 15}, months={2, 3})
        got = [local(p, UTC)[:10] for p in points(s, ts(2024, 1, 1), ts(2025, 1, 1))]
        assert got == ["2024-02-01", "2024-02-15", "2024-03-01", "2024-03-15"]

    def test_days_and_weekdays_both_restricted_match_either_like_cron(self) -> None:
        # the 13th of the month OR a Friday: cron's rule (taskkit 0.2 wrongly ANDed them)
        s = RegularSchedule(minutes=0, hours=0, days={13}, weekdays={4})
        got = [local(p, UTC)[:10] for p in points(s, ts(2024, 9, 1), ts(2024, 10, 1))]
        assert got == ["2024-09-06", "2024-09-13", "2024-09-20", "2024-09-27"]
        cron = CronSchedule("0 0 13 * FRI")
        assert points(cron, ts(2024, 9, 1), ts(2024, 10, 1)) == points(
            s, ts(2024, 9, 1), ts(2024, 10, 1)
        )

    def test_day_31_skips_short_months(self) -> None:
        s = RegularSchedule(minutes=0, hours=0, days=31)
        got = [local(p, UTC)[:7] for p in points(s, ts(2024, 1, 1), ts(2025, 1, 1))]
        assert got == ["2024-01", "2024-03", "2024-05", "2024-07", "2024-08", "2024-10", "2024-12"]

    def test_previous_at_or_before_includes_t(self) -> None:
        s = RegularSchedule(seconds={0, 30})
        t = ts(2024, 5, 1, 12, 0, 30)
        assert s.previous_at_or_before(t, UTC) == t
        assert s.previous_at_or_before(t - 0.5, UTC) == t - 30
        assert s.previous_at_or_before(t + 0.5, UTC) == t
        assert s.next_after(t, UTC) == t + 30
        assert s.next_after(t - 0.5, UTC) == t

    def test_schedule_zone_wins_over_scheduler_zone(self) -> None:
        s = RegularSchedule(minutes=0, hours=9, tzinfo=JST)
        start = ts(2024, 5, 1, 1)  # 10:00 in Tokyo, 21:00 the day before in New York
        assert local(s.next_after(start, NY), JST) == "2024-05-02T09:00:00+09:00"
        plain = RegularSchedule(minutes=0, hours=9)
        assert local(plain.next_after(start, NY)) == "2024-05-01T09:00:00-04:00"

    def test_fixed_offset_zone(self) -> None:
        s = RegularSchedule(minutes=0)
        got = points(s, ts(2024, 5, 1, 10, 30), ts(2024, 5, 1, 12, 30), JST)
        assert [local(p, JST) for p in got] == [
            "2024-05-01T20:00:00+09:00",
            "2024-05-01T21:00:00+09:00",
        ]

    def test_pickles_and_hashes(self) -> None:
        s = RegularSchedule(
            seconds={0, 30}, weekdays={6}, tzinfo=NY, duplication_policy=OnlyEarliest()
        )
        assert pickle.loads(pickle.dumps(s)) == s
        assert hash(s) == hash(pickle.loads(pickle.dumps(s)))
        assert isinstance(s, Schedule)
        with pytest.raises(AttributeError):
            s.seconds = frozenset()  # type: ignore[misc]


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seconds": {60}}, "seconds value 60 is out of range 0..59"),
        ({"seconds": 60}, "out of range"),
        ({"minutes": -1}, "minutes value -1 is out of range"),
        ({"hours": 24}, "hours value 24"),
        ({"days": {0}}, "days value 0 is out of range 1..31"),
        ({"days": 32}, "days value 32"),
        ({"weekdays": {7}}, "weekdays value 7 is out of range 0..6"),
        ({"months": {0}}, "months value 0 is out of range 1..12"),
        ({"months": 13}, "months value 13"),
        ({"seconds": set()}, "seconds is empty"),
        ({"seconds": "x"}, "must be '*', None, an int or a set of ints"),
        ({"seconds": "0"}, "must be '*', None"),
        ({"seconds": 1.5}, "not 1.5"),
        ({"seconds": True}, "not True"),
        ({"minutes": {1, "2"}}, "values must be ints, not str"),
        ({"minutes": {1.0}}, "values must be ints, not float"),
        ({"minutes": object()}, "not object"),
        ({"days": {30}, "months": 2}, "never fires"),
        ({"days": {31}, "months": {4, 6}}, "never fires"),
        ({"tzinfo": "Asia/Tokyo"}, "tzinfo must be a datetime.tzinfo"),
        ({"duplication_policy": None}, "duplication_policy must be"),
    ],
)
def test_regular_schedule_validation(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ScheduleError) as info:
        RegularSchedule(**kwargs)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_days_31_with_weekdays_is_valid_because_either_matches() -> None:
    s = RegularSchedule(minutes=0, hours=0, days={30}, months=2, weekdays={0})
    assert len(points(s, ts(2024, 2, 1), ts(2024, 3, 1))) == 4  # the Mondays of February


@pytest.mark.slow
def test_validation_does_not_rely_on_assert() -> None:
    """Under ``python -O`` (asserts stripped) bad values still raise ScheduleError."""
    code = (
        "from taskkit import RegularSchedule, CronSchedule, ScheduleError\n"
        "for make in (lambda: RegularSchedule(seconds={60}), lambda: RegularSchedule(weekdays=7),"
        " lambda: CronSchedule('61 * * * *'), lambda: CronSchedule('*/0 * * * *')):\n"
        "    try:\n"
        "        make()\n"
        "    except ScheduleError:\n"
        "        pass\n"
        "    else:\n"
        "        raise SystemExit('accepted a bad schedule')\n"
        "assert False, 'asserts are on'\n"
    )
    done = subprocess.run(
        [sys.executable, "-O", "-c", code], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr + done.stdout


# --------------------------------------------------------------------------- cron


class TestCronSchedule:
    def test_five_and_six_fields(self) -> None:
        start = ts(2024, 5, 1)
        assert points(CronSchedule("*/15 * * * *"), start, start + 3600) == [
            start + 900 * i for i in range(1, 5)
        ]
        assert points(CronSchedule("*/20 * * * * *"), start, start + 60) == [
            start + 20,
            start + 40,
            start + 60,
        ]

    def test_aliases_and_whitespace(self) -> None:
        start = ts(2024, 5, 1, 0, 30)
        assert CronSchedule("@hourly").next_after(start, UTC) == ts(2024, 5, 1, 1)
        assert CronSchedule("@DAILY").next_after(start, UTC) == ts(2024, 5, 2)
        assert CronSchedule("  0   12 * * 1-5 ").expression == "0 12 * * 1-5"

    def test_registered_as_schedule_kind_cron(self) -> None:
        factory = registries().schedules.get("cron")
        s = factory("30 2 * * *", NY)
        assert isinstance(s, CronSchedule) and s.tzinfo is NY
        assert local(s.next_after(ts(2024, 5, 1), UTC)) == "2024-05-01T02:30:00-04:00"
        with pytest.raises(ValueError, match="invalid cron expression"):
            factory("61 * * * *", None)

    @pytest.mark.parametrize(
        "expression",
        [
            "",
            "* * *",
            "* * * * * * *",
            "61 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "* * * 13 *",
            "*/0 * * * *",
            "hello world foo bar baz",
            "1-0 * * * *",
            "0 0 30 2 *",
            "MON#6 * * * *",
        ],
    )
    def test_bad_expressions_raise_schedule_error(self, expression: str) -> None:
        with pytest.raises(ScheduleError, match="cron expression"):
            CronSchedule(expression)

    def test_non_string_expression(self) -> None:
        with pytest.raises(ScheduleError, match="must be a str"):
            CronSchedule(5)  # type: ignore[arg-type]

    @settings(max_examples=150, deadline=None)
    @given(st.text(alphabet="0123456789*/,-#LW? abcMONJA@", max_size=24))
    def test_any_text_either_parses_or_raises_schedule_error(self, text: str) -> None:
        try:
            s = CronSchedule(text)
        except ScheduleError:
            return
        nxt = s.next_after(ts(2024, 1, 1), UTC)
        assert nxt is None or nxt > ts(2024, 1, 1)

    def test_same_points_as_the_equivalent_regular_schedule(self) -> None:
        regular = RegularSchedule(seconds=0, minutes={0, 30}, hours={8, 20}, weekdays={0, 2, 4})
        cron = CronSchedule("0,30 8,20 * * MON,WED,FRI")
        start, end = ts(2024, 3, 1, tz=NY), ts(2024, 3, 20, tz=NY)
        assert points(regular, start, end, NY) == points(cron, start, end, NY)

    def test_pickles(self) -> None:
        s = CronSchedule("0 9 * * *", NY, OnlyEarliest())
        assert pickle.loads(pickle.dumps(s)) == s


# --------------------------------------------------------------------------- DST


def _matches(s: RegularSchedule, dt: datetime) -> bool:
    if not (dt.second in s.seconds and dt.minute in s.minutes and dt.hour in s.hours):
        return False
    if dt.month not in s.months:
        return False
    day, weekday = dt.day in s.days, dt.weekday() in s.weekdays
    if "days" in s._restricted and "weekdays" in s._restricted:
        return day or weekday
    return day and weekday


def _model(s: RegularSchedule, zone: tzinfo, lo: int, hi: int) -> list[float]:
    """The documented semantics, by brute force over every second of [lo, hi]."""
    found: set[float] = set()
    if not s.follows_wall_clock:  # elapsed time: every real instant whose local time matches
        for u in range(lo, hi + 1):
            if _matches(s, datetime.fromtimestamp(u, zone)):
                found.add(float(u))
        return sorted(found)
    wall = datetime.fromtimestamp(lo, zone).replace(tzinfo=None) - timedelta(hours=3)
    end = datetime.fromtimestamp(hi, zone).replace(tzinfo=None) + timedelta(hours=3)
    while wall <= end:  # wall clock: each matching wall time once
        if _matches(s, wall):
            aware = wall.replace(tzinfo=zone)
            exists = aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall
            point = aware.timestamp() if exists else _gap_end(wall, zone)
            if lo <= point <= hi:
                found.add(point)
        wall += timedelta(seconds=1)
    return sorted(found)


DST_SCHEDULES = [
    RegularSchedule(minutes=0),  # hourly
    RegularSchedule(seconds=set(range(0, 60, 5))),  # every 5 s
    RegularSchedule(minutes=30, hours=2),  # daily 02:30
    RegularSchedule(minutes=30, hours=1),  # daily 01:30
    RegularSchedule(minutes={0, 15, 30, 45}, hours={1, 2, 3}),
    RegularSchedule(seconds=None, hours={1, 2}),  # every second of 01:00-02:59
]


@pytest.mark.parametrize("day", [(2025, 3, 9), (2025, 11, 2)], ids=["spring", "fall"])
@pytest.mark.parametrize("schedule", DST_SCHEDULES, ids=repr)
def test_dst_answers_match_the_model(schedule: RegularSchedule, day: tuple[int, int, int]) -> None:
    lo = int(ts(*day, tz=NY))
    hi = lo + 5 * 3600
    expected = _model(schedule, NY, lo, hi)
    assert points(schedule, lo - 1, hi, NY) == expected
    rnd = random.Random(day[1])
    for t in [rnd.uniform(lo, hi) for _ in range(150)] + [float(p) for p in expected[:50]]:
        i = bisect.bisect_right(expected, t)
        if i:
            assert schedule.previous_at_or_before(t, NY) == expected[i - 1], local(t)
        if i < len(expected):
            assert schedule.next_after(t, NY) == expected[i], local(t)


class TestDstInNewYork:
    def test_hourly_fires_every_real_hour(self) -> None:
        hourly = RegularSchedule(minutes=0)
        for day, hours in (((2025, 3, 9), 23), ((2025, 11, 2), 25)):
            start = ts(*day, tz=NY)
            end = ts(day[0], day[1], day[2] + 1, tz=NY) - 1
            assert end + 1 - start == hours * 3600
            got = points(hourly, start, end, NY)
            assert len(got) == hours - 1  # (midnight, next midnight)
            assert {b - a for a, b in zip([start, *got], got)} == {3600.0}

    def test_spring_forward_nonexistent_0230_fires_once_at_the_jump(self) -> None:
        daily = RegularSchedule(minutes=30, hours=2)
        got = points(daily, ts(2025, 3, 8, tz=NY), ts(2025, 3, 11, tz=NY), NY)
        assert [local(p) for p in got] == [
            "2025-03-08T02:30:00-05:00",
            "2025-03-09T03:00:00-04:00",  # 02:30 does not exist: the first instant after it
            "2025-03-10T02:30:00-04:00",
        ]

    def test_fall_back_repeated_0130_fires_once_at_first_occurrence(self) -> None:
        daily = RegularSchedule(minutes=30, hours=1)
        got = points(daily, ts(2025, 11, 1, tz=NY), ts(2025, 11, 4, tz=NY), NY)
        assert [local(p) for p in got] == [
            "2025-11-01T01:30:00-04:00",
            "2025-11-02T01:30:00-04:00",  # not again at 01:30-05:00
            "2025-11-03T01:30:00-05:00",
        ]
        second_pass = ts(2025, 11, 2, 1, 40, tz=NY, fold=1)
        assert local(daily.previous_at_or_before(second_pass, NY)) == "2025-11-02T01:30:00-04:00"
        assert local(daily.next_after(second_pass, NY)) == "2025-11-03T01:30:00-05:00"

    def test_every_minute_keeps_firing_through_the_repeated_hour(self) -> None:
        # The Sidekiq Enterprise #5049 failure: minutely jobs stopped for the repeated hour.
        minutely = RegularSchedule()
        start = ts(2025, 11, 2, 0, 30, tz=NY)
        got = points(minutely, start, start + 3 * 3600, NY)
        assert len(got) == 180
        assert {b - a for a, b in pairwise(got)} == {60.0}

    def test_cron_matches_debian_cron(self) -> None:
        # 5-field expressions at a fixed time behave like cronsim's own (Debian cron) rules.
        from cronsim import CronSim

        for expression in ("30 2 * * *", "30 1 * * *", "0 * * * *", "*/10 * * * *"):
            ours = CronSchedule(expression)
            for day in ((2025, 3, 9), (2025, 11, 2)):
                start = datetime(*day, tzinfo=NY) - timedelta(days=1)  # type: ignore[misc]
                theirs = CronSim(expression, start)
                expected = [next(theirs).timestamp() for _ in range(60)]
                got = points(ours, start.timestamp(), expected[-1], NY)
                assert got == expected, expression


# --------------------------------------------------------------------------- policies


def test_policies_keep_taskkit_02_call_signature() -> None:
    pts = [datetime(2024, 1, 1, h, tzinfo=UTC) for h in range(3)]
    assert OnlyLatest()(pts, None) == pts[-1:]
    assert OnlyEarliest()(pts, pts[0]) == pts[:1]
    assert OnlyLatest()([], None) == []


# --------------------------------------------------------------------------- entries


def _entry(**changes: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "key": "k",
        "schedule": RegularSchedule(),
        "group": "g",
        "name": "n",
        "data": {"x": 1},
    }
    item.update(changes)
    return item


class TestNormalizeEntries:
    def test_readme_forms(self) -> None:
        handler = Handler()
        entries = {
            "scheduler_name": [
                ScheduleEntry(
                    key="a",
                    group="g",
                    name="test2",
                    data=handler.encode_data("g", "test2", "SOME DATA"),
                    schedule=RegularSchedule(seconds={0}, minutes={0, 30}),
                ),
                {
                    "key": "b",
                    "group": "g",
                    "name": "test3",
                    "data": 2,
                    "schedule": RegularSchedule(seconds={0}, minutes={30}),
                },
            ],
            "another_scheduler": [],
        }
        result = normalize_entries(entries, handler, 1024)
        assert list(result) == ["scheduler_name", "another_scheduler"]
        a, b = result["scheduler_name"]
        assert a is entries["scheduler_name"][0]
        assert b == ScheduleEntry(
            "b", RegularSchedule(seconds={0}, minutes={30}), "g", "test3", b"2"
        )
        assert result["another_scheduler"] == []

    def test_dict_result_ttl(self) -> None:
        (entry,) = normalize_entries({"s": [_entry(result_ttl=60)]}, Handler(), 1024)["s"]
        assert entry.result_ttl == 60.0

    @pytest.mark.parametrize(
        ("entries", "message"),
        [
            ([], "must be a mapping"),
            ({"": []}, "scheduler name must not be empty"),
            ({"bad\nname": []}, "printable"),
            ({5: []}, "scheduler name must be a str"),
            ({"s": "abc"}, "entries must be a list"),
            ({"s": {"key": "k"}}, "entries must be a list"),
            ({"s": [42]}, "must be a ScheduleEntry or a dict, not int"),
            ({"s": [{"key": "k", "group": "g", "name": "n", "data": 1}]}, "missing schedule"),
            (
                {"s": [{"group": "g", "name": "n", "data": 1, "schedule": RegularSchedule()}]},
                "missing key",
            ),
            ({"s": [_entry(ttl=5)]}, "unknown field(s) 'ttl'"),
            ({"s": [_entry(), _entry()]}, "duplicate entry key 'k'"),
            ({"s": [_entry(key="")]}, "key must not be empty"),
            ({"s": [_entry(key="a\tb")]}, "printable"),
            ({"s": [_entry(group="")]}, "group must not be empty"),
            ({"s": [_entry(name="has\ttab")]}, "printable ASCII"),
            ({"s": [_entry(group="x" * 129)]}, "limit is 128"),
            ({"s": [_entry(schedule="0 * * * *")]}, "must be a Schedule"),
            ({"s": [_entry(schedule=lambda points, last: points)]}, "must be a Schedule"),
            ({"s": [_entry(result_ttl=-1)]}, "result_ttl must be a positive"),
            ({"s": [_entry(result_ttl="1")]}, "result_ttl must be a number"),
            ({"s": [_entry(data=object())]}, "encode_data failed"),
            ({"s": [_entry(data="x" * 2000)]}, "over the limit of 1024 bytes"),
        ],
    )
    def test_invalid_input_raises_schedule_error(self, entries: Any, message: str) -> None:
        with pytest.raises(ScheduleError) as info:
            normalize_entries(entries, Handler(), 1024)
        assert message in str(info.value)

    def test_old_style_schedule_gets_a_pointer_to_the_new_protocol(self) -> None:
        class OldSchedule:
            def get_timezone(self) -> None:
                return None

            def __call__(self, points: list[datetime], last: datetime | None) -> list[datetime]:
                return points

        with pytest.raises(ScheduleError, match=r"taskkit 0\.2 style schedule"):
            normalize_entries({"s": [_entry(schedule=OldSchedule())]}, Handler(), 1024)

    def test_encode_data_must_return_bytes(self) -> None:
        class Bad(Handler):
            def encode_data(self, group: str, task_name: str, data: Any) -> bytes:
                return "text"  # type: ignore[return-value]

        with pytest.raises(ScheduleError, match="encode_data returned str, not bytes"):
            normalize_entries({"s": [_entry()]}, Bad(), 1024)

    def test_oversized_entry_object(self) -> None:
        entry = ScheduleEntry("k", RegularSchedule(), "g", "n", b"x" * 11)
        with pytest.raises(ScheduleError, match="over the limit") as info:
            normalize_entries({"s": [entry]}, Handler(), 10)
        assert isinstance(info.value.__cause__, PayloadTooLarge)

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"data": "text"}, "data must be bytes encoded like TaskHandler().encode_data"),
            ({"key": None}, "key must be a str"),
            ({"group": "a:b"}, "group 'a:b' must be printable ASCII"),
            ({"schedule": None}, "must be a Schedule"),
            ({"result_ttl": 0}, "positive"),
        ],
    )
    def test_schedule_entry_validates_itself(self, kwargs: dict[str, Any], message: str) -> None:
        fields: dict[str, Any] = {
            "key": "k",
            "schedule": RegularSchedule(),
            "group": "g",
            "name": "n",
            "data": b"",
        }
        fields.update(kwargs)
        with pytest.raises(ScheduleError) as info:
            ScheduleEntry(**fields)
        assert message in str(info.value)


def test_custom_schedule_satisfies_the_protocol() -> None:
    class EveryTenSeconds:
        duplication_policy = OnlyLatest()

        def next_after(self, t: float, tz: tzinfo) -> float | None:
            return (t // 10 + 1) * 10

        def previous_at_or_before(self, t: float, tz: tzinfo) -> float | None:
            return t // 10 * 10

    entry = ScheduleEntry("k", EveryTenSeconds(), "g", "n", b"")
    assert isinstance(entry.schedule, Schedule)
