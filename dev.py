#!/usr/bin/env python3
"""Bootstrap for a fresh machine: needs only Python 3.10+ (standard library).

    python3 dev.py demo     # the demo: workers, a schedule and results on embedded SQLite
    python3 dev.py test     # the whole test suite (what CI runs)
    python3 dev.py nox ...  # any nox session, e.g. `python3 dev.py nox -s matrix`

It creates `.venv-dev/` with nox in it once, then hands over to nox, which builds one
virtualenv per session.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv-dev"
NOX_REQUIREMENT = "nox>=2024.3"


def _venv_python() -> Path:
    return VENV / ("Scripts" if os.name == "nt" else "bin") / "python"


def _ensure_nox() -> Path:
    python = _venv_python()
    if not python.exists():
        print(f"dev.py: creating {VENV.name}/ with nox", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    probe = subprocess.run([str(python), "-c", "import nox"], capture_output=True)
    if probe.returncode != 0:
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                NOX_REQUIREMENT,
            ],
            check=True,
        )
    return python


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 10):  # noqa: UP036 - dev.py may be run by an old python3
        print("dev.py needs Python 3.10 or newer", file=sys.stderr)
        return 2
    commands = {
        "demo": ["-s", "demo"],
        "test": [],  # nox's default sessions: lint, typecheck, tests, wheels, docs
    }
    if not argv or argv[0] not in (*commands, "nox"):
        print(__doc__)
        return 2
    nox_args = argv[1:] if argv[0] == "nox" else [*commands[argv[0]], *argv[1:]]
    python = _ensure_nox()
    os.chdir(ROOT)
    return subprocess.call([str(python), "-m", "nox", *nox_args])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
