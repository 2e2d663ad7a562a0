"""Sphinx configuration for the taskkit documentation."""

from __future__ import annotations

project = "taskkit"
author = "taskkit maintainers"
copyright = "2026, taskkit maintainers"

extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "tests"]
html_theme = "furo"
myst_heading_anchors = 3
autodoc_member_order = "bysource"
autodoc_typehints = "description"

# Every cross-reference must resolve: with -W (the `docs` nox session) a reference to a name
# the site does not document fails the build, in Markdown pages and in docstrings alike.
nitpicky = True
# Names from outside taskkit (the standard library, pluggy) are not part of this site; they
# are the only references allowed to stay unresolved.
nitpick_ignore_regex = [
    ("py:.*", r"(datetime|collections\.abc|typing|multiprocessing|enum|pathlib|os|threading)\..*"),
    ("py:.*", r"(asyncio)\..*"),
    ("py:class", r"datetime"),
    ("py:.*", r"(pluggy\.)?(PluginManager|HookimplMarker)(\..*)?"),
    # Type aliases and type variables of signatures, explained in the text around them.
    ("py:class", r"(ShouldRestart|HelperServices|PollingInterval|ExceptionTypes|_F|_T)"),
    # The ParamSpec and type variables of function tasks and results (P, R, T).
    ("py:class", r"(taskkit\.\w+\.)?(P|R|T)(\.args|\.kwargs)?"),
    # What function tasks and results need of their kit, and the private base class.
    ("py:class", r"(taskkit\.\w+\.)?(TaskProducer|ResultSource|TaskDecorator)"),
    ("py:class", r"(taskkit\.functions\.)?(_BaseTaskFunction|AnyTaskFunction)"),
    # Private helpers that appear in signatures (taskkit._health).
    ("py:class", r"(taskkit\._health\.)?BackendHealth"),
    ("py:class", r"taskkit\.schedule\.DataEncoder"),  # "anything with encode_data"
    ("py:class", r"(Any|Callable|Mapping|Sequence|Iterable|Iterator|BaseProcess|tzinfo)"),
    ("py:class", r"(int|str|float|bool|bytes|None|object|dict|list|tuple|set|type)"),
    ("py:class", r"(Exception|BaseException|ValueError|LookupError|TimeoutError|ConnectionError)"),
]


def _public_alias(app, env, node, contnode):  # type: ignore[no-untyped-def]
    """Resolve the names docstrings and type hints use to what this site documents.

    ``taskkit._task.Task`` (how a type hint names it) is the public ``taskkit.Task``; a bare
    ``is_retryable`` in a docstring of ``taskkit.retry`` is ``taskkit.retry.is_retryable``.
    Only a unique match resolves; anything else stays a broken reference (and fails -W).
    """
    import taskkit  # noqa: PLC0415 - imported when Sphinx resolves, after autodoc set up sys.path

    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    domain = env.get_domain("py")
    name = target.rsplit(".", 1)[-1]
    if target.startswith("taskkit.") and target != f"taskkit.{name}" and hasattr(taskkit, name):
        candidates = [f"taskkit.{name}"]
    else:
        candidates = [full for full in domain.objects if full.endswith(f".{target}")]
    if not candidates and node["reftype"] == "attr" and "." in target:
        # A field described in its class's docstring (``ClaimBatch.dead_lettered``): link to
        # the class, if it really has that field.
        owner, _, field = target.rpartition(".")
        cls = getattr(taskkit, owner.rsplit(".", 1)[-1], None)
        if cls is not None and field in getattr(cls, "__dataclass_fields__", {}):
            node["reftype"] = "class"
            candidates = [f"taskkit.{cls.__name__}"]
    if len(candidates) != 1:
        return None
    return domain.resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], candidates[0], node, contnode
    )


def setup(app):  # type: ignore[no-untyped-def]
    app.connect("missing-reference", _public_alias)
