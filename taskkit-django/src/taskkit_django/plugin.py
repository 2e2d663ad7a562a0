"""The taskkit plugin of this distribution: the ``django`` backend and its URL schemes.

``django://`` (or ``django://<alias>``) uses a database of the configured Django project;
``sqlite://``, ``postgresql://`` and ``mysql://`` URLs run the embedded mode (see
:mod:`taskkit_django._standalone`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from taskkit.backend import Backend
from taskkit.plugins import BackendRegistry, hookimpl

from ._standalone import SCHEMES


def backend_from_url(url: str, **options: Any) -> Backend:
    """Build a :class:`~taskkit_django.DjangoBackend` from a ``django://`` or database URL.

    Options (``clock``, ``dead_letter_limit``, ``control_kept``, ``using``) go to the
    backend, whose class is the flavour of the database (:meth:`DjangoBackend.flavour`).
    """
    # Loaded on use: the entry point loads with taskkit, the backend loads Django.
    from .backend import DjangoBackend  # noqa: PLC0415

    scheme = url.split("://", 1)[0].lower()
    if scheme == "django":
        using = options.pop("using", None) or urlsplit(url).netloc or "default"
        return DjangoBackend.flavour(using)(using, **options)
    from ._standalone import canonical_url, configure  # noqa: PLC0415

    url = canonical_url(url)
    using = configure(url)
    return DjangoBackend.flavour(using)(using, url=url, **options)


@hookimpl
def taskkit_register_backends(registry: BackendRegistry) -> None:
    registry.add(
        "django",
        backend_from_url,
        schemes=("django", *SCHEMES),
        distribution="taskkit-django",
    )
