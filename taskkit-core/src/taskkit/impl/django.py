"""The taskkit 0.2 import path of the Django backend: ``from taskkit.impl.django import make_kit``.

A thin forwarder to the ``taskkit-django`` distribution.
"""

from __future__ import annotations

try:
    from taskkit_django import DjangoBackend, initiate_on_commit, make_kit
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise ImportError(
        "taskkit.impl.django needs the taskkit-django distribution: pip install taskkit-django"
    ) from exc

__all__ = ["DjangoBackend", "initiate_on_commit", "make_kit"]
