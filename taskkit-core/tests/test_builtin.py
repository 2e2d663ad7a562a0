"""taskkit's own parts register through the hooks, and each builds through its registry."""

from __future__ import annotations

import pytest
from taskkit import ConfigurationError, ExponentialBackoff, FakeClock, MemoryBackend, NoRetry
from taskkit.plugins import registries
from taskkit.schedule import CronSchedule


def test_builtins_register_through_the_hooks() -> None:
    regs = registries()
    assert "memory" in regs.backends.names()
    assert {"json", "pickle"} <= set(regs.serializers.names())
    assert {"exponential", "none"} <= set(regs.retry_policies.names())
    assert "cron" in regs.schedules.names()


def test_the_memory_backend_builds_by_url_with_its_options() -> None:
    clock = FakeClock(5.0)
    backend = registries().backends.for_url("memory://")("memory://", clock=clock)
    assert isinstance(backend, MemoryBackend) and backend.now() == 5.0


def test_msgpack_is_registered_when_installed() -> None:
    pytest.importorskip("msgpack", reason="msgpack is an optional extra")
    serializer = registries().serializers.get("msgpack")()
    assert serializer.loads(serializer.dumps({"a": [1, b"x"]})) == {"a": [1, b"x"]}


def test_pickle_is_built_through_its_registry_with_a_key() -> None:
    factory = registries().serializers.get("pickle")
    serializer = factory(key=b"k")
    assert serializer.loads(serializer.dumps({1, 2})) == {1, 2}
    with pytest.raises(ConfigurationError, match="HMAC key"):
        factory()


@pytest.mark.parametrize("name", registries().serializers.names())
def test_every_registered_serializer_builds_or_says_how(name: str) -> None:
    factory = registries().serializers.get(name)
    try:
        serializer = factory()
    except ConfigurationError as exc:
        # A part that needs an argument says which, and how to pass it.
        assert name in str(exc) and f"serializers.get({name!r})(" in str(exc), str(exc)
        return
    assert serializer.loads(serializer.dumps([1, "a"])) == [1, "a"]


def test_the_registered_retry_policies_build_with_their_options() -> None:
    policies = registries().retry_policies
    assert policies.get("exponential")(max_retries=2) == ExponentialBackoff(max_retries=2)
    assert isinstance(policies.get("none")(), NoRetry)


def test_cron_is_a_schedule_kind_built_from_an_expression() -> None:
    schedule = registries().schedules.get("cron")("*/5 * * * *", None)
    assert isinstance(schedule, CronSchedule)
    assert schedule == CronSchedule.from_expression("*/5 * * * *", None)
