"""What a worker does with a task whose (group, name) none of its functions or handlers knows.

During a rolling deploy the producer may be new and the worker old: discarding the task
would lose it for good. So the worker **defers** it instead (hands it back unrun, due
again after a back-off, the delivery uncounted and the retry count unchanged) and only
**buries** it (a dead letter an operator can requeue once the code is deployed) when the
task is older than ``KitConfig.unknown_task_window``.

The back-off grows with the time the task has waited since it was created, from
:data:`FIRST_DELAY` to :data:`MAX_DELAY`: a task whose worker is about to start is tried
again soon, one that has waited for long costs a claim only now and then.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal

from ._task import Task

__all__ = ["FIRST_DELAY", "MAX_DELAY", "UnknownTasks", "UnknownVerdict", "defer_delay"]

#: Seconds the first deferral of an unknown task waits.
FIRST_DELAY = 1.0
#: The longest deferral, in seconds: a worker that knows the task runs it at most this long
#: after it starts.
MAX_DELAY = 30.0
#: The deferral is this share of the time the task has waited so far (within the bounds).
_GROWTH = 0.1


def defer_delay(waited: float) -> float:
    """Seconds to hold back a task nobody knows that has waited ``waited`` seconds."""
    return min(MAX_DELAY, max(FIRST_DELAY, waited * _GROWTH))


@dataclass(frozen=True)
class UnknownVerdict:
    """What to do with one unknown task.

    :ivar action: ``defer`` (hand it back until ``due``) or ``bury`` (a dead letter).
    :ivar reason: the text stored with the outcome.
    :ivar due: the backend time it is due again (``defer`` only).
    :ivar first: True the first time this process meets the task's (group, name): the
        worker logs that one at WARNING, the later ones at DEBUG.
    """

    action: Literal["defer", "bury"]
    reason: str
    due: float | None
    first: bool


class UnknownTasks:
    """A worker's verdicts on unknown tasks, and its counts of them (for stats).

    :param window: seconds after its creation that an unknown task is buried.
    :ivar deferred: deferrals the backend applied, since the worker started.
    :ivar buried: unknown tasks the backend buried, since the worker started.
    """

    def __init__(self, window: float) -> None:
        self.window = window
        self.deferred = 0
        self.buried = 0
        self._seen: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    @staticmethod
    def reason(task: Task) -> str:
        return f"unknown task: no function or handler for {task.group}/{task.name}"

    def verdict(self, task: Task, now: float) -> UnknownVerdict:
        """Defer or bury ``task`` at backend time ``now``."""
        with self._lock:
            key = (task.group, task.name)
            first = key not in self._seen
            self._seen.add(key)
        waited = now - task.created
        reason = self.reason(task)
        if waited >= self.window:
            return UnknownVerdict("bury", reason, None, first)
        # Never past the window's end: the last deferral is due when the task is to be buried.
        due = min(now + defer_delay(waited), task.created + self.window)
        return UnknownVerdict("defer", reason, due, first)

    def count(self, action: Literal["defer", "bury"]) -> None:
        """Count an applied verdict (called once the backend has it)."""
        with self._lock:
            if action == "defer":
                self.deferred += 1
            else:
                self.buried += 1
