"""taskkit-django: taskkit's Django app and ORM backend.

Add ``"taskkit_django"`` (or the 0.2 name ``"taskkit.contrib.django"``) to
``INSTALLED_APPS``, run ``migrate``, then::

    from taskkit_django import make_kit
    kit = make_kit(Handler())                 # the "default" database
    kit = make_kit(Handler(), using="jobs")   # another alias

Without a Django project use a database URL: ``taskkit.make_kit("sqlite:///tasks.db", h)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._kit import initiate_on_commit, make_kit

if TYPE_CHECKING:
    from .backend import DjangoBackend

__all__ = ["DjangoBackend", "initiate_on_commit", "make_kit"]
__version__ = "1.0.0a1"


def __getattr__(name: str) -> Any:
    # The backend imports the models, which need a ready app registry: load it on demand,
    # so that ``INSTALLED_APPS = ["taskkit_django"]`` can import this package early.
    if name == "DjangoBackend":
        from .backend import DjangoBackend  # noqa: PLC0415

        return DjangoBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
