"""The Django admin for tasks: read-only records, size-capped views, two operator actions.

Nothing a form could change is editable: tasks change state only through the backend's
primitives (so leases and fencing stay intact). The actions go through the backend too:
re-queue dead letters, cancel queued tasks. Above the task list, each group's figures
(``GroupFiguresMixin``); the live workers have a read-only list of their own.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from ._admin_stats import GroupFiguresMixin
from .models import ControlRecord, ScheduleMark, State, TaskRecord

#: The most characters of data, result or error the admin shows.
PREVIEW_LIMIT = 4096


def _preview(value: Any, limit: int = PREVIEW_LIMIT) -> str:
    if value is None:
        return "—"
    if isinstance(value, memoryview):
        value = value.tobytes()
    if isinstance(value, bytes):
        size = len(value)
        text = value[:limit].decode("utf-8", "replace")
    else:
        size = len(value)
        text = str(value)[:limit]
    if size > limit:
        text += f"\n… ({size} in all, first {limit} shown)"
    return text


def _pre(value: Any) -> str:
    return format_html('<pre style="white-space: pre-wrap; margin: 0">{}</pre>', _preview(value))


def _backend(request: HttpRequest, queryset: QuerySet[Any]) -> Any:
    from .backend import DjangoBackend  # noqa: PLC0415

    return DjangoBackend(queryset.db)


@admin.register(TaskRecord)
class TaskRecordAdmin(GroupFiguresMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = (
        "id",
        "group",
        "name",
        "state",
        "due_at",
        "retry_count",
        "deliveries",
        "finished_at",
    )
    list_filter = ("state", "group")
    search_fields = ("=id", "group", "name")
    list_per_page = 50
    show_full_result_count = False  # COUNT(*) on a big table is slow
    ordering = ("-created",)
    actions = ("requeue_dead_letters", "cancel_queued")
    fields = (
        "id",
        "group",
        "name",
        "state",
        "due_at",
        "created_at",
        "scheduled",
        "retry_count",
        "deliveries",
        "ttl",
        "timeout",
        "headers",
        "worker_id",
        "lease_expires",
        "cancel_requested",
        "finished_at",
        "data_preview",
        "result_preview",
        "error_preview",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        # The list never loads the payload columns.
        qs: QuerySet[Any] = super().get_queryset(request)
        return (
            qs.defer("data", "result", "error")
            if request.resolver_match
            and (request.resolver_match.url_name or "").endswith("changelist")
            else qs
        )

    @admin.display(description="due", ordering="due")
    def due_at(self, obj: TaskRecord) -> str:
        return _epoch(obj.due)

    @admin.display(description="created", ordering="created")
    def created_at(self, obj: TaskRecord) -> str:
        return _epoch(obj.created)

    @admin.display(description="finished", ordering="finished")
    def finished_at(self, obj: TaskRecord) -> str:
        return _epoch(obj.finished)

    @admin.display(description="data")
    def data_preview(self, obj: TaskRecord) -> str:
        return _pre(obj.data)

    @admin.display(description="result")
    def result_preview(self, obj: TaskRecord) -> str:
        return _pre(obj.result)

    @admin.display(description="error")
    def error_preview(self, obj: TaskRecord) -> str:
        return _pre(obj.error)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Viewing needs "view"; no field is editable whatever the permissions.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Deleting a running task's row would pull it from under its worker: use
        # ``manage.py taskkit_purge`` for finished records.
        return False

    @admin.action(description="Re-queue selected dead letters", permissions=["view"])
    def requeue_dead_letters(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        backend = _backend(request, queryset)
        # Count the selection before changing it: the queryset carries the changelist's
        # filters (say state = dead), so a count taken afterwards misses the re-queued rows.
        selected = list(queryset.values_list("id", "state"))
        ids = [task_id for task_id, state in selected if state == State.DEAD]
        done = sum(1 for task_id in ids if backend.requeue_dead_letter(task_id))
        skipped = len(selected) - done
        self.message_user(request, f"{done} dead letter(s) re-queued.", messages.SUCCESS)
        if skipped:
            self.message_user(
                request, f"{skipped} selected task(s) were not dead letters.", messages.WARNING
            )

    @admin.action(description="Cancel selected queued tasks", permissions=["view"])
    def cancel_queued(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        from taskkit import CancelResult  # noqa: PLC0415

        backend = _backend(request, queryset)
        selected = list(queryset.values_list("id", "state"))  # before the change, as above
        ids = [task_id for task_id, state in selected if state == State.QUEUED]
        done = sum(1 for task_id in ids if backend.cancel(task_id) is CancelResult.CANCELLED)
        self.message_user(request, f"{done} queued task(s) cancelled.", messages.SUCCESS)
        skipped = len(selected) - done
        if skipped:
            self.message_user(
                request, f"{skipped} selected task(s) were not queued.", messages.WARNING
            )

    def get_actions(self, request: HttpRequest, *args: Any, **kwargs: Any) -> dict[str, Any]:
        # The actions change tasks: only users allowed to change or delete tasks get them.
        actions: dict[str, Any] = super().get_actions(request, *args, **kwargs)
        opts = self.model._meta
        user: Any = request.user
        if not (
            user.has_perm(f"{opts.app_label}.change_{opts.model_name}")
            or user.has_perm(f"{opts.app_label}.delete_{opts.model_name}")
        ):
            actions.pop("requeue_dead_letters", None)
            actions.pop("cancel_queued", None)
        return actions


@admin.register(ScheduleMark)
class ScheduleMarkAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("scheduler", "key", "point_at")
    search_fields = ("scheduler", "key")
    readonly_fields = ("scheduler", "key", "point_at")
    fields = readonly_fields

    @admin.display(description="last fired point")
    def point_at(self, obj: ScheduleMark) -> str:
        return _epoch(obj.point)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ControlRecord)
class ControlRecordAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("seq", "kind", "groups", "created_at")
    readonly_fields = ("seq", "kind", "groups", "created_at")
    fields = readonly_fields

    @admin.display(description="created")
    def created_at(self, obj: ControlRecord) -> str:
        return _epoch(obj.created)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _epoch(value: float | None) -> str:
    if value is None:
        return "—"
    from datetime import datetime, timezone  # noqa: PLC0415

    try:
        moment = datetime.fromtimestamp(value, timezone.utc)
        return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"
    except (OverflowError, OSError, ValueError):
        return str(value)
