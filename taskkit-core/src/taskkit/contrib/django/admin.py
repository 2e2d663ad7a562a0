"""Forwards the admin registrations of ``taskkit_django``."""

from __future__ import annotations

import taskkit_django.admin  # noqa: F401
