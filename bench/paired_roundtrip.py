"""Paired round trips of taskkit variants: one idle worker per variant, one producer that
takes a round trip of each variant in turn, so that load from elsewhere on the machine lands
on every variant alike (workload C runs one system after the other, and on a shared machine
its runs move by more than the differences issue 13 asks about).

    python bench/paired_roundtrip.py                        # TaskHandler vs @kit.task
    python bench/paired_roundtrip.py --variants function,async-function
    python bench/paired_roundtrip.py --variants function,async-function --async-producer

Variants: ``handler`` (the no-op as a ``TaskHandler``), ``function`` (an ``@kit.task``
function), ``async-function`` (an ``async def`` function task, run by the worker's event
loop). Each gets its own kit on its own database of a private ``redis-server`` and an idle
worker of 1 process x ``--threads`` (threads, or coroutines for the async one) under the
supervisor. The producer blocks (``.get``) or, with ``--async-producer``, awaits
(``adelay``/``ainitiate_task``, then ``aget``). The order within a round alternates.

Prints, per variant, p50 / p95 / mean in ms and the median of the per-round differences
against the first variant. Times nothing else; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import taskkit
from redis_server import PrivateRedis
from taskkit import Kit, Task, TaskHandler
from workloads import percentile

GROUP = "bench"
VARIANTS = ("handler", "function", "async-function")


class Handler(TaskHandler):
    def handle(self, task: Task) -> Any:
        return 1


def build(variant: str, url: str) -> tuple[Kit, Callable[[], Any], Callable[[], Awaitable[Any]]]:
    """The kit of ``variant`` and its blocking and awaiting round trips."""
    if variant == "handler":
        kit = taskkit.make_kit(url, Handler())

        async def aone() -> Any:
            return await (await kit.ainitiate_task(GROUP, "noop", None)).aget(timeout=30)

        return kit, lambda: kit.initiate_task(GROUP, "noop", None).get(timeout=30), aone
    kit = taskkit.make_kit(url)
    if variant == "function":

        def noop() -> int:
            return 1
    else:

        async def noop() -> int:  # type: ignore[misc]
            return 1

    task = kit.task(group=GROUP, name="noop")(noop)

    async def aone_fn() -> Any:
        return await (await task.adelay()).aget(timeout=30)

    return kit, lambda: task.delay().get(timeout=30), aone_fn


def measure(
    variants: list[str], rounds: int, warmup: int, threads: int, use_async: bool
) -> dict[str, list[float]]:
    """Latencies (ms) per variant, ``rounds`` paired round trips each."""
    latencies: dict[str, list[float]] = {v: [] for v in variants}
    with PrivateRedis() as server:
        built = {v: build(v, server.url(i)) for i, v in enumerate(variants)}
        fork = multiprocessing.get_context("fork")
        workers = [
            # Not daemonic: the supervisor in it starts the worker process.
            fork.Process(target=kit.start, args=(1, {GROUP: threads}))
            for kit, _, _ in built.values()
        ]
        for worker in workers:
            worker.start()
        try:
            if use_async:
                asyncio.run(_rounds_async(built, latencies, rounds, warmup))
            else:
                _rounds_sync(built, latencies, rounds, warmup)
        finally:
            for worker in workers:
                worker.terminate()
                worker.join(30)
    return latencies


def _order(variants: list[str], i: int) -> list[str]:
    return variants if i % 2 == 0 else variants[::-1]


def _rounds_sync(built: dict[str, Any], out: dict[str, list[float]], n: int, warmup: int) -> None:
    names = list(built)
    for i in range(warmup + n):
        for name in _order(names, i):
            start = time.perf_counter()
            built[name][1]()
            if i >= warmup:
                out[name].append((time.perf_counter() - start) * 1000.0)


async def _rounds_async(
    built: dict[str, Any], out: dict[str, list[float]], n: int, warmup: int
) -> None:
    names = list(built)
    for i in range(warmup + n):
        for name in _order(names, i):
            start = time.perf_counter()
            await built[name][2]()
            if i >= warmup:
                out[name].append((time.perf_counter() - start) * 1000.0)


def report(latencies: dict[str, list[float]]) -> str:
    names = list(latencies)
    base = latencies[names[0]]
    lines = [
        f"| variant | p50 ms | p95 ms | mean ms | median difference to {names[0]}, ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in names:
        values = latencies[name]
        ordered = sorted(values)
        diff = statistics.median(b - a for a, b in zip(base, values))
        lines.append(
            f"| {name} | {percentile(ordered, 50):.3f} | {percentile(ordered, 95):.3f} | "
            f"{statistics.fmean(values):.3f} | {diff:+.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--variants",
        default="handler,function",
        help=f"comma-separated, the first is the reference ({', '.join(VARIANTS)})",
    )
    parser.add_argument("--rounds", type=int, default=2000, help="round trips per variant")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument(
        "--threads",
        type=int,
        default=4,
        help="threads (coroutines for async-function) of each worker",
    )
    parser.add_argument(
        "--async-producer",
        action="store_true",
        help="await adelay/ainitiate_task and aget instead of blocking",
    )
    args = parser.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown or not variants:
        parser.error(f"unknown variants: {', '.join(sorted(unknown)) or '(none given)'}")
    latencies = measure(variants, args.rounds, args.warmup, args.threads, args.async_producer)
    producer = "async" if args.async_producer else "blocking"
    print(f"{args.rounds} paired round trips, {producer} producer, workers 1 x {args.threads}")
    print(report(latencies))
    return 0


if __name__ == "__main__":
    sys.exit(main())
