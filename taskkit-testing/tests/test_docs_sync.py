"""The backend author's pages read as plain Markdown, and their code cannot drift.

``docs/writing-a-backend.md`` shows the example backend's files inline (GitHub does not
render Sphinx's ``{literalinclude}``). Each such block is tagged ``<!-- source: PATH -->``
(a path from the repository root) on a line just above it; here every tagged block must
appear verbatim, as whole consecutive lines, in that file, and a block introduced as
"The whole of `PATH`" must be the whole file.

``docs/backend-contract.md`` must name every capability flag of :class:`taskkit.Backend`, as
must the kit's own list of the flags it knows.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from taskkit import Backend
from taskkit_testing._base import CAPABILITIES

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "writing-a-backend.md"
CONTRACT = ROOT / "docs" / "backend-contract.md"

SOURCE = re.compile(r"^<!-- source: (?P<path>\S+) -->$")
FENCE = re.compile(r"^(?P<ticks>`{3,})(?P<info>.*)$")
WHOLE = re.compile(r"^The whole of `(?P<path>[^`]+)`:$")


def tagged_blocks(page: Path) -> list[tuple[int, str, str, bool]]:
    """``(line, source path, block text, whole file?)`` for each tagged block of ``page``."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found = []
    for i, line in enumerate(lines):
        match = SOURCE.match(line)
        if not match:
            continue
        j = i + 1
        while j < len(lines) and (not lines[j].strip() or lines[j].startswith("<!--")):
            j += 1
        opening = FENCE.match(lines[j]) if j < len(lines) else None
        assert opening, f"{page.name}:{i + 1}: a source tag must sit just above a fenced block"
        end = j + 1
        while end < len(lines) and lines[end] != opening["ticks"]:
            end += 1
        assert end < len(lines), f"{page.name}:{j + 1}: the fenced block is never closed"
        k = i - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        caption = WHOLE.match(lines[k]) if k >= 0 else None
        if caption:
            assert caption["path"] == match["path"], (
                f"{page.name}:{k + 1}: the caption names {caption['path']}, the tag {match['path']}"
            )
        text = "\n".join(lines[j + 1 : end]) + "\n"
        found.append((i + 1, match["path"], text, caption is not None))
    return found


def test_the_guide_reads_as_plain_markdown() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    assert "{literalinclude}" not in text, (
        "docs/writing-a-backend.md must show its code inline: GitHub renders a "
        "{literalinclude} directive as the directive itself"
    )
    # The pyproject, the backend class and its four methods, the plugin, both test modules.
    assert len(tagged_blocks(GUIDE)) >= 9


@pytest.mark.parametrize(
    ("line", "path", "text", "whole"),
    tagged_blocks(GUIDE),
    ids=[f"line-{b[0]}" for b in tagged_blocks(GUIDE)],
)
def test_each_inlined_block_is_verbatim_from_its_file(
    line: int, path: str, text: str, whole: bool
) -> None:
    source = ROOT / path
    assert source.is_file(), f"writing-a-backend.md:{line} names {path}, which does not exist"
    content = source.read_text(encoding="utf-8")
    if whole:
        assert text == content, (
            f"writing-a-backend.md:{line} shows the whole of {path}, but the file changed: "
            "copy it into the page again"
        )
    else:
        assert "\n" + text in "\n" + content, (
            f"writing-a-backend.md:{line} shows an excerpt of {path} that is no longer in the "
            "file, line for line: copy it into the page again"
        )


def test_the_contract_lists_every_capability_flag() -> None:
    flags = sorted(
        name
        for name, value in vars(Backend).items()
        if isinstance(value, bool) and (name.startswith("supports_") or name.endswith("_local"))
    )
    assert "clock_is_local" in flags and len(flags) >= 5, flags
    contract = CONTRACT.read_text(encoding="utf-8")
    missing = [f for f in flags if f"`{f}`" not in contract]
    assert not missing, f"docs/backend-contract.md does not list the capability flag(s) {missing}"
    unknown = [f for f in flags if f not in CAPABILITIES]
    assert not unknown, f"taskkit_testing._base.CAPABILITIES lacks {unknown}"
    undocumented = [f for f in flags if f":attr:`{f}`" not in (Backend.__doc__ or "")]
    assert not undocumented, f"the Backend docstring does not list {undocumented}"
