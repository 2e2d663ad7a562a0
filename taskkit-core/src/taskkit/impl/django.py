"""The taskkit 0.2 import path of the Django backend: ``from taskkit.impl.django import make_kit``.

A thin forwarder to the ``taskkit-django`` distribution.
"""

from __future__ import annotations

from . import missing_distribution

try:
    from taskkit_django import DjangoBackend, initiate_on_commit, make_kit
except ImportError as exc:
    _hint = missing_distribution(exc, __name__, "taskkit-django", ("taskkit_django", "django"))
    if _hint is None:
        raise
    raise _hint from exc

__all__ = ["DjangoBackend", "initiate_on_commit", "make_kit"]
