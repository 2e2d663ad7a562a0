"""The taskkit command: in-process calls of ``main`` and real ``python -m taskkit`` processes."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from taskkit import TaskState, cli
from taskkit.cli import main

from . import cli_app
from .conftest import wait_until

APP = f"{cli_app.__name__}:kit"


@pytest.fixture(autouse=True)
def _reset() -> None:
    cli_app.kit.backend.reset()  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- in process


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


def test_bad_input_is_one_line_and_writes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    """Each refusal: one line on stderr, exit 2, the backend untouched."""
    backend = cli_app.kit.backend
    cases = [
        ["cancel", ""],
        ["cancel", "a\nb"],
        ["requeue", " padded "],
        ["stats", ""],
        ["stats", "bad:group"],
        ["pause", "a{b}"],
        ["dead-letters", "--limit", "0"],
        ["worker", "--processes", "0", "--threads", "g=1"],
        ["worker", "--threads", "g=1", "--threads", "g=2"],
        ["worker", "--threads", "g=1", "--timezone", "Mars/Olympus"],
        ["worker"],
        ["--log-level", "loud", "stats", "g"],
        ["no-such-command"],
    ]
    for args in cases:
        code = main(["--app", APP, *args])
        captured = capsys.readouterr()
        assert code == 2, (args, captured)
        assert len(captured.err.strip().splitlines()) == 1, (args, captured.err)
        assert "Traceback" not in captured.err
    assert backend.read_control(0) == []
    assert backend.stats("g").queued == 0


def test_cancel_of_an_unknown_task_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--app", APP, "cancel", "no-such-task"]) == 1
    assert capsys.readouterr().out.strip() == "not_found"


def test_every_option_and_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    from taskkit.cli import _parser

    parser = _parser()
    assert main(["--help"]) == 0
    top = capsys.readouterr().out
    for code in cli.EXIT_CODES:
        assert f"  {code} " in top  # the epilog documents every exit status
    subparsers = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    commands = subparsers.choices  # type: ignore[attr-defined]
    assert set(commands) == {
        "worker",
        "inspect",
        "stats",
        "dead-letters",
        "requeue",
        "cancel",
        "pause",
        "resume",
        "shutdown",
    }
    for command in subparsers._choices_actions:  # type: ignore[attr-defined]
        assert command.help, command.dest
    for sub in [parser, *commands.values()]:
        for action in sub._actions:
            assert action.help, (sub.prog, action.dest)


def test_version_lists_the_installed_distributions(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    assert main(["--version"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"taskkit-core {version('taskkit-core')}" in lines
    assert lines[-1].startswith("Python ")


# --------------------------------------------------------------------------- real processes

MYAPP = """
import os

import taskkit
from taskkit import RegularSchedule, TaskHandler


class Handler(TaskHandler):
    def handle(self, task):
        data = self.decode_data(task)
        with open(os.environ["TICKS"], "a") as fh:
            fh.write(f"{task.name} {data}\\n")
        return data


options = {"prefix": os.environ["PREFIX"]} if "PREFIX" in os.environ else {}
kit = taskkit.make_kit(os.environ.get("URL", "memory://"), Handler(), **options)

SCHEDULE = [
    {"key": "tick", "schedule": RegularSchedule(seconds="*"), "group": "g", "name": "tick",
     "data": 1},
]
NAMED = {"reports": SCHEDULE}
BAD = {"reports": [{"key": "tick", "group": "g"}]}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder holding ``myapp.py``; not on ``sys.path`` unless the CLI puts it."""
    (tmp_path / "myapp.py").write_text(textwrap.dedent(MYAPP))
    return tmp_path


def _env(project: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("URL", "PREFIX", "TASKKIT_APP")}
    env.update(TICKS=str(project / "ticks.txt"), **extra)
    return env


def run(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "taskkit", *args],
        cwd=project,
        env=_env(project, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def _one_line_error(proc: subprocess.CompletedProcess[str], code: int) -> str:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.slow
def test_python_m_taskkit_finds_the_app_in_the_current_directory(project: Path) -> None:
    proc = run(project, "--app", "myapp:kit", "stats", "g")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "g: 0 queued, 0 running"
    proc = run(project, "stats", "g", TASKKIT_APP="myapp:kit")  # --app from the environment
    assert proc.returncode == 0, proc.stderr


@pytest.mark.slow
def test_console_script_finds_the_app_in_the_current_directory(project: Path) -> None:
    script = Path(sys.executable).with_name("taskkit")
    if not script.exists():
        pytest.skip(f"no taskkit console script next to {sys.executable}")
    proc = subprocess.run(
        [str(script), "--app", "myapp:kit", "stats", "g"],
        cwd=project,
        env=_env(project),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "g: 0 queued, 0 running"


@pytest.mark.slow
def test_errors_are_one_line_with_distinct_exit_codes(project: Path) -> None:
    line = _one_line_error(run(project, "--app", "nosuchmod:kit", "stats", "g"), 2)
    assert "no module named 'nosuchmod'" in line
    line = _one_line_error(run(project, "--app", "myapp:nokit", "stats", "g"), 2)
    assert "no attribute 'nokit'" in line
    (project / "broken.py").write_text("import not_installed_anywhere\n")
    line = _one_line_error(run(project, "--app", "broken:kit", "stats", "g"), 3)
    assert "not_installed_anywhere" in line
    line = _one_line_error(run(project, "--app", "myapp:kit", "cancel", ""), 2)
    assert "must not be empty" in line
    line = _one_line_error(run(project, "--app", "myapp:kit", "worker", "--processes", "x"), 2)
    line = _one_line_error(
        run(project, "--app", "myapp:kit", "worker", "--schedule", "myapp:kit"), 2
    )
    assert "--schedule myapp:kit is a Kit" in line
    line = _one_line_error(
        run(project, "--app", "myapp:kit", "worker", "--schedule", "myapp:BAD"), 2
    )
    assert "missing" in line
    with_traceback = run(project, "--traceback", "--app", "broken:kit", "stats", "g")
    assert with_traceback.returncode == 3
    assert "Traceback" in with_traceback.stderr


@pytest.mark.slow
def test_unreachable_backend_is_one_line(project: Path) -> None:
    pytest.importorskip("taskkit_redis")
    proc = run(
        project, "--app", "myapp:kit", "stats", "g", URL=f"redis://127.0.0.1:{_free_port()}/0"
    )
    line = _one_line_error(proc, 4)
    assert "unreachable" in line


class _Lines:
    """The stderr of a child, read by a thread, so that tests can wait for a line."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        assert proc.stderr is not None
        stream = proc.stderr
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        for line in self.lines:
            if text in line:
                return line
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no line with {text!r} in {''.join(self.lines)}")
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"stream ended without {text!r}: {''.join(self.lines)}")
            self.lines.append(line)
            if text in line:
                return line

    def rest(self) -> str:
        self._thread.join(30)
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.lines.append(line)
        return "".join(self.lines)


@pytest.fixture
def start_worker(project: Path) -> Iterator[object]:
    """Start ``python -m taskkit ... worker`` in its own session (so SIGINT reaches its whole
    process group, as a terminal's Ctrl-C does); stopped at the end if still running."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str, **env: str) -> tuple[subprocess.Popen[str], _Lines]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "taskkit", "--app", "myapp:kit", "worker", *args],
            cwd=project,
            env=_env(project, **env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        started.append(proc)
        return proc, _Lines(proc)

    yield start
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)


def _ctrl_c(proc: subprocess.Popen[str], lines: _Lines) -> str:
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(60) == 0
    return lines.rest()


@pytest.mark.slow
def test_worker_runs_schedules_and_ctrl_c_stops_it_cleanly(
    project: Path, start_worker: object
) -> None:
    proc, lines = start_worker(  # type: ignore[operator]
        "--threads", "g=1", "--schedule", "myapp:SCHEDULE", "--schedule", "myapp:NAMED"
    )
    ticks = project / "ticks.txt"
    # Two schedulers ("default" and "reports") with an every-second entry: ticks accumulate.
    wait_until(lambda: ticks.exists() and ticks.read_text().count("tick 1") >= 3, timeout=30)
    err = _ctrl_c(proc, lines)
    assert "Traceback" not in err, err


@pytest.mark.slow
def test_worker_waits_for_an_unreachable_backend_and_ctrl_c_stops_the_wait(
    project: Path, start_worker: object
) -> None:
    pytest.importorskip("taskkit_redis")
    port = _free_port()
    proc, lines = start_worker(
        "--threads", "g=1", URL=f"redis://127.0.0.1:{port}/0", PREFIX="unused"
    )
    line = lines.wait_for("waiting for the backend")
    assert f"127.0.0.1:{port}" in line and "Ctrl-C" in line
    assert proc.poll() is None  # still waiting, not dead
    err = _ctrl_c(proc, lines)
    assert "Traceback" not in err, err
    assert "stopped while waiting for the backend" in err
    assert len(err.strip().splitlines()) == 2, err  # one line on waiting, one on stopping


@pytest.mark.slow
def test_worker_starts_when_the_backend_comes_up(
    project: Path, start_worker: object, tmp_path: Path
) -> None:
    pytest.importorskip("taskkit_redis")
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        pytest.skip("redis-server is not installed")
    from taskkit import make_kit

    from .handlers import RecordingHandler

    port = _free_port()
    url = f"redis://127.0.0.1:{port}/0"
    proc, lines = start_worker("--processes", "2", "--threads", "g=2", URL=url, PREFIX="cli")
    lines.wait_for("waiting for the backend")
    server = subprocess.Popen(
        [
            redis_server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        lines.wait_for("the backend is reachable")
        lines.wait_for("started 2 worker")
        kit = make_kit(url, RecordingHandler(), prefix="cli")
        assert kit.initiate_task("g", "echo", 21).get(timeout=30) == 21
        kit.backend.close()
        err = _ctrl_c(proc, lines)
        assert "Traceback" not in err, err
    finally:
        server.terminate()
        server.wait(30)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
