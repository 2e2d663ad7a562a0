"""``manage.py taskkit_worker``: run taskkit workers and schedulers from the settings.

Reads ``settings.TASKKIT`` (see :mod:`taskkit_django._settings`); the options override it.
Blocks under taskkit's supervisor until SIGTERM/SIGINT (graceful) or a second signal.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from taskkit_django import _settings


class Command(BaseCommand):
    help = "Run taskkit worker processes (and schedulers) configured by settings.TASKKIT."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--processes", type=int, help="worker processes (TASKKIT PROCESSES)")
        parser.add_argument(
            "--threads",
            action="append",
            metavar="GROUP=N",
            help="threads per process for GROUP; repeat for several groups (TASKKIT THREADS)",
        )
        parser.add_argument("--database", help="database alias (TASKKIT DATABASE)")
        parser.add_argument("--handler", help="dotted path of the TaskHandler (TASKKIT HANDLER)")
        parser.add_argument(
            "--no-schedule", action="store_true", help="do not run the TASKKIT SCHEDULE entries"
        )
        parser.add_argument(
            "--start-method", choices=["fork", "spawn", "forkserver"], help="multiprocessing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from django.utils.module_loading import import_string  # noqa: PLC0415
        from taskkit import TaskHandler  # noqa: PLC0415

        from taskkit_django import make_kit  # noqa: PLC0415

        conf = _settings.load()
        if options["handler"]:
            handler = import_string(options["handler"])
            conf.handler = handler() if isinstance(handler, type) else handler
        if not isinstance(conf.handler, TaskHandler):
            raise CommandError("set TASKKIT['HANDLER'] (or --handler) to a TaskHandler")
        threads = dict(conf.threads)
        for spec in options["threads"] or []:
            group, sep, count = spec.partition("=")
            if not sep or not count.isdigit():
                raise CommandError(f"--threads takes GROUP=N, not {spec!r}")
            threads[group] = int(count)
        schedule = None if options["no_schedule"] else conf.schedule
        if not threads and not schedule:
            raise CommandError("nothing to run: set TASKKIT['THREADS'] and/or TASKKIT['SCHEDULE']")
        kit = make_kit(conf.handler, using=options["database"] or conf.database, **conf.options)
        processes = options["processes"] or conf.processes
        self.stdout.write(
            f"taskkit: {processes} process(es), threads {threads or '{}'}"
            + (f", schedulers {', '.join(schedule)}" if schedule else "")
        )
        kit.start(
            num_processes=processes,
            num_worker_threads_per_group=threads,
            schedule_entries=schedule,
            tzinfo=conf.timezone,
            start_method=options["start_method"],
        )
