"""The admin's fleet figures: per-group counts above the task changelist, and a read-only
list of the live workers. Read through the backend's primitives (``group_stats``,
``finished_counts``, ``list_workers``), never by counting the task table in the view."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from taskkit.backend import MAX_FINISHED_WINDOW

from ._fleet_models import WorkerRecord

__all__ = ["FINISHED_WINDOW", "GROUPS_SHOWN", "GroupFiguresMixin", "WorkerRecordAdmin"]

#: Seconds of finished counts the changelist shows.
FINISHED_WINDOW = 300.0
#: The most groups the changelist shows figures for (each costs two indexed queries).
GROUPS_SHOWN = 50

assert FINISHED_WINDOW <= MAX_FINISHED_WINDOW


def _backend(using: str) -> Any:
    from .backend import DjangoBackend  # noqa: PLC0415 - the admin loads before the flavours

    return DjangoBackend(using)


def group_figures(using: str) -> dict[str, Any]:
    """What the changelist's figures table shows, for the database alias ``using``."""
    backend = _backend(using)
    groups = backend.list_groups()
    rows = []
    for group in groups[:GROUPS_SHOWN]:
        stats = backend.group_stats(group)
        finished = backend.finished_counts(group, FINISHED_WINDOW)
        rows.append({"stats": stats, "finished": finished.as_dict()})
    return {
        "rows": rows,
        "more": max(0, len(groups) - GROUPS_SHOWN),
        "window_minutes": f"{FINISHED_WINDOW / 60:g}",
        "workers": len(backend.list_workers()),
    }


class GroupFiguresMixin:
    """Adds ``taskkit_figures`` (or ``taskkit_figures_error``) to the changelist's context."""

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        context = dict(extra_context or {})
        using = self.get_queryset(request).db  # type: ignore[attr-defined]
        try:
            context["taskkit_figures"] = group_figures(using)
        except Exception as exc:
            # The list of tasks is still worth showing when the figures cannot be read.
            context["taskkit_figures_error"] = f"{type(exc).__name__}: {exc}"
        response: HttpResponse = super().changelist_view(  # type: ignore[misc]
            request, extra_context=context
        )
        return response


@admin.register(WorkerRecord)
class WorkerRecordAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """The registry of workers, read-only: the backend writes it (entries that aged out are
    shown until a heartbeat sweeps them; ``expires`` says when each stops counting)."""

    list_display = ("id", "host", "pid", "threads", "tasks_held", "started", "heartbeat", "expires")
    ordering = ("started", "id")
    readonly_fields = list_display
    fields = list_display

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
