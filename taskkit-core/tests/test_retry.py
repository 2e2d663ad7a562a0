"""Retry policies: the capped, jittered, bounded back-off, the exception filter, no retry."""

from __future__ import annotations

import time
from typing import Any

import pytest
from taskkit import ExponentialBackoff, NoRetry, RetryPolicy, Task
from taskkit.retry import is_retryable


def task(retry_count: int = 0) -> Task:
    now = time.time()
    return Task("t", "g", "n", b"null", now, now, retry_count=retry_count)


def test_exponential_backoff_is_capped_jittered_and_bounded() -> None:
    policy = ExponentialBackoff(base=1, factor=2, cap=10, max_retries=5, jitter=0.5)
    delays = [policy.next_interval(task(n), ValueError()) for n in range(7)]
    for n, delay in enumerate(delays[:5]):
        full = min(10, 2**n)
        assert delay is not None and full * 0.5 <= delay <= full
    assert delays[5] is None and delays[6] is None


def test_without_jitter_the_delays_are_exact_and_the_cap_holds_for_any_count() -> None:
    policy = ExponentialBackoff(base=2, factor=3, cap=100, max_retries=10_000, jitter=0)
    delays = [policy.next_interval(task(n), ValueError()) for n in range(6)]
    assert delays == [2, 6, 18, 54, 100, 100]
    # A count far past the cap must not overflow the float arithmetic.
    assert policy.next_interval(task(5_000), ValueError()) == 100


def test_the_default_policy_gives_up_within_minutes() -> None:
    policy = ExponentialBackoff()
    delays = [policy.next_interval(task(n), KeyError()) for n in range(10)]
    taken = [d for d in delays if d is not None]
    assert len(taken) == 5 and delays[5:] == [None] * 5  # five retries, then it fails
    assert all(d > 0 for d in taken)
    assert sum(taken) <= 160  # about 2.5 minutes at most (the old default: hours)


def test_retry_on_is_a_field_of_the_policy() -> None:
    policy = ExponentialBackoff(retry_on=(ConnectionError, TimeoutError), retry_unless=())
    assert policy.next_interval(task(), KeyError()) is None
    assert policy.next_interval(task(), TimeoutError()) is not None
    single = ExponentialBackoff(retry_on=OSError, retry_unless=FileNotFoundError)
    assert single.retry_on == (OSError,) and single.retry_unless == (FileNotFoundError,)
    assert single.next_interval(task(), FileNotFoundError()) is None
    assert single.next_interval(task(), PermissionError()) is not None


def test_retry_unless_wins_where_both_match() -> None:
    assert is_retryable(KeyError(), (LookupError,), (IndexError,))
    assert not is_retryable(IndexError(), (LookupError,), (IndexError,))
    assert not is_retryable(KeyError(), (ConnectionError,))
    assert is_retryable(KeyError())  # by default every Exception


@pytest.mark.parametrize("bad", ["ConnectionError", (ConnectionError, 3), int])
@pytest.mark.parametrize("field", ["retry_on", "retry_unless"])
def test_a_bad_exception_filter_is_refused(field: str, bad: Any) -> None:
    with pytest.raises(TypeError, match=field):
        ExponentialBackoff(**{field: bad})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"base": -1}, "base and cap"),
        ({"cap": -1}, "base and cap"),
        ({"factor": 0.5}, "factor"),
        ({"max_retries": -1}, "max_retries"),
        ({"jitter": 1.5}, "jitter"),
        ({"jitter": -0.1}, "jitter"),
    ],
)
def test_bad_numbers_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ExponentialBackoff(**options)


def test_no_retry_never_retries() -> None:
    assert NoRetry().next_interval(task(), ConnectionError()) is None


def test_the_policies_are_retry_policies_with_registry_names() -> None:
    assert isinstance(ExponentialBackoff(), RetryPolicy) and isinstance(NoRetry(), RetryPolicy)
    assert (ExponentialBackoff.name, NoRetry.name) == ("exponential", "none")
