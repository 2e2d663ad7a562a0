"""The test tree mirrors the source: every module of ``taskkit`` has its test module.

The tests of ``taskkit/_worker.py`` (or ``worker.py``) live in ``tests/test_worker.py`` and,
when one file would hold too many jobs, in ``tests/test_worker_<topic>.py``. A module
tested elsewhere names its test module in :data:`COVERED_BY`, with the reason in a comment.
"""

from __future__ import annotations

from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "src" / "taskkit"
TESTS = Path(__file__).resolve().parent

#: Modules whose tests are not named after them: module -> the test module (or suite) that
#: covers them.
COVERED_BY = {
    "__init__": "test_seams",  # the public surface, imported by every test; its imports here
    "__main__": "test_cli",  # `python -m taskkit`, run as a real process
    "_aio": "test_worker_async",  # the worker's event loop
    "_async_hook": "test_worker_async",  # the execute hook around awaited handlers
    "_groups": "test_worker_throughput",  # claimers and prefetch
    "_unknown": "test_worker_unknown",
    "_router": "test_functions",  # function tasks first, then the handler
    "_result": "test_kit",  # Result: the kit's handle on an outcome
    # MemoryBackend's fleet figures: the kit's FleetStatsTests (taskkit-testing) check the
    # figures; test_fleet the registry under a worker.
    "_memory_stats": "test_fleet",
    "impl.redis": "test_impl_forwarders",
    "impl.django": "test_impl_forwarders",
    "contrib": "test_impl_forwarders",  # a docstring-only package of 0.2 import paths
    "contrib.django": "test_impl_forwarders",
}
#: Modules being written whose tests have not landed yet: module -> why. An entry must go
#: as soon as the module has a test module (the second test below fails until it does).
PENDING: dict[str, str] = {}
#: Packages tested by another distribution's suite: no core test module is expected.
ELSEWHERE = {
    "contrib.django.": "taskkit-django/tests",  # the Django app: models, admin, commands
}


def _modules() -> list[str]:
    found = []
    for path in sorted(SOURCE.rglob("*.py")):
        parts = list(path.relative_to(SOURCE).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        found.append(".".join(parts))
    return found


def _test_modules() -> set[str]:
    return {path.stem for path in TESTS.glob("test_*.py")}


def _tested_by(module: str, tests: set[str]) -> list[str]:
    stem = "test_" + module.split(".")[-1].lstrip("_")
    return sorted(t for t in tests if t == stem or t.startswith(stem + "_"))


def test_every_module_has_its_test_module() -> None:
    tests = _test_modules()
    missing = []
    for module in _modules():
        elsewhere = any(module.startswith(prefix) for prefix in ELSEWHERE)
        if module in COVERED_BY or module in PENDING or elsewhere:
            continue
        if not _tested_by(module, tests):
            stem = module.split(".")[-1].lstrip("_")
            missing.append(f"taskkit/{module.replace('.', '/')}: add tests/test_{stem}.py")
    assert not missing, (
        "modules without a test module (or name the one that covers them in "
        "test_layout.COVERED_BY):\n" + "\n".join(missing)
    )


def test_the_exceptions_name_modules_and_tests_that_exist() -> None:
    modules, tests = set(_modules()), _test_modules()
    assert set(COVERED_BY) <= modules, f"stale entries: {set(COVERED_BY) - modules}"
    assert set(COVERED_BY.values()) <= tests, f"no such tests: {set(COVERED_BY.values()) - tests}"
    assert set(PENDING) <= modules, f"stale entries: {set(PENDING) - modules}"
    for module in [*COVERED_BY, *PENDING]:
        assert not _tested_by(module, tests), f"{module} has its own test module now: drop it"
    root = Path(__file__).resolve().parents[2]
    assert all((root / suite).is_dir() for suite in ELSEWHERE.values())
