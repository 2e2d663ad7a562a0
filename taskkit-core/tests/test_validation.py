"""The checks applied at enqueue: names and task ids, payload sizes, error text, due times."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from taskkit import InvalidTask, PayloadTooLarge
from taskkit._validation import (
    MAX_NAME_LENGTH,
    to_epoch,
    truncate_text,
    validate_name,
    validate_payload,
    validate_task_id,
)


@pytest.mark.parametrize(
    "name", ["g", "Any task group name", "a-b_c.d/e@f", "~!", "x" * MAX_NAME_LENGTH]
)
def test_printable_ascii_names_with_single_inner_spaces_are_valid(name: str) -> None:
    assert validate_name("group", name) == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "group must not be empty"),
        ("x" * (MAX_NAME_LENGTH + 1), "is 129 characters long; the limit is 128"),
        (" lead", "printable ASCII"),
        ("trail ", "printable ASCII"),
        ("two  spaces", "printable ASCII"),
        ("tab\there", "printable ASCII"),
        ("new\nline", "printable ASCII"),
        ("é", "printable ASCII"),
        *[(f"a{c}b", "printable ASCII") for c in ":{}*?[]\\"],
    ],
)
def test_names_that_would_break_keys_or_logs_are_refused(name: str, message: str) -> None:
    with pytest.raises(InvalidTask, match=message) as caught:
        validate_name("group", name)
    assert str(caught.value).startswith("group")


def test_a_name_must_be_a_string() -> None:
    with pytest.raises(InvalidTask, match="task name must be a str, not int"):
        validate_name("task name", 7)


def test_task_ids_follow_the_name_rules() -> None:
    assert validate_task_id("order 42") == "order 42"
    with pytest.raises(InvalidTask, match="task id"):
        validate_task_id("a:b")


def test_a_payload_is_bytes_within_its_limit() -> None:
    assert validate_payload("data", bytearray(b"abc"), 3) == b"abc"
    assert type(validate_payload("data", memoryview(b"abc"), 3)) is bytes
    with pytest.raises(PayloadTooLarge) as caught:
        validate_payload("data", b"abcd", 3)
    assert (caught.value.what, caught.value.size, caught.value.limit) == ("data", 4, 3)
    with pytest.raises(InvalidTask, match="data must be bytes, not str"):
        validate_payload("data", "abc", 3)


def test_long_error_text_keeps_its_end_within_the_limit() -> None:
    text = "Traceback ...\n" + "é" * 1000 + "\nValueError: the actual error"
    cut = truncate_text(text, 200)
    assert len(cut.encode("utf-8")) <= 200
    assert cut.startswith("[…truncated…]\n") and cut.endswith("ValueError: the actual error")
    assert truncate_text("short", 200) == "short"


def test_due_times_are_datetimes_or_epoch_seconds() -> None:
    assert to_epoch(None, default=5.0) == 5.0
    assert to_epoch(12, default=0.0) == 12.0
    aware = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert to_epoch(aware, default=0.0) == aware.timestamp()
    naive = datetime(2026, 1, 1, 12, 0)
    assert to_epoch(naive, default=0.0) == naive.timestamp(), "naive means local time"
    for bad in ("tomorrow", True):
        with pytest.raises(InvalidTask, match="due must be a datetime or epoch seconds"):
            to_epoch(bad, default=0.0)  # type: ignore[arg-type]
