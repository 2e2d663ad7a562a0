"""An example third-party taskkit backend on the standard library's ``sqlite3``.

``taskkit.make_kit("sqlite-example:////var/lib/app/tasks.db", handler)`` finds it through
the ``taskkit`` entry point this distribution declares.
"""

from __future__ import annotations

from .backend import SQLiteBackend
from .plugin import backend_from_url

__all__ = ["SQLiteBackend", "backend_from_url"]
__version__ = "0.1.0"
