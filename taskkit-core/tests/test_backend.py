"""The helpers the backend contract gives backend authors: ``earliest`` and
``OutcomeWrite.retry_due`` (one home each, used by the core and by every backend)."""

from __future__ import annotations

import pytest
from taskkit import Claim, MemoryBackend, OutcomeWrite, Task
from taskkit.backend import earliest


def test_earliest_ignores_unknown_times() -> None:
    assert earliest() is None
    assert earliest(None, None) is None
    assert earliest(None, 3.0) == 3.0
    assert earliest(5.0, None, 2.5, 4.0) == 2.5


def _claim() -> Claim:
    return Claim(Task("id", "g", "n", b"", 0.0, 0.0), "token", 10.0, "w1")


def test_a_retry_write_names_its_due_time() -> None:
    assert OutcomeWrite(_claim(), "retry", "boom", 12).retry_due() == 12.0
    with pytest.raises(ValueError, match="a retry needs a due time"):
        OutcomeWrite(_claim(), "retry", "boom").retry_due()


def test_record_outcomes_refuses_a_retry_without_a_due_time() -> None:
    backend = MemoryBackend()
    kit_task = Task("t1", "g", "n", b"", 0.0, 0.0)
    backend.put([kit_task])
    [claim] = backend.claim("g", "w1", 1, 30.0, 3).claims
    with pytest.raises(ValueError, match="a retry needs a due time"):
        backend.record_outcomes([OutcomeWrite(claim, "retry", "boom")])
    outcome = backend.get_outcome("t1")
    assert outcome is not None and outcome.state.value == "running", "the refused write changed it"
