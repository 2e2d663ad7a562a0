"""Loaded by every Python process a docs test starts (it is first on their PYTHONPATH).

Isolation, not imitation: a documentation example talks to the real shared Redis, so every
key prefix it uses is moved under this run's own prefix (``TASKKIT_DOCS_PREFIX``). The test
deletes that prefix's keys afterwards; nothing else on the shared server is touched.
"""

from __future__ import annotations

import dataclasses
import os

_PREFIX = os.environ.get("TASKKIT_DOCS_PREFIX", "")

if _PREFIX:
    try:
        from taskkit_redis import backend as _backend
    except ImportError:  # taskkit-redis not installed: nothing to isolate
        pass
    else:
        _setup = _backend.RedisBackend._setup

        def _isolated_setup(self: _backend.RedisBackend, config: object) -> None:
            prefix = config.prefix  # type: ignore[attr-defined]
            if not prefix.startswith(_PREFIX):
                config = dataclasses.replace(config, prefix=f"{_PREFIX}-{prefix}")  # type: ignore[type-var]
            _setup(self, config)  # type: ignore[arg-type]

        _backend.RedisBackend._setup = _isolated_setup  # type: ignore[method-assign]
