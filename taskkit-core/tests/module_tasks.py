"""Module-level function tasks for the pickling tests (importable by name, as workers do)."""

from __future__ import annotations

from taskkit import Kit
from taskkit.memory import MemoryBackend

kit = Kit(MemoryBackend())


@kit.task(group="g")
def double(x: int) -> int:
    """A task decorated at module level: it pickles by reference."""
    return 2 * x


def add(a: int, b: int) -> int:
    """A plain function a test registers on a kit by a call."""
    return a + b
