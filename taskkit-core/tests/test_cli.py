"""The taskkit command."""

from __future__ import annotations

import pytest
from taskkit import TaskState
from taskkit.cli import main

from . import cli_app

APP = f"{cli_app.__name__}:kit"


@pytest.fixture(autouse=True)
def _reset() -> None:
    cli_app.kit.backend.reset()  # type: ignore[attr-defined]


def test_stats_cancel_and_dead_letters(capsys: pytest.CaptureFixture[str]) -> None:
    kit = cli_app.kit
    first = kit.initiate_task("g", "double", 1)
    kit.initiate_task("g", "double", 2)
    assert main(["--app", APP, "stats", "g"]) == 0
    assert "g: 2 queued, 0 running" in capsys.readouterr().out
    assert main(["--app", APP, "cancel", first.task_id]) == 0
    assert capsys.readouterr().out.strip() == "cancelled"
    # Make a dead letter: claim with max_deliveries 1 and let the lease lapse.
    backend = kit.backend
    backend.claim("g", "w", 1, -1, 1)
    backend.claim("g", "w", 1, 30, 1)
    assert main(["--app", APP, "dead-letters"]) == 0
    [line] = capsys.readouterr().out.strip().splitlines()
    task_id = line.split("\t")[0]
    assert line.endswith("worker lost")
    assert main(["--app", APP, "requeue", task_id]) == 0
    assert backend.get_outcome(task_id).state is TaskState.QUEUED  # type: ignore[union-attr]
    assert main(["--app", APP, "requeue", task_id]) == 1


def test_control_events() -> None:
    assert main(["--app", APP, "pause", "g"]) == 0
    assert main(["--app", APP, "shutdown"]) == 0
    events = cli_app.kit.backend.read_control(0)
    assert [(e.kind, e.groups) for e in events][-2:] == [("pause", ("g",)), ("shutdown", None)]


def test_bad_app_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--app", "nocolon", "stats", "g"]) == 2
    assert "package.module:kit" in capsys.readouterr().err
    assert main(["--app", f"{cli_app.__name__}:RecordingHandler", "stats", "g"]) == 2
    assert main(["--app", APP, "worker", "--threads", "g=0"]) == 2
