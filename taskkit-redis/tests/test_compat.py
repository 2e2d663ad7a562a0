"""The taskkit 0.2 paths: the original README's Redis example, the URL form, and the
ImportError that names the distribution to install."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import taskkit
from _servers import wait_until
from readme_app import GROUP_NAME, Handler
from redis.client import Redis
from taskkit import ResultGetTimedOut
from taskkit_redis import RedisBackend
from taskkit_testing.readme import FOO_RESULT, initiate_foo, schedule_entries, worker_options


def test_the_readme_example_runs_unchanged(
    shared_redis: str, prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = tmp_path / "ledger"
    monkeypatch.setattr(Handler, "ledger_path", str(ledger))
    from taskkit.impl.redis import make_kit

    REDIS_HOST = "127.0.0.1"
    REDIS_PORT = "6379"
    redis = Redis(host=REDIS_HOST, port=REDIS_PORT)
    kit = make_kit(redis, Handler(), prefix=prefix)  # the prefix isolates this test
    assert isinstance(kit.backend, RedisBackend)

    # The README's program: one copy for the core, Redis and Django suites.
    entries = schedule_entries(Handler(), every_second=True)
    processes = kit.start_processes(**worker_options(2, schedule_entries=entries), daemon=True)
    try:
        try:
            value = initiate_foo(kit).get(timeout=20)
        except ResultGetTimedOut:
            pytest.fail("the README's task did not finish")
        assert value == FOO_RESULT

        def lines() -> list[list[str]]:
            return (
                [line.split() for line in ledger.read_text().splitlines()]
                if ledger.exists()
                else []
            )

        wait_until(
            lambda: {"test2", "test3"} <= {line[0] for line in lines()},
            20,
            "the schedule entries did not fire",
        )
        kit.send_shutdown_event()
        for process in processes:
            process.join(30)
        assert [p.exitcode for p in processes] == [0, 0]
        # Two processes run both schedulers: each point still fires once.
        fired = Counter((line[0], line[2]) for line in lines() if line[0] in ("test2", "test3"))
        assert fired and max(fired.values()) == 1, fired
        assert len({line[3] for line in lines()}) >= 1
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join(10)
        redis.close()


def test_make_kit_by_url(shared_redis: str, prefix: str) -> None:
    kit = taskkit.make_kit(f"{shared_redis}?prefix={prefix}", Handler(), lease_seconds=10)
    assert isinstance(kit.backend, RedisBackend)
    assert kit.backend.config.prefix == prefix
    assert kit.config.lease_seconds == 10
    result = kit.initiate_task(GROUP_NAME, "bar", [1, 2])
    assert kit.backend.get_outcome(result.id) is not None
    kit.backend.close()


def test_missing_distribution_is_named(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['taskkit_redis'] = None\n"
        "try:\n"
        "    from taskkit.impl.redis import make_kit\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )
    assert "pip install taskkit-redis" in out.stdout, out.stdout + out.stderr
