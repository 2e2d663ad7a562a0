"""SQLite URL forms (the SQLAlchemy convention), the psycopg install hint, and the counts the
admin actions report when the changelist is filtered."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from taskkit import FakeClock, TaskState
from taskkit.errors import ConfigurationError
from taskkit_django import DjangoBackend
from taskkit_django._standalone import database_settings
from test_admin_commands import URL, _task, admin_client, default_backend  # noqa: F401

HERE = Path(__file__).parent


def run_python(code: str, cwd: Path, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    script = cwd / f"script_{uuid.uuid4().hex[:6]}.py"
    script.write_text(textwrap.dedent(code))
    path = os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p)
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# --------------------------------------------------------------------------- SQLite URLs


def test_sqlite_url_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    name = lambda url: database_settings(url)["NAME"]  # noqa: E731
    # Three slashes: relative to the current directory (what the README writes).
    assert name("sqlite:///tasks.sqlite3") == str(tmp_path / "tasks.sqlite3")
    assert name("sqlite:///data/tasks.sqlite3") == str(tmp_path / "data" / "tasks.sqlite3")
    # Four slashes: absolute.
    assert name("sqlite:////var/lib/app/tasks.sqlite3") == "/var/lib/app/tasks.sqlite3"
    assert name(f"sqlite:///{tmp_path}/t.sqlite3") == str(tmp_path / "t.sqlite3")
    assert name("sqlite:///with%20space.sqlite3") == str(tmp_path / "with space.sqlite3")
    settings = database_settings("sqlite:///tasks.sqlite3?timeout=3")
    assert settings["OPTIONS"]["timeout"] == 3.0
    # The backend keeps an absolute URL, so a spawned worker elsewhere finds the same file.
    from taskkit_django._standalone import canonical_url

    assert canonical_url("sqlite:///tasks.sqlite3?timeout=3") == (
        f"sqlite:///{tmp_path}/tasks.sqlite3?timeout=3"
    )
    assert canonical_url("redis://h/0") == "redis://h/0"


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://",
        "sqlite:///",
        "sqlite:///:memory:",
        "sqlite://:memory:",
        "sqlite:///file::memory:?cache=shared",
        "sqlite:///tasks.sqlite3?mode=memory",
    ],
)
def test_in_memory_sqlite_is_refused_with_what_to_use(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        database_settings(url)
    message = str(info.value)
    assert "cannot share" in message
    assert "sqlite:///tasks.sqlite3" in message and "memory://" in message


def test_a_host_part_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match=r"no host part.*sqlite:///relative"):
        database_settings("sqlite://relative/tasks.sqlite3")
    assert list(tmp_path.iterdir()) == []


def test_relative_url_writes_in_the_current_directory_never_at_the_root(tmp_path: Path) -> None:
    """The README's ``sqlite:///tasks.sqlite3`` runs in the project folder, and a worker
    spawned after a ``chdir`` still uses that file."""
    name = f"tk-{uuid.uuid4().hex[:8]}.sqlite3"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = run_python(
        f"""
        import os
        import taskkit
        from handlers import EchoHandler

        if __name__ == "__main__":
            kit = taskkit.make_kit("sqlite:///{name}", EchoHandler(), lease_seconds=10)
            os.chdir({str(elsewhere)!r})
            procs = kit.start_processes(1, {{"g": 1}}, start_method="spawn")
            try:
                print(kit.initiate_task("g", "echo", 5).get(timeout=60))
            finally:
                for p in procs:
                    p.terminate()
                for p in procs:
                    p.join(30)
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "5"
    assert (tmp_path / name).exists()
    assert not Path("/", name).exists()
    assert not (elsewhere / name).exists()


# --------------------------------------------------------------------------- drivers

BLOCK_PSYCOPG = """
import importlib.abc
import sys


class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("psycopg", "psycopg2", "psycopg_binary", "psycopg_c"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _Block())
"""


def test_postgresql_url_without_psycopg_gives_the_install_hint(tmp_path: Path) -> None:
    proc = run_python(
        BLOCK_PSYCOPG
        + """
import taskkit
from handlers import EchoHandler
from taskkit.errors import ConfigurationError

for url in ("postgresql://postgres@127.0.0.1:5432/test", "postgres://u@h/db"):
    try:
        taskkit.make_kit(url, EchoHandler())
    except ConfigurationError as exc:
        print(type(exc).__name__, exc)
    else:
        print("no error")
""",
        tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 2, proc.stdout
    for line in lines:
        assert line.startswith("ConfigurationError ")
        assert "pip install 'taskkit-django[postgresql]'" in line
        assert "psycopg" in line


# --------------------------------------------------------------------------- admin counts


def _messages(page: object) -> list[str]:
    return [str(m) for m in get_messages(page.wsgi_request)]  # type: ignore[attr-defined]


def _dead_letter(backend: DjangoBackend) -> str:
    clock = FakeClock(time.time())
    timed = DjangoBackend("default", clock=clock)
    claim = timed.claim("poison", "w", 1, 5, 1).claims[0]
    clock.advance(6)  # its only delivery's lease ran out: a dead letter at the next claim
    assert [o.task.id for o in timed.claim("poison", "w", 1, 30, 1).dead_lettered] == [
        claim.task.id
    ]
    return claim.task.id


def test_requeue_counts_on_a_filtered_changelist(
    default_backend: DjangoBackend,  # noqa: F811 - the fixture imported above
    admin_client: Client,  # noqa: F811
) -> None:
    default_backend.put([_task(1, group="poison"), _task(2)])
    dead = _dead_letter(default_backend)
    # The operator filtered the list on state = dead, selected the row, ran the action.
    page = admin_client.post(
        f"{URL}?state__exact=dead",
        {"action": "requeue_dead_letters", "_selected_action": [dead]},
        follow=True,
    )
    assert page.status_code == 200
    assert _messages(page) == ["1 dead letter(s) re-queued."]
    assert default_backend.get_outcome(dead).state is TaskState.QUEUED  # type: ignore[union-attr]
    # Unfiltered, with a queued task selected too: that one is reported as skipped.
    dead = _dead_letter(default_backend)
    page = admin_client.post(
        URL, {"action": "requeue_dead_letters", "_selected_action": [dead, "task2"]}, follow=True
    )
    assert _messages(page) == [
        "1 dead letter(s) re-queued.",
        "1 selected task(s) were not dead letters.",
    ]


def test_cancel_counts_on_a_filtered_changelist(
    default_backend: DjangoBackend,  # noqa: F811 - the fixture imported above
    admin_client: Client,  # noqa: F811
) -> None:
    default_backend.put([_task(1), _task(2), _task(3)])
    page = admin_client.post(
        f"{URL}?state__exact=queued",
        {"action": "cancel_queued", "_selected_action": ["task1", "task2"]},
        follow=True,
    )
    assert _messages(page) == ["2 queued task(s) cancelled."]
    page = admin_client.post(
        URL, {"action": "cancel_queued", "_selected_action": ["task1", "task3"]}, follow=True
    )
    assert _messages(page) == ["1 queued task(s) cancelled.", "1 selected task(s) were not queued."]
    states = {t: default_backend.get_outcome(t).state for t in ("task1", "task2", "task3")}  # type: ignore[union-attr]
    assert set(states.values()) == {TaskState.CANCELLED}
