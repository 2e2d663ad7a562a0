"""Check that the installed distributions import through the new and the old paths.

Run by ``nox -s wheels`` in a fresh virtualenv holding only the built wheels:
``--core-only`` checks that the old backend paths name the distribution to install.
"""

from __future__ import annotations

import importlib
import sys


def _expect_missing(module: str, distribution: str) -> None:
    try:
        importlib.import_module(module)
    except ImportError as exc:
        if f"pip install {distribution}" not in str(exc):
            raise SystemExit(f"{module}: ImportError does not name {distribution}: {exc}") from exc
        print(f"ok: {module} asks for {distribution}")
    else:
        raise SystemExit(f"{module} imported without {distribution} installed")


def main(argv: list[str]) -> None:
    import taskkit
    from taskkit import RegularSchedule, ScheduleEntry, Task, TaskHandler, make_kit  # noqa: F401

    print(f"ok: taskkit {taskkit.__version__}")
    if "--core-only" in argv:
        _expect_missing("taskkit.impl.redis", "taskkit-redis")
        _expect_missing("taskkit.impl.django", "taskkit-django")
        return
    import taskkit_django
    import taskkit_redis
    import taskkit_testing
    from taskkit.impl.django import make_kit as django_make_kit
    from taskkit.impl.redis import make_kit as redis_make_kit

    assert callable(redis_make_kit) and callable(django_make_kit)
    importlib.import_module("taskkit.contrib.django")
    from taskkit.plugins import registries

    schemes = registries().backends.schemes()
    for scheme in ("memory", "redis", "rediss", "sqlite"):
        assert scheme in schemes, f"no backend for {scheme}:// ({schemes})"
    for module in (taskkit, taskkit_redis, taskkit_django, taskkit_testing):
        print(f"ok: {module.__name__} from {module.__file__}")


if __name__ == "__main__":
    main(sys.argv[1:])
