"""The backend contract's own code: the helpers it gives backend authors (``earliest``,
``OutcomeWrite.retry_due``, ``outcome_changes``; one home each) and the single-claim methods
and ``release`` that the base class derives from ``record_outcomes``."""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import pytest
from taskkit import Backend, Claim, FakeClock, LeaseLost, MemoryBackend, OutcomeWrite, Task
from taskkit import TaskState as S
from taskkit.backend import OUTCOME_STATES, RELEASE_REASON, Notifier, earliest, outcome_changes


def test_earliest_ignores_unknown_times() -> None:
    assert earliest() is None
    assert earliest(None, None) is None
    assert earliest(None, 3.0) == 3.0
    assert earliest(5.0, None, 2.5, 4.0) == 2.5


def _claim(task_id: str = "id", token: str = "token") -> Claim:
    return Claim(Task(task_id, "g", "n", b"", 0.0, 0.0), token, 10.0, "w1")


# ---------------------------------------------------------------------- retry_due


@pytest.mark.parametrize("action", ["retry", "defer"])
def test_a_requeueing_write_names_its_due_time(action: str) -> None:
    assert OutcomeWrite(_claim(), action, "boom", 12).retry_due() == 12.0  # type: ignore[arg-type]
    for due in (None, math.nan, math.inf):
        with pytest.raises(ValueError, match=f"a {action} needs a due time"):
            OutcomeWrite(_claim(), action, "boom", due).retry_due()  # type: ignore[arg-type]


# ---------------------------------------------------------------------- outcome_changes


def test_every_action_has_its_state() -> None:
    assert dict(OUTCOME_STATES) == {
        "complete": S.SUCCEEDED,
        "retry": S.QUEUED,
        "fail": S.FAILED,
        "discard": S.DISCARDED,
        "acknowledge_cancel": S.CANCELLED,
        "defer": S.QUEUED,
        "bury": S.DEAD,
    }


def test_outcome_changes_work_out_each_write() -> None:
    writes = [
        OutcomeWrite(_claim("a"), "complete", "text result"),
        OutcomeWrite(_claim("b"), "retry", b"retry error", 5.0),
        OutcomeWrite(_claim("c"), "defer", "unknown task", 6.0),
        OutcomeWrite(_claim("d"), "bury", "unknown task for an hour"),
        OutcomeWrite(_claim("e"), "fail", "Traceback"),
    ]
    changes = outcome_changes(writes)
    got = [(c.index, c.claim.task.id, c.state, c.result, c.error, c.due) for c in changes]
    assert got == [
        (0, "a", S.SUCCEEDED, b"text result", None, None),
        (1, "b", S.QUEUED, None, "retry error", 5.0),
        (2, "c", S.QUEUED, None, "unknown task", 6.0),
        (3, "d", S.DEAD, None, "unknown task for an hour", None),
        (4, "e", S.FAILED, None, "Traceback", None),
    ]
    assert [c.retried for c in changes] == [False, True, False, False, False]


def test_outcome_changes_keep_the_first_write_of_each_claim() -> None:
    first, other = _claim("a"), _claim("a", token="newer")
    writes = [
        OutcomeWrite(first, "complete", b"1"),
        OutcomeWrite(other, "fail", "a later claim of the same task"),
        OutcomeWrite(first, "fail", "the same claim again"),
    ]
    assert [c.index for c in outcome_changes(writes)] == [0, 1]


@pytest.mark.parametrize(
    ("bad", "error", "match"),
    [
        (OutcomeWrite(_claim("z"), "defer", "no due"), ValueError, "a defer needs a due time"),
        (OutcomeWrite(_claim("z"), "explode", "x"), ValueError, "unknown outcome action"),  # type: ignore[arg-type]
        (OutcomeWrite(_claim("z"), "fail", 42), TypeError, "bytes or text, not int"),  # type: ignore[arg-type]
    ],
)
def test_outcome_changes_refuse_a_bad_write_anywhere_in_the_batch(
    bad: OutcomeWrite, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        outcome_changes([OutcomeWrite(_claim("a"), "complete", b"fine"), bad])
    # Checked even when it repeats a claim (whose answer would be False anyway).
    with pytest.raises(error, match=match):
        outcome_changes([OutcomeWrite(bad.claim, "complete", b"fine"), bad])


@pytest.mark.parametrize("action", ["retry", "defer"])
def test_a_batch_with_a_bad_write_writes_nothing(action: str) -> None:
    backend = MemoryBackend()
    backend.put([Task("t1", "g", "n", b"", 0.0, 0.0), Task("t2", "g", "n", b"", 0.0, 0.0)])
    good, bad = backend.claim("g", "w1", 2, 30.0, 3).claims
    batch = [OutcomeWrite(good, "complete", b"ok"), OutcomeWrite(bad, action, "boom")]  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=f"a {action} needs a due time"):
        backend.record_outcomes(batch)
    states = {tid: o.state for tid, o in backend.outcomes().items()}
    assert states == {"t1": S.RUNNING, "t2": S.RUNNING}, "the refused batch changed a task"


# ---------------------------------------------------------------------- derived methods


class RecordingBackend(MemoryBackend):
    """The in-memory backend, noting each batch handed to ``record_outcomes``."""

    def __init__(self) -> None:
        super().__init__(clock=FakeClock(1000.0))
        self.batches: list[list[OutcomeWrite]] = []

    def record_outcomes(self, writes: Sequence[OutcomeWrite]) -> list[bool]:
        self.batches.append(list(writes))
        return super().record_outcomes(writes)


def _claimed(backend: MemoryBackend, count: int) -> list[Claim]:
    backend.put([Task(f"t{i}", "g", "n", b"", 0.0, 0.0) for i in range(count)])
    return backend.claim("g", "w1", count, 30.0, 3).claims


def test_the_contract_is_the_primitives_a_backend_cannot_derive() -> None:
    assert Backend.__abstractmethods__ == {
        "now",
        "put",
        "put_scheduled",
        "get_schedule_mark",
        "claim",
        "renew",
        "record_outcomes",
        "release_worker",
        "get_outcome",
        "cancel",
        "publish_control",
        "read_control",
        "list_dead_letters",
        "requeue_dead_letter",
        "stats",
    }


@pytest.mark.parametrize(
    ("method", "args", "write"),
    [
        ("complete", (b"r",), ("complete", b"r", None)),
        ("retry", (50.0, "again"), ("retry", "again", 50.0)),
        ("fail", ("Traceback",), ("fail", "Traceback", None)),
        ("discard", ("no use",), ("discard", "no use", None)),
        ("acknowledge_cancel", ("stopped",), ("acknowledge_cancel", "stopped", None)),
        ("defer", (60.0, "unknown task"), ("defer", "unknown task", 60.0)),
        ("bury", ("unknown task",), ("bury", "unknown task", None)),
    ],
)
def test_each_single_claim_method_is_one_write(
    method: str, args: tuple[object, ...], write: tuple[object, ...]
) -> None:
    backend = RecordingBackend()
    [claim] = _claimed(backend, 1)
    getattr(backend, method)(claim, *args)
    assert [[(w.claim, w.action, w.value, w.due) for w in b] for b in backend.batches] == [
        [(claim, *write)]
    ]
    with pytest.raises(LeaseLost, match="stale"):
        getattr(backend, method)(claim, *args)  # the claim ended: its token is stale


def test_release_defers_every_claim_to_now_in_one_batch() -> None:
    backend = RecordingBackend()
    claims = _claimed(backend, 3)
    backend.complete(claims[1], b"done")  # its token is stale now
    backend.batches.clear()
    backend.release(claims)
    [batch] = backend.batches
    assert [(w.claim, w.action, w.value, w.due) for w in batch] == [
        (c, "defer", RELEASE_REASON, 1000.0) for c in claims
    ]
    states = {tid: o.state for tid, o in backend.outcomes().items()}
    assert states == {"t0": S.QUEUED, "t1": S.SUCCEEDED, "t2": S.QUEUED}
    backend.release([])
    assert len(backend.batches) == 1, "release([]) wrote an empty batch"


# ---------------------------------------------------------------------- claim order, Notifier


def test_claim_order_is_due_time_then_creation_then_id() -> None:
    tasks = [
        Task("b", "g", "n", b"", due=2.0, created=1.0),
        Task("c", "g", "n", b"", due=1.0, created=5.0),
        Task("a", "g", "n", b"", due=2.0, created=1.0),
        Task("d", "g", "n", b"", due=1.0, created=3.0),
    ]
    assert [t.id for t in Backend._claim_order(tasks)] == ["d", "c", "a", "b"]


def _waiting(notifier: Notifier, key: str, timeout: float = 30.0) -> threading.Thread:
    """A thread blocked in ``notifier.wait(key, ...)`` since the key's current version."""
    seen = notifier.version(key)
    thread = threading.Thread(target=notifier.wait, args=(key, seen, timeout), daemon=True)
    thread.start()
    return thread


def test_a_notify_ends_the_waits_on_its_key_only() -> None:
    notifier = Notifier()
    on_a, on_b = _waiting(notifier, "a"), _waiting(notifier, "b")
    notifier.notify("a")
    on_a.join(10)
    assert not on_a.is_alive(), "the wait on 'a' missed its notification"
    assert on_b.is_alive(), "a notification of 'a' ended the wait on 'b'"
    notifier.notify("b")
    on_b.join(10)
    assert not on_b.is_alive()


def test_a_notify_between_reading_the_version_and_waiting_is_not_lost() -> None:
    notifier = Notifier()
    seen = notifier.version("k")
    notifier.notify("k")
    late = threading.Thread(target=notifier.wait, args=("k", seen, 30.0), daemon=True)
    late.start()
    late.join(10)
    assert not late.is_alive()


def test_wake_all_ends_every_wait_in_progress() -> None:
    notifier = Notifier()
    waiters = [_waiting(notifier, key) for key in ("a", "b", "c")]
    notifier.wake_all()
    for waiter in waiters:
        waiter.join(10)
    assert [w.is_alive() for w in waiters] == [False, False, False]
    assert notifier.version("a") == 0, "a wake-up is not a notification"


def test_a_wait_ends_at_its_timeout() -> None:
    notifier = Notifier()
    waiter = _waiting(notifier, "k", timeout=0.05)
    waiter.join(10)
    assert not waiter.is_alive()
