"""Adapter subprocesses: run one to completion under a hard timeout, or keep one running as a
worker and stop its whole process tree; and the CPU time a process tree used.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger("bench.procs")

ADAPTERS = Path(__file__).resolve().parent / "adapters"
LAUNCH = ADAPTERS / "_launch.py"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class AdapterError(RuntimeError):
    """An adapter failed, answered nonsense, or ran past its hard timeout."""


def adapter_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    # Spawned and forked worker processes must import the adapter module by name; a
    # PYTHONPATH set by the caller (e.g. to measure a clean export of a commit) comes after.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ADAPTERS), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("PYTHONSTARTUP", None)
    env.update(extra)
    return env


def adapter_argv(python: str, module: str, spec: Mapping[str, Any]) -> list[str]:
    return [python, str(LAUNCH), module, json.dumps(dict(spec))]


def run_adapter(
    python: str,
    module: str,
    spec: Mapping[str, Any],
    env: Mapping[str, str],
    timeout: float,
    log_file: Path | None = None,
) -> dict[str, Any]:
    """Run one adapter command and return its JSON answer; kill it after ``timeout`` s."""
    with _stderr_sink(log_file) as err:
        proc = subprocess.Popen(
            adapter_argv(python, module, spec),
            stdout=subprocess.PIPE,
            stderr=err,
            env=adapter_env(env),
            start_new_session=True,
        )
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_tree(proc)
            raise AdapterError(f"{module} {spec.get('cmd')} ran past {timeout:.0f} s") from None
    if proc.returncode != 0:
        raise AdapterError(f"{module} {spec.get('cmd')} exited {proc.returncode} (see {log_file})")
    lines = out.decode().strip().splitlines()
    if not lines:
        raise AdapterError(f"{module} {spec.get('cmd')} answered nothing")
    answer: dict[str, Any] = json.loads(lines[-1])
    return answer


def start_adapter(
    python: str,
    module: str,
    spec: Mapping[str, Any],
    env: Mapping[str, str],
    log_file: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start a long-running adapter command (a worker) in its own session."""
    with _stderr_sink(log_file) as err:
        return subprocess.Popen(
            adapter_argv(python, module, spec),
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=adapter_env(env),
            start_new_session=True,
        )


def session_pids(sid: int) -> list[int]:
    """Every live process whose session id is ``sid`` (a worker and all it started)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is not None and int(fields[3]) == sid:
            pids.append(int(entry))
    return pids


def stop_tree(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM the process's whole session, then SIGKILL whatever is left after ``grace``.

    ``grace=0`` kills at once: a measured worker's state is thrown away with its database.
    """
    steps = [(signal.SIGTERM, grace)] if grace > 0 else []
    steps.append((signal.SIGKILL, 5.0))
    for sig, wait in steps:
        for pid in session_pids(proc.pid):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if proc.poll() is not None and not session_pids(proc.pid):
                return
            time.sleep(0.05)
    log.warning("worker %d left processes behind after SIGKILL", proc.pid)


def tree_cpu_seconds(sid: int) -> float:
    """User + system CPU seconds of every process of session ``sid``, reaped children included.

    Summing each live process's own time plus the time of the children it has reaped counts
    every process that ever lived in the tree once.
    """
    ticks = 0
    for pid in session_pids(sid):
        fields = _stat_fields(pid)
        if fields is not None:
            # utime, stime, cutime, cstime are fields 14-17 of /proc/<pid>/stat.
            ticks += sum(int(fields[i]) for i in (11, 12, 13, 14))
    return ticks / CLOCK_TICKS


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (so index 0 is the state)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may contain spaces and parentheses: split after the last ')'.
    return raw[raw.rfind(")") + 2 :].split()


class _stderr_sink:
    """Append a subprocess's stderr to a log file (or discard it)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._file: Any = None

    def __enter__(self) -> Any:
        if self.path is None:
            return subprocess.DEVNULL
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("ab")
        return self._file

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()
