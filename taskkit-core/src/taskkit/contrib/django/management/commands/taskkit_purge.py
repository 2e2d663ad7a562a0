"""Forwards ``manage.py taskkit_purge`` for the ``'taskkit.contrib.django'`` entry."""

from taskkit_django.management.commands.taskkit_purge import Command

__all__ = ["Command"]
