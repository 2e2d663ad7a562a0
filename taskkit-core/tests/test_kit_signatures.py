"""``Kit.start`` and ``Kit.start_processes`` take every argument taskkit 0.2.4 took.

The 0.2.4 signatures below are copied from ``taskkit/kit.py`` of the taskkit 0.2.4 wheel on
PyPI (``pip download --no-deps taskkit==0.2.4``)::

    def start(self, num_processes, num_worker_threads_per_group, schedule_entries={},
              tzinfo=None, polling_interval=None, helper_services=True,
              should_restart=lambda _: False)
    def start_processes(self, num_processes, num_worker_threads_per_group,
                        schedule_entries={}, tzinfo=None, polling_interval=None,
                        helper_services=True, daemon=True)

with ``polling_interval: dict[str, float] | float | None`` and
``helper_services: bool | Callable[[int], bool]``.
"""

from __future__ import annotations

import inspect
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timezone
from typing import Any

import pytest
from taskkit import ConfigurationError, Kit

#: (name, a value of its 0.2.4 type), in 0.2.4's positional order, after ``self``.
START_024: list[tuple[str, list[Any]]] = [
    ("num_processes", [1]),
    ("num_worker_threads_per_group", [{"g": 1}]),
    ("schedule_entries", [{}, {"none": []}]),
    ("tzinfo", [None, timezone.utc]),
    ("polling_interval", [None, 0.5, 2, {"g": 0.5}]),
    ("helper_services", [True, False, lambda index: index == 0]),
    ("should_restart", [lambda process: False]),
]
START_PROCESSES_024: list[tuple[str, list[Any]]] = [
    *START_024[:6],
    ("daemon", [True]),
]


def _params(method: Callable[..., Any]) -> list[inspect.Parameter]:
    return [p for p in inspect.signature(method).parameters.values() if p.name != "self"]


@pytest.mark.parametrize(
    ("method", "old"),
    [(Kit.start, START_024), (Kit.start_processes, START_PROCESSES_024)],
    ids=["start", "start_processes"],
)
def test_the_0_2_4_parameters_come_first_in_the_same_order(
    method: Callable[..., Any], old: list[tuple[str, list[Any]]]
) -> None:
    params = _params(method)
    assert [p.name for p in params[: len(old)]] == [name for name, _ in old]
    for param in params[: len(old)]:
        assert param.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD, param
    # What follows is keyword-only: no 0.2.4 positional call can land on it.
    for param in params[len(old) :]:
        assert param.kind is inspect.Parameter.KEYWORD_ONLY, param


def _deprecated(name: str, value: Any, method: str) -> bool:
    """Whether passing ``name=value`` should warn (the argument is a no-op now)."""
    if name == "helper_services":
        return True
    if name == "polling_interval" and value is not None:
        return method == "start_processes" or isinstance(value, dict)
    return False


def _calls(old: list[tuple[str, list[Any]]]) -> Iterator[tuple[str, Any, dict[str, Any]]]:
    """Every 0.2.4 argument with each of its values, the others at their minimum."""
    required = {"num_processes": 1, "num_worker_threads_per_group": {"g": 1}}
    for name, values in old:
        for value in values:
            yield name, value, {**required, name: value}


@contextmanager
def _expect_warning(expected: bool, name: str) -> Iterator[None]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    deprecations = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    if expected:
        assert deprecations, f"no DeprecationWarning for {name}"
        assert any(name in str(w.message) for w in deprecations), deprecations
        assert all("ignored" in str(w.message) for w in deprecations)
        assert all(w.filename == __file__ for w in deprecations), "warning blames taskkit"
    else:
        assert not deprecations, [str(w.message) for w in deprecations]


def _positional(old: list[tuple[str, list[Any]]], kwargs: dict[str, Any]) -> list[Any]:
    """The same call written positionally, as 0.2.4 code may have written it."""
    defaults = {
        "schedule_entries": {},
        "tzinfo": None,
        "polling_interval": None,
        "helper_services": True,
        "should_restart": lambda process: False,
        "daemon": True,
    }
    return [kwargs.get(name, defaults.get(name)) for name, _ in old]


def _run_start(kit: Kit, *args: Any, **kwargs: Any) -> None:
    """Run ``kit.start`` in a thread until a task went through, then shut it down."""
    finished = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            kit.start(*args, **kwargs)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            finished.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        if not finished.is_set():
            assert kit.initiate_task("g", "double", 2).get(timeout=10) == 4
    finally:
        kit.send_shutdown_event()
    assert finished.wait(10), "kit.start did not return after the shutdown event"
    if errors:
        raise errors[0]


@pytest.mark.parametrize("positional", [False, True], ids=["keywords", "positional"])
def test_start_takes_every_0_2_4_argument(kit: Kit, positional: bool) -> None:
    for name, value, kwargs in _calls(START_024):
        if positional:
            # Written out positionally, helper_services (0.2.4 default True) is always
            # passed, so every such call warns about it.
            with _expect_warning(True, "helper_services"):
                _run_start(kit, *_positional(START_024, kwargs))
        else:
            with _expect_warning(_deprecated(name, value, "start"), name):
                _run_start(kit, **kwargs)


@pytest.mark.parametrize("positional", [False, True], ids=["keywords", "positional"])
def test_start_processes_takes_every_0_2_4_argument(kit: Kit, positional: bool) -> None:
    for name, value, kwargs in _calls(START_PROCESSES_024):
        if positional:
            with _expect_warning(True, "helper_services"):
                handles = kit.start_processes(*_positional(START_PROCESSES_024, kwargs))
        else:
            with _expect_warning(_deprecated(name, value, "start_processes"), name):
                handles = kit.start_processes(**kwargs)
        try:
            assert kit.initiate_task("g", "double", 3).get(timeout=10) == 6
        finally:
            kit.send_shutdown_event()
            for handle in handles:
                handle.join(10)
                assert not handle.is_alive()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("helper_services", "yes"),
        ("helper_services", 3),
        ("polling_interval", 0),
        ("polling_interval", -1.0),
        ("polling_interval", "1"),
        ("polling_interval", {"g": 0}),
        ("polling_interval", {"g": "fast"}),
    ],
)
def test_arguments_of_the_wrong_type_are_refused_before_anything_starts(
    kit: Kit, name: str, value: Any
) -> None:
    with pytest.raises(ConfigurationError, match=name), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        kit.start_processes(1, {"g": 1}, **{name: value})
    # kit.start would block if it accepted the value: run it where it cannot hang the test.
    with pytest.raises(ConfigurationError, match=name), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        _run_start(kit, 1, {"g": 1}, **{name: value})
