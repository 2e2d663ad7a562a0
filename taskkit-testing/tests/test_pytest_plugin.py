"""The pytest11 plugin: options, markers, assertion rewriting, and no autouse fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

HERE = Path(__file__).parent


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:cacheprovider", "-p", "no:hypothesispytest", *args)


def test_options_are_registered(pytester: pytest.Pytester) -> None:
    result = _run(pytester, "--help")
    result.stdout.fnmatch_lines(["*--taskkit-scale=FACTOR*", "*--taskkit-timeout=FACTOR*"])


def test_markers_are_registered(pytester: pytest.Pytester) -> None:
    result = _run(pytester, "--markers")
    result.stdout.fnmatch_lines(
        ["*taskkit_processes:*", "*taskkit_slow:*", "*taskkit_requires(*capabilities):*"]
    )


def test_the_plugin_adds_no_autouse_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_plain(request):
            assert request.fixturenames == ["request"]
        """
    )
    _run(pytester, "--strict-markers").assert_outcomes(passed=1)


def test_options_reach_the_suite(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from taskkit_testing import KitTestBase

        class TestSettings(KitTestBase):
            def test_settings(self, kit_settings):
                assert (kit_settings.scale, kit_settings.timeout_factor) == (2.5, 3.0)
                assert kit_settings.size(10) == 25 and kit_settings.deadline(2) == 6
        """
    )
    _run(pytester, "--taskkit-scale=2.5", "--taskkit-timeout=3").assert_outcomes(passed=1)


def test_suite_assertions_are_rewritten(pytester: pytest.Pytester) -> None:
    """A failing kit assertion shows pytest's introspection, not just its message."""
    pytester.syspathinsert(HERE)
    pytester.makepyfile(
        """
        import pytest
        from broken_backends import LosesTasks
        from memory_factories import SharedMemoryFactory
        from taskkit_testing import EnqueueTests

        @pytest.fixture
        def backend_factory():
            return SharedMemoryFactory(LosesTasks)

        class TestBroken(EnqueueTests):
            pass
        """
    )
    result = _run(pytester, "-k", "every_stored_task_is_kept")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*guarantee violated:*were lost*", "E       assert not [[]*"])


def test_a_missing_factory_fixture_is_named(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from taskkit_testing import ControlEventTests

        class TestNoFactory(ControlEventTests):
            pass
        """
    )
    result = _run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'backend_factory' not found*"])


def test_a_factory_returning_no_backend_is_refused(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from taskkit_testing import ControlEventTests

        @pytest.fixture
        def backend_factory():
            return dict

        class TestWrongFactory(ControlEventTests):
            pass
        """
    )
    result = _run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*backend_factory must return a taskkit Backend, not dict*"])


def test_a_backend_that_ignores_the_fake_clock_it_declares_is_reported(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import pytest
        from taskkit import MemoryBackend
        from taskkit_testing import ControlEventTests

        class Factory:
            def __init__(self):
                self.backend = MemoryBackend()

            def __call__(self, clock=None):
                return self.backend  # the bug: the clock is dropped

        @pytest.fixture
        def backend_factory():
            return Factory()

        class TestClock(ControlEventTests):
            pass
        """
    )
    result = _run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*guarantee violated:*declares supports_fake_clock*must follow that clock*"]
    )
