"""The seams of the monorepo: imports between modules run one way, and the other
distributions use only taskkit-core's public surface (the ruff contract in ruff.toml)."""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "taskkit": ROOT / "taskkit-core/src/taskkit",
    "taskkit_redis": ROOT / "taskkit-redis/src/taskkit_redis",
    "taskkit_django": ROOT / "taskkit-django/src/taskkit_django",
    "taskkit_testing": ROOT / "taskkit-testing/src/taskkit_testing",
    "taskkit_sqlite_example": ROOT / "examples/sqlite_backend/src/taskkit_sqlite_example",
}


def _modules(package: str) -> dict[str, tuple[Path, bool]]:
    """Every module of ``package``: dotted name -> (file, is a package)."""
    src = PACKAGES[package]
    found: dict[str, tuple[Path, bool]] = {}
    for path in sorted(src.rglob("*.py")):
        parts = [package, *path.relative_to(src).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def _imported(
    body: list[ast.stmt], name: str, is_package: bool, modules: dict[str, tuple[Path, bool]]
) -> set[str]:
    """The modules of ``modules`` that the statements ``body`` of module ``name`` import,
    looking into ``if`` and ``try`` blocks but not into functions or classes."""
    deps: set[str] = set()
    for node in body:
        if isinstance(node, ast.If):
            deps |= _imported(node.body + node.orelse, name, is_package, modules)
        elif isinstance(node, ast.Try):
            blocks = node.body + node.orelse + node.finalbody
            for handler in node.handlers:
                blocks += handler.body
            deps |= _imported(blocks, name, is_package, modules)
        elif isinstance(node, ast.Import):
            deps.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            subs = [f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in modules]
            deps.update(subs)
            if len(subs) < len(node.names):
                deps.add(module)
    return deps


def _module_level_imports(package: str) -> dict[str, set[str]]:
    """Who imports whom inside ``package`` when its modules load (``if TYPE_CHECKING`` blocks
    count: a type-only cycle is still a cycle for a reader; imports inside functions do not)."""
    modules = _modules(package)
    graph: dict[str, set[str]] = {}
    for name, (path, is_package) in modules.items():
        deps = _imported(ast.parse(path.read_text()).body, name, is_package, modules)
        # A module's own packages load first anyway: those edges are no cycle.
        graph[name] = {
            d for d in deps if d in modules and d != name and not name.startswith(d + ".")
        }
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in sorted(graph[node]):
            if dep not in index:
                connect(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_module_level_imports_form_no_circle(package: str) -> None:
    # No circle is tolerated: the kit imports its runtime (``_worker``, ``_supervisor``,
    # ``_execution``), which reads the kit's data (``_kitdata``, ``_hooks``) and never ``kit``.
    cycles = _cycles(_module_level_imports(package))
    assert not cycles, f"{package}: modules import each other in a circle: {cycles}"


def test_the_runtime_does_not_import_the_kit() -> None:
    graph = _module_level_imports("taskkit")
    runtime = ["_worker", "_supervisor", "_execution", "_recorder", "_scheduler", "_health"]
    for name in runtime:
        assert "taskkit.kit" not in graph[f"taskkit.{name}"], f"taskkit.{name} imports kit"
    assert {"taskkit._supervisor", "taskkit._worker", "taskkit._execution"} <= graph["taskkit.kit"]


def test_the_cycle_finder_finds_a_circle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_plugin_system_imports_one_way() -> None:
    graph = _module_level_imports("taskkit")
    plugin_system = {"taskkit.hookspecs", "taskkit._builtin", "taskkit.plugins"}
    assert not graph["taskkit.registries"] & plugin_system
    assert not graph["taskkit.hookspecs"] & {"taskkit._builtin", "taskkit.plugins"}
    assert "taskkit.plugins" not in graph["taskkit._builtin"]
    assert {"taskkit.hookspecs", "taskkit._builtin", "taskkit.registries"} <= graph[
        "taskkit.plugins"
    ]


def test_ruff_bans_every_private_module_of_taskkit_core_outside_it() -> None:
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from 3.11")
    config = tomllib.loads((ROOT / "ruff.toml").read_text())
    assert "TID251" in config["lint"]["select"]
    banned = set(config["lint"]["flake8-tidy-imports"]["banned-api"])
    private = {
        name
        for name in _modules("taskkit")
        if name.count(".") == 1
        and name.split(".")[1].startswith("_")
        and not name.split(".")[1].startswith("__")
    }
    assert private - banned == set(), "ruff.toml does not ban these private modules"
    exempt = [
        glob for glob, rules in config["lint"]["per-file-ignores"].items() if "TID251" in rules
    ]
    assert exempt == ["taskkit-core/**"], "only taskkit-core may import its private modules"


DISTRIBUTIONS = {
    "taskkit-core": ("taskkit-core", "taskkit"),
    "taskkit-redis": ("taskkit-redis", "taskkit_redis"),
    "taskkit-django": ("taskkit-django", "taskkit_django"),
    "taskkit-testing": ("taskkit-testing", "taskkit_testing"),
    "taskkit-sqlite-example": ("examples/sqlite_backend", "taskkit_sqlite_example"),
}


def _pyproject(folder: str) -> dict[str, Any]:
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from 3.11")
    loaded: dict[str, Any] = tomllib.loads((ROOT / folder / "pyproject.toml").read_text())
    return loaded


@pytest.mark.parametrize("dist", sorted(DISTRIBUTIONS))
def test_each_distribution_writes_its_version_once(dist: str) -> None:
    folder, package = DISTRIBUTIONS[dist]
    project = _pyproject(folder)
    assert "version" not in project["project"], f"{dist}: the version is written in pyproject.toml"
    assert project["project"]["dynamic"] == ["version"]
    source = project["tool"]["hatch"]["version"]["path"]
    assert source == f"src/{package}/__init__.py"
    written = re.findall(r'^__version__ = "([^"]+)"$', (ROOT / folder / source).read_text(), re.M)
    assert len(written) == 1, f"{dist}: {source} must write __version__ once"
    assert importlib.import_module(package).__version__ == written[0]
    assert importlib.metadata.version(dist) == written[0], f"{dist}: reinstall it (stale metadata)"


@pytest.mark.parametrize("dist", sorted(DISTRIBUTIONS))
def test_every_dependency_on_a_sibling_has_a_lower_bound(dist: str) -> None:
    project = _pyproject(DISTRIBUTIONS[dist][0])["project"]
    requirements = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    for requirement in requirements:
        name = re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0]
        if name in DISTRIBUTIONS:
            assert ">=" in requirement, f"{dist}: {requirement!r} has no lower bound"
