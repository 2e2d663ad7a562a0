"""Forwards the models of ``taskkit_django`` (their ``app_label`` is ``taskkit``)."""

from __future__ import annotations

from taskkit_django.models import ControlRecord, ScheduleMark, State, TaskRecord

__all__ = ["ControlRecord", "ScheduleMark", "State", "TaskRecord"]
