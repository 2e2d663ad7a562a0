"""Bad input: refused at enqueue with a typed error and nothing written."""

from __future__ import annotations

from typing import Any

import pytest
from taskkit import Backend, InvalidTask, Kit, PayloadTooLarge, Task, TaskHandler

from .._base import KitTestBase, Timing
from ..helpers import claim_one, raises, violated

__all__ = ["BadInputTests", "BytesHandler"]

#: Group or task names the validation refuses, with why.
BAD_NAMES: dict[str, object] = {
    "empty": "",
    "too-long": "x" * 129,
    "colon": "mail:send",
    "brace": "a{b}",
    "star": "a*",
    "tab": "a\tb",
    "outer-space": " a",
    "newline": "a\nb",
    "non-ascii": "caf\u00e9",
    "not-a-string": 42,
}

LIMIT = 4096


class BytesHandler(TaskHandler):
    """Passes bytes through unchanged, so payload sizes are exact."""

    def handle(self, task: Task) -> Any:  # pragma: no cover - never run here
        raise NotImplementedError

    def encode_data(self, group: str, task_name: str, data: Any) -> bytes:
        return data  # type: ignore[no-any-return]

    def encode_result(self, task: Task, result: Any) -> bytes:
        return result  # type: ignore[no-any-return]

    def decode_result(self, task: Task, encoded: bytes) -> Any:
        return encoded


class BadInputTests(KitTestBase):
    """``Kit.initiate_task`` refuses bad names and oversized payloads before the backend is
    touched; at the limit, payloads are stored whole."""

    def _kit(self, backend: Backend) -> Kit:
        return Kit(backend, BytesHandler(), max_data_size=LIMIT)

    def _assert_nothing_written(self, backend: Backend, group: str, task_id: str) -> None:
        assert backend.get_outcome(task_id) is None, violated("a refused task left a record behind")
        stats = backend.stats(group)
        assert (stats.queued, stats.running) == (0, 0), violated("a refused task was queued")

    @pytest.mark.parametrize("size", [LIMIT - 1, LIMIT])
    def test_payload_up_to_the_limit_is_accepted(
        self, size: int, backend: Backend, timing: Timing, group: str
    ) -> None:
        kit = self._kit(backend)
        result = kit.initiate_task(group, "blob", b"x" * size, due=timing.now())
        claim = claim_one(backend, group, "w1", timing.long_lease, 3)
        assert (claim.task.id, len(claim.task.data)) == (result.id, size), violated(
            f"a {size}-byte payload (at most the limit) must be stored whole",
            got=f"{len(claim.task.data)} bytes",
        )

    @pytest.mark.parametrize("size", [LIMIT + 1, 100 * 1024 * 1024])
    def test_oversized_payload_is_refused(
        self, size: int, backend: Backend, timing: Timing, group: str
    ) -> None:
        kit = self._kit(backend)
        with raises(
            PayloadTooLarge, f"a {size}-byte payload over the {LIMIT}-byte limit must be refused"
        ) as info:
            kit.initiate_task(group, "blob", b"x" * size, due=timing.now(), task_id="too-big-1")
        assert (info.value.size, info.value.limit) == (size, LIMIT), violated(
            "PayloadTooLarge must name the payload's size and the limit",
            got=(info.value.size, info.value.limit),
        )
        self._assert_nothing_written(backend, group, "too-big-1")

    @pytest.mark.parametrize("kind", sorted(BAD_NAMES))
    def test_bad_group_is_refused(self, kind: str, backend: Backend, timing: Timing) -> None:
        kit = self._kit(backend)
        with raises(InvalidTask, f"a bad group name ({kind}) must be refused with InvalidTask"):
            kit.initiate_task(BAD_NAMES[kind], "job", b"", task_id="bad-group-1")  # type: ignore[arg-type]
        assert backend.get_outcome("bad-group-1") is None, violated("a refused task was stored")

    @pytest.mark.parametrize("kind", sorted(BAD_NAMES))
    def test_bad_task_name_is_refused(
        self, kind: str, backend: Backend, timing: Timing, group: str
    ) -> None:
        kit = self._kit(backend)
        with raises(InvalidTask, f"a bad task name ({kind}) must be refused with InvalidTask"):
            kit.initiate_task(group, BAD_NAMES[kind], b"", task_id="bad-name-1")  # type: ignore[arg-type]
        self._assert_nothing_written(backend, group, "bad-name-1")

    def test_a_bad_item_refuses_the_whole_batch(
        self, backend: Backend, timing: Timing, group: str
    ) -> None:
        kit = self._kit(backend)
        with raises(InvalidTask, "a batch with one bad task must be refused with InvalidTask"):
            kit.initiate_tasks(
                {"group": group, "name": "ok", "data": b"1", "task_id": "batch-ok-1"},
                {"group": group, "name": "bad:name", "data": b"2", "task_id": "batch-bad-1"},
            )
        self._assert_nothing_written(backend, group, "batch-ok-1")

    def test_non_bytes_data_is_refused(self, backend: Backend, group: str) -> None:
        kit = self._kit(backend)
        with raises(InvalidTask, "task data that is not bytes must be refused with InvalidTask"):
            kit.initiate_task(group, "job", "not bytes", task_id="str-data-1")
        self._assert_nothing_written(backend, group, "str-data-1")
