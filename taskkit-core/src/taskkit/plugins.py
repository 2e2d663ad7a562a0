"""The plugin manager: the built-ins, the ``taskkit`` entry points, and the registries they fill.

The registry types live in :mod:`taskkit.registries` and the hook reference (with
:data:`hookimpl`) in :mod:`taskkit.hookspecs`; both are re-exported here, where plugins have
always imported them from.
"""

from __future__ import annotations

import functools
import logging
import threading
from importlib.metadata import entry_points

import pluggy

from . import _builtin, hookspecs
from .errors import ConfigurationError
from .hookspecs import hookimpl
from .registries import (
    BackendRegistry,
    Registries,
    RetryPolicyRegistry,
    ScheduleRegistry,
    SerializerRegistry,
    redact_url,
)

__all__ = [
    "BackendRegistry",
    "Registries",
    "RetryPolicyRegistry",
    "ScheduleRegistry",
    "SerializerRegistry",
    "collect_registries",
    "get_plugin_manager",
    "hookimpl",
    "make_plugin_manager",
    "redact_url",
    "registries",
]

log = logging.getLogger(__name__)

_lock = threading.Lock()


@functools.cache
def _default_manager() -> pluggy.PluginManager:
    return make_plugin_manager(load_entry_points=True)


def make_plugin_manager(
    *, load_entry_points: bool = True, plugins: tuple[object, ...] = ()
) -> pluggy.PluginManager:
    """A fresh manager with the built-ins, entry-point plugins and ``plugins`` registered.

    ``plugins`` are a kit's own (``Kit(..., plugins=[...])``): they may implement the
    lifecycle and execution hooks. The registration hooks fill the process-wide registries
    once, from the entry-point plugins, so a kit-local plugin that implements one is refused.

    :raises ConfigurationError: a plugin implements an unknown hook, an entry point fails to
        import, or one of ``plugins`` implements a registration hook.
    """
    pm = pluggy.PluginManager(hookspecs.NAME)
    pm.add_hookspecs(hookspecs)
    pm.register(_builtin, name="taskkit.builtin")
    if load_entry_points:
        _load_entry_points(pm)
    for plugin in plugins:
        pm.register(plugin)
        _refuse_local_registration(pm, plugin)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise ConfigurationError(f"a taskkit plugin implements an unknown hook: {exc}") from exc
    return pm


def _refuse_local_registration(pm: pluggy.PluginManager, plugin: object) -> None:
    for name in hookspecs.REGISTRATION_HOOKS:
        if any(impl.plugin is plugin for impl in getattr(pm.hook, name).get_hookimpls()):
            raise ConfigurationError(
                f"the kit plugin {plugin!r} implements {name}, but registration hooks run once "
                f"per process, never for one kit's plugins: register it through the 'taskkit' "
                f"entry-point group instead"
            )


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    """Register every ``taskkit`` entry point; a broken one is a clear error, not a traceback."""
    for ep in entry_points(group=hookspecs.NAME):
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        try:
            plugin = ep.load()
        except Exception as exc:
            dist = getattr(ep.dist, "name", "?")
            raise ConfigurationError(
                f"the taskkit plugin {ep.name!r} ({ep.value}, from distribution {dist}) "
                f"failed to import: {exc!r}"
            ) from exc
        pm.register(plugin, name=ep.name)
        log.debug("loaded taskkit plugin %s from %s", ep.name, ep.value)


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide manager: built-ins plus every installed ``taskkit`` entry point."""
    with _lock:
        return _default_manager()


def collect_registries(pm: pluggy.PluginManager) -> Registries:
    """Run the registration hooks of ``pm`` into fresh registries."""
    regs = Registries()
    pm.hook.taskkit_register_backends(registry=regs.backends)
    pm.hook.taskkit_register_serializers(registry=regs.serializers)
    pm.hook.taskkit_register_retry_policies(registry=regs.retry_policies)
    pm.hook.taskkit_register_schedules(registry=regs.schedules)
    return regs


@functools.cache
def _default_registries() -> Registries:
    return collect_registries(get_plugin_manager())


def registries() -> Registries:
    """The registries of the process-wide plugin manager."""
    return _default_registries()
