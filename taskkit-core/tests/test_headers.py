"""Task headers: the read-only mapping, its limits and its stored text form (the check at
enqueue, ``_validation.validate_headers``, is tested here too: it is the limits' other half)."""

from __future__ import annotations

import pickle

import pytest
from taskkit import InvalidTask, PayloadTooLarge, Task, TaskHeaders
from taskkit._headers import (
    EMPTY_HEADERS,
    MAX_HEADER_NAME_LENGTH,
    MAX_HEADERS,
    MAX_HEADERS_SIZE,
    decode_headers,
    encode_headers,
)
from taskkit._validation import validate_headers

TRACE = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}


def test_a_task_keeps_a_dict_as_read_only_headers_and_stays_hashable() -> None:
    given = {"tenant": "acme"}
    task = Task("t", "g", "n", b"", 1.0, 1.0, headers=given)
    given["tenant"] = "changed later"
    assert isinstance(task.headers, TaskHeaders)
    assert task.headers == {"tenant": "acme"}, "a copy: the caller's dict no longer matters"
    with pytest.raises(TypeError):
        task.headers["tenant"] = "x"  # type: ignore[index]
    same = Task("t", "g", "n", b"", 1.0, 1.0, headers={"tenant": "acme"})
    assert hash(task) == hash(same) and task == same
    assert len({task, same}) == 1


def test_headers_are_empty_by_default_and_equal_to_any_empty_mapping() -> None:
    task = Task("t", "g", "n", b"", 1.0, 1.0)
    assert task.headers is EMPTY_HEADERS and task.headers == {} and not task.headers
    assert task == Task("t", "g", "n", b"", 1.0, 1.0, headers={})
    assert task != Task("t", "g", "n", b"", 1.0, 1.0, headers={"a": "b"})


def test_positional_construction_is_unchanged() -> None:
    # The eleven fields of taskkit 1.0 before headers, in their order: headers come last.
    task = Task("t", "g", "n", b"d", 2.0, 1.0, 3.0, 1, 60.0, 5.0, 2)
    assert (task.scheduled, task.retry_count, task.ttl, task.timeout, task.deliveries) == (
        3.0,
        1,
        60.0,
        5.0,
        2,
    )
    assert task.headers == {}


def test_evolve_and_pickle_keep_the_headers() -> None:
    task = Task("t", "g", "n", b"", 1.0, 1.0, headers=TRACE)
    assert task.evolve(retry_count=1).headers == TRACE
    assert task.evolve(headers={"a": "b"}).headers == {"a": "b"}
    copy = pickle.loads(pickle.dumps(task))
    assert copy == task and isinstance(copy.headers, TaskHeaders)


def test_the_mapping_compares_with_other_mappings_only() -> None:
    headers = TaskHeaders({"a": "1", "b": "2"})
    assert headers == {"b": "2", "a": "1"}, "order does not matter"
    assert headers == TaskHeaders([("a", "1"), ("b", "2")])
    assert headers != [("a", "1"), ("b", "2")]
    assert list(headers) == ["a", "b"] and headers["b"] == "2" and len(headers) == 2
    assert repr(headers) == "TaskHeaders({'a': '1', 'b': '2'})"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        TRACE,
        {"x": ""},
        {"tenant": 'Zürich "north" \\ 東京'},
        {"~!#$%&'*+-.^_`|": "v"},
        {"n" * MAX_HEADER_NAME_LENGTH: "v"},
        {f"h{i}": "v" for i in range(MAX_HEADERS)},
    ],
)
def test_valid_headers_pass_and_round_trip_through_their_stored_form(
    headers: dict[str, str],
) -> None:
    checked = validate_headers(headers)
    assert checked == headers and isinstance(checked, TaskHeaders)
    assert decode_headers(encode_headers(checked)) == headers


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ([("a", "b")], "headers must be a mapping of str to str, not list"),
        ({f"h{i}": "v" for i in range(MAX_HEADERS + 1)}, "33 headers given; the limit is 32"),
        ({1: "v"}, "header names must be str, not int"),
        ({"": "v"}, "must be 1 to 128 printable ASCII characters without spaces"),
        ({"two words": "v"}, "printable ASCII characters without spaces"),
        ({"é": "v"}, "printable ASCII characters without spaces"),
        ({"tab\t": "v"}, "printable ASCII characters without spaces"),
        ({"n" * (MAX_HEADER_NAME_LENGTH + 1): "v"}, "1 to 128 printable"),
        ({"a": 1}, "header 'a' must be a str, not int"),
        ({"a": "line\nbreak"}, "header 'a' holds a control or unprintable character"),
        ({"a": "nul\x00"}, "control or unprintable character"),
        ({"a": "\ud800"}, "control or unprintable character"),
    ],
)
def test_bad_headers_are_refused_with_the_reason(headers: object, message: str) -> None:
    with pytest.raises(InvalidTask, match=message):
        validate_headers(headers)


def test_the_size_cap_counts_the_stored_bytes() -> None:
    # Two-byte characters: the cap is on the UTF-8 of the stored form, not on characters.
    fits = {"a": "é" * ((MAX_HEADERS_SIZE - len('{"a":""}')) // 2)}
    assert len(encode_headers(fits).encode()) <= MAX_HEADERS_SIZE
    assert validate_headers(fits) == fits
    over = {"a": fits["a"] + "é"}
    with pytest.raises(PayloadTooLarge) as caught:
        validate_headers(over)
    assert caught.value.size == len(encode_headers(over).encode()) == MAX_HEADERS_SIZE + 2
    assert caught.value.limit == MAX_HEADERS_SIZE


def test_the_stored_form_is_empty_for_none_and_holds_no_control_character() -> None:
    assert encode_headers({}) == "" and encode_headers(EMPTY_HEADERS) == ""
    assert decode_headers("") is EMPTY_HEADERS
    assert decode_headers(None) is EMPTY_HEADERS and decode_headers(b"") is EMPTY_HEADERS
    # Backends may split on a control character around it (Redis uses \x1f).
    text = encode_headers({"a": 'q"\\é'})
    assert text == '{"a":"q\\"\\\\é"}'
    assert all(ord(c) >= 0x20 for c in text)
    assert decode_headers(text.encode()) == {"a": 'q"\\é'}


@pytest.mark.parametrize("text", ["not json", "[1]", '{"a": 1}', '{"a": null}', b"\xff"])
def test_a_damaged_stored_form_is_a_value_error(text: str | bytes) -> None:
    with pytest.raises(ValueError, match="stored headers are not"):
        decode_headers(text)
