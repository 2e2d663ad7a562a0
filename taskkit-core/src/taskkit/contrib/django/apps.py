"""The app configuration of the 0.2 entry ``'taskkit.contrib.django'`` (label ``taskkit``)."""

from __future__ import annotations

from taskkit_django import apps as _apps


class TaskkitContribConfig(_apps.TaskkitConfig):
    """Same label, models and migrations as ``taskkit_django``; only the module name differs."""

    default = True
    name = "taskkit.contrib.django"
    label = "taskkit"
