"""The taskkit 0.2 import paths name the distribution to install, and only when it is missing.

Each case runs in a fresh interpreter whose import system is rigged by a meta-path finder:
the backend's distribution is either absent, or present but failing on an import of its own.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# Every case starts a fresh interpreter.
pytestmark = pytest.mark.slow

FORWARDERS = [
    ("taskkit.impl.redis", "taskkit_redis", "taskkit-redis"),
    ("taskkit.impl.django", "taskkit_django", "taskkit-django"),
    ("taskkit.contrib.django", "taskkit_django", "taskkit-django"),
]

PROGRAM = textwrap.dedent(
    """
    import importlib
    import importlib.abc
    import importlib.machinery
    import sys

    forwarder, package, mode = sys.argv[1:4]


    class Rigged(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, name, path=None, target=None):
            if name != package:
                return None
            if mode == "absent":
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return importlib.machinery.ModuleSpec(name, self)

        def create_module(self, spec):
            return None

        def exec_module(self, module):
            # The distribution is there, but one of its own imports is broken.
            import taskkit_no_such_dependency  # noqa: F401


    sys.meta_path.insert(0, Rigged())
    try:
        importlib.import_module(forwarder)
    except ImportError as exc:
        print(f"{type(exc).__name__}|{exc.name}|{exc}")
    else:
        print("imported")
    """
)


def _import(tmp_path: Path, forwarder: str, package: str, mode: str) -> str:
    script = tmp_path / "rigged_import.py"
    script.write_text(PROGRAM)
    done = subprocess.run(
        [sys.executable, str(script), forwarder, package, mode],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


@pytest.mark.parametrize(("forwarder", "package", "distribution"), FORWARDERS)
def test_a_missing_distribution_is_named(
    tmp_path: Path, forwarder: str, package: str, distribution: str
) -> None:
    kind, name, message = _import(tmp_path, forwarder, package, "absent").split("|", 2)
    assert kind == "ImportError" and name == package, message
    assert f"pip install {distribution}" in message, message


@pytest.mark.parametrize(("forwarder", "package", "distribution"), FORWARDERS)
def test_another_import_error_propagates_unchanged(
    tmp_path: Path, forwarder: str, package: str, distribution: str
) -> None:
    kind, name, message = _import(tmp_path, forwarder, package, "broken").split("|", 2)
    assert kind == "ModuleNotFoundError" and name == "taskkit_no_such_dependency", message
    assert "pip install" not in message, (
        f"{forwarder} blamed an unrelated ImportError on a missing {distribution}: {message}"
    )
