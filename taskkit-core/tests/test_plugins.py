"""The plugin manager: entry points, kit-local plugins, and the registries the hooks fill.

Entry points are real ones: a ``*.dist-info`` folder on ``sys.path`` declaring a
``taskkit`` entry point, as an installed distribution does.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest
from taskkit import ConfigurationError, Kit, MemoryBackend, Task, TaskHandler, hookimpl, make_kit
from taskkit.plugins import (
    BackendRegistry,
    collect_registries,
    get_plugin_manager,
    make_plugin_manager,
    registries,
)


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


def test_an_unknown_hook_fails_fast() -> None:
    class Typo:
        @hookimpl
        def taskkit_task_sucseeded(self, task: Task) -> None: ...

    with pytest.raises(ConfigurationError, match="unknown hook"):
        make_plugin_manager(load_entry_points=False, plugins=(Typo(),))


def test_a_kit_local_plugin_gets_the_lifecycle_hooks() -> None:
    plugin = LocalLifecycle()
    kit = Kit(MemoryBackend(), TaskHandler(), plugins=[plugin])
    result = kit.initiate_task("g", "n", None)
    assert plugin.initiated == [result.id]
    other = Kit(MemoryBackend(), TaskHandler())
    other.initiate_task("g", "n", None)
    assert plugin.initiated == [result.id], "a kit-local plugin hears only its own kit"


def test_a_kit_local_plugin_may_not_implement_a_registration_hook() -> None:
    with pytest.raises(ConfigurationError, match=r"taskkit_register_backends.*entry-point"):
        Kit(MemoryBackend(), TaskHandler(), plugins=[LocalRegistration()])
    assert "local-only" not in registries().backends.names()


def test_make_kit_passes_kit_plugins_on() -> None:
    plugin = LocalLifecycle()
    kit = make_kit("memory://", TaskHandler(), plugins=[plugin])
    kit.initiate_task("g", "n", None)
    assert len(plugin.initiated) == 1


def test_collect_registries_runs_the_registration_hooks_into_fresh_registries() -> None:
    manager = make_plugin_manager(load_entry_points=False)
    manager.register(LocalRegistration())
    collected = collect_registries(manager)
    assert {"local-only", "memory"} <= set(collected.backends.names())
    assert "local-only" not in registries().backends.names(), "the process-wide ones unchanged"


def test_the_process_wide_manager_is_built_once() -> None:
    assert get_plugin_manager() is get_plugin_manager()
    assert registries() is registries()


def _install(site: Path, plugin_module: str, source: str | None) -> str:
    """Write a distribution into ``site`` whose ``taskkit`` entry point names
    ``plugin_module`` (with ``source`` as its code, or no module at all); return its name."""
    dist = f"probe-{uuid.uuid4().hex[:8]}"
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[taskkit]\n{plugin_module} = {plugin_module}\n")
    if source is not None:
        (site / f"{plugin_module}.py").write_text(source)
    return dist


def test_an_entry_point_plugin_registers_its_parts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = f"probe_plugin_{uuid.uuid4().hex[:8]}"
    _install(
        tmp_path,
        module,
        "from taskkit import MemoryBackend, hookimpl\n\n"
        "@hookimpl\n"
        "def taskkit_register_backends(registry):\n"
        "    registry.add('probe', lambda url, **options: MemoryBackend(), schemes=('probe',))\n",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        manager = make_plugin_manager(load_entry_points=True)
        assert manager.get_plugin(module) is not None
        assert "probe" in collect_registries(manager).backends.schemes()
    finally:
        sys.modules.pop(module, None)


def test_an_entry_point_that_fails_to_import_names_the_plugin_and_its_distribution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = f"probe_broken_{uuid.uuid4().hex[:8]}"
    dist = _install(tmp_path, module, "import a_module_nobody_installed\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigurationError) as caught:
        make_plugin_manager(load_entry_points=True)
    message = str(caught.value)
    assert f"the taskkit plugin {module!r}" in message and f"from distribution {dist}" in message
    assert "a_module_nobody_installed" in message and "failed to import" in message
