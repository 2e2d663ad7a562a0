"""``taskkit inspect``: the fleet and queue figures as tables and as JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from taskkit import Backend, MemoryBackend
from taskkit.cli import main

from . import cli_app

APP = f"{cli_app.__name__}:kit"


@pytest.fixture
def backend() -> Iterator[MemoryBackend]:
    backend = cli_app.kit.backend
    assert isinstance(backend, MemoryBackend)
    backend.reset()
    yield backend
    cli_app.kit.backend = backend


def _fill(backend: MemoryBackend) -> None:
    kit = cli_app.kit
    now = backend.now()
    kit.initiate_task("mail", "double", 1, due=now - 30)
    kit.initiate_task("mail", "double", 2)
    kit.initiate_task("mail", "double", 3, due=now + 600)
    done = kit.initiate_task("reports", "double", 4)
    [claim] = backend.claim("reports", "w", 1, 30, 3).claims
    assert claim.task.id == done.task_id
    backend.fail(claim, "boom")
    backend.register_worker("worker-1", "host-a", 4242, {"mail": 4, "reports": 1}, 30)
    backend.heartbeat_worker("worker-1", 2, 30)


def test_inspect_prints_groups_and_workers(
    backend: MemoryBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    _fill(backend)
    assert main(["--app", APP, "inspect"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "groups (finished in the last 5.0m):"
    header = out[1].split()
    assert header[:3] == ["GROUP", "QUEUED", "SCHEDULED"]
    mail = dict(zip(["group", "queued", "scheduled", "running"], out[2].split()))
    assert mail == {"group": "mail", "queued": "2", "scheduled": "1", "running": "0"}
    assert out[2].split()[5].endswith("s"), "the oldest due task's age (30 s or so)"
    reports = out[3].split()
    assert reports[0] == "reports" and reports[7] == "1", "one task failed in the window"
    workers = out[out.index("workers (1 live):") + 2].split()
    assert workers[:4] == ["worker-1", "host-a", "4242", "mail=4,reports=1"]
    assert workers[-1] == "2", "the tasks it held at its last heartbeat"


def test_inspect_json_and_named_groups(
    backend: MemoryBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    _fill(backend)
    assert main(["--app", APP, "inspect", "mail", "--json", "--window", "60"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["fleet_stats"] is True and report["window"] == 60.0
    [mail] = report["groups"]
    assert (mail["group"], mail["queued"], mail["scheduled"], mail["dead_letters"]) == (
        "mail",
        2,
        1,
        0,
    )
    assert 30 <= mail["oldest_due_age"] < 60
    assert mail["finished"] == {
        "succeeded": 0,
        "failed": 0,
        "discarded": 0,
        "dead": 0,
        "cancelled": 0,
    }
    [worker] = report["workers"]
    assert worker["id"] == "worker-1" and worker["tasks_held"] == 2
    assert worker["threads"] == {"mail": 4, "reports": 1}
    assert 0 <= worker["heartbeat_age"] < 30


def test_inspect_with_nothing_to_show(
    backend: MemoryBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--app", APP, "inspect"]) == 0
    assert capsys.readouterr().out.splitlines() == ["groups: none", "", "workers: none live"]


class Plain(MemoryBackend):
    supports_fleet_stats = False
    list_groups = Backend.list_groups
    list_workers = Backend.list_workers


def test_a_backend_without_figures_shows_named_groups_only(
    backend: MemoryBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    cli_app.kit.backend = Plain()
    cli_app.kit.initiate_task("mail", "double", 1)
    assert main(["--app", APP, "inspect", "mail"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["GROUP", "QUEUED", "RUNNING"]
    assert out[1].split() == ["mail", "1", "0"]
    assert "not kept by this backend" in out[-1]
    assert main(["--app", APP, "inspect", "mail", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["fleet_stats"] is False and report["workers"] is None
    assert report["groups"] == [{"group": "mail", "waiting": 1, "running": 0}]
    assert main(["--app", APP, "inspect"]) == 2
    assert "name the groups to inspect" in capsys.readouterr().err


@pytest.mark.parametrize("window", ["0", "-1", "3601", "nan", "soon"])
def test_a_bad_window_is_a_usage_error(
    window: str, backend: MemoryBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--app", APP, "inspect", "--window", window]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--window" in err
