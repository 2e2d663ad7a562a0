"""Backend outages as one process reports them: one WARNING, one INFO, the rest DEBUG."""

from __future__ import annotations

import logging
import threading

import pytest
from taskkit import BackendUnavailable
from taskkit._health import BackendHealth, is_unavailable, one_line

log = logging.getLogger("taskkit.test.health")


def _chained(cause: BaseException) -> RuntimeError:
    try:
        try:
            raise cause
        except BaseException as exc:
            raise RuntimeError("the driver wrapped it") from exc
    except RuntimeError as wrapped:
        return wrapped


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(),
        BackendUnavailable("down"),
        TimeoutError(),
        OSError("no route to host"),
        _chained(ConnectionResetError()),
    ],
    ids=["connection", "backend-unavailable", "timeout", "os", "cause"],
)
def test_connection_trouble_counts_as_unavailable(exc: BaseException) -> None:
    assert is_unavailable(exc)


def test_an_error_raised_while_handling_an_outage_counts_too() -> None:
    caught: BaseException | None = None
    try:
        try:
            raise ConnectionError("lost")
        except ConnectionError:
            raise KeyError("while handling it")  # noqa: B904 - the implicit __context__ is the point
    except KeyError as exc:
        caught = exc
    assert caught is not None and caught.__cause__ is None and caught.__context__ is not None
    assert is_unavailable(caught)


@pytest.mark.parametrize("exc", [ValueError("bug"), KeyError("k"), _chained(ValueError())])
def test_a_bug_is_not_an_outage(exc: BaseException) -> None:
    assert not is_unavailable(exc)


def test_a_cyclic_chain_ends() -> None:
    exc = RuntimeError("a")
    exc.__cause__ = exc
    assert not is_unavailable(exc)


def test_one_line_is_the_type_and_the_first_line() -> None:
    assert one_line(ValueError("first\nsecond")) == "ValueError: first"
    assert one_line(ValueError("  \n")) == "ValueError"
    assert one_line(ConnectionError()) == "ConnectionError"


def test_an_outage_is_one_warning_and_one_info(caplog: pytest.LogCaptureFixture) -> None:
    health = BackendHealth(log, "redis")
    with caplog.at_level(logging.DEBUG, logger=log.name):
        health.succeeded()  # nothing to report: no outage
        assert not health.down
        for attempt in range(5):
            health.failed(f"claiming (attempt {attempt})", ConnectionError("refused\nmore"))
        assert health.down
        health.succeeded()
        health.succeeded()
    assert not health.down
    levels = [(r.levelname, r.getMessage()) for r in caplog.records if r.levelno > logging.DEBUG]
    assert len(levels) == 2
    assert levels[0][0] == "WARNING"
    assert (
        "backend redis unreachable (claiming (attempt 0): ConnectionError: refused)"
        in (levels[0][1])
    )
    assert levels[1][0] == "INFO" and "backend redis reachable again" in levels[1][1]
    debug = [r for r in caplog.records if r.levelno == logging.DEBUG]
    assert len(debug) == 5 and all(r.exc_info for r in debug), "each retry, with its traceback"


def test_threads_failing_at_once_report_the_outage_once(caplog: pytest.LogCaptureFixture) -> None:
    health = BackendHealth(log, "redis")
    start = threading.Barrier(8)

    def fail() -> None:
        start.wait(10)
        health.failed("renewing", ConnectionError("refused"))

    threads = [threading.Thread(target=fail) for _ in range(8)]
    with caplog.at_level(logging.WARNING, logger=log.name):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    assert [r.levelname for r in caplog.records] == ["WARNING"]
