"""The kit tests itself: it passes on the reference backend and fails each broken one,
naming the broken guarantee."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import taskkit_testing.stateful  # noqa: F401  (imports Hypothesis once for all in-process runs)
from broken_backends import BROKEN

pytest_plugins = ["pytester"]

HERE = Path(__file__).parent

CONFORMANCE_FILE = """
import pytest
from broken_backends import *
from memory_factories import SharedMemoryFactory
from taskkit import MemoryBackend
from taskkit_testing import {suite}


@pytest.fixture
def backend_factory():
    return SharedMemoryFactory({cls})


class TestBackend({suite}):
    expected_failures = {expected!r}
"""


def run_kit(
    pytester: pytest.Pytester,
    cls: str,
    *args: str,
    suite: str = "BackendTests",
    expected: frozenset[str] = frozenset(),
) -> pytest.RunResult:
    """Run a conformance file like an author's, in-process, against backend class ``cls``."""
    pytester.syspathinsert(HERE)
    pytester.makepyfile(
        test_kit_subject=CONFORMANCE_FILE.format(cls=cls, suite=suite, expected=expected)
    )
    # Without the Hypothesis plugin: the kit does not need it, and importing it anew in
    # every in-process run is slow.
    return pytester.runpytest(
        "-p",
        "no:cacheprovider",
        "-p",
        "no:hypothesispytest",
        "-rfEsxX",
        f"--junitxml={pytester.path / REPORT}",
        *args,
    )


REPORT = "kit-report.xml"


def failure_messages(pytester: pytest.Pytester) -> dict[str, str]:
    """Each failed or erroring test of the last run, with its failure message (the first
    line pytest reports for it), read from the JUnit report so nothing is cut to width."""
    root = ET.parse(pytester.path / REPORT).getroot()
    messages = {}
    for case in root.iter("testcase"):
        for kind in ("failure", "error"):
            for problem in case.iter(kind):
                messages[case.get("name", "?")] = problem.get("message", "")
    return messages


def assert_every_failure_names_a_guarantee(pytester: pytest.Pytester) -> dict[str, str]:
    """What docs/conformance.md promises: no failure is a bare ``assert 0 == 1``, a raw
    exception or a diff without words; each says ``guarantee violated: ...`` first."""
    messages = failure_messages(pytester)
    bare = {
        name: message.splitlines()[0] if message else "(no message)"
        for name, message in messages.items()
        if not message.removeprefix("Failed: ")
        .removeprefix("AssertionError: ")
        .startswith("guarantee violated: ")
    }
    assert not bare, f"kit failures that do not name the broken guarantee: {bare}"
    return messages


def test_the_reference_backend_passes_the_whole_kit(pytester: pytest.Pytester) -> None:
    result = run_kit(pytester, "MemoryBackend")
    outcomes = result.parseoutcomes()
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert outcomes["passed"] > 100 and "failed" not in outcomes
    # Capability gaps are skips that say why, never failures.
    result.stdout.fnmatch_lines(["*SKIPPED*MemoryBackend does not declare supports_processes*"])


@pytest.mark.parametrize("broken", sorted(BROKEN))
def test_a_broken_backend_fails_the_kit_naming_the_guarantee(
    pytester: pytest.Pytester, broken: str
) -> None:
    cls, suite, guarantee, *select = BROKEN[broken]
    # The whole kit, so every test the bug breaks is seen, with waits shortened, since a broken
    # backend makes the kit wait out its deadlines; a bug that makes every test wait runs only
    # the topic class that owns the guarantee, narrowed with -k.
    result = run_kit(
        pytester,
        cls.__name__,
        "--taskkit-timeout=0.5",
        *select,
        suite=suite if select else "BackendTests",
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    result.stdout.fnmatch_lines([f"*guarantee violated:*{guarantee}*"])
    # Every other test the bug breaks names its guarantee too, first thing in its report.
    assert assert_every_failure_names_a_guarantee(pytester)


def test_expected_failures_turn_a_known_gap_into_strict_xfails(pytester: pytest.Pytester) -> None:
    result = run_kit(
        pytester,
        "AcceptsStaleToken",
        suite="FencingTests",
        expected=frozenset(
            {
                "test_stale_token_is_rejected",  # all five parametrized operations
                "test_stale_renew_is_lost_and_extends_nothing",
                "test_forged_token_is_rejected",
                "test_record_outcomes_writes_each_like_its_primitive",
            }
        ),
    )
    outcomes = result.parseoutcomes()
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert outcomes["xfailed"] == 8 and "failed" not in outcomes


def test_a_fixed_gap_shows_up_as_a_strict_xpass(pytester: pytest.Pytester) -> None:
    result = run_kit(
        pytester,
        "MemoryBackend",
        suite="FencingTests",
        expected=frozenset({"test_forged_token_is_rejected"}),
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*XPASS(strict)*acknowledged gap*"])


def test_a_misspelt_expected_failure_warns(pytester: pytest.Pytester) -> None:
    result = run_kit(
        pytester, "MemoryBackend", suite="ControlEventTests", expected=frozenset({"test_nope"})
    )
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*expected_failures names no collected test*test_nope*"])


STATEFUL_FILE = """
import pytest
from broken_backends import *
from memory_factories import SharedMemoryFactory
from hypothesis import Phase
from taskkit_testing.stateful import StatefulBackendTests


@pytest.fixture
def backend_factory():
    return SharedMemoryFactory({cls})


class TestBackendStateful(StatefulBackendTests):
    # Report the first failing sequence unshrunk: shrinking makes this self-test slow.
    hypothesis_settings = {{"phases": [Phase.generate], "database": None, "derandomize": True}}
"""


@pytest.mark.parametrize(
    ("cls", "guarantee"),
    [
        ("AcceptsStaleToken", "a stale fencing token was accepted by"),
        ("IgnoresLeaseExpiry", "the backend disagrees with the reference model"),
        ("LosesTasks", "the backend disagrees with the reference model"),
        ("NeverDeadLetters", "the backend disagrees with the reference model"),
    ],
)
def test_the_stateful_test_catches_broken_backends(
    pytester: pytest.Pytester, cls: str, guarantee: str
) -> None:
    pytester.syspathinsert(HERE)
    pytester.makepyfile(test_kit_stateful_subject=STATEFUL_FILE.format(cls=cls))
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "-q", f"--junitxml={pytester.path / REPORT}"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    result.stdout.fnmatch_lines([f"*guarantee violated:*{guarantee}*"])
    assert assert_every_failure_names_a_guarantee(pytester)
