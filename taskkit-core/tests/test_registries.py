"""The typed registries: names and URL schemes, clear errors, redacted URLs."""

from __future__ import annotations

import pytest
from taskkit import ConfigurationError, MemoryBackend
from taskkit.registries import BackendRegistry, SerializerRegistry, redact_url
from taskkit.serializers import JSONSerializer


def _memory(url: str, **options: object) -> MemoryBackend:
    return MemoryBackend()


def test_a_name_is_registered_once() -> None:
    registry = SerializerRegistry()
    registry.add("json", JSONSerializer)
    registry.add("json", JSONSerializer)  # the same factory again (a plugin loaded twice)
    with pytest.raises(ConfigurationError, match="serializer 'json' is registered twice"):
        registry.add("json", lambda: JSONSerializer())
    assert registry.get("json") is JSONSerializer
    assert registry.names() == ["json"] == list(registry) and "json" in registry


def test_an_unknown_name_lists_the_known_ones() -> None:
    registry = SerializerRegistry()
    with pytest.raises(ConfigurationError, match=r"unknown serializer 'x' \(known: none\)"):
        registry.get("x")
    registry.add("json", JSONSerializer)
    registry.add("alpha", JSONSerializer)
    with pytest.raises(ConfigurationError, match=r"\(known: alpha, json\)"):
        registry.get("x")


def test_a_backend_serves_its_name_as_scheme_unless_it_names_schemes() -> None:
    registry = BackendRegistry()
    registry.add("plain", _memory)
    registry.add("multi", _memory, schemes=("one", "two"))
    assert registry.schemes() == ["one", "plain", "two"]
    assert registry.names() == ["multi", "plain"]
    assert registry.for_url("TWO://host") is _memory, "schemes are case-insensitive"
    assert registry.get("multi") is _memory


def test_two_backends_may_not_claim_one_scheme_or_one_name() -> None:
    registry = BackendRegistry()
    registry.add("first", _memory, schemes=("shared",))
    with pytest.raises(ConfigurationError, match="'shared' claimed by 'first' and 'second'"):
        registry.add("second", _memory, schemes=("shared",))
    with pytest.raises(ConfigurationError, match="backend 'first' is registered twice"):
        registry.add("first", _memory, schemes=("other",))
    assert registry.schemes() == ["shared"], "a refused registration adds nothing"
    with pytest.raises(ConfigurationError, match="unknown backend 'second'"):
        registry.get("second")


def test_missing_backend_distribution_is_named() -> None:
    with pytest.raises(ConfigurationError, match="pip install taskkit-redis"):
        BackendRegistry().for_url("redis://localhost")
    with pytest.raises(ConfigurationError, match="pip install taskkit-django"):
        BackendRegistry().for_url("postgresql://localhost/db")


def test_an_unknown_scheme_lists_the_served_ones() -> None:
    registry = BackendRegistry()
    registry.add("memory", _memory)
    with pytest.raises(ConfigurationError, match=r"scheme 'nope' \(known schemes: memory\)"):
        registry.for_url("nope://x")


def test_a_url_without_a_scheme_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="not a backend URL") as caught:
        BackendRegistry().for_url("localhost:6379")
    assert "'localhost:6379'" in str(caught.value)


def test_passwords_are_redacted() -> None:
    assert redact_url("redis://user:s3cret@host:6379/0") == "redis://user:***@host:6379/0"
    assert "s3cret" not in redact_url("rediss://:s3cret@host")
    assert redact_url("redis://user@host") == "redis://user@host"
    assert redact_url("redis://host:6379/0") == "redis://host:6379/0"
    assert redact_url("postgresql://u:p@ss@host/db") == "postgresql://u:***@host/db"
