"""Redis restarts: with ``appendonly yes`` no acknowledged task is lost across a SIGKILL of
redis-server, and the same backend instance carries on once Redis is back."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from pathlib import Path

import pytest
from _servers import RedisServer, wait_until
from helpers import drain, make_tasks
from readme_app import HashHandler
from taskkit import BackendUnavailable, Task, TaskState
from taskkit_redis import RedisBackend, make_kit

pytestmark = pytest.mark.restart

AOF = ("--appendonly", "yes", "--appendfsync", "always")


def test_no_acknowledged_task_is_lost_across_sigkill(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "data", None, *AOF).start()
    backend = RedisBackend(server.url, prefix="restart", socket_timeout=2, retries=1)
    acknowledged: list[str] = []
    refused: list[BaseException] = []
    finished_before_kill: list[str] = []
    stop = threading.Event()

    def produce() -> None:
        # Enqueue one task at a time, as fast as Redis answers, across the kill.
        while not stop.is_set():
            now = time.time()
            task = Task(id=uuid.uuid4().hex, group="g", name="job", data=b"x", due=now, created=now)
            try:
                if backend.put([task]) == [True]:
                    acknowledged.append(task.id)
            except BackendUnavailable as exc:  # reported to the caller, never silent
                refused.append(exc)
                stop.wait(0.05)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    try:
        wait_until(lambda: len(acknowledged) >= 100, 30, "the producer did not get going")
        for claim in backend.claim("g", "w", 50, 30.0, 3).claims:
            backend.complete(claim, b"ok:" + claim.task.id.encode())
            finished_before_kill.append(claim.task.id)
        server.kill()
        wait_until(lambda: refused, 10, "puts to a dead Redis did not raise")
        with pytest.raises(BackendUnavailable):
            backend.stats("g")
        server = RedisServer(tmp_path / "data", server.port, *AOF).start()
        count = len(acknowledged)
        wait_until(lambda: len(acknowledged) >= count + 100, 30, "puts did not resume")
    finally:
        stop.set()
        producer.join(10)

    try:
        for task_id in acknowledged:
            outcome = backend.get_outcome(task_id)
            assert outcome is not None, f"acknowledged task {task_id} was lost"
        for task_id in finished_before_kill:
            outcome = backend.get_outcome(task_id)
            assert outcome is not None and outcome.state is TaskState.SUCCEEDED
            assert outcome.result == b"ok:" + task_id.encode()
        # The same instance claims, completes and waits again.
        done = set(drain(backend, "g"))
        assert set(acknowledged) - set(finished_before_kill) - done == set()
        assert backend.stats("g").queued == 0
    finally:
        backend.close()
        server.stop()


def test_waits_never_hang_when_redis_is_down(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "data").start()
    backend = RedisBackend(server.url, prefix="down", socket_timeout=1, retries=1)
    try:
        task = make_tasks(backend, "g", 1)[0]
        backend.put([task])
        backend.wait_for_work("g", 0.01)  # subscribe while Redis is up
        server.kill()
        for wait in (
            lambda: backend.wait_for_outcome(task.id, 2.0),
            lambda: backend.wait_for_work("g", 2.0),
            lambda: backend.get_outcome(task.id),
        ):
            began = time.monotonic()
            with pytest.raises(BackendUnavailable):
                wait()
            assert time.monotonic() - began < 2.0 + 1.0 * 2 + 1.0  # t + socket timeout per try
    finally:
        backend.close()
        server.stop()


def test_worker_processes_carry_on_after_redis_restarts(tmp_path: Path) -> None:
    """Two worker processes run through a SIGKILL + restart of Redis: every acknowledged
    task succeeds with the right result and no worker process dies."""
    server = RedisServer(tmp_path / "data", None, *AOF).start()
    kit = make_kit(
        server.url,
        HashHandler(str(tmp_path / "ledger")),
        prefix="fleet",
        socket_timeout=2,
        lease_seconds=3.0,
        max_idle_wait=1.0,
    )
    processes = kit.start_processes(num_processes=2, num_worker_threads_per_group={"g": 3})
    acknowledged = []
    try:

        def enqueue(count: int) -> None:
            for i in range(count):
                data = f"{len(acknowledged)}-{i}"
                acknowledged.append((kit.initiate_task("g", "hash", data), data))

        enqueue(100)
        wait_until(lambda: kit.backend.stats("g").queued < 100, 30, "the workers did not start")
        server.kill()
        server = RedisServer(tmp_path / "data", server.port, *AOF).start()
        enqueue(100)
        for result, data in acknowledged:
            expected = hashlib.sha256(json.dumps(data).encode()).hexdigest()
            assert result.get(timeout=60) == expected
        assert all(p.is_alive() for p in processes), "a worker process died"
    finally:
        kit.send_shutdown_event()
        for process in processes:
            process.join(30)
            if process.is_alive():
                process.kill()
        kit.backend.close()
        server.stop()
