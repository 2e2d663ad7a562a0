"""The ``taskkit`` command: run workers and operate on tasks from a shell.

``--app`` names a :class:`taskkit.Kit` as ``module:attribute`` (like ``gunicorn app:app``);
the current directory is searched first, so run it from your project folder::

    taskkit --app myproject.tasks:kit worker --processes 3 --threads mail=4 --threads reports=1
    taskkit --app myproject.tasks:kit worker --threads mail=4 --schedule myproject.tasks:SCHEDULE
    taskkit --app myproject.tasks:kit worker --threads mail=4 --metrics-port 9100
    taskkit --app myproject.tasks:kit inspect --window 60
    taskkit --app myproject.tasks:kit stats mail
    taskkit --app myproject.tasks:kit dead-letters
    taskkit --app myproject.tasks:kit requeue TASK_ID
    taskkit --app myproject.tasks:kit cancel TASK_ID
    taskkit --app myproject.tasks:kit pause mail      # also: resume, shutdown

``python -m taskkit`` is the same command. Every error is one line on stderr and a non-zero
exit status (see :data:`EXIT_CODES`); ``--traceback`` adds the traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.metadata
import logging
import os
import platform
import signal
import sys
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from datetime import tzinfo
from types import FrameType
from typing import Any, NoReturn

from ._task import CancelResult
from ._validation import validate_name
from .errors import (
    ConfigurationError,
    InvalidTask,
    ScheduleError,
    TaskkitError,
)
from .kit import Kit
from .logformat import LOG_FORMATS, configure_logging
from .schedule import ScheduleEntry

__all__ = ["EXIT_CODES", "load_kit", "main"]

log = logging.getLogger("taskkit.cli")

EXIT_OK = 0
#: The command ran and did not succeed (no such task, not a dead letter), or an
#: unexpected error.
EXIT_FAILED = 1
#: Bad arguments or options, or an ``--app`` / ``--schedule`` that names nothing usable.
EXIT_USAGE = 2
#: Importing the ``--app`` module (or calling its factory) raised.
EXIT_APP_ERROR = 3
#: The backend could not be reached (commands other than ``worker``, which waits).
EXIT_UNAVAILABLE = 4
#: Interrupted by Ctrl-C (128 + SIGINT) before the command finished.
EXIT_INTERRUPTED = 130

#: Every exit status of the command, with its meaning.
EXIT_CODES: Mapping[int, str] = {
    EXIT_OK: "success (a worker that stopped on SIGINT/SIGTERM or a shutdown event included)",
    EXIT_FAILED: "the command failed: no such task, not a dead letter, or an unexpected error",
    EXIT_USAGE: "bad arguments, or --app/--schedule names nothing usable",
    EXIT_APP_ERROR: "importing the --app module raised (the error is shown)",
    EXIT_UNAVAILABLE: "the backend is unreachable (the worker command waits for it instead)",
    EXIT_INTERRUPTED: "interrupted by Ctrl-C",
}

#: The scheduler name of entries given to ``--schedule`` as a plain list.
DEFAULT_SCHEDULER = "default"

# The probe of a worker waiting for its backend: first retry soon, then at most every 2 s,
# so that work starts within 2 s of the backend coming back.
_WAIT_FIRST = 0.25

#: ``taskkit worker`` without ``--threads``: threads per sync group of function tasks...
DEFAULT_THREADS = 4
#: ... and coroutines per async group (they wait on I/O, so many share one loop).
DEFAULT_COROUTINES = 100
_WAIT_MAX = 2.0

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class UsageError(TaskkitError):
    """A command-line argument that cannot work (exit status 2)."""


class AppError(TaskkitError):
    """Importing the ``--app`` module, or calling what it names, raised (exit status 3)."""


class _Stopped(BaseException):
    """SIGTERM arrived while the worker waited for its backend."""


# --------------------------------------------------------------------------- loading


def _import_attribute(spec: str, option: str, example: str) -> object:
    """Import ``module:attribute`` (dots allowed in both) and return what it names."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise UsageError(f"{option} must look like 'package.module:{example}', not {spec!r}")
    try:
        obj: object = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            raise UsageError(
                f"{option} {spec}: no module named {missing!r} in the current directory "
                f"({os.getcwd()}) or on sys.path"
            ) from exc
        raise AppError(f"{option} {spec}: importing {module_name} raised {_one_line(exc)}") from exc
    except Exception as exc:
        raise AppError(f"{option} {spec}: importing {module_name} raised {_one_line(exc)}") from exc
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UsageError(
                f"{option} {spec}: {type(obj).__name__} {getattr(obj, '__name__', '')!r} "
                f"has no attribute {part!r}"
            ) from None
    return obj


def load_kit(spec: str) -> Kit:
    """Import ``module:attribute`` and return the Kit it names.

    The attribute may also be a callable returning the kit (an application factory).

    :raises UsageError: ``spec`` is malformed, names no module or attribute, or not a kit.
    :raises AppError: the module, or the factory, raised.
    """
    obj = _import_attribute(spec, "--app", "kit")
    if callable(obj) and not isinstance(obj, Kit) and not isinstance(obj, type):
        try:
            obj = obj()
        except Exception as exc:
            raise AppError(f"--app {spec}: calling it raised {_one_line(exc)}") from exc
    if isinstance(obj, type):
        raise UsageError(f"--app {spec} is the class {obj.__name__}, not a taskkit Kit")
    if not isinstance(obj, Kit):
        raise UsageError(f"--app {spec} is a {type(obj).__name__}, not a taskkit Kit")
    return obj


def load_schedules(specs: Sequence[str]) -> dict[str, list[Any]]:
    """Import each ``module:attribute`` of ``--schedule`` and merge them.

    Each names a ``{scheduler_name: [entries]}`` mapping (what :meth:`Kit.start` takes), a
    list of entries (run under the scheduler name ``"default"``), a single
    :class:`ScheduleEntry`, or a callable returning one of those. The entries themselves
    are validated by the kit.
    """
    merged: dict[str, list[Any]] = {}
    for spec in specs:
        obj = _import_attribute(spec, "--schedule", "SCHEDULE")
        if callable(obj) and not isinstance(obj, (Mapping, Sequence, ScheduleEntry, type)):
            try:
                obj = obj()
            except Exception as exc:
                raise AppError(f"--schedule {spec}: calling it raised {_one_line(exc)}") from exc
        if isinstance(obj, ScheduleEntry):
            obj = [obj]
        if isinstance(obj, Mapping):
            items = dict(obj)
        elif isinstance(obj, (list, tuple)):
            items = {DEFAULT_SCHEDULER: obj}
        else:
            raise UsageError(
                f"--schedule {spec} is a {type(obj).__name__}: name a mapping "
                "{scheduler_name: [entries]}, a list of entries or a ScheduleEntry"
            )
        for name, entries in items.items():
            if isinstance(entries, (str, bytes, Mapping)) or not isinstance(entries, Sequence):
                raise UsageError(
                    f"--schedule {spec}: scheduler {name!r} must map to a list of entries, "
                    f"not {type(entries).__name__}"
                )
            merged.setdefault(name, []).extend(entries)
    return merged


def _ensure_cwd_on_path() -> None:
    """Put the current directory first on ``sys.path``, as ``python -m`` (and gunicorn) do."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


# --------------------------------------------------------------------------- argument types


def _group(value: str) -> str:
    try:
        return validate_name("group", value)
    except InvalidTask as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _task_id(value: str) -> str:
    # Looser than the enqueue rules on purpose: an operator must be able to cancel or
    # re-queue a task stored before those rules (or by another producer).
    if not value:
        raise argparse.ArgumentTypeError("a task id must not be empty")
    if not value.isprintable() or value != value.strip():
        raise argparse.ArgumentTypeError(
            f"task id {value!r} must be printable, without leading or trailing spaces"
        )
    return value


def _thread_count(value: str) -> tuple[str, int]:
    group, sep, count = value.rpartition("=")
    if not sep or not count.isdigit() or int(count) < 1:
        raise argparse.ArgumentTypeError(f"takes GROUP=COUNT with COUNT >= 1, not {value!r}")
    return _group(group), int(count)


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, not {number}")
    return number


def _window(value: str) -> float:
    from ._stats import checked_window  # noqa: PLC0415

    try:
        return checked_window(float(value))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _time_zone(value: str) -> tzinfo:
    import zoneinfo  # noqa: PLC0415

    try:
        return zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise argparse.ArgumentTypeError(
            f"unknown time zone {value!r} (an IANA name such as Europe/Paris; "
            "pip install tzdata where the system has none)"
        ) from None


def _port(value: str) -> int:
    if not value.isdigit() or int(value) > 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port (0 to 65535): {value!r}")
    return int(value)


def _log_level(value: str) -> str:
    level = value.upper()
    if level not in _LOG_LEVELS:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not one of {', '.join(_LOG_LEVELS)} (any case)"
        )
    return level


# --------------------------------------------------------------------------- the parser


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def installed_versions() -> list[str]:
    """``name version`` of every installed distribution named ``taskkit*``, and Python's."""
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"] or ""
        key = name.lower().replace("_", "-")
        if key.startswith("taskkit") and key not in found:
            found[key] = f"{name} {dist.version}"
    return [found[key] for key in sorted(found)] + [f"Python {platform.python_version()}"]


class _VersionAction(argparse.Action):
    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        kwargs.setdefault("help", "print the version of each installed taskkit distribution")
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        print("\n".join(installed_versions()))
        parser.exit(EXIT_OK)


def _epilog() -> str:
    codes = "\n".join(f"  {code:<4} {text}" for code, text in EXIT_CODES.items())
    return (
        "examples:\n"
        "  taskkit --app myapp:kit worker --processes 2 --threads default=4\n"
        "  taskkit --app myapp:kit worker --threads mail=2 --schedule myapp:SCHEDULE\n"
        "  taskkit --app myapp:kit stats default\n"
        "  python -m taskkit --app myapp:kit dead-letters --limit 10\n"
        "\n"
        f"exit status:\n{codes}\n"
        "\n"
        "environment:\n"
        "  TASKKIT_APP  the default of --app"
    )


def _add_common(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """The options accepted before and after the subcommand."""
    default: Any = argparse.SUPPRESS
    parser.add_argument(
        "--app",
        metavar="MODULE:ATTR",
        default=os.environ.get("TASKKIT_APP") if top else default,
        help="the Kit to use, as package.module:attribute (a callable returning a Kit also "
        "works); the current directory is searched first (default: $TASKKIT_APP)",
    )
    parser.add_argument(
        "--log-level",
        type=_log_level,
        metavar="LEVEL",
        default="INFO" if top else default,
        help=f"logging threshold: {', '.join(_LOG_LEVELS)} (default: INFO)",
    )
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="text" if top else default,
        help="how log lines look on stderr: text, or json (one object a line, with the task's "
        "fields; worker processes too) (default: text)",
    )
    parser.add_argument(
        "--traceback",
        action="store_true",
        default=False if top else default,
        help="on an error, print the full traceback as well as the one-line message",
    )


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="taskkit",
        description="Run taskkit workers and operate on tasks: the options go before or after "
        "the command.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_VersionAction)
    _add_common(parser, top=True)
    common = _Parser(add_help=False)
    _add_common(common, top=False)
    commands = parser.add_subparsers(
        dest="command",
        required=True,
        metavar="COMMAND",
        help="what to do (COMMAND --help for more)",
    )

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=text, description=text, parents=[common])

    worker = command(
        "worker",
        "run supervised worker processes (and schedulers) until SIGTERM/SIGINT or a shutdown "
        "event; if the backend is unreachable at start, wait for it",
    )
    worker.add_argument(
        "--processes",
        type=_positive_int,
        default=1,
        metavar="N",
        help="worker processes to run; a dead one is replaced (default: 1)",
    )
    worker.add_argument(
        "--threads",
        type=_thread_count,
        action="append",
        default=[],
        metavar="GROUP=COUNT",
        help="run COUNT threads (COUNT coroutines for an async group) for the tasks of GROUP "
        "in each process; repeat for more groups. Default: every group of the app's function "
        f"tasks, {DEFAULT_THREADS} threads per sync group and {DEFAULT_COROUTINES} coroutines "
        "per async one",
    )
    worker.add_argument(
        "--schedule",
        action="append",
        default=[],
        metavar="MODULE:ATTR",
        help="run the schedule entries ATTR names: a {scheduler_name: [entries]} mapping, a "
        "list of entries (scheduler name 'default') or a callable returning one; repeatable. "
        "Each point fires once however many workers run it",
    )
    worker.add_argument(
        "--timezone",
        type=_time_zone,
        metavar="ZONE",
        help="the time zone of schedules that set none, e.g. Europe/Paris (default: UTC)",
    )
    worker.add_argument(
        "--start-method",
        choices=["fork", "spawn", "forkserver"],
        help="how worker processes are started (default: the platform's)",
    )

    inspect = command(
        "inspect",
        "show each group's queued (due now), scheduled, running and dead-letter counts, the age "
        "of its oldest due task and its finished counts, then the live workers with the age "
        "of their last heartbeat",
    )
    inspect.add_argument(
        "groups", nargs="*", type=_group, metavar="GROUP", help="groups (default: every group)"
    )
    inspect.add_argument(
        "--window",
        type=_window,
        default=300.0,
        metavar="SECONDS",
        help="the finished counts cover the last SECONDS (at most 3600; default: 300)",
    )
    inspect.add_argument(
        "--json", action="store_true", help="print one JSON document instead of tables"
    )

    stats = command("stats", "print the queued and running counts of groups")
    stats.add_argument("groups", nargs="+", type=_group, metavar="GROUP", help="a task group")

    dead = command("dead-letters", "list dead letters, newest first: id, group/name, error")
    dead.add_argument("--group", type=_group, help="only this group's (default: every group)")
    dead.add_argument(
        "--limit", type=_positive_int, default=50, metavar="N", help="at most N (default: 50)"
    )
    worker.add_argument(
        "--metrics-port",
        type=_port,
        metavar="PORT",
        help="serve Prometheus metrics of every worker process on http://HOST:PORT/metrics "
        "(0: a free port, logged); needs taskkit-core[prometheus] (default: "
        "KitConfig.metrics_port, none)",
    )
    worker.add_argument(
        "--metrics-host",
        metavar="HOST",
        help="the address the metrics endpoint binds to (default: KitConfig.metrics_host, "
        "127.0.0.1)",
    )

    requeue = command("requeue", "put a dead letter back in its queue (exit 1 if it is not one)")
    requeue.add_argument(
        "task_id", type=_task_id, metavar="TASK_ID", help="the dead letter's task id"
    )

    cancel = command(
        "cancel",
        "cancel a task and print the outcome: cancelled (it was queued), requested (it is "
        "running; its worker stops it), finished (nothing to do) or not_found (exit 1)",
    )
    cancel.add_argument("task_id", type=_task_id, metavar="TASK_ID", help="the task id")

    for name, text in (
        ("pause", "ask workers to stop claiming tasks until resumed"),
        ("resume", "undo a pause"),
        ("shutdown", "ask workers to shut down gracefully"),
    ):
        control = command(name, f"{text} (a control event every worker reads)")
        control.add_argument(
            "groups", nargs="*", type=_group, metavar="GROUP", help="groups (default: all)"
        )
    return parser


# --------------------------------------------------------------------------- running


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command with ``argv`` (default: ``sys.argv[1:]``); return its exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
        if not args.app:
            parser.error("--app MODULE:ATTR is required (or set TASKKIT_APP)")
    except SystemExit as exc:  # --help, --version and usage errors end here
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    configure_logging(args.log_format, args.log_level)
    try:
        _ensure_cwd_on_path()
        kit = load_kit(args.app)
        return _run(kit, args)
    except KeyboardInterrupt:
        if args.command == "worker":
            return EXIT_OK
        print("taskkit: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (UsageError, ConfigurationError, ScheduleError, InvalidTask) as exc:
        return _fail(args, EXIT_USAGE, str(exc))
    except AppError as exc:
        return _fail(args, EXIT_APP_ERROR, str(exc))
    except ConnectionError as exc:  # BackendUnavailable included
        return _fail(args, EXIT_UNAVAILABLE, f"the backend is unreachable: {_one_line(exc)}")
    except Exception as exc:
        return _fail(args, EXIT_FAILED, _one_line(exc))


def _fail(args: argparse.Namespace, code: int, message: str) -> int:
    if args.log_format == "json":
        # Every stderr line stays one JSON object.
        log.error("%s", message, exc_info=args.traceback)
        return code
    if args.traceback:
        traceback.print_exc()
    hint = "" if args.traceback or code == EXIT_USAGE else " (--traceback for details)"
    print(f"taskkit: error: {message}{hint}", file=sys.stderr)
    return code


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    detail = text[0] if text else ""
    name = type(exc).__name__
    if isinstance(exc, TaskkitError) and detail:
        return detail
    return f"{name}: {detail}" if detail else name


def _run(kit: Kit, args: argparse.Namespace) -> int:
    if args.command == "worker":
        return _worker(kit, args)
    if args.command == "inspect":
        return _inspect(kit, args)
    if args.command == "stats":
        for group in args.groups:
            stats = kit.backend.stats(group)
            print(f"{group}: {stats.queued} queued, {stats.running} running")
    elif args.command == "dead-letters":
        for outcome in kit.dead_letters(args.group, args.limit):
            task = outcome.task
            error = (outcome.error or "").strip().splitlines()
            print(f"{task.id}\t{task.group}/{task.name}\t{error[-1] if error else ''}")
    elif args.command == "requeue":
        if not kit.requeue_dead_letter(args.task_id):
            print(f"taskkit: {args.task_id} is not a dead letter", file=sys.stderr)
            return EXIT_FAILED
        print(f"{args.task_id} re-queued")
    elif args.command == "cancel":

        result = kit.cancel(args.task_id)
        print(result.value)
        return EXIT_FAILED if result is CancelResult.NOT_FOUND else EXIT_OK
    else:
        groups = args.groups or None
        {
            "pause": kit.send_pause_event,
            "resume": kit.send_resume_event,
            "shutdown": kit.send_shutdown_event,
        }[args.command](groups)
        print(f"{args.command} sent to {'groups ' + ', '.join(groups) if groups else 'all groups'}")
    return EXIT_OK


def _inspect(kit: Kit, args: argparse.Namespace) -> int:
    from ._inspect import inspect_report, render_json, render_text  # noqa: PLC0415

    if not kit.backend.supports_fleet_stats and not args.groups:
        raise UsageError(
            f"the {kit.backend.name or 'configured'} backend keeps no fleet figures: name the "
            "groups to inspect (their queued and running counts)"
        )
    report = inspect_report(kit.backend, args.groups, args.window)
    print(render_json(report) if args.json else render_text(report))
    return EXIT_OK


def function_task_groups(kit: Kit) -> dict[str, int]:
    """The concurrency ``taskkit worker`` gives each group of the kit's function tasks when no
    ``--threads`` is given: :data:`DEFAULT_THREADS` threads for a sync group,
    :data:`DEFAULT_COROUTINES` coroutines for an async one."""
    is_async = getattr(kit.router, "is_async_group", lambda group: False)
    return {
        group: DEFAULT_COROUTINES if is_async(group) else DEFAULT_THREADS
        for group in kit.tasks.groups()
    }


def _worker(kit: Kit, args: argparse.Namespace) -> int:
    threads: dict[str, int] = {}
    for group, count in args.threads:
        if group in threads:
            raise UsageError(f"--threads {group}=… is given twice")
        threads[group] = count
    schedules = load_schedules(args.schedule)
    if not threads:
        threads = function_task_groups(kit)
        if threads:
            log.info(
                "serving the function tasks' groups: %s",
                ", ".join(f"{group}={count}" for group, count in threads.items()),
            )
    if not threads and not schedules:
        raise UsageError(
            "give --threads GROUP=COUNT, --schedule MODULE:ATTR, or both (the app has no "
            "function tasks whose groups could be served by default)"
        )
    _metrics_options(kit, args)
    # Validate everything before waiting for the backend: a typo must not wait forever.
    kit._worker_spec(args.processes, threads, schedules or None, args.timezone)
    if not _wait_for_backend(kit):
        return EXIT_OK
    kit.start(
        args.processes,
        threads,
        schedules or None,
        tzinfo=args.timezone,
        start_method=args.start_method,
    )
    return EXIT_OK


def _metrics_options(kit: Kit, args: argparse.Namespace) -> None:
    """Apply ``--metrics-port``/``--metrics-host`` to the kit's config, and check that the
    exporter they turn on can be made (before waiting for the backend)."""
    from ._supervisor import config_plugins  # noqa: PLC0415 - only the worker command needs it

    changes: dict[str, Any] = {}
    if args.metrics_port is not None:
        changes["metrics_port"] = args.metrics_port
    if args.metrics_host is not None:
        if args.metrics_port is None and kit.config.metrics_port is None:
            raise UsageError("--metrics-host needs --metrics-port (or KitConfig.metrics_port)")
        changes["metrics_host"] = args.metrics_host
    if changes:
        kit.config = dataclasses.replace(kit.config, **changes)
    config_plugins(kit)


def _wait_for_backend(kit: Kit) -> bool:
    """Block until the backend answers; False if SIGTERM or Ctrl-C stopped the wait.

    Says so once at WARNING, then probes with back-off (at most every 2 s).
    """

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise _Stopped

    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, on_term) if in_main else None
    delay = _WAIT_FIRST
    waiting_since: float | None = None
    try:
        while True:
            try:
                kit.backend.now()
            except ConnectionError as exc:
                if waiting_since is None:
                    waiting_since = time.monotonic()
                    log.warning(
                        "waiting for the backend (%s); retrying every %.0fs at most "
                        "(Ctrl-C to stop)",
                        _one_line(exc),
                        _WAIT_MAX,
                    )
                else:
                    log.debug("the backend is still unreachable: %s", exc)
                time.sleep(delay)
                delay = min(delay * 2, _WAIT_MAX)
                continue
            if waiting_since is not None:
                log.info(
                    "the backend is reachable after %.0fs; starting",
                    time.monotonic() - waiting_since,
                )
            return True
    except (KeyboardInterrupt, _Stopped):
        log.info("stopped while waiting for the backend")
        return False
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous or signal.SIG_DFL)


if __name__ == "__main__":
    sys.exit(main())
