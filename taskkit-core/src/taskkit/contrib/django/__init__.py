"""``'taskkit.contrib.django'`` in ``INSTALLED_APPS``: the taskkit 0.2 name of the Django app.

It forwards to the ``taskkit-django`` distribution (app ``taskkit_django``) with the same app
label, ``taskkit``, the same tables and the same migrations. New projects may list
``'taskkit_django'`` instead; list one of the two, not both.
"""

from __future__ import annotations

from taskkit.impl import missing_distribution

try:
    import taskkit_django  # noqa: F401
except ImportError as exc:
    _hint = missing_distribution(exc, __name__, "taskkit-django", ("taskkit_django", "django"))
    if _hint is None:
        raise
    raise _hint from exc
