"""A supervised fleet for the supervisor's 0.2 behaviours: ``python -m integration.compat_fleet``.

``--gate PATH``: each worker child, while starting (inside ``backend.clone()``, before it has
installed its own signal handlers), waits until PATH exists, so a test can stop the fleet
exactly while its workers are starting.
``--restart-flag PATH``: ``should_restart(process)`` answers True once for the process whose
pid PATH holds (0.2.4's meaning: replace this live process), False for every other.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import taskkit
from taskkit_redis import RedisBackend

from .ledger import LedgerHandler


class GatedStartRedis(RedisBackend):
    """A Redis backend whose clone (made in each worker child at start) waits for a file."""

    gate: str | None = None

    def clone(self) -> RedisBackend:
        if self.gate is not None:
            Path(f"{self.gate}.{os.getpid()}").touch()  # tells the test: this child is starting
            while not os.path.exists(self.gate):
                time.sleep(0.02)
        return super().clone()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--options", default="{}", help="JSON: backend options and KitConfig")
    parser.add_argument("--ledger", required=True)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--gate")
    parser.add_argument("--restart-flag")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"
    )
    options: dict[str, Any] = json.loads(args.options)
    kit_options = {
        k: options.pop(k) for k in list(options) if k in taskkit.KitConfig.__dataclass_fields__
    }
    backend = GatedStartRedis(args.url, **options)
    backend.gate = args.gate
    kit = taskkit.Kit(backend, LedgerHandler(args.ledger), **kit_options)

    def should_restart(process: Any) -> bool:
        if args.restart_flag is None:
            return False
        flag = Path(args.restart_flag)
        try:
            wanted = int(flag.read_text())
        except (FileNotFoundError, ValueError):
            return False
        if process.pid != wanted:
            return False
        flag.unlink()
        return True

    kit.start(args.processes, {"work": 2}, should_restart=should_restart)


if __name__ == "__main__":
    main()
