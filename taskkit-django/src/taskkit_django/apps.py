"""The Django app configuration (app label ``taskkit``, as in taskkit 0.2)."""

from __future__ import annotations

from django.apps import AppConfig


class TaskkitConfig(AppConfig):
    """``"taskkit_django"`` in ``INSTALLED_APPS``.

    The label stays ``taskkit`` (the label of the original ``taskkit.contrib.django`` app), so
    tables, migrations and admin URLs are those of taskkit 0.2 installations.
    """

    name = "taskkit_django"
    label = "taskkit"
    verbose_name = "taskkit"
    default_auto_field = "django.db.models.BigAutoField"
