"""taskkit (this repository) with its defaults, nothing tuned: on its Redis backend, or (workload
E) on taskkit-django with a PostgreSQL or SQLite URL (the embedded mode: taskkit configures
Django and applies its migrations itself, exactly as the README shows).

The no-op task is a ``TaskHandler`` (the 0.2 way); ``taskkit_fn_adapter`` runs the same task
as an ``@kit.task`` function.

Runs in the project's own environment (the nox ``bench`` session installs every taskkit
distribution editable). Every outcome is stored, as taskkit always does.
"""

from __future__ import annotations

from typing import Any

import taskkit
from _common import RESULT, tick
from _taskkit import GROUP, URL, KitAdapter
from taskkit import Task, TaskHandler


class Handler(TaskHandler):
    def handle(self, task: Task) -> Any:
        tick()
        return RESULT


kit = taskkit.make_kit(URL, Handler())


def _one() -> None:
    kit.initiate_task(GROUP, "noop", None)


def _bulk(count: int) -> None:
    kit.initiate_tasks(*({"group": GROUP, "name": "noop", "data": None} for _ in range(count)))


def _roundtrip_one() -> object:
    return kit.initiate_task(GROUP, "noop", None).get(timeout=30)


ADAPTER = KitAdapter(kit, _one, _bulk, _roundtrip_one)
