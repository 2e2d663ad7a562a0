"""``manage.py taskkit_purge --older-than 30d``: delete old finished task records.

Records also expire on their own (``ttl``); this command is for a tighter cutoff or a
backlog. Deletes in short batches (workers are never blocked for long) and shows progress:
a bar when ``tqdm`` is installed and the output is a terminal, else a line per batch.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """``"90"`` (seconds), ``"15m"``, ``"12h"``, ``"30d"``, ``"2w"`` → seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 90, 15m, 12h, 30d, 2w)")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


class Command(BaseCommand):
    help = "Delete finished taskkit records that finished more than a given time ago."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            required=True,
            help="age cutoff: seconds, or with a unit: 15m, 12h, 30d, 2w",
        )
        parser.add_argument("--database", help="database alias (default: TASKKIT DATABASE)")
        parser.add_argument("--batch-size", type=int, default=1000)
        parser.add_argument("--dry-run", action="store_true", help="only count")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        from taskkit_django import _settings  # noqa: PLC0415
        from taskkit_django.backend import DjangoBackend  # noqa: PLC0415

        try:
            age = parse_duration(options["older_than"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be >= 1")
        backend = DjangoBackend(options["database"] or _settings.load().database)
        cutoff = backend.now() - age
        total = backend.count_purgeable(cutoff)
        if options["dry_run"] or total == 0:
            self.stdout.write(f"{total} finished record(s) older than {options['older_than']}")
            return
        bar = None if options["no_progress"] else self._bar(total)
        deleted = 0
        for count in backend.purge_batches(cutoff, options["batch_size"]):
            deleted += count
            if bar is not None:
                bar.update(count)
            elif not options["no_progress"]:
                self.stdout.write(f"deleted {deleted}/{total} ({100 * deleted // total}%)")
        if bar is not None:
            bar.close()
        self.stdout.write(self.style.SUCCESS(f"deleted {deleted} finished record(s)"))

    def _bar(self, total: int) -> Any:
        if not (hasattr(self.stdout, "isatty") and self.stdout.isatty()):
            return None
        try:
            from tqdm import tqdm  # noqa: PLC0415
        except ImportError:
            return None
        return tqdm(total=total, unit="rec", file=sys.stderr)
