"""The ``pytest11`` plugin: markers, assertion rewriting, size and timeout options.

Deliberately thin: it adds no fixtures (the suite classes carry their own), and changes
nothing for tests that do not subclass the kit.
"""

from __future__ import annotations

import warnings

import pytest

# Before anything imports the suite, so its plain ``assert``s explain themselves.
pytest.register_assert_rewrite(
    "taskkit_testing._base",
    "taskkit_testing.helpers",
    "taskkit_testing.suite",
    "taskkit_testing.stateful",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("taskkit", "taskkit conformance kit")
    group.addoption(
        "--taskkit-scale",
        type=float,
        default=1.0,
        metavar="FACTOR",
        help="multiply the kit's workload sizes (tasks, processes' work) by FACTOR (default 1)",
    )
    group.addoption(
        "--taskkit-timeout",
        type=float,
        default=1.0,
        metavar="FACTOR",
        help="multiply every deadline and tolerance the kit waits for by FACTOR, for slow "
        "machines (default 1)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "taskkit_processes: a conformance test that runs real child processes"
    )
    config.addinivalue_line(
        "markers", "taskkit_slow: a conformance test that takes seconds even at scale 1"
    )
    config.addinivalue_line(
        "markers",
        "taskkit_requires(*capabilities): skip unless the backend class declares each "
        "capability flag (supports_processes, supports_notifications, ...)",
    )


@pytest.hookimpl(tryfirst=True)  # before -k/-m deselect, so every listed name is seen
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Turn each name in a kit class's ``expected_failures`` into a strict xfail."""
    from ._base import KitTestBase  # noqa: PLC0415 - keep the plugin import light

    unused: dict[type, set[str]] = {}
    for item in items:
        cls = getattr(item, "cls", None)
        if cls is None or not issubclass(cls, KitTestBase) or not cls.expected_failures:
            continue
        expected = set(cls.expected_failures)
        unused.setdefault(cls, set(expected))
        names = {item.name, getattr(item, "originalname", item.name)}
        matched = names & expected
        if matched:
            unused[cls] -= matched
            item.add_marker(
                pytest.mark.xfail(
                    strict=True,
                    reason=f"acknowledged gap: {sorted(matched)[0]} is in "
                    f"{cls.__name__}.expected_failures",
                )
            )
    for cls, names in unused.items():
        if names:
            warnings.warn(
                pytest.PytestWarning(
                    f"{cls.__name__}.expected_failures names no collected test: {sorted(names)}"
                ),
                stacklevel=1,
            )
