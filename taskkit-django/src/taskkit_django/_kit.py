"""Kits and Django: ``make_kit(handler)`` (a kit on a database alias, as in taskkit 0.2) and
``initiate_on_commit`` (initiate when the transaction commits)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskkit.handler import TaskHandler
    from taskkit.kit import Kit, Result


def make_kit(handler: TaskHandler, using: str = "default", **options: Any) -> Kit:
    """A kit on the Django database ``using`` (the 0.2 ``taskkit.impl.django.make_kit``).

    :param handler: your :class:`taskkit.TaskHandler`.
    :param using: the ``DATABASES`` alias holding the ``taskkit`` tables.
    :param options: :class:`taskkit.KitConfig` fields, and the backend's options
        (``clock``, ``dead_letter_limit``, ``control_kept``).
    """
    import taskkit  # noqa: PLC0415

    from .plugin import backend_from_url  # noqa: PLC0415

    kit_fields = set(taskkit.KitConfig.__dataclass_fields__) | {"plugins"}
    kit_options = {k: v for k, v in options.items() if k in kit_fields}
    backend_options = {k: v for k, v in options.items() if k not in kit_fields}
    backend = backend_from_url(f"django://{using}", **backend_options)
    return taskkit.make_kit(backend, handler, **kit_options)


def initiate_on_commit(
    kit: Kit,
    group: str,
    name: str,
    data: Any,
    *,
    using: str | None = None,
    robust: bool = False,
    **kwargs: Any,
) -> Result[Any]:
    """Initiate a task when the current Django transaction commits (never if it rolls back).

    For kits on other backends (Redis, …), whose ``initiate_task`` cannot join a database
    transaction: the task is validated and encoded now, so mistakes raise here, and stored
    by ``transaction.on_commit``. Outside a transaction it is stored at once. With the
    Django backend on the same database, plain ``kit.initiate_task`` inside ``atomic()``
    already commits or rolls back with your writes.

    :param using: the database alias whose transaction to follow (default ``"default"``).
    :param robust: log and swallow an error of the deferred initiate (Django >= 4.2's
        ``robust`` flag of ``on_commit``).
    :return: a handle on the task's result (the task exists once the transaction commits).
    """
    from django.db import transaction  # noqa: PLC0415

    task = kit.make_task(group, name, data, **kwargs)

    def store() -> None:
        kit.initiate_tasks(task)

    transaction.on_commit(store, using=using, robust=robust)
    return kit.get_result(task.id)
