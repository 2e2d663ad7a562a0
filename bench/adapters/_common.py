"""What every adapter shares: the command protocol, the completion counter, timing helpers.

An adapter is a module in this directory, run through ``_launch.py`` in its system's own
virtualenv. It receives one JSON spec on the command line and answers with one JSON object
on stdout. Anything a peer library prints goes to stderr: stdout is moved aside before the
adapter runs so nothing can corrupt the answer.

The no-op task of every system does one thing: it appends one byte to the counter file named
by ``BENCH_COUNTER``. The harness watches that file's size to see tasks complete, the same
way for every system, without peeking into any system's internals. A one-byte ``write`` is a
single cheap syscall, small next to any queue's per-task cost.

This module runs under every peer's interpreter, so it uses the standard library only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger("bench.adapter")

#: The value every no-op task returns (some systems do not store ``None`` results).
RESULT = 1

#: Tasks per bulk call: bulk enqueue goes through each system's bulk API in batches of this
#: many, the same for every system (a common batch size, and the run can stop between
#: batches when its time budget is spent).
BULK_CHUNK = 1000

#: One-by-one enqueue checks the time budget every this many tasks.
_CHECK_EVERY = 50


@dataclass
class Spec:
    """One command for an adapter (the orchestrator builds it; see ``bench/workloads.py``)."""

    cmd: str
    redis_url: str = ""
    #: workload E: the private database (``postgresql://…`` or ``sqlite:///…``).
    db_url: str = ""
    variant: str = "tuned"
    n: int = 0
    bulk: bool = False
    procs: int = 1
    threads: int = 4
    warmup: int = 0
    budget: float = 60.0
    #: ``worker`` only: enqueue this many tasks first (at most ``fill_budget`` seconds), write
    #: ``{"filled": k}`` to ``report``, then start the workers. Saves an interpreter start and
    #: keeps slow producers from stretching a drain run.
    fill: int = 0
    fill_budget: float = 20.0
    report: str = ""
    #: the asyncio workloads' task: ``noop``, or ``redis`` (awaits one Redis round trip).
    task: str = "noop"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tuned(self) -> bool:
        return self.variant == "tuned"


class NotSupported(Exception):
    """The system has no API for what was asked (e.g. no bulk enqueue)."""


def env_url() -> str:
    """The private Redis the harness started (never a default: the shared one is off limits)."""
    url = os.environ.get("BENCH_REDIS_URL")
    if not url:
        raise SystemExit("BENCH_REDIS_URL is not set: adapters talk only to the harness's "
                         "private redis-server (run them through bench/run.py)")
    return url


def env_db_url() -> str:
    """Workload E: the private database the harness created for this system."""
    url = os.environ.get("BENCH_DB_URL")
    if not url:
        raise SystemExit("BENCH_DB_URL is not set: E adapters talk only to the harness's "
                         "private databases (run them through bench/run.py)")
    return url


def django_database(url: str) -> dict[str, Any]:
    """A Django ``DATABASES`` entry for a ``postgresql://user@host:port/name`` or
    ``sqlite:///path`` URL (the only forms the harness hands out)."""
    if url.startswith("sqlite:///"):
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": url[len("sqlite://"):]}
    parts = urlsplit(url)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parts.path.lstrip("/"),
        "USER": parts.username or "postgres",
        "HOST": parts.hostname or "127.0.0.1",
        "PORT": str(parts.port or 5432),
    }


# ---------------------------------------------------------------- the completion counter

_counter_fd: dict[int, int] = {}


def tick() -> None:
    """Record one finished task: append one byte to the counter file (cheap, process-safe)."""
    pid = os.getpid()
    fd = _counter_fd.get(pid)
    if fd is None:
        path = os.environ.get("BENCH_COUNTER")
        if not path:
            return
        # O_APPEND makes concurrent one-byte writes from many processes add up exactly.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        _counter_fd[pid] = fd
    os.write(fd, b".")


# ---------------------------------------------------------------- timing helpers


def enqueue_sync(
    spec: Spec, one: Callable[[], object], bulk: Callable[[int], object] | None
) -> dict[str, float]:
    """Time ``spec.n`` enqueues: ``one()`` per task, or ``bulk(k)`` per batch of k tasks.

    Stops early once ``spec.budget`` seconds have passed; the answer says how many tasks
    were enqueued in how long.
    """
    if spec.bulk and bulk is None:
        raise NotSupported("no bulk enqueue API")
    done = 0
    start = time.perf_counter()
    deadline = start + spec.budget
    if spec.bulk:
        assert bulk is not None
        while done < spec.n and time.perf_counter() < deadline:
            count = min(BULK_CHUNK, spec.n - done)
            bulk(count)
            done += count
    else:
        while done < spec.n and time.perf_counter() < deadline:
            for _ in range(min(_CHECK_EVERY, spec.n - done)):
                one()
            done += min(_CHECK_EVERY, spec.n - done)
    return {"seconds": time.perf_counter() - start, "done": done}


async def enqueue_async(
    spec: Spec, one: Callable[[], Awaitable[object]],
    bulk: Callable[[int], Awaitable[object]] | None,
) -> dict[str, float]:
    """:func:`enqueue_sync` for an async system."""
    if spec.bulk and bulk is None:
        raise NotSupported("no bulk enqueue API")
    done = 0
    start = time.perf_counter()
    deadline = start + spec.budget
    if spec.bulk:
        assert bulk is not None
        while done < spec.n and time.perf_counter() < deadline:
            count = min(BULK_CHUNK, spec.n - done)
            await bulk(count)
            done += count
    else:
        while done < spec.n and time.perf_counter() < deadline:
            for _ in range(min(_CHECK_EVERY, spec.n - done)):
                await one()
            done += min(_CHECK_EVERY, spec.n - done)
    return {"seconds": time.perf_counter() - start, "done": done}


def fill_sync(spec: Spec, one: Callable[[], object], bulk: Callable[[int], object] | None) -> None:
    """Enqueue ``spec.n`` tasks, untimed, the fastest way the system offers.

    Stops after the batch that crosses ``spec.fill_budget`` seconds.
    """
    done = 0
    deadline = time.monotonic() + spec.fill_budget
    while done < spec.n and time.monotonic() < deadline:
        count = min(BULK_CHUNK, spec.n - done)
        if bulk is not None:
            bulk(count)
        else:
            for _ in range(count):
                one()
        done += count
        count_fill(count)


def roundtrips_sync(one: Callable[[], object], spec: Spec) -> list[float]:
    """Run ``one`` (enqueue and await the result) ``warmup`` times untimed, then ``n`` times.

    Returns the latencies in milliseconds; stops early when ``spec.budget`` seconds pass, so
    a system that is slow to pick up work still ends in bounded time.
    """
    for _ in range(spec.warmup):
        one()
    latencies: list[float] = []
    deadline = time.monotonic() + spec.budget
    for _ in range(spec.n):
        start = time.perf_counter()
        one()
        latencies.append((time.perf_counter() - start) * 1000.0)
        if time.monotonic() > deadline:
            break
    return latencies


def poll_until(done: Callable[[], bool], timeout: float = 30.0, interval: float = 0.001) -> None:
    """Wait for a system that has no blocking result wait: ask ``done()`` every ``interval``."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no result within {timeout:.0f} s")
        time.sleep(interval)


async def roundtrips_async(one: Callable[[], Awaitable[object]], spec: Spec) -> list[float]:
    """:func:`roundtrips_sync` for an async system."""
    for _ in range(spec.warmup):
        await one()
    latencies: list[float] = []
    deadline = time.monotonic() + spec.budget
    for _ in range(spec.n):
        start = time.perf_counter()
        await one()
        latencies.append((time.perf_counter() - start) * 1000.0)
        if time.monotonic() > deadline:
            break
    return latencies


# ---------------------------------------------------------------- process helpers


def run_in_processes(target: Callable[[], None], procs: int) -> None:
    """Run ``target`` in ``procs`` forked children and wait; SIGTERM stops them all.

    For systems whose worker has no multi-process mode of its own.
    """
    if procs <= 1:
        target()
        return
    children: list[int] = []
    for _ in range(procs):
        pid = os.fork()
        if pid == 0:  # child
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            try:
                target()
            finally:
                os._exit(0)
        children.append(pid)

    def stop(signum: int, frame: object) -> None:
        for child in children:
            try:
                os.kill(child, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for child in children:
        try:
            os.waitpid(child, 0)
        except ChildProcessError:
            pass


def exec_cli(argv: list[str]) -> None:
    """Replace this process with a peer's own worker command (its CLI is its documented way)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)


def bin_path(name: str) -> str:
    """A console script of the running virtualenv."""
    return os.path.join(os.path.dirname(sys.executable), name)


def adapter_dir() -> str:
    return os.path.dirname(os.path.abspath(__file__))


# ---------------------------------------------------------------- the protocol


def _answer(out_fd: int, payload: dict[str, Any]) -> None:
    with os.fdopen(out_fd, "w") as out:
        out.write(json.dumps(payload) + "\n")


def _fill_then_report(adapter: Any, spec: Spec) -> None:
    """Fill the queue before the workers start; report how many tasks went in."""
    counter = os.environ.pop("BENCH_COUNTER", None)  # the producer side counts nothing
    before = _queued_marker()
    adapter.fill(Spec(**{**spec.__dict__, "cmd": "fill", "n": spec.fill}))
    filled = _queued_marker() - before
    if counter is not None:
        os.environ["BENCH_COUNTER"] = counter
    with open(spec.report, "w") as out:
        json.dump({"filled": filled}, out)


_fill_count = [0]


def count_fill(k: int) -> None:
    """Adapters' fill helpers call this with the number of tasks they enqueued."""
    _fill_count[0] += k


def _queued_marker() -> int:
    return _fill_count[0]


def serve(adapter: Any, argv: list[str]) -> int:
    """Run one command on ``adapter`` and write its JSON answer to the real stdout.

    Commands: ``enqueue`` (times n enqueues, one by one or bulk), ``fill`` (enqueue n
    untimed), ``worker`` (run workers until SIGTERM), ``roundtrip`` (latencies of n
    enqueue-and-await), ``setup`` (E only: create the schema in ``spec.db_url``, untimed).
    """
    raw = json.loads(argv[1])
    spec = Spec(**raw)
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(name)s %(levelname)s %(message)s"
    )
    # Move stdout aside: peers print banners and logs, and only our answer may go there.
    out_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    result: dict[str, Any]
    try:
        if spec.cmd == "enqueue":
            result = dict(adapter.enqueue(spec))
        elif spec.cmd == "fill":
            adapter.fill(spec)
            result = {"n": spec.n}
        elif spec.cmd == "worker":
            if spec.fill:
                _fill_then_report(adapter, spec)
            adapter.worker(spec)
            result = {}
        elif spec.cmd == "roundtrip":
            result = {"latencies_ms": adapter.roundtrip(spec)}
        elif spec.cmd == "setup":
            adapter.setup(spec)
            result = {}
        else:
            raise SystemExit(f"unknown command {spec.cmd!r}")
    except NotSupported as exc:
        result = {"unsupported": str(exc) or "not supported"}
    _answer(out_fd, result)
    return 0


def run_async(coro: Awaitable[Any]) -> Any:
    """``asyncio.run`` for a coroutine object (typed loosely for the peers' mixed APIs)."""
    return asyncio.run(coro)  # type: ignore[arg-type]
