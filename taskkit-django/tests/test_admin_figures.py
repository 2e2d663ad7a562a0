"""The admin's per-group figures above the task changelist, and the workers' list, through
Django's test client (a real browser is issue 15's)."""

from __future__ import annotations

import re
import time

import pytest
from django.test import Client
from taskkit import Task
from taskkit_django import DjangoBackend
from taskkit_django._admin_stats import GROUPS_SHOWN
from test_admin_commands import URL, admin_client, default_backend  # noqa: F401

WORKERS_URL = "/admin/taskkit/workerrecord/"


def _row(page: bytes, group: str) -> dict[str, str]:
    """The figures of ``group``'s row of the table: {cell class: text}."""
    html = page.decode()
    match = re.search(rf'<tr data-group="{re.escape(group)}">(.*?)</tr>', html, re.S)
    assert match, f"no figures row for {group!r}"
    return dict(re.findall(r'<td class="([a-z-]+)">([^<]*)</td>', match[1]))


def _task(task_id: str, group: str, due: float) -> Task:
    return Task(id=task_id, group=group, name="send", data=b"{}", due=due, created=time.time())


def test_the_changelist_shows_each_groups_figures(
    default_backend: DjangoBackend,  # noqa: F811
    admin_client: Client,  # noqa: F811
) -> None:
    now = default_backend.now()
    default_backend.put(
        [
            _task("old", "mail", now - 90),
            _task("new", "mail", now),
            _task("later", "mail", now + 3600),
            _task("r1", "reports", now),
            _task("r2", "reports", now),
        ]
    )
    claims = default_backend.claim("reports", "w1", 2, 30.0, 3).claims
    default_backend.fail(claims[0], "boom")
    default_backend.bury(claims[1], "poison")
    page = admin_client.get(URL)
    assert page.status_code == 200
    assert b'id="taskkit-group-figures"' in page.content
    mail = _row(page.content, "mail")
    assert (mail["queued"], mail["scheduled"], mail["running"], mail["dead-letters"]) == (
        "2",
        "1",
        "0",
        "0",
    )
    assert 90 <= float(mail["oldest-due"]) < 3600
    reports = _row(page.content, "reports")
    assert (reports["queued"], reports["dead-letters"]) == ("0", "1")
    assert (reports["failed"], reports["dead"], reports["succeeded"]) == ("1", "1", "0")
    assert reports["oldest-due"] == "—", "no task of reports is due"
    assert b"old" in page.content and b"later" in page.content


def test_the_figures_say_how_many_groups_they_leave_out(
    default_backend: DjangoBackend,  # noqa: F811
    admin_client: Client,  # noqa: F811
) -> None:
    now = default_backend.now()
    default_backend.put([_task(f"t{i}", f"g{i:03d}", now) for i in range(GROUPS_SHOWN + 2)])
    page = admin_client.get(URL)
    assert page.content.count(b"<tr data-group=") == GROUPS_SHOWN
    assert b"and 2 more groups" in page.content


def test_an_unreadable_figure_leaves_the_task_list_working(
    default_backend: DjangoBackend,  # noqa: F811
    admin_client: Client,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    default_backend.put([_task("t1", "mail", default_backend.now())])

    def broken(self: DjangoBackend) -> list[str]:
        raise RuntimeError("figures are down")

    monkeypatch.setattr(DjangoBackend, "list_groups", broken)
    page = admin_client.get(URL)
    assert page.status_code == 200
    assert b"Group figures unavailable: RuntimeError: figures are down" in page.content
    assert b"t1" in page.content


def test_the_workers_list_is_read_only(
    default_backend: DjangoBackend,  # noqa: F811
    admin_client: Client,  # noqa: F811
) -> None:
    default_backend.register_worker("worker-7", "host-a", 77, {"mail": 3}, 30.0)
    default_backend.heartbeat_worker("worker-7", 2, 30.0)
    page = admin_client.get(URL)
    assert b"(1 live worker)" in page.content
    page = admin_client.get(WORKERS_URL)
    assert page.status_code == 200
    assert b"worker-7" in page.content and b"host-a" in page.content
    assert admin_client.get(WORKERS_URL + "add/").status_code == 403
    default_backend.deregister_worker("worker-7")
