"""The migrations of ``taskkit_django``, found under the 0.2 app module.

Django's loader imports ``<app module>.migrations`` and lists the modules on its
``__path__``; pointing that path at ``taskkit_django/migrations`` makes both
``INSTALLED_APPS`` entries share one migration history (app label ``taskkit``).
"""

from __future__ import annotations

import taskkit_django.migrations as _migrations

__path__ = list(_migrations.__path__)
