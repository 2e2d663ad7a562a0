"""The hook implementations taskkit loads through this distribution's entry point."""

from __future__ import annotations

from typing import Any

from taskkit import ConfigurationError, hookimpl
from taskkit.plugins import BackendRegistry

from .backend import SQLiteBackend

SCHEME = "sqlite-example"


def backend_from_url(url: str, **options: Any) -> SQLiteBackend:
    """``sqlite-example:///relative/path.db`` or ``sqlite-example:////absolute/path.db``.

    Like SQLAlchemy's ``sqlite://`` URLs: three slashes, then the path (a fourth slash makes
    it absolute). Options (``busy_timeout``, ``max_dead_letters``, ``clock``) go to
    :class:`SQLiteBackend`.
    """
    prefix = f"{SCHEME}:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise ConfigurationError(f"expected {prefix}<path to the database file>, got {url!r}")
    return SQLiteBackend(url[len(prefix) :], **options)


@hookimpl
def taskkit_register_backends(registry: BackendRegistry) -> None:
    registry.add(
        "sqlite-example", backend_from_url, schemes=(SCHEME,), distribution="taskkit-sqlite-example"
    )
