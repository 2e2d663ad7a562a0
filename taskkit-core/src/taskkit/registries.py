"""The typed registries that the registration hooks fill: backends, serializers, retry
policies and schedule kinds.

At run time this module imports nothing of taskkit's but its errors (the rest only for type
annotations), so the hook reference
(:mod:`taskkit.hookspecs`), the built-in parts and the plugin manager
(:mod:`taskkit.plugins`) can all depend on it, and the imports run one way::

    errors <- registries <- hookspecs <- _builtin <- plugins
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import TYPE_CHECKING, Generic, TypeVar

from .errors import ConfigurationError

if TYPE_CHECKING:
    from .backend import Backend
    from .retry import RetryPolicy
    from .schedule import Schedule
    from .serializers import Serializer

__all__ = [
    "BackendFactory",
    "BackendRegistry",
    "Registries",
    "RetryPolicyRegistry",
    "ScheduleFactory",
    "ScheduleRegistry",
    "SerializerRegistry",
    "redact_url",
]

F = TypeVar("F")


class _Registry(Generic[F]):
    """Factories by name; ``kind`` names what they build in error messages."""

    kind = "entry"

    def __init__(self) -> None:
        self._factories: dict[str, F] = {}

    def add(self, name: str, factory: F) -> None:
        """Register ``factory`` under ``name``; a second registration of a name is an error."""
        if name in self._factories and self._factories[name] is not factory:
            raise ConfigurationError(f"{self.kind} {name!r} is registered twice")
        self._factories[name] = factory

    def get(self, name: str) -> F:
        """The factory registered as ``name``.

        :raises ConfigurationError: nothing is registered under ``name`` (the message lists
            what is).
        """
        try:
            return self._factories[name]
        except KeyError:
            known = ", ".join(sorted(self._factories)) or "none"
            raise ConfigurationError(f"unknown {self.kind} {name!r} (known: {known})") from None

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._factories)

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


#: ``factory(url, **options)`` returns a :class:`taskkit.backend.Backend`.
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
        """The factory of the backend that serves ``url``'s scheme.

        :raises ConfigurationError: ``url`` has no scheme, or no backend serves it (naming the
            distribution to install when it is one of taskkit's).
        """
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if not scheme:
            raise ConfigurationError(f"{redact_url(url)!r} is not a backend URL (scheme://...)")
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
        """The factory of backend ``name``.

        :raises ConfigurationError: no backend of that name is registered.
        """
        try:
            return self._by_name[name].factory
        except KeyError:
            raise ConfigurationError(f"unknown backend {name!r}") from None

    def names(self) -> list[str]:
        """The registered backend names, sorted."""
        return sorted(self._by_name)

    def schemes(self) -> list[str]:
        """The URL schemes served, sorted."""
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


def redact_url(url: str) -> str:
    """Hide the password of a URL before it reaches a message or a log."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else f"{scheme}://{user}@{host}"


class SerializerRegistry(_Registry[Callable[..., "Serializer"]]):
    """Serializers by name; ``factory(**options)`` builds one."""

    kind = "serializer"


class RetryPolicyRegistry(_Registry[Callable[..., "RetryPolicy"]]):
    """Retry policies by name; ``factory(**options)`` builds one."""

    kind = "retry policy"


#: ``factory(expression, tzinfo)`` returns a :class:`taskkit.schedule.Schedule`.
ScheduleFactory = Callable[[str, "tzinfo | None"], "Schedule"]


class ScheduleRegistry(_Registry[ScheduleFactory]):
    """Schedule kinds by name; ``factory(expression, tzinfo)`` builds one."""

    kind = "schedule kind"


@dataclass
class Registries:
    """Everything the registration hooks registered."""

    backends: BackendRegistry = field(default_factory=BackendRegistry)
    serializers: SerializerRegistry = field(default_factory=SerializerRegistry)
    retry_policies: RetryPolicyRegistry = field(default_factory=RetryPolicyRegistry)
    schedules: ScheduleRegistry = field(default_factory=ScheduleRegistry)
