"""Every task of the taskkit monorepo. ``python3 dev.py test`` runs the default sessions.

Sessions:
  tests      every distribution's test suite on one Python (default 3.11), against the local
             Redis, PostgreSQL and MariaDB (checked first; a missing one is an error that says
             how to start it)
  matrix     the same on Python 3.10, 3.11, 3.12 and 3.13
  wheels     build every distribution, install the wheels into a fresh venv, import them
             through the new and the old paths
  lint       ruff
  typecheck  mypy --strict
  docs       the Sphinx site, warnings as errors
  demo       the README demo (workers, a schedule, results) on embedded SQLite
  bench      the benchmarks against peers (figures go to docs/performance.md)
  chaos      the long fault-injection battery (not part of the default run)
"""

from __future__ import annotations

import glob
import os
import socket
from pathlib import Path

import nox

ROOT = Path(__file__).parent
PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
DEFAULT_PYTHON = "3.11"
DISTRIBUTIONS = ["taskkit-core", "taskkit-testing", "taskkit-redis", "taskkit-django"]
EXAMPLE_BACKEND = "examples/sqlite_backend"
SUITES = [
    "taskkit-core/tests",
    "taskkit-testing/tests",
    "taskkit-redis/tests",
    "taskkit-django/tests",
    EXAMPLE_BACKEND,
    "integration",
    "bench/tests",  # a smoke run of the benchmark harness: no timings asserted
    "docs/tests",  # every code block of the README and docs/ runs; fences are well formed
]
TEST_DEPS = [
    "pytest>=7",
    "tqdm>=4.60",
    "hypothesis>=6.80",
    "msgpack>=1.0",
    "psycopg[binary]>=3.1",
    "pymysql>=1.1",
    "pyyaml>=6",  # docs/tests parses the YAML blocks of the docs
    "mypy>=1.10",  # test_functions runs mypy to prove function tasks are typed
    "sentry-sdk>=2.0",  # taskkit-core[sentry]: the Sentry plugin's tests
    "prometheus_client>=0.20",  # taskkit-core[prometheus]: the metrics exporter's tests
    *["opentelemetry-api>=1.20", "opentelemetry-sdk>=1.20"],  # taskkit-core[otel]'s tests
]

nox.options.sessions = ["lint", "typecheck", "tests", "wheels", "docs"]
nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

# Python versions installed with pyenv are not all on PATH: make them findable.
for _bin in sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.1[0-3].*/bin"))):
    if _bin not in os.environ.get("PATH", ""):
        os.environ["PATH"] = _bin + os.pathsep + os.environ.get("PATH", "")

SERVICES = {
    "Redis": (
        "127.0.0.1",
        6379,
        "redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save '' --appendonly no",
    ),
    "PostgreSQL": (
        "127.0.0.1",
        5432,
        "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start "
        "(trust auth for 127.0.0.1 and a database named test)",
    ),
    "MariaDB": (
        "127.0.0.1",
        3306,
        "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd "
        "(root with an empty password)",
    ),
}


def _require_services(session: nox.Session) -> None:
    missing = []
    for name, (host, port, how) in SERVICES.items():
        try:
            with socket.create_connection((host, port), timeout=2):
                pass
        except OSError as exc:
            missing.append(
                f"  {name} is not reachable at {host}:{port} ({exc}).\n    Start it: {how}"
            )
    if missing:
        session.error("the test suite needs these servers:\n" + "\n".join(missing))


def _install_all(session: nox.Session, editable: bool = True) -> None:
    paths = [*DISTRIBUTIONS, EXAMPLE_BACKEND]
    args: list[str] = []
    for path in paths:
        if editable:
            args += ["-e", path]
        else:
            args.append(path)
    session.install(*TEST_DEPS)
    session.install(*args)


def _run_tests(session: nox.Session) -> None:
    _require_services(session)
    _install_all(session)
    extra = session.posargs or []
    # One pytest process per suite: each distribution has its own `tests` package and the
    # Django suites configure settings once per process.
    for suite in SUITES:
        if not Path(suite).exists():
            session.error(f"test suite {suite} is missing")
    for suite in SUITES:
        session.log(f"--- {suite}")
        session.run(
            "python",
            "-m",
            "pytest",
            suite,
            "-p",
            "no:cacheprovider",
            "-q",
            "-ra",
            "--rootdir",
            suite,
            *extra,
            env={"PYTHONFAULTHANDLER": "1"},
        )


@nox.session(python=DEFAULT_PYTHON)
def tests(session: nox.Session) -> None:
    """All test suites on one Python."""
    _run_tests(session)


@nox.session(python=PYTHONS)
def matrix(session: nox.Session) -> None:
    """All test suites on every supported Python."""
    _run_tests(session)


@nox.session(python=DEFAULT_PYTHON, reuse_venv=False)
def wheels(session: nox.Session) -> None:
    """Build every distribution and install the wheels alone into a fresh venv."""
    session.install("build>=1.0")
    dist = Path(session.create_tmp()) / "dist"
    for path in DISTRIBUTIONS:
        session.run("python", "-m", "build", "--wheel", "--outdir", str(dist), path, silent=True)
    wheels_built = sorted(str(p) for p in dist.glob("*.whl"))
    session.log("built: " + ", ".join(Path(w).name for w in wheels_built))
    if len(wheels_built) != len(DISTRIBUTIONS):
        session.error(f"expected {len(DISTRIBUTIONS)} wheels, got {len(wheels_built)}")
    # Core alone first: the old backend paths must name the distribution to install.
    core = [w for w in wheels_built if Path(w).name.startswith("taskkit_core-")]
    session.install(*core)
    session.run("python", "examples/check_imports.py", "--core-only")
    session.install(*wheels_built)
    session.run("python", "examples/check_imports.py")


@nox.session(python=DEFAULT_PYTHON)
def lint(session: nox.Session) -> None:
    """ruff over every distribution, the examples, bench and this file."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", ".")


@nox.session(python=DEFAULT_PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the import packages."""
    _install_all(session)
    session.install("mypy>=1.10", "django-stubs>=5.0", "types-PyMySQL", "types-tqdm")
    for dist, package in (
        ("taskkit-core", "src/taskkit"),
        ("taskkit-testing", "src/taskkit_testing"),
        ("taskkit-redis", "src/taskkit_redis"),
        ("taskkit-django", "src/taskkit_django"),
    ):
        # From each distribution's directory, so its own [tool.mypy] settings apply.
        with session.chdir(dist):
            session.run("mypy", "--strict", package)


@nox.session(python=DEFAULT_PYTHON)
def docs(session: nox.Session) -> None:
    """The documentation site, warnings as errors."""
    _install_all(session)
    session.install("sphinx>=7", "myst-parser>=2", "furo>=2024.1")
    # -W and docs/conf.py's nitpicky mode: an unresolved cross-reference fails the build.
    session.run("sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html")


@nox.session(python=DEFAULT_PYTHON)
def demo(session: nox.Session) -> None:
    """The README demo on the embedded SQLite default (no server needed)."""
    session.install("-e", "taskkit-core", "-e", "taskkit-django")
    session.run("python", "examples/demo.py", *session.posargs)


@nox.session(python=DEFAULT_PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks against peers; each peer gets its own virtualenv."""
    _install_all(session)
    session.install("tqdm>=4.60")
    session.run("python", "bench/run.py", *session.posargs)


@nox.session(python=DEFAULT_PYTHON)
def chaos(session: nox.Session) -> None:
    """The long fault-injection battery (reliability.md nightly tier)."""
    _require_services(session)
    _install_all(session)
    session.run(
        "python", "-m", "pytest", "integration", "-q", "-ra", "--rootdir", "integration",
        *session.posargs, env={"TASKKIT_SCALE": "10"},
    )
