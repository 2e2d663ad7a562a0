"""The tables of the fleet and queue figures (:mod:`taskkit_django._stats`), imported by the
app's ``models`` module: per-group finished counters and the registry of live workers."""

from __future__ import annotations

from django.db import models

#: Longest group name (as ``models.NAME_LENGTH``; kept here so the import runs one way).
_NAME_LENGTH = 128


class FinishedCount(models.Model):
    """How many tasks of one group reached one finished state within one bucket of
    ``taskkit.backend.FINISHED_BUCKET`` seconds of the database's clock, as counted by one
    shard of writers (a shard per process keeps concurrent finishing writes off each other's
    row locks; readers sum the shards)."""

    group = models.CharField(max_length=_NAME_LENGTH)
    #: ``floor(finished / FINISHED_BUCKET)``.
    bucket = models.BigIntegerField()
    outcome = models.CharField(max_length=16)
    shard = models.SmallIntegerField()
    n = models.BigIntegerField(default=0)

    class Meta:
        app_label = "taskkit"
        db_table = "taskkit_finished_count"
        verbose_name = "finished count"
        constraints = [  # noqa: RUF012 - Django's Meta convention
            # The upsert's target, and the index a window's read scans (group, then buckets).
            models.UniqueConstraint(
                fields=["group", "bucket", "outcome", "shard"], name="taskkit_finished_count_key"
            ),
        ]
        indexes = [  # noqa: RUF012
            # Deleting the buckets older than the longest window.
            models.Index(fields=["bucket"], name="taskkit_finished_bucket_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.group} {self.outcome} @{self.bucket}: {self.n}"


class WorkerRecord(models.Model):
    """One live worker process: registered at its start, renewed at each heartbeat, deleted
    at its stop; listed only until ``expires``."""

    id = models.CharField(primary_key=True, max_length=255)
    host = models.CharField(max_length=255)
    pid = models.IntegerField()
    #: The worker's concurrency per group, as a JSON object.
    threads = models.TextField()
    started = models.FloatField(help_text="epoch seconds")
    heartbeat = models.FloatField(help_text="epoch seconds")
    expires = models.FloatField(help_text="epoch seconds: no longer listed from then on")
    tasks_held = models.IntegerField(default=0)

    class Meta:
        app_label = "taskkit"
        db_table = "taskkit_worker"
        verbose_name = "worker"
        indexes = [  # noqa: RUF012
            models.Index(fields=["expires"], name="taskkit_worker_expires_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.id} ({self.host} pid {self.pid})"
