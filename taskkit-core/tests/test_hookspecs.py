"""The hook reference: every spec is documented in the module and in docs/hooks.md."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import taskkit
from taskkit import hookspecs

DOCS = Path(__file__).resolve().parents[2] / "docs" / "hooks.md"


def _hookspecs() -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(fn)
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if name.startswith("taskkit_")
    }


def test_every_hook_and_its_signature_is_in_the_hook_reference() -> None:
    text = DOCS.read_text()
    documented = set(re.findall(r"^### `(taskkit_\w+)`", text, re.M))
    specs = _hookspecs()
    assert documented == set(specs), "docs/hooks.md and taskkit/hookspecs.py disagree"
    for name, signature in specs.items():
        rendered = f"{name}{signature}".replace("'", "")
        assert rendered in text, f"docs/hooks.md shows a stale signature of {name}"


def test_every_hookspec_documents_its_parameters_and_version() -> None:
    for name, signature in _hookspecs().items():
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert ".. versionadded::" in doc, name
        for param in signature.parameters:
            assert f":param {param}:" in doc, f"{name} does not document {param}"


def test_the_registration_hooks_are_exactly_the_register_specs() -> None:
    # The plugin manager refuses kit-local plugins that implement one of these.
    registering = {name for name in _hookspecs() if name.startswith("taskkit_register_")}
    assert set(hookspecs.REGISTRATION_HOOKS) == registering


def test_plugins_mark_their_hooks_with_the_one_hookimpl_of_the_host() -> None:
    assert taskkit.hookimpl is hookspecs.hookimpl
    assert hookspecs.NAME == "taskkit"  # the pluggy project and the entry-point group
