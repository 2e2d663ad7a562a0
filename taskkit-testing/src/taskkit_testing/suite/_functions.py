"""Plain functions the function-task topic registers on the kit under test.

They live at module level so ``spawn``ed workers import them by name, as a user's module-level
``@kit.task`` functions are imported.
"""

from __future__ import annotations

from typing import Any

__all__ = ["add", "boom", "greet", "not_retried"]


def add(a: int, b: int) -> int:
    """``a + b``."""
    return a + b


def greet(name: str, *, greeting: str = "hello") -> dict[str, Any]:
    """A keyword argument with a default, and a dict result."""
    return {"text": f"{greeting}, {name}", "chars": [c for c in name]}


def boom(message: str) -> None:
    """Always raises ``ValueError(message)``."""
    raise ValueError(message)


def not_retried(message: str) -> None:
    """Raises ``KeyError``; the topic registers it with ``retry_unless=(KeyError,)``."""
    raise KeyError(message)
