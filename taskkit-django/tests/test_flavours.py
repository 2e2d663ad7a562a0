"""The Django backend's flavours: each database vendor gets its class, chosen by
``DjangoBackend.flavour`` (which the plugin and ``make_kit`` use, and ``DjangoBackend(...)``
still honours), and the backend's modules import one way."""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import pytest
from conftest import require
from handlers import EchoHandler
from taskkit.errors import ConfigurationError
from taskkit_django import DjangoBackend, make_kit
from taskkit_django.backend import PostgresBackend, SQLiteBackend
from taskkit_django.plugin import backend_from_url
from test_embedded import run_python

SRC = Path(__file__).resolve().parents[1] / "src" / "taskkit_django"

EXPECTED = {"sqlite": SQLiteBackend, "pg": PostgresBackend, "mysql": DjangoBackend}


@pytest.mark.parametrize("alias", sorted(EXPECTED))
def test_each_vendor_gets_its_flavour(alias: str) -> None:
    require(alias)
    expected = EXPECTED[alias]
    assert DjangoBackend.flavour(alias) is expected
    built = [
        DjangoBackend(alias),  # the 0.2 way: the class picks its flavour
        backend_from_url(f"django://{alias}"),  # the plugin
        make_kit(EchoHandler(), using=alias).backend,  # make_kit (through the plugin)
    ]
    try:
        for backend in built:
            assert type(backend) is expected, backend
            assert type(pickle.loads(pickle.dumps(backend))) is expected
            assert type(backend.clone()) is expected
    finally:
        for backend in built:
            backend.close()


def test_the_flavour_of_the_default_sqlite_database_is_sqlites() -> None:
    assert DjangoBackend.flavour("default") is SQLiteBackend
    assert DjangoBackend.flavour() is SQLiteBackend


def test_a_flavour_refuses_another_vendors_database() -> None:
    with pytest.raises(ConfigurationError, match="PostgresBackend is for postgresql"):
        PostgresBackend("sqlite")


def test_an_unknown_alias_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="no database alias 'nope'"):
        DjangoBackend.flavour("nope")
    with pytest.raises(ConfigurationError, match="no database alias 'nope'"):
        DjangoBackend("nope")


def test_embedded_urls_get_the_flavour_and_a_fresh_process_unpickles_it(tmp_path: Path) -> None:
    """``sqlite://`` goes through the plugin to the SQLite flavour, and a process that has
    loaded nothing of taskkit_django yet rebuilds the same class from the pickle."""
    out = run_python(
        """
        import pickle, taskkit
        from handlers import EchoHandler
        kit = taskkit.make_kit("sqlite:///flavour.sqlite3", EchoHandler())
        print(type(kit.backend).__name__, pickle.dumps(kit.backend).hex())
        """,
        tmp_path,
    )
    name, data = out.split()
    assert name == "SQLiteBackend"
    again = run_python(
        f"""
        import pickle
        backend = pickle.loads(bytes.fromhex({data!r}))
        print(type(backend).__name__, backend.vendor)
        """,
        tmp_path,
    )
    assert again.split() == ["SQLiteBackend", "sqlite"]


def _imports(module: str) -> set[str]:
    """The ``taskkit_django`` modules that ``module`` imports anywhere (functions too)."""
    tree = ast.parse((SRC / f"{module}.py").read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level == 1 and target:
                found.add(target.split(".")[0])
            elif node.level == 1:
                found.update(alias.name for alias in node.names)
            elif target.startswith("taskkit_django."):
                found.add(target.split(".")[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("taskkit_django."):
                    found.add(alias.name.split(".")[1])
    return found


#: Each backend module and what it may import of the package, even inside a function:
#: ``backend`` loads the flavours, the flavours stand on ``_orm``, everything on ``_rows``.
LAYERS = {
    "_rows": {"models"},
    "_orm": {"_rows", "_db", "_listen", "_standalone", "_aio", "_stats"},
    "_sqlite": {"_orm", "_rows", "_db"},
    "_postgres": {"_orm", "_rows", "_db", "_listen", "_aio", "_stats"},
    "_aio": {"_aio_listen"},
    "_aio_listen": {"_listen"},
    "_stats": {"_rows", "_db"},  # the fleet figures, mixed into _orm's class
    "backend": {"_orm", "_sqlite", "_postgres"},
}


@pytest.mark.parametrize("module", sorted(LAYERS))
def test_backend_modules_import_one_way(module: str) -> None:
    assert _imports(module) <= LAYERS[module]


def test_the_import_check_sees_imports_inside_functions() -> None:
    # _rows imports the models only inside a function; the check must still see it.
    assert "models" in _imports("_rows")
    assert "backend" not in _imports("_postgres")
