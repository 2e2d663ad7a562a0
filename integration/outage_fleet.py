"""A supervised fleet with a one-second schedule, for the outage tests:
``python -m integration.outage_fleet URL OPTIONS_JSON LEDGER_DIR``.

Logs INFO and above as ``<pid> <LEVEL> <logger>: <message>`` so a test can count each
process's lines by level.
"""

from __future__ import annotations

import json
import logging
import sys

import taskkit
from taskkit import RegularSchedule, ScheduleEntry

from .ledger import LedgerHandler, dumps, work

#: The scheduled task's payload (tells scheduled runs from the test's own tasks).
TICK = "tick"


def main() -> None:
    url, options, ledger = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
    logging.basicConfig(
        level=logging.INFO, format="%(process)d %(levelname)s %(name)s: %(message)s"
    )
    kit = taskkit.make_kit(url, LedgerHandler(ledger), **options)
    every_second = ScheduleEntry(
        "tick", RegularSchedule(seconds=None), "work", "work", dumps(work(TICK)).encode()
    )
    kit.start(2, {"work": 2}, {"beat": [every_second]})


if __name__ == "__main__":
    main()
