"""Every way the kit can fail says which guarantee broke, checked over the kit's source.

``docs/conformance.md`` promises that each failure names the broken guarantee. A bare
``assert 0 == 1``, an unpacking ``ValueError``, a raw ``ResultGetTimedOut`` or a page of
``Outcome(...)`` does not; these rules keep each of them out of ``taskkit_testing``:

- every ``assert`` has a message, and the message is ``violated(...)``;
- every ``pytest.fail`` says ``violated(...)``;
- no tuple unpacking of what a backend returned (``(claim,) = backend.claim(...).claims``):
  only of tuple literals, the kit's own constants and private helpers, whose shapes are fixed;
- ``pytest.raises`` only inside :func:`taskkit_testing.helpers.raises` (which names the
  guarantee when nothing, or something else, is raised);
- ``Result.get(timeout=...)`` only inside the helpers that turn a timeout into a failure;
- every ``wait_until`` says what it waits for (``message=``).

The runs of the broken backends in ``test_kit_catches_broken_backends.py`` check the same
promise from the outside, on the failure reports themselves.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import taskkit_testing

PACKAGE = Path(taskkit_testing.__file__).parent
SOURCES = sorted(PACKAGE.rglob("*.py"))

#: Functions allowed to call ``Result.get(timeout=...)``: each turns a timeout into a failure.
RESULT_GETTERS = {
    "helpers.py:result_value",
    "suite/results.py:_get",  # inside helpers.raises
    "suite/runtime.py:_Waiter.get",
}
#: The one function allowed to call ``pytest.raises``.
RAISES = {"helpers.py:raises"}
#: Calls of the kit's own that return a tuple of a fixed shape (besides ``_private`` ones).
FIXED_SHAPES = {"waiter.get"}


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(PACKAGE)}:{getattr(node, 'lineno', '?')}"


def _walk(path: Path) -> Iterator[tuple[str, ast.AST]]:
    """Every node of ``path`` with the qualified name of the function around it."""
    tree = ast.parse(path.read_text(), str(path))

    def visit(node: ast.AST, scope: str) -> Iterator[tuple[str, ast.AST]]:
        for child in ast.iter_child_nodes(node):
            inner = scope
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                inner = f"{scope}.{child.name}" if scope else child.name
            yield inner if not isinstance(child, ast.ClassDef) else scope, child
            yield from visit(child, inner)

    yield from visit(tree, "")


def _is_violated(node: ast.expr | None) -> bool:
    if isinstance(node, ast.IfExp):
        return _is_violated(node.body) and _is_violated(node.orelse)
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "violated"
    )


def _attr_call(node: ast.AST, owner: str, name: str) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == name
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == owner
    )


def _fixed_shape(value: ast.expr) -> bool:
    """A value whose tuple shape the kit fixes itself."""
    if isinstance(value, ast.Tuple):
        return True
    if isinstance(value, ast.Subscript) and isinstance(value.value, ast.Name):
        return value.value.id.isupper()  # a kit constant: FINISHERS[op]
    if isinstance(value, ast.Call):
        func = value.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        return name.startswith("_") or ast.unparse(func) in FIXED_SHAPES
    return False


def problems() -> list[str]:
    found: list[str] = []
    for path in SOURCES:
        rel = str(path.relative_to(PACKAGE))
        for scope, node in _walk(path):
            here = _where(path, node)
            if isinstance(node, ast.Assert) and not _is_violated(node.msg):
                found.append(f"{here}: assert without a violated(...) message")
            elif _attr_call(node, "pytest", "fail"):
                assert isinstance(node, ast.Call)
                if not node.args or not _is_violated(node.args[0]):
                    found.append(f"{here}: pytest.fail without a violated(...) message")
            elif _attr_call(node, "pytest", "raises") and f"{rel}:{scope}" not in RAISES:
                found.append(f"{here}: pytest.raises (use helpers.raises, naming the guarantee)")
            elif isinstance(node, ast.Assign) and not _fixed_shape(node.value):
                if any(isinstance(t, (ast.Tuple, ast.List)) for t in node.targets):
                    found.append(f"{here}: unguarded tuple unpacking of {ast.unparse(node.value)}")
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "get"
                and any(k.arg == "timeout" for k in node.keywords)
                and f"{rel}:{scope}" not in RESULT_GETTERS
            ):
                found.append(f"{here}: Result.get(timeout=...) (use helpers.result_value)")
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "wait_until"
                and not any(k.arg == "message" for k in node.keywords)
            ):
                found.append(f"{here}: wait_until without message= (say what is awaited)")
    return found


def test_every_kit_failure_is_worded_as_a_guarantee() -> None:
    found = problems()
    assert not found, "kit code that can fail without naming a guarantee:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("assert x == 1\n", "assert without"),
        ('assert x == 1, "x is one"\n', "assert without"),
        ("(claim,) = backend.claim(g, 'w', 1, 30.0, 3).claims\n", "unguarded tuple unpacking"),
        ("a, b = backend.renew(claims, 30.0)\n", "unguarded tuple unpacking"),
        ("with pytest.raises(LeaseLost):\n    pass\n", "pytest.raises"),
        ("result.get(timeout=5)\n", "Result.get"),
        ("wait_until(lambda: True, 5.0)\n", "wait_until without"),
        ('pytest.fail("lost")\n', "pytest.fail without"),
    ],
)
def test_the_rules_catch_each_bare_failure(
    source: str, problem: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checker itself: each pattern the issue reported is found."""
    bad = tmp_path / "bad.py"
    bad.write_text(source)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path, raising=True)
    monkeypatch.setattr(sys.modules[__name__], "SOURCES", [bad], raising=True)
    assert any(problem in line for line in problems()), problems()


def test_the_rules_accept_worded_failures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = tmp_path / "good.py"
    good.write_text(
        'assert x == 1, violated("x must be one", got=x)\n'
        "first, second = backends.primary, backends.new()\n"
        "finish, state = FINISHERS[operation]\n"
        "a, b = self._stale_and_current()\n"
        'pytest.fail(violated("lost"))\n'
        'wait_until(lambda: True, 5.0, message="the clock to move")\n'
    )
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path, raising=True)
    monkeypatch.setattr(sys.modules[__name__], "SOURCES", [good], raising=True)
    assert problems() == []
