"""taskkit (this repository) with the no-op task written as an ``@kit.task`` function: the same
task, kit defaults and workers as ``taskkit_adapter``'s ``TaskHandler``, so the two rows show
what a function task costs on top (issue 13: at most 10 % more in B2 and C).

A function task's arguments are checked against its signature and encoded at enqueue (here an
empty call, ``{"args": [], "kwargs": {}}``), decoded and bound again by the worker, and its
result decoded by ``Result.get``.
"""

from __future__ import annotations

import taskkit
from _common import RESULT, tick
from _taskkit import GROUP, URL, KitAdapter

kit = taskkit.make_kit(URL)  # no handler: every task of this kit is a function


@kit.task(group=GROUP, name="noop")
def noop() -> int:
    tick()
    return RESULT


def _one() -> None:
    noop.delay()


def _bulk(count: int) -> None:
    kit.initiate_tasks(*(noop.make_task() for _ in range(count)))


def _roundtrip_one() -> object:
    return noop.delay().get(timeout=30)


ADAPTER = KitAdapter(kit, _one, _bulk, _roundtrip_one)
