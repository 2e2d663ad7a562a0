"""The tables behind the Django backend.

Times are epoch seconds (double precision) on the database's clock, so every comparison the
backend makes is a plain float comparison on every database, and no time zone setting of the
project changes the meaning of a stored value.
"""

from __future__ import annotations

import hashlib
import json

from django.db import models

# The fleet figures' tables live beside the code that uses them; Django finds them here.
from ._fleet_models import FinishedCount as FinishedCount
from ._fleet_models import WorkerRecord as WorkerRecord

#: Longest group or task name (the core validates the same limit).
NAME_LENGTH = 128
#: Longest task id: random ids are 32 hex digits, scheduler ids a bit longer.
ID_LENGTH = 255


class State(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DISCARDED = "discarded"
    DEAD = "dead"
    CANCELLED = "cancelled"


class TaskRecord(models.Model):
    """One task, its lease while it runs, and its outcome once it finished."""

    id = models.CharField(primary_key=True, max_length=ID_LENGTH)
    group = models.CharField(max_length=NAME_LENGTH)
    name = models.CharField(max_length=NAME_LENGTH)
    data = models.BinaryField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    due = models.FloatField(help_text="epoch seconds: the earliest time the task may run")
    created = models.FloatField(help_text="epoch seconds")
    scheduled = models.FloatField(null=True, blank=True)
    retry_count = models.IntegerField(default=0)
    ttl = models.FloatField(help_text="seconds the finished record is kept")
    timeout = models.FloatField(null=True, blank=True)
    deliveries = models.IntegerField(default=0)
    #: The task's headers as compact JSON (``taskkit.backend.encode_headers``); null when it
    #: has none, so adding the column leaves existing rows untouched.
    headers = models.TextField(null=True, blank=True)
    #: The fencing token of the current (or last) claim.
    token = models.CharField(max_length=32, null=True, blank=True)
    worker_id = models.CharField(max_length=255, null=True, blank=True)
    lease_expires = models.FloatField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    result = models.BinaryField(null=True, blank=True)
    error = models.TextField(null=True, blank=True)
    finished = models.FloatField(null=True, blank=True)
    #: ``finished + ttl``: when the finished record may be deleted.
    expires = models.FloatField(null=True, blank=True)

    class Meta:
        app_label = "taskkit"
        db_table = "taskkit_task"
        verbose_name = "task"
        verbose_name_plural = "tasks"
        indexes = [  # noqa: RUF012 - Django's Meta convention
            # Claims: queued tasks of a group in due order, expired leases of a group.
            models.Index(fields=["group", "state", "due", "created"], name="taskkit_claim_idx"),
            models.Index(fields=["group", "state", "lease_expires"], name="taskkit_lease_idx"),
            models.Index(fields=["state", "finished"], name="taskkit_finished_idx"),
            models.Index(fields=["worker_id"], name="taskkit_worker_idx"),
            models.Index(fields=["expires"], name="taskkit_expires_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.group}/{self.name} {self.id} ({self.state})"


class ScheduleMark(models.Model):
    """The last fired point of one schedule entry: the compare-and-set cell of schedulers.

    Scheduler names and entry keys are free text of any length, so the unique key is a
    digest of the pair (:func:`mark_digest`); the names are kept beside it for people.
    """

    digest = models.CharField(max_length=64, unique=True)
    scheduler = models.TextField()
    key = models.TextField()
    point = models.FloatField()

    class Meta:
        app_label = "taskkit"
        db_table = "taskkit_schedule_mark"

    def __str__(self) -> str:
        return f"{self.scheduler}/{self.key} @ {self.point}"


def mark_digest(scheduler: str, key: str) -> str:
    """The unique key of (``scheduler``, ``key``): unambiguous for any text."""
    raw = json.dumps([scheduler, key], ensure_ascii=False).encode("utf-8", "surrogatepass")
    return hashlib.sha256(raw).hexdigest()


class ControlRecord(models.Model):
    """A shutdown, pause or resume event; only the most recent ones are kept."""

    seq = models.BigAutoField(primary_key=True)
    kind = models.CharField(max_length=16)
    #: The groups as a JSON list, or null for all groups.
    groups = models.TextField(null=True, blank=True)
    created = models.FloatField()

    class Meta:
        app_label = "taskkit"
        db_table = "taskkit_control"
        verbose_name = "control event"

    def __str__(self) -> str:
        return f"#{self.seq} {self.kind}"
