"""The plugin manager and the typed registries the registration hooks fill."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import tzinfo
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import pluggy

from . import hookspecs
from .errors import ConfigurationError

if TYPE_CHECKING:
    from .backend import Backend
    from .retry import RetryPolicy
    from .schedule import Schedule
    from .serializers import Serializer

__all__ = [
    "BackendRegistry",
    "RetryPolicyRegistry",
    "ScheduleRegistry",
    "SerializerRegistry",
    "get_plugin_manager",
    "hookimpl",
    "registries",
]

log = logging.getLogger(__name__)

#: Marks hook implementations: ``@hookimpl def taskkit_register_backends(registry): ...``
hookimpl = pluggy.HookimplMarker(hookspecs.NAME)

F = TypeVar("F")


class _Registry(Generic[F]):
    kind = "entry"

    def __init__(self) -> None:
        self._factories: dict[str, F] = {}

    def add(self, name: str, factory: F) -> None:
        """Register ``factory`` under ``name``; a second registration of a name is an error."""
        if name in self._factories and self._factories[name] is not factory:
            raise ConfigurationError(f"{self.kind} {name!r} is registered twice")
        self._factories[name] = factory

    def get(self, name: str) -> F:
        try:
            return self._factories[name]
        except KeyError:
            known = ", ".join(sorted(self._factories)) or "none"
            raise ConfigurationError(f"unknown {self.kind} {name!r} (known: {known})") from None

    def names(self) -> list[str]:
        return sorted(self._factories)

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


BackendFactory = Callable[..., "Backend"]


@dataclass(frozen=True)
class _BackendEntry:
    name: str
    factory: BackendFactory
    schemes: tuple[str, ...]
    distribution: str | None


class BackendRegistry:
    """Backends by name and URL scheme."""

    def __init__(self) -> None:
        self._by_name: dict[str, _BackendEntry] = {}
        self._by_scheme: dict[str, _BackendEntry] = {}

    def add(
        self,
        name: str,
        factory: BackendFactory,
        schemes: tuple[str, ...] = (),
        distribution: str | None = None,
    ) -> None:
        """Register ``factory(url, **options)`` as backend ``name``, serving ``schemes``."""
        entry = _BackendEntry(name, factory, tuple(schemes) or (name,), distribution)
        if name in self._by_name:
            raise ConfigurationError(f"backend {name!r} is registered twice")
        for scheme in entry.schemes:
            if scheme in self._by_scheme:
                other = self._by_scheme[scheme].name
                raise ConfigurationError(f"URL scheme {scheme!r} claimed by {other!r} and {name!r}")
        self._by_name[name] = entry
        for scheme in entry.schemes:
            self._by_scheme[scheme] = entry

    def for_url(self, url: str) -> BackendFactory:
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if not scheme:
            raise ConfigurationError(f"{_redact(url)!r} is not a backend URL (scheme://...)")
        entry = self._by_scheme.get(scheme)
        if entry is None:
            hint = _KNOWN_DISTRIBUTIONS.get(scheme)
            msg = f"no backend serves URL scheme {scheme!r}"
            if hint:
                msg += f"; install it with: pip install {hint}"
            else:
                msg += f" (known schemes: {', '.join(sorted(self._by_scheme)) or 'none'})"
            raise ConfigurationError(msg)
        return entry.factory

    def get(self, name: str) -> BackendFactory:
        try:
            return self._by_name[name].factory
        except KeyError:
            raise ConfigurationError(f"unknown backend {name!r}") from None

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def schemes(self) -> list[str]:
        return sorted(self._by_scheme)


# Schemes served by our own distributions, so a missing install gets a precise hint.
_KNOWN_DISTRIBUTIONS = {
    "redis": "taskkit-redis",
    "rediss": "taskkit-redis",
    "unix": "taskkit-redis",
    "django": "taskkit-django",
    "sqlite": "taskkit-django",
    "postgresql": "taskkit-django",
    "postgres": "taskkit-django",
    "pgsql": "taskkit-django",
    "mysql": "taskkit-django",
    "mariadb": "taskkit-django",
}


def _redact(url: str) -> str:
    """Hide the password of a URL before it reaches a message or a log."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else f"{scheme}://{user}@{host}"


redact_url = _redact


class SerializerRegistry(_Registry[Callable[..., "Serializer"]]):
    """Serializers by name."""

    kind = "serializer"


class RetryPolicyRegistry(_Registry[Callable[..., "RetryPolicy"]]):
    """Retry policies by name."""

    kind = "retry policy"


ScheduleFactory = Callable[[str, "tzinfo | None"], "Schedule"]


class ScheduleRegistry(_Registry[ScheduleFactory]):
    """Schedule kinds by name."""

    kind = "schedule kind"


@dataclass
class Registries:
    """Everything the registration hooks registered."""

    backends: BackendRegistry = field(default_factory=BackendRegistry)
    serializers: SerializerRegistry = field(default_factory=SerializerRegistry)
    retry_policies: RetryPolicyRegistry = field(default_factory=RetryPolicyRegistry)
    schedules: ScheduleRegistry = field(default_factory=ScheduleRegistry)


_lock = threading.Lock()


@functools.cache
def _default_manager() -> pluggy.PluginManager:
    return make_plugin_manager(load_entry_points=True)


def make_plugin_manager(
    *, load_entry_points: bool = True, plugins: tuple[object, ...] = ()
) -> pluggy.PluginManager:
    """A fresh manager with the built-ins, entry-point plugins and ``plugins`` registered."""
    from . import _builtin  # noqa: PLC0415 - avoids an import cycle

    pm = pluggy.PluginManager(hookspecs.NAME)
    pm.add_hookspecs(hookspecs)
    pm.register(_builtin, name="taskkit.builtin")
    if load_entry_points:
        _load_entry_points(pm)
    for plugin in plugins:
        pm.register(plugin)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise ConfigurationError(f"a taskkit plugin implements an unknown hook: {exc}") from exc
    return pm


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


def get_serializer(name: str, **options: Any) -> Serializer:
    """Build the serializer registered as ``name``."""
    return registries().serializers.get(name)(**options)
