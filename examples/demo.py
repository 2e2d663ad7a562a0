"""The taskkit demo: worker processes, a schedule and results, on embedded SQLite.

    python3 dev.py demo              # from a fresh clone
    python examples/demo.py [--db PATH] [--seconds N]

No server is needed: the Django backend runs standalone on a SQLite file.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import taskkit
from taskkit import DiscardTask, RegularSchedule, Task, TaskHandler

GROUP = "demo"


class DemoHandler(TaskHandler):
    """Hashes strings, fails on purpose once, and reports schedule ticks."""

    def handle(self, task: Task) -> Any:
        data = self.decode_data(task)
        if task.name == "hash":
            return hashlib.sha256(data.encode()).hexdigest()[:16]
        if task.name == "flaky":
            if task.retry_count == 0:
                raise RuntimeError("first attempt fails on purpose")
            return f"succeeded on attempt {task.retry_count + 1}"
        if task.name == "tick":
            when = task.scheduled_dt()
            print(f"  [pid {os.getpid()}] scheduled tick for {when:%H:%M:%S}", flush=True)
            return None
        raise DiscardTask

    def get_retry_interval(self, task: Task, exception: Exception) -> float | None:
        return 0.2 if task.retry_count < 3 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="SQLite file (default: a temporary one)")
    parser.add_argument("--seconds", type=float, default=6.0, help="how long to watch the schedule")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    workdir = tempfile.mkdtemp(prefix="taskkit-demo-")
    db = Path(args.db or Path(workdir) / "demo.sqlite3").resolve()
    kit = taskkit.make_kit(f"sqlite:///{db}", DemoHandler())
    print(f"taskkit demo on {db}")

    schedule = {
        "demo-scheduler": [
            {
                "key": "every-2s",
                "group": GROUP,
                "name": "tick",
                "data": None,
                "schedule": RegularSchedule(seconds={0, 2, 4, 6, 8, *range(10, 60, 2)}),
            }
        ]
    }
    processes = kit.start_processes(
        num_processes=2,
        num_worker_threads_per_group={GROUP: 3},
        schedule_entries=schedule,
        daemon=True,
    )
    print(f"started {len(processes)} worker processes: {[p.pid for p in processes]}")

    words = ["alpha", "beta", "gamma", "delta", "epsilon"]
    results = [kit.initiate_task(GROUP, "hash", word) for word in words]
    flaky = kit.initiate_task(GROUP, "flaky", None)
    for word, result in zip(words, results):
        print(f"  sha256({word!r})[:16] = {result.get(timeout=30)}")
    print(f"  flaky task: {flaky.get(timeout=30)}")

    print(f"watching the schedule for {args.seconds:.0f} s ...", flush=True)
    time.sleep(args.seconds)  # a demo, not a test: let the schedule fire a few times

    kit.send_shutdown_event()
    for process in processes:
        process.join(30)
    alive = [p.pid for p in processes if p.is_alive()]
    print("workers stopped" if not alive else f"workers still alive: {alive}")


if __name__ == "__main__":
    main()
