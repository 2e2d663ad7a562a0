"""Registered parts are built through their registries, and kit-local plugins get what the
docs promise: lifecycle and execution hooks, never registration hooks."""

from __future__ import annotations

import pytest
from taskkit import ConfigurationError, Kit, MemoryBackend, Task, TaskHandler, hookimpl, make_kit
from taskkit.plugins import registries
from taskkit.registries import BackendRegistry


class PickledHandler(TaskHandler):
    serializer = "pickle"


def test_naming_pickle_on_a_handler_says_what_to_pass() -> None:
    kit = Kit(MemoryBackend(), PickledHandler())
    with pytest.raises(ConfigurationError, match="HMAC key") as caught:
        kit.initiate_task("g", "n", {"x": 1})
    assert "key=" in str(caught.value)
    assert kit.backend.stats("g").queued == 0, "a refused task was stored"


def test_pickle_is_built_through_its_registry_with_a_key() -> None:
    factory = registries().serializers.get("pickle")
    serializer = factory(key=b"k")
    assert serializer.loads(serializer.dumps({1, 2})) == {1, 2}
    with pytest.raises(ConfigurationError, match="HMAC key"):
        factory()


@pytest.mark.parametrize("name", registries().serializers.names())
def test_every_registered_serializer_builds_or_says_why(name: str) -> None:
    factory = registries().serializers.get(name)
    try:
        serializer = factory()
    except ConfigurationError:
        return
    assert serializer.loads(serializer.dumps([1, "a"])) == [1, "a"]


class LocalLifecycle:
    def __init__(self) -> None:
        self.initiated: list[str] = []

    @hookimpl
    def taskkit_task_initiated(self, task: Task) -> None:
        self.initiated.append(task.id)


class LocalRegistration:
    @hookimpl
    def taskkit_register_backends(self, registry: BackendRegistry) -> None:
        registry.add("local-only", lambda url, **options: MemoryBackend())


def test_a_kit_local_plugin_gets_the_lifecycle_hooks() -> None:
    plugin = LocalLifecycle()
    kit = Kit(MemoryBackend(), TaskHandler(), plugins=[plugin])
    result = kit.initiate_task("g", "n", None)
    assert plugin.initiated == [result.id]


def test_a_kit_local_plugin_may_not_implement_a_registration_hook() -> None:
    with pytest.raises(ConfigurationError, match=r"taskkit_register_backends.*entry-point"):
        Kit(MemoryBackend(), TaskHandler(), plugins=[LocalRegistration()])
    assert "local-only" not in registries().backends.names()


def test_make_kit_passes_kit_plugins_on() -> None:
    plugin = LocalLifecycle()
    kit = make_kit("memory://", TaskHandler(), plugins=[plugin])
    kit.initiate_task("g", "n", None)
    assert len(plugin.initiated) == 1
