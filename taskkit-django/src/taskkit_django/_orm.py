"""``DjangoBackend``: the backend contract in portable Django ORM code.

This class is the MariaDB/MySQL flavour as it is; the SQLite flavour
(:mod:`taskkit_django._sqlite`) and the PostgreSQL flavour (:mod:`taskkit_django._postgres`)
subclass it for what their database does differently. :meth:`DjangoBackend.flavour` picks
the class for a database alias.

How each guarantee is kept:

- **Claims** lock candidate rows with ``SELECT … FOR UPDATE SKIP LOCKED`` (PostgreSQL,
  MariaDB, MySQL) inside a short transaction that ends before any handler runs; on SQLite the
  transaction starts with ``BEGIN IMMEDIATE`` (:func:`taskkit_django._db.write_transaction`)
  so claimers are serialised by the write lock.
  When nothing is claimable a claim takes no lock at all (two indexed ``MIN`` reads).
- **Time** is the database's clock (:func:`taskkit_django._db.now_sql`), unless a fake clock
  is given for tests.
- **Fencing**: every change of a claimed task filters by id, ``state = running`` and the
  claim's token; zero rows changed means the lease was lost. Every end of a claim is one
  such update in :meth:`DjangoBackend.record_outcomes` (the base class derives the rest).
- **Waits**: here they back off (MariaDB/MySQL); the SQLite flavour polls
  ``PRAGMA data_version``, the PostgreSQL flavour blocks on ``LISTEN``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import reduce
from operator import or_
from typing import Any, ClassVar

from django.db import connections
from django.db.models import Case, Count, F, FloatField, Q, QuerySet, Value, When
from django.db.models.expressions import Combinable, RawSQL
from django.db.models.functions import Greatest, Least
from taskkit import (
    CancelResult,
    Claim,
    ClaimBatch,
    ControlEvent,
    ControlKind,
    LeaseStatus,
    Outcome,
    OutcomeWrite,
    QueueStats,
    Task,
    TaskState,
)
from taskkit.backend import Backend, OutcomeChange, earliest, outcome_changes
from taskkit.clock import Clock
from taskkit.errors import ConfigurationError

from . import _db
from ._aio import AsyncDjangoMixin
from ._listen import OUTCOME_PREFIX, WORK_PREFIX
from ._rows import (
    CHUNK,
    DEAD,
    FINISHED_STATES,
    QUEUED,
    RUNNING,
    TASK_FIELDS,
    app_models,
    chunks,
    event_from_row,
    headers_column,
    outcome_from_row,
    task_from_values,
)
from ._stats import DjangoStatsMixin

__all__ = ["DjangoBackend"]

log = logging.getLogger("taskkit.django")

#: A schedule mark that exists only to be compare-and-set; reads as "never fired".
_NO_MARK = -1e300
_SWEEP_EVERY = 60.0
#: The flavour class of each database vendor that has one (filled by ``__init_subclass__``);
#: any other vendor gets :class:`DjangoBackend` itself.
_FLAVOURS: dict[str, type[DjangoBackend]] = {}


class DjangoBackend(DjangoStatsMixin, AsyncDjangoMixin, Backend):
    """Tasks in the tables of the ``taskkit`` app, on the database alias ``using``.

    :param using: the ``DATABASES`` alias.
    :param clock: a fake clock for tests; by default every time decision uses the database's
        clock.
    :param dead_letter_limit: the most dead letters kept (older ones are deleted first).
    :param control_kept: how many recent control events are kept.
    :param url: set by the embedded mode (``sqlite://…`` etc.) so that a copy in another
        process can configure Django the same way.

    ``DjangoBackend(using=...)`` returns the flavour of the alias's database (as
    :meth:`flavour` picks it): the PostgreSQL flavour (with LISTEN/NOTIFY), the SQLite
    flavour, or this class for MariaDB/MySQL.
    """

    name: ClassVar[str] = "django"
    supports_processes: ClassVar[bool] = True
    supports_transactional_put: ClassVar[bool] = True
    supports_fake_clock: ClassVar[bool] = True
    #: The database vendor (Django's ``connection.vendor``) a flavour subclass is for; a
    #: subclass that sets it becomes that vendor's flavour. None: any vendor.
    for_vendor: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        vendor = cls.__dict__.get("for_vendor")
        if vendor is not None:
            _FLAVOURS[vendor] = cls

    @classmethod
    def flavour(cls, using: str = "default") -> type[DjangoBackend]:
        """The class for the database alias ``using``: its vendor's flavour, or
        :class:`DjangoBackend` itself (MariaDB/MySQL).

        The flavours register when :mod:`taskkit_django.backend` is imported, which every
        public way to this class does.
        """
        _require_app()
        if using not in connections:
            raise ConfigurationError(f"no database alias {using!r} in settings.DATABASES")
        return _FLAVOURS.get(_db.vendor(using), DjangoBackend)

    def __new__(cls, using: str = "default", **options: Any) -> DjangoBackend:
        # taskkit 0.2 code builds ``DjangoBackend(...)`` itself: it gets the flavour too.
        if cls is DjangoBackend:
            cls = DjangoBackend.flavour(using)
        return super().__new__(cls)

    def __init__(
        self,
        using: str = "default",
        *,
        clock: Clock | None = None,
        dead_letter_limit: int = 10_000,
        control_kept: int = 100,
        url: str | None = None,
    ) -> None:
        _require_app()
        if using not in connections:
            raise ConfigurationError(f"no database alias {using!r} in settings.DATABASES")
        self.using = using
        self.clock = clock
        self.dead_letter_limit = dead_letter_limit
        self.control_kept = control_kept
        self.url = url
        self.vendor = _db.vendor(using)
        if self.for_vendor is not None and self.vendor != self.for_vendor:
            raise ConfigurationError(
                f"{type(self).__name__} is for {self.for_vendor} databases; "
                f"{using!r} is {self.vendor} (build DjangoBackend({using!r}) instead)"
            )
        _db.now_sql(using)  # refuses unsupported databases now rather than at first use
        self._last_sweep = 0.0
        self._busy: dict[tuple[str, int], bool] = {}
        self._lease_hints: dict[str, tuple[float | None, float, float]] = {}

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.url, self.using, self._options()))

    def clone(self) -> DjangoBackend:
        # Built directly rather than through pickle, so a fake clock (not picklable) is
        # shared by in-process clones; other processes unpickle via __reduce__.
        return _rebuild(type(self), self.url, self.using, self._options())

    def _options(self) -> dict[str, Any]:
        return {
            "clock": self.clock,
            "dead_letter_limit": self.dead_letter_limit,
            "control_kept": self.control_kept,
        }

    def __repr__(self) -> str:
        return f"<{type(self).__name__} using={self.using!r} ({self.vendor})>"

    # ------------------------------------------------------------------ helpers

    def _tasks(self) -> QuerySet[Any]:
        tasks: QuerySet[Any] = app_models().TaskRecord.objects.using(self.using)
        return tasks

    def _now_expr(self) -> Combinable:
        if self.clock is not None:
            return Value(self.clock.time(), output_field=FloatField())
        # A constant per database vendor, never built from input.
        return RawSQL(_db.now_sql(self.using), (), output_field=FloatField())  # noqa: S611

    def _live(self) -> Q:
        """Records whose TTL has not run out (expired ones count as gone)."""
        return Q(expires__isnull=True) | Q(expires__gt=self._now_expr())

    def _run(self, fn: Any) -> Any:
        return _db.run(self.using, fn)

    def _notify(self, payloads: Iterable[str]) -> None:
        """Announce changes; PostgreSQL only, inside the current transaction."""

    def _notify_work(self, groups: Iterable[str]) -> None:
        self._notify(WORK_PREFIX + g for g in set(groups))

    def _notify_outcomes(self, task_ids: Iterable[str]) -> None:
        self._notify(OUTCOME_PREFIX + t for t in task_ids)

    def now(self) -> float:
        if self.clock is not None:
            return self.clock.time()
        return float(self._run(lambda _replaying: _db.db_now(self.using)))

    def _now_value(self) -> float:
        return self.clock.time() if self.clock is not None else _db.db_now(self.using)

    # ------------------------------------------------------------------ producers

    def put(self, tasks: Sequence[Task]) -> list[bool]:
        if not tasks:
            return []
        first: dict[str, int] = {}
        for i, task in enumerate(tasks):
            first.setdefault(task.id, i)
        unique = [tasks[i] for i in sorted(first.values())]
        inserted: set[str] = self._run(lambda _replaying: self._store_new(unique))
        return [t.id in inserted and first[t.id] == i for i, t in enumerate(tasks)]

    def _store_new(self, tasks: Sequence[Task]) -> set[str]:
        """Store the tasks whose ids are free and wake their workers; the ids it stored."""
        nonce = uuid.uuid4().hex
        with _db.write_transaction(self.using):
            inserted = self._insert_over_expired(tasks, lambda batch: self._insert(batch, nonce))
            self._notify_work(t.group for t in tasks if t.id in inserted)
        return inserted

    def _insert_over_expired(
        self, tasks: Sequence[Task], insert: Callable[[Sequence[Task]], set[str]]
    ) -> set[str]:
        """``insert`` (insert-or-ignore), then once more for the ids that only an expired
        record held (deleted in between); the ids stored."""
        inserted = insert(tasks)
        missing = [t.id for t in tasks if t.id not in inserted]
        if missing and self._delete_expired(missing):
            again = set(missing)
            inserted |= insert([t for t in tasks if t.id in again])
        return inserted

    def _insert(self, tasks: Sequence[Task], nonce: str) -> set[str]:
        """Insert-or-ignore ``tasks``; returns the ids this call stored.

        The insert marks its rows with ``nonce`` in the (still unused) token column, so the
        ids that are new can be read back even when a concurrent put raced for the same id.
        """
        record = app_models().TaskRecord
        rows = [
            record(
                id=t.id,
                group=t.group,
                name=t.name,
                data=t.data,
                state=QUEUED,
                due=t.due,
                created=t.created,
                scheduled=t.scheduled,
                retry_count=t.retry_count,
                ttl=t.ttl,
                timeout=t.timeout,
                deliveries=0,
                headers=headers_column(t),
                token=nonce,
            )
            for t in tasks
        ]
        self._tasks().bulk_create(rows, ignore_conflicts=True, batch_size=CHUNK)
        stored: set[str] = set()
        for chunk in chunks([t.id for t in tasks]):
            stored.update(
                self._tasks().filter(id__in=chunk, token=nonce).values_list("id", flat=True)
            )
        return stored

    def _delete_expired(self, ids: Sequence[str]) -> int:
        deleted = 0
        for chunk in chunks(ids):
            deleted += self._tasks().filter(id__in=chunk, expires__lte=self._now_expr()).delete()[0]
        return deleted

    def put_scheduled(self, task: Task, scheduler: str, key: str, point: float) -> bool:
        models = app_models()
        marks = models.ScheduleMark.objects.using(self.using)
        digest = models.mark_digest(scheduler, key)

        class _AlreadyFired(Exception):
            pass

        def op(replaying: bool) -> bool:
            try:
                with _db.write_transaction(self.using):
                    marks.bulk_create(
                        [
                            models.ScheduleMark(
                                digest=digest, scheduler=scheduler, key=key, point=_NO_MARK
                            )
                        ],
                        ignore_conflicts=True,
                    )
                    # The compare-and-set: a second replica, or a late paused one, matches
                    # no row here (PostgreSQL and InnoDB re-check the condition on the row
                    # version the first writer committed).
                    if not marks.filter(digest=digest, point__lt=point).update(point=point):
                        raise _AlreadyFired
                    self._delete_expired([task.id])
                    if not self._insert([task], uuid.uuid4().hex):
                        raise _AlreadyFired  # rolls the mark back: the id exists
                    self._notify_work([task.group])
            except _AlreadyFired:
                return False
            return True

        return bool(self._run(op))

    def get_schedule_mark(self, scheduler: str, key: str) -> float | None:
        models = app_models()
        marks = models.ScheduleMark.objects.using(self.using)
        digest = models.mark_digest(scheduler, key)

        def op(replaying: bool) -> float | None:
            found = marks.filter(digest=digest).values_list("point", flat=True)
            point: float | None = found.first()
            return point

        point = self._run(op)
        return None if point is None or point <= _NO_MARK else float(point)

    # ------------------------------------------------------------------ workers

    def _before_claim(self, group: str) -> None:
        """Remember what the thread has seen, so :meth:`wait_for_work` misses nothing
        (a flavour whose waits can block)."""

    def claim(
        self,
        group: str,
        worker_id: str,
        limit: int,
        lease_seconds: float,
        max_deliveries: int,
    ) -> ClaimBatch:
        self._maybe_sweep()
        busy_key = (group, threading.get_ident())

        def op(replaying: bool) -> ClaimBatch:
            self._before_claim(group)
            if limit < 1 or not self._busy.get(busy_key):
                # The idle path: one read of the clock and two indexed minimums, no lock.
                now, queued, running = self._pending(group, ())
                next_due = earliest(queued, running)
                if limit < 1 or next_due is None or next_due > now:
                    return ClaimBatch([], next_due, [])
            with _db.write_transaction(self.using):
                batch = self._claim_locked(group, worker_id, limit, lease_seconds, max_deliveries)
            # While claims come back full, skip the idle path's read next time.
            self._busy[busy_key] = len(batch.claims) >= limit
            return batch

        return self._run(op)  # type: ignore[no-any-return]

    def _may_have_expired(self, group: str) -> bool:
        """False when the last look (a moment ago) saw no lease of ``group`` running out.

        Saves the expired-lease query on the busy path; the hint is trusted for 0.25 s only
        (and never with a fake clock), so a lease that runs out meanwhile waits one claim.
        """
        hint = self._lease_hints.get(group)
        if hint is None or self.clock is not None:
            return True
        running_min, db_now, seen_at = hint
        elapsed = time.monotonic() - seen_at
        if elapsed > 0.25:
            return True
        return running_min is not None and running_min <= db_now + elapsed + 0.05

    def _claim_locked(
        self,
        group: str,
        worker_id: str,
        limit: int,
        lease_seconds: float,
        max_deliveries: int,
    ) -> ClaimBatch:
        now = self._now_expr()
        base = self._tasks().filter(group=group)
        expired: list[dict[str, Any]] = []
        if self._may_have_expired(group):
            expired = list(
                base.filter(state=RUNNING, lease_expires__lte=now)
                .select_for_update(skip_locked=True)
                .order_by("lease_expires", "id")
                .values(*TASK_FIELDS, db_now=now)[: limit + 100]
            )
        # The candidates are read whole, so the claimed tasks need no second read.
        queued = list(
            base.filter(state=QUEUED, due__lte=now)
            .select_for_update(skip_locked=True)
            .order_by("due", "created", "id")
            .values(*TASK_FIELDS, db_now=now)[:limit]
        )
        dead_ids = [row["id"] for row in expired if row["deliveries"] >= max_deliveries]
        candidates = [row for row in expired if row["deliveries"] < max_deliveries] + queued
        candidates.sort(key=lambda row: (row["due"], row["created"], row["id"]))
        chosen = candidates[:limit]
        chosen_ids = [row["id"] for row in chosen]

        dead: list[Outcome] = []
        if dead_ids:
            base.filter(id__in=dead_ids).update(**self._finished(DEAD, error="worker lost"))
            self._count_finished(dead_ids)
            dead = [outcome_from_row(r) for r in self._tasks().filter(id__in=dead_ids)]
            self._notify_outcomes(dead_ids)
            self._trim_dead_letters()

        claims: list[Claim] = []
        if chosen:
            # One token per task (workers key their bookkeeping by token), set in one UPDATE.
            tokens = {task_id: uuid.uuid4().hex for task_id in chosen_ids}
            lease_expires = float(chosen[0]["db_now"]) + lease_seconds
            self._tasks().filter(id__in=chosen_ids).update(
                state=RUNNING,
                token=Case(*(When(id=i, then=Value(t)) for i, t in tokens.items())),
                worker_id=worker_id,
                lease_expires=lease_expires,
                deliveries=F("deliveries") + 1,
            )
            claims = [
                Claim(
                    task_from_values(row, deliveries=row["deliveries"] + 1),
                    tokens[row["id"]],
                    lease_expires,
                    worker_id,
                )
                for row in chosen
            ]
        # After the update: what this batch took is no longer pending for this caller.
        _, queued_min, running_min = self._pending(group, chosen_ids)
        return ClaimBatch(claims, earliest(queued_min, running_min), dead)

    def _pending(
        self, group: str, exclude: Sequence[str]
    ) -> tuple[float, float | None, float | None]:
        """(now, the earliest due time of queued tasks, the earliest lease expiry of running
        tasks not in ``exclude``), in one round trip on two indexed minimums."""
        qn = connections[self.using].ops.quote_name
        table, col = qn("taskkit_task"), qn("group")
        params: list[Any] = []
        if self.clock is not None:
            now_sql = "%s"
            params.append(self.clock.time())
        else:
            now_sql = _db.now_sql(self.using)
        not_in = ""
        if exclude:
            not_in = f" AND {qn('id')} NOT IN ({', '.join(['%s'] * len(exclude))})"
        # Only quoted identifiers and the vendor's clock are interpolated; values are params.
        sql = (
            f"SELECT {now_sql}, "  # noqa: S608
            f"(SELECT MIN(due) FROM {table} WHERE {col} = %s AND state = %s), "
            f"(SELECT MIN(lease_expires) FROM {table} WHERE {col} = %s AND state = %s{not_in})"
        )
        params += [group, QUEUED, group, RUNNING, *exclude]
        with connections[self.using].cursor() as cursor:
            cursor.execute(sql, params)
            now, queued, running = cursor.fetchone()
        now = float(now)
        running = None if running is None else float(running)
        self._lease_hints[group] = (running, now, time.monotonic())
        return now, (None if queued is None else float(queued)), running

    def _finished(
        self, state: str, *, result: bytes | None = None, error: str | None = None
    ) -> dict[str, Any]:
        """The column values of a task that reaches the finished ``state`` now: every finish
        (a worker's outcome, a claim's "worker lost", a cancel of a queued task) writes these."""
        now = self._now_expr()
        return {
            "state": state,
            "result": result,
            "error": error,
            "finished": now,
            "expires": now + F("ttl"),
            "worker_id": None,
            "lease_expires": None,
            "cancel_requested": False,
        }

    def _fenced(self, claims: Sequence[Claim]) -> Q:
        return reduce(or_, (Q(id=c.task.id, token=c.token) for c in claims)) & Q(state=RUNNING)

    def renew(self, claims: Sequence[Claim], lease_seconds: float) -> list[LeaseStatus]:
        if not claims:
            return []

        def op(replaying: bool) -> dict[tuple[str, str], bool]:
            live: dict[tuple[str, str], bool] = {}
            with _db.write_transaction(self.using):
                expires = self._now_expr() + Value(lease_seconds)
                for chunk in chunks(claims, 200):
                    cond = self._fenced(chunk)
                    self._tasks().filter(cond).update(lease_expires=expires)
                    rows = self._tasks().filter(cond).values_list("id", "token", "cancel_requested")
                    live.update(((i, t), c) for i, t, c in rows)
            return live

        live: dict[tuple[str, str], bool] = self._run(op)
        statuses = []
        for claim in claims:
            key = (claim.task.id, claim.token)
            if key not in live:
                statuses.append(LeaseStatus.LOST)
            elif live[key]:
                statuses.append(LeaseStatus.CANCEL_REQUESTED)
            else:
                statuses.append(LeaseStatus.OK)
        return statuses

    def record_outcomes(self, writes: Sequence[OutcomeWrite]) -> list[bool]:
        # One transaction for the batch (one commit, and SQLite's writers' gate once); rows
        # are changed in id order, the order a bulk statement locks them in, so two batches
        # never wait on each other in a cycle.
        changes = sorted(outcome_changes(writes), key=lambda c: c.claim.task.id)

        def op(replaying: bool) -> list[bool]:
            applied = [False] * len(writes)
            if not changes:
                return applied
            finished: list[str] = []  # by this attempt (a replayed one counted as it committed)
            with _db.write_transaction(self.using):
                for change in changes:
                    changed = self._apply_outcome(change)
                    if changed and change.due is None:
                        finished.append(change.claim.task.id)
                    applied[change.index] = changed or (
                        replaying and self._replayed(change.claim, change.state)
                    )
                self._count_finished(finished)
                done = [c for c in changes if applied[c.index]]
                self._notify_work(c.claim.task.group for c in done if c.due is not None)
                self._notify_outcomes(c.claim.task.id for c in done if c.due is None)
                if any(c.state is TaskState.DEAD for c in done):
                    self._trim_dead_letters()
            return applied

        return self._run(op)  # type: ignore[no-any-return]

    def _apply_outcome(self, change: OutcomeChange) -> bool:
        """The fenced update of one outcome; True if it changed the row.

        The token stays on the row so that a replay can recognise its own write; fenced
        changes also require state = running, so it grants nothing.
        """
        fenced = self._tasks().filter(self._fenced([change.claim]))
        if change.due is None:
            values = self._finished(change.state.value, result=change.result, error=change.error)
            return bool(fenced.update(**values))
        counts: dict[str, Any]
        if change.retried:
            counts = {"retry_count": F("retry_count") + 1, "deliveries": 0}
        else:
            counts = {"deliveries": Greatest(F("deliveries") - 1, Value(0))}
        requeued = fenced.update(
            state=QUEUED,
            due=change.due,
            error=change.error,
            worker_id=None,
            lease_expires=None,
            **counts,
        )
        return bool(requeued)

    def _replayed(self, claim: Claim, state: TaskState) -> bool:
        """After a reconnect: did our first attempt already commit this very change?"""
        return bool(
            self._tasks().filter(id=claim.task.id, token=claim.token, state=state.value).exists()
        )

    def release_worker(self, worker_id: str) -> int:
        def op(replaying: bool) -> int:
            with _db.write_transaction(self.using):
                held = self._tasks().filter(state=RUNNING, worker_id=worker_id)
                groups = set(held.values_list("group", flat=True).distinct())
                count = held.update(lease_expires=Least(F("lease_expires"), self._now_expr()))
                self._notify_work(groups)
            return count

        return int(self._run(op))

    # ------------------------------------------------------------------ results

    def get_outcome(self, task_id: str) -> Outcome | None:
        def op(replaying: bool) -> Outcome | None:
            row = self._tasks().filter(self._live(), id=task_id).first()
            return None if row is None else outcome_from_row(row)

        return self._run(op)  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ control

    def cancel(self, task_id: str, reason: str = "cancelled") -> CancelResult:
        def op(replaying: bool) -> CancelResult:
            with _db.write_transaction(self.using):
                row = self._tasks().filter(self._live(), id=task_id)
                cancelled = self._finished(TaskState.CANCELLED.value, error=reason)
                if row.filter(state=QUEUED).update(**cancelled):
                    self._count_finished([task_id])
                    self._notify_outcomes([task_id])
                    return CancelResult.CANCELLED
                if row.filter(state=RUNNING).update(cancel_requested=True):
                    return CancelResult.REQUESTED
                return CancelResult.FINISHED if row.exists() else CancelResult.NOT_FOUND

        return self._run(op)  # type: ignore[no-any-return]

    def publish_control(self, kind: ControlKind, groups: Sequence[str] | None) -> ControlEvent:
        control = app_models().ControlRecord

        def op(replaying: bool) -> ControlEvent:
            with _db.write_transaction(self.using):
                rec = control.objects.using(self.using).create(
                    kind=kind,
                    groups=None if groups is None else json.dumps(list(groups)),
                    created=self._now_value(),
                )
                control.objects.using(self.using).filter(
                    seq__lte=rec.seq - self.control_kept
                ).delete()
            return event_from_row(rec)

        return self._run(op)  # type: ignore[no-any-return]

    def read_control(self, after_seq: int) -> list[ControlEvent]:
        control = app_models().ControlRecord

        def op(replaying: bool) -> list[ControlEvent]:
            rows = control.objects.using(self.using).filter(seq__gt=after_seq).order_by("seq")
            return [event_from_row(r) for r in rows]

        return self._run(op)  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ dead letters

    def list_dead_letters(self, group: str | None = None, limit: int = 100) -> list[Outcome]:
        def op(replaying: bool) -> list[Outcome]:
            rows = self._tasks().filter(self._live(), state=DEAD)
            if group is not None:
                rows = rows.filter(group=group)
            return [outcome_from_row(r) for r in rows.order_by("-finished", "id")[:limit]]

        return self._run(op)  # type: ignore[no-any-return]

    def requeue_dead_letter(self, task_id: str) -> bool:
        def op(replaying: bool) -> bool:
            with _db.write_transaction(self.using):
                row = self._tasks().filter(self._live(), id=task_id, state=DEAD)
                group = row.values_list("group", flat=True).first()
                if group is None:
                    return False
                row.update(
                    state=QUEUED,
                    due=self._now_expr(),
                    deliveries=0,
                    error=None,
                    finished=None,
                    expires=None,
                    worker_id=None,
                    lease_expires=None,
                    token=None,
                )
                self._notify_work([group])
            return True

        return bool(self._run(op))

    def _trim_dead_letters(self) -> None:
        dead = self._tasks().filter(state=DEAD)
        excess = dead.count() - self.dead_letter_limit
        if excess > 0:
            oldest = list(dead.order_by("finished", "id").values_list("id", flat=True)[:excess])
            for chunk in chunks(oldest):
                self._tasks().filter(id__in=chunk).delete()

    # ------------------------------------------------------------------ maintenance

    def stats(self, group: str) -> QueueStats:
        def op(replaying: bool) -> dict[str, int]:
            rows = (
                self._tasks()
                .filter(group=group, state__in=[QUEUED, RUNNING])
                .values("state")
                .annotate(n=Count("id"))
                .order_by()
            )
            return {r["state"]: r["n"] for r in rows}

        counts: dict[str, int] = self._run(op)
        return QueueStats(queued=counts.get(QUEUED, 0), running=counts.get(RUNNING, 0))

    def purge(self, finished_before: float) -> int:
        return sum(self.purge_batches(finished_before))

    def purge_batches(self, finished_before: float, batch_size: int = 1000) -> Iterator[int]:
        """Delete finished records older than ``finished_before`` in short batches.

        Yields how many each batch deleted, so a caller can show progress; each batch is its
        own transaction, so workers are never blocked for long.
        """
        finished = self._tasks().filter(state__in=FINISHED_STATES, finished__lt=finished_before)
        while True:

            def op(replaying: bool) -> int:
                ids = list(finished.order_by().values_list("id", flat=True)[:batch_size])
                return self._tasks().filter(id__in=ids).delete()[0] if ids else 0

            deleted = int(self._run(op))
            if not deleted:
                return
            yield deleted

    def count_purgeable(self, finished_before: float) -> int:
        """How many records :meth:`purge` would delete now."""
        return int(
            self._tasks().filter(state__in=FINISHED_STATES, finished__lt=finished_before).count()
        )

    def _maybe_sweep(self) -> None:
        """Now and then delete a bounded batch of records whose TTL ran out."""
        if time.monotonic() - self._last_sweep < _SWEEP_EVERY:
            return
        self._last_sweep = time.monotonic()

        def op(replaying: bool) -> int:
            ids = list(
                self._tasks()
                .filter(expires__lte=self._now_expr())
                .values_list("id", flat=True)[:CHUNK]
            )
            return self._tasks().filter(id__in=ids).delete()[0] if ids else 0

        try:
            self._run(op)
        except Exception:
            log.warning("taskkit: deleting expired task records failed", exc_info=True)

    def close(self) -> None:
        connections[self.using].close()


# --------------------------------------------------------------------------- setup


def _require_app() -> None:
    from django.apps import apps  # noqa: PLC0415
    from django.conf import settings  # noqa: PLC0415

    # ``configured`` stays False until the settings are first read, even with
    # DJANGO_SETTINGS_MODULE set (a spawned worker process): then reading them is enough.
    if not settings.configured and not os.environ.get("DJANGO_SETTINGS_MODULE"):
        raise ConfigurationError(
            "Django settings are not configured: set DJANGO_SETTINGS_MODULE, or use a "
            "database URL (sqlite:///path/to/db.sqlite3) for the embedded mode"
        )
    if not apps.ready:
        import django  # noqa: PLC0415

        django.setup()
    if not apps.is_installed("taskkit_django") and not apps.is_installed("taskkit.contrib.django"):
        raise ConfigurationError(
            "add 'taskkit_django' (or 'taskkit.contrib.django') to INSTALLED_APPS"
        )


def _rebuild(
    cls: type[DjangoBackend], url: str | None, using: str, options: dict[str, Any]
) -> DjangoBackend:
    """Unpickle: configure Django as the original process did, then build a fresh backend of
    the same class (pickle imports the flavour's module, so it is registered)."""
    if url is not None:
        from ._standalone import configure  # noqa: PLC0415 - needs Django, loaded on use

        using = configure(url)
    return cls(using, url=url, **options)
