"""Forwards ``manage.py taskkit_worker`` for the ``'taskkit.contrib.django'`` entry."""

from taskkit_django.management.commands.taskkit_worker import Command

__all__ = ["Command"]
