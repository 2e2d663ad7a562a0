"""The taskkit 0.2 import paths of the backends (``taskkit.impl.redis``, ``taskkit.impl.django``).

Each module forwards to the backend's own distribution and names it when it is missing.
"""

from __future__ import annotations

__all__ = ["missing_distribution"]


def missing_distribution(
    exc: ImportError, path: str, distribution: str, modules: tuple[str, ...]
) -> ImportError | None:
    """The install hint for ``exc`` if it says that ``distribution`` is not installed.

    That is the case when the module that failed to import (``exc.name``) is exactly one of
    ``modules``: the distribution's own package, or a dependency its install brings. Any other
    ImportError (a broken module inside the distribution, an import error of its own code)
    answers None, and the caller re-raises it unchanged.

    :param exc: what the forwarding import raised.
    :param path: the 0.2 import path that forwards (``taskkit.impl.redis``).
    :param distribution: the distribution to install (``taskkit-redis``).
    :param modules: the top-level modules whose absence means it is not installed.
    """
    if exc.name not in modules:
        return None
    return ImportError(
        f"{path} needs the {distribution} distribution: pip install {distribution}",
        name=exc.name,
    )
