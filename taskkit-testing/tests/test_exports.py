"""The kit's public names: the topic classes are listed once, and everything else derives."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import taskkit_testing
from taskkit_testing import suite

PACKAGE = Path(taskkit_testing.__file__).parent


def test_the_topic_classes_are_listed_once() -> None:
    """The bases of ``BackendTests`` are the list; ``TOPICS``, ``suite.__all__`` and the
    package's exports are derived from it, so a new topic is added in one place."""
    names = [topic.__name__ for topic in suite.TOPICS]
    # No count is written here: a new topic is one import and one base, nothing else.
    assert len(names) == len(set(names)), f"a topic is listed twice: {names}"
    bases = next(
        node
        for node in ast.parse((PACKAGE / "suite" / "__init__.py").read_text()).body
        if isinstance(node, ast.ClassDef) and node.name == "BackendTests"
    ).bases
    assert [ast.unparse(b) for b in reversed(bases)] == names
    top_level = (PACKAGE / "__init__.py").read_text()
    spelled = [name for name in names if name in top_level]
    assert not spelled, f"taskkit_testing/__init__.py repeats the topic list: {spelled}"


def test_every_topic_is_exported_and_combined() -> None:
    for topic in suite.TOPICS:
        assert getattr(taskkit_testing, topic.__name__) is topic
        assert topic.__name__ in taskkit_testing.__all__ and topic.__name__ in suite.__all__
        assert issubclass(suite.BackendTests, topic)
        assert topic.__module__.startswith("taskkit_testing.suite.")
    assert taskkit_testing.BackendTests is suite.BackendTests
    # Every test-bearing class the suite modules define is a topic (none forgotten).
    defined = {
        cls
        for module in (getattr(suite, m) for m in dir(suite))
        if inspect.ismodule(module) and module.__name__.startswith("taskkit_testing.suite.")
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if cls.__module__ == module.__name__ and cls.__name__.endswith("Tests")
    }
    assert defined == set(suite.TOPICS)


def test_star_import_and_dir_give_the_public_names() -> None:
    namespace: dict[str, object] = {}
    exec("from taskkit_testing import *", namespace)
    exported = {name for name in namespace if not name.startswith("__")}
    expected = {name for name in taskkit_testing.__all__ if not name.startswith("__")}
    assert exported == expected
    assert {"BackendTests", "TOPICS", "KitTestBase", "wait_until", "FakeClock"} <= exported
    assert dir(taskkit_testing) == taskkit_testing.__all__
