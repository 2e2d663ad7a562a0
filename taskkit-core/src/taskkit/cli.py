"""The ``taskkit`` command: run workers and operate on tasks from a shell.

``--app`` names a :class:`taskkit.Kit` as ``module:attribute`` (like ``gunicorn app:app``)::

    taskkit --app myproject.tasks:kit worker --processes 3 --threads mail=4 --threads reports=1
    taskkit --app myproject.tasks:kit stats mail
    taskkit --app myproject.tasks:kit dead-letters
    taskkit --app myproject.tasks:kit requeue TASK_ID
    taskkit --app myproject.tasks:kit cancel TASK_ID
    taskkit --app myproject.tasks:kit pause mail      # also: resume, shutdown
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from .errors import ConfigurationError
from .kit import Kit


def load_kit(spec: str) -> Kit:
    """Import ``module:attribute`` and return the Kit it names."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(f"--app must look like 'package.module:kit', not {spec!r}")
    obj: object = importlib.import_module(module_name)
    for part in attribute.split("."):
        obj = getattr(obj, part)
    if callable(obj) and not isinstance(obj, Kit):
        obj = obj()
    if not isinstance(obj, Kit):
        raise ConfigurationError(f"{spec} is a {type(obj).__name__}, not a taskkit Kit")
    return obj


def _threads(values: Sequence[str]) -> dict[str, int]:
    threads: dict[str, int] = {}
    for value in values:
        group, _, count = value.partition("=")
        if not group or not count.isdigit() or int(count) < 1:
            raise ConfigurationError(f"--threads takes GROUP=COUNT with COUNT >= 1, not {value!r}")
        threads[group] = int(count)
    return threads


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="taskkit", description=__doc__.splitlines()[0])
    parser.add_argument("--app", required=True, help="the Kit, as package.module:attribute")
    parser.add_argument("--log-level", default="INFO")
    commands = parser.add_subparsers(dest="command", required=True)

    worker = commands.add_parser("worker", help="run supervised worker processes")
    worker.add_argument("--processes", type=int, default=1)
    worker.add_argument("--threads", action="append", default=[], metavar="GROUP=COUNT")
    worker.add_argument("--start-method", choices=["fork", "spawn", "forkserver"])

    stats = commands.add_parser("stats", help="queued and running counts of a group")
    stats.add_argument("group")

    dead = commands.add_parser("dead-letters", help="list dead letters, newest first")
    dead.add_argument("--group")
    dead.add_argument("--limit", type=int, default=50)

    for name, text in (("requeue", "re-queue a dead letter"), ("cancel", "cancel a task")):
        command = commands.add_parser(name, help=text)
        command.add_argument("task_id")

    for name in ("pause", "resume", "shutdown"):
        command = commands.add_parser(name, help=f"send a {name} event to workers")
        command.add_argument("groups", nargs="*", help="groups (default: all)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        kit = load_kit(args.app)
        return _run(kit, args)
    except ConfigurationError as exc:
        print(f"taskkit: {exc}", file=sys.stderr)
        return 2


def _run(kit: Kit, args: argparse.Namespace) -> int:
    if args.command == "worker":
        threads = _threads(args.threads)
        if not threads:
            raise ConfigurationError("give at least one --threads GROUP=COUNT")
        kit.start(args.processes, threads, start_method=args.start_method)
    elif args.command == "stats":
        stats = kit.backend.stats(args.group)
        print(f"{args.group}: {stats.queued} queued, {stats.running} running")
    elif args.command == "dead-letters":
        for outcome in kit.dead_letters(args.group, args.limit):
            task = outcome.task
            print(f"{task.id}\t{task.group}/{task.name}\t{outcome.error}")
    elif args.command == "requeue":
        if not kit.requeue_dead_letter(args.task_id):
            print(f"taskkit: {args.task_id} is not a dead letter", file=sys.stderr)
            return 1
    elif args.command == "cancel":
        print(kit.cancel(args.task_id).value)
    else:
        groups = args.groups or None
        {
            "pause": kit.send_pause_event,
            "resume": kit.send_resume_event,
            "shutdown": kit.send_shutdown_event,
        }[args.command](groups)
    return 0


if __name__ == "__main__":
    sys.exit(main())
