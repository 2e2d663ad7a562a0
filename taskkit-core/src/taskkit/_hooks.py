"""Calling the plugins' hooks: the one place the kit and the runtime both go through.

A :class:`HookCaller` holds a kit's plugin manager (the process-wide one, or one of its own
when the kit has kit-local plugins). Lifecycle hooks go through :meth:`HookCaller.call`,
which logs a plugin's error instead of letting it break the task or the worker.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pluggy

from .plugins import get_plugin_manager, make_plugin_manager

__all__ = ["HookCaller"]

# The logger a plugin's error has always been reported on (it was the kit's).
log = logging.getLogger("taskkit")


class HookCaller:
    """Calls the hooks of one plugin manager.

    :param plugin_manager: the manager whose hooks are called.
    """

    def __init__(self, plugin_manager: pluggy.PluginManager) -> None:
        self.plugin_manager = plugin_manager

    @classmethod
    def for_plugins(cls, plugins: Sequence[object] = ()) -> HookCaller:
        """The caller a kit with these kit-local ``plugins`` uses (none: the process-wide
        plugin manager; some: a manager of their own over the process-wide plugins)."""
        plugins = tuple(plugins)
        return cls(make_plugin_manager(plugins=plugins) if plugins else get_plugin_manager())

    @property
    def hook(self) -> Any:
        """The plugin manager's hooks (``hooks.hook.taskkit_execute_task(...)``)."""
        return self.plugin_manager.hook

    def listened(self, name: str) -> bool:
        """Whether any plugin implements the hook ``name``."""
        return bool(getattr(self.hook, name).get_hookimpls())

    def call(self, name: str, **kwargs: Any) -> None:
        """Call a lifecycle hook; a plugin's error is logged, never breaks the task."""
        try:
            getattr(self.hook, name)(**kwargs)
        except Exception:
            log.exception("taskkit plugin hook %s raised", name)
