"""Every code block a user reads is run or checked, so the docs cannot drift from the code.

What each kind of block gets (``README.md`` and ``docs/*.md``):

- ``python``: compiled, then run as a program in a subprocess, in a scratch directory of its
  page, against the real local Redis (every key prefix moved under this run's own prefix by
  ``harness/sitecustomize.py``, and deleted afterwards) and PostgreSQL;
- ``sh`` / ``console``: ``taskkit ...`` and ``python ...`` commands run in the page's scratch
  directory; ``pip install`` lines must name distributions of this repository;
- ``toml``, ``ini``, ``yaml``, ``json``: parsed; a systemd unit is also checked by
  ``systemd-analyze verify`` when the machine has it; a ``dockerfile`` is checked line by line;
- ``{literalinclude}``: the included file exists; other directives are the Sphinx build's.

A block can be given instructions in an HTML comment on the line(s) just above it (invisible
on GitHub and in the built site), words separated by spaces:

- ``<!-- test: skip REASON -->``: not executed (still compiled or parsed); only for blocks that
  cannot run on a test machine, and the reason is required;
- ``<!-- test: prelude -->``: a snippet; run after ``harness/docs_prelude.py`` (the
  quickstart's ``Handler``, ``GROUP_NAME``, a ``kit`` on Redis, common imports);
- ``<!-- test: file NAME -->``: also written to ``NAME`` in the page's scratch directory, for
  the later blocks of the page (a ``tasks.py`` the CLI examples name with ``--app``);
- ``<!-- test: run-for SECONDS -->``: a program that runs until stopped (``kit.start``, a
  worker): it gets SIGTERM after SECONDS and must then exit 0 by itself;
- ``<!-- test: postgresql -->``: ``DATABASE_URL`` names a database of its own, created on
  the local PostgreSQL for this page and dropped afterwards;
- ``<!-- test: background -->``: such a program, left running while the page's later blocks
  run (a worker they need), then stopped with SIGTERM; it must exit 0 by itself.

Separately, every Markdown page of the repository (the docs and each distribution's README) is
checked for malformed fences, and the README's two commands are checked against ``dev.py``.
"""

from __future__ import annotations

import ast
import configparser
import dataclasses
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    from pip._vendor import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
HARNESS = Path(__file__).resolve().parent / "harness"
RUN_PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
ALL_PAGES = [
    *RUN_PAGES,
    *sorted(ROOT.glob("taskkit-*/README.md")),
    *sorted(ROOT.glob("examples/*/README.md")),
]
REDIS_URL = "redis://127.0.0.1:6379/0"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
BLOCK_TIMEOUT = 60.0
DISTRIBUTIONS = {
    p.parent.name for p in ROOT.glob("*/pyproject.toml") if p.parent.name.startswith("taskkit-")
}

FENCE = re.compile(r"^(?P<indent> *)(?P<ticks>`{3,}|~{3,})(?P<info>.*)$")
MARKER = re.compile(r"^\s*<!--\s*test:(?P<words>.*?)-->\s*$")
RUNNABLE_SHELL = ("taskkit", "python", "python3")
# Instructions for blocks of the backend-author pages, which carry no markers of their own:
# page -> [(a line of the block, instruction)].
OTHER_MARKERS = {
    "docs/backend-contract.md": [("kit = Kit(backend, MyHandler())", "prelude")],
    "docs/writing-a-backend.md": [
        ("sqlite-example:////var/lib/", "skip the database path is under /var/lib"),
        ("class TestMyBackend(BackendTests):", "skip a fragment of a conformance test module"),
    ],
}


@dataclasses.dataclass
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    info: str
    text: str
    marker: str = ""

    @property
    def lang(self) -> str:
        word = self.info.split()[0] if self.info.split() else ""
        return word.lower()

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    def words(self) -> list[str]:
        return self.marker.split()

    def option(self, name: str) -> str | None:
        words = self.words()
        if name not in words:
            return None
        i = words.index(name)
        if name == "skip":
            return " ".join(words[i + 1 :])
        return words[i + 1] if i + 1 < len(words) else ""


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of a page, each with the test marker just above it."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, ticks = len(match["indent"]), match["ticks"]
        close = re.compile(rf"^ {{0,{indent + 3}}}{re.escape(ticks[0])}{{{len(ticks)},}}\s*$")
        j = i + 1
        while j < len(lines) and not close.match(lines[j]):
            j += 1
        body = "\n".join(
            line[indent:] if line[:indent].isspace() else line for line in lines[i + 1 : j]
        )
        k = i - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        marker = ""
        if k >= 0 and (m := MARKER.match(lines[k])):
            marker = m["words"].strip()
        for line, words in OTHER_MARKERS.get(_rel(page), []):
            if not marker and line in body:
                marker = words
        body = textwrap.dedent(body)  # an excerpt of a method is indented
        found.append(Block(page, i + 1, match["info"].strip(), body + "\n", marker))
        i = j + 1
    return found


def _rel(page: Path) -> str:
    return str(page.relative_to(ROOT)) if page.is_relative_to(ROOT) else str(page)


def fence_problems(page: Path) -> list[str]:
    """Malformed fences: two-backtick openers, unclosed blocks, unknown test markers."""
    problems: list[str] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    open_fence: tuple[int, str, int] | None = None
    for n, line in enumerate(lines, 1):
        match = FENCE.match(line)
        if open_fence is not None:
            _start, ticks, _indent = open_fence
            stripped = line.strip()
            if stripped and set(stripped) == {ticks[0]} and len(stripped) >= len(ticks):
                open_fence = None
            continue
        if match:
            open_fence = (n, match["ticks"], len(match["indent"]))
            continue
        # Two backticks alone or before a language word at the start of a line: meant as a
        # fence, rendered as inline code.
        if re.match(r"^\s*``(?!`)(\w*)\s*$", line):
            problems.append(f"{_rel(page)}:{n}: a fence needs three backticks: {line!r}")
        if (m := MARKER.match(line)) and not _marker_ok(m["words"]):
            problems.append(f"{_rel(page)}:{n}: bad test marker {line.strip()!r}")
    if open_fence is not None:
        problems.append(f"{_rel(page)}:{open_fence[0]}: code block never closed")
    return problems


def _marker_ok(words: str) -> bool:
    parts = words.split()
    if not parts:
        return False
    if parts[0] == "skip":
        return len(parts) > 1  # a reason is required
    i = 0
    while i < len(parts):
        if parts[i] in ("prelude", "background", "postgresql"):
            i += 1
        elif parts[i] in ("file", "run-for") and i + 1 < len(parts):
            if parts[i] == "run-for":
                try:
                    float(parts[i + 1])
                except ValueError:
                    return False
            i += 2
        else:
            return False
    return True


# --------------------------------------------------------------------------- static checks


@pytest.mark.parametrize("page", ALL_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_fence_is_well_formed(page: Path) -> None:
    assert fence_problems(page) == []


def test_the_fence_check_catches_two_backticks_and_unclosed_blocks(tmp_path: Path) -> None:
    bad = tmp_path / "bad.md"
    bad.write_text("# x\n\n``python\nprint(1)\n``\n\n```\nnever closed\n")
    problems = fence_problems(bad)
    assert any("three backticks" in p and ":3:" in p for p in problems), problems
    assert any("never closed" in p for p in problems), problems


def test_every_skip_says_why_and_python_blocks_compile() -> None:
    for page in RUN_PAGES:
        for block in blocks(page):
            if "skip" in block.words():
                assert block.option("skip"), f"{block.where}: a skip needs a reason"
            if block.lang == "python":
                try:
                    compile(block.text, block.where, "exec")
                except SyntaxError as exc:
                    pytest.fail(f"{block.where}: does not compile: {exc}")


# --------------------------------------------------------------------------- running pages


class Page:
    """One page's scratch directory, key prefix and environment."""

    def __init__(self, page: Path, workdir: Path) -> None:
        self.page = page
        self.workdir = workdir
        self.background: list[tuple[Block, list[str], subprocess.Popen[str]]] = []
        self.databases: list[str] = []
        self.prefix = f"docs{uuid.uuid4().hex[:10]}"
        bindir = str(Path(sys.executable).parent)
        self.env = {
            **os.environ,
            "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
            "PYTHONPATH": os.pathsep.join([str(HARNESS), str(workdir)]),
            "TASKKIT_DOCS_PREFIX": self.prefix,
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }

    def run(self, argv: list[str], block: Block, run_for: float | None) -> None:
        proc = subprocess.Popen(
            argv,
            cwd=self.workdir,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        if "background" in block.words():
            self.background.append((block, argv, proc))
            return
        self._finish(proc, argv, block, run_for)

    def stop_background(self) -> None:
        """SIGTERM the programs left running, newest first; each must exit 0 by itself."""
        while self.background:
            block, argv, proc = self.background.pop()
            proc.send_signal(signal.SIGTERM)
            self._finish(proc, argv, block, None)

    def _finish(
        self, proc: subprocess.Popen[str], argv: list[str], block: Block, run_for: float | None
    ) -> None:
        try:
            if run_for is not None:
                try:
                    out, _ = proc.communicate(timeout=run_for)
                except subprocess.TimeoutExpired:
                    proc.send_signal(signal.SIGTERM)
                    out, _ = proc.communicate(timeout=BLOCK_TIMEOUT)
            else:
                out, _ = proc.communicate(timeout=BLOCK_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            pytest.fail(f"{block.where}: {shlex.join(argv)} did not exit in time:\n{out}")
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        assert proc.returncode == 0, f"{block.where}: exit code {proc.returncode}:\n{out}"
        assert "Traceback (most recent call last)" not in out, f"{block.where}:\n{out}"

    def use_postgresql(self) -> None:
        """Give the page's blocks a database of their own, as ``DATABASE_URL``."""
        if "DATABASE_URL" in self.env:
            return
        import psycopg

        name = f"tkdocs_{self.prefix}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        self.env["DATABASE_URL"] = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"

    def cleanup(self) -> None:
        try:
            self.stop_background()
        finally:
            self._delete_keys()
            self._drop_databases()

    def _drop_databases(self) -> None:
        if not self.databases:
            return
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            for name in self.databases:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _delete_keys(self) -> None:
        try:
            from taskkit_redis import RedisBackend
        except ImportError:
            return
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        pattern = re.compile(rf"{self.prefix}-[^:{{}}]+")
        prefixes = {
            match[0]
            for key in client.scan_iter(match=f"*{self.prefix}-*", count=1000)
            if (match := pattern.search(key.decode()))
        }
        client.close()
        for prefix in prefixes:
            RedisBackend(REDIS_URL, prefix=prefix).delete_all_keys(
                i_know_this_deletes_everything=True
            )
            RedisBackend(REDIS_URL, prefix=prefix).close()


def run_python(page: Page, block: Block) -> None:
    if "postgresql" in block.words():
        page.use_postgresql()
    text = block.text
    if "prelude" in block.words():
        text = (HARNESS / "docs_prelude.py").read_text() + text
    script = page.workdir / f"_block_{block.line}.py"
    script.write_text(text)
    run_for = block.option("run-for")
    page.run([sys.executable, script.name], block, float(run_for) if run_for else None)


def shell_commands(block: Block) -> Iterator[str]:
    """The commands of a shell block: ``$ ``-prompted lines of a console block, else every line."""
    lines = block.text.splitlines()
    prompted = block.lang == "console"
    command = ""
    for line in lines:
        if prompted:
            if not line.startswith("$ "):
                continue
            line = line[2:]
        line = re.sub(r"\s+#.*$", "", line) if not line.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        command += line.rstrip("\\").strip() + " "
        if not line.rstrip().endswith("\\"):
            yield command.strip()
            command = ""


def run_shell(page: Page, block: Block) -> None:
    run_for = block.option("run-for")
    for command in shell_commands(block):
        argv = shlex.split(command)
        if argv[:2] == ["pip", "install"]:
            for requirement in argv[2:]:
                if requirement.startswith(("-", ".", "/", '"', "'.")):
                    continue  # an option or a local path
                name = re.split(r"[\[<>=~!]", requirement.strip("\"'"))[0]
                assert name in DISTRIBUTIONS, f"{block.where}: {name!r} is not ours"
            continue
        assert argv[0] in RUNNABLE_SHELL, (
            f"{block.where}: {argv[0]!r} is not run by this test: mark the block "
            "<!-- test: skip REASON --> if it cannot run here"
        )
        if argv[0] in ("python", "python3"):
            argv[0] = sys.executable
        page.run(argv, block, float(run_for) if run_for else None)


def check_config(block: Block) -> None:
    lang, text = block.lang, block.text
    if lang == "toml":
        tomllib.loads(text)
    elif lang == "json":
        json.loads(text)
    elif lang == "yaml":
        import yaml

        list(yaml.safe_load_all(text))
    elif lang == "ini":
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read_string(text)
        assert parser.sections(), f"{block.where}: no section"


def check_systemd_unit(block: Block, path: Path) -> None:
    """``systemd-analyze verify``: unknown keys and values it cannot parse are problems."""
    if not shutil.which("systemd-analyze"):
        return  # parsed as ini above; the full check needs systemd's tools
    # verify also wants ExecStart's binary to exist: check a copy that runs /bin/true.
    path.write_text(re.sub(r"^(ExecStart=)\S+", r"\1/bin/true", block.text, flags=re.M))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60
    )
    problems = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if path.name in line
        and any(word in line for word in ("Unknown", "Failed to", "Invalid", "not executable"))
    ]
    assert not problems, f"{block.where}: systemd-analyze verify:\n" + "\n".join(problems)


def test_the_systemd_check_catches_a_bad_key(tmp_path: Path) -> None:
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed here")
    bad = Block(ROOT / "x.md", 1, "ini", "[Service]\nExecStart=/bin/true\nKillMode=mixd\n")
    with pytest.raises(AssertionError, match="kill mode"):
        check_systemd_unit(bad, tmp_path / "bad.service")


DOCKER_INSTRUCTIONS = {
    "FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
    "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
}  # fmt: skip


def check_dockerfile(block: Block) -> None:
    lines = [line for line in block.text.splitlines() if line.strip() and not line.startswith("#")]
    assert lines and lines[0].split()[0].upper() in ("FROM", "ARG"), block.where
    continued = False
    for line in lines:
        if not continued:
            word = line.split()[0]
            assert word in DOCKER_INSTRUCTIONS, f"{block.where}: unknown instruction {word!r}"
            if word in ("CMD", "ENTRYPOINT") and line.split(None, 1)[1].startswith("["):
                json.loads(line.split(None, 1)[1])
        continued = line.rstrip().endswith("\\")


@pytest.mark.parametrize("page", RUN_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_code_block_runs(page: Path, tmp_path: Path) -> None:
    state = Page(page, tmp_path)
    try:
        for block in blocks(page):
            name = block.option("file")
            if name:
                (tmp_path / name).write_text(block.text)
            if block.lang.startswith("{literalinclude}"):
                target = (page.parent / block.info.split(None, 1)[1]).resolve()
                assert target.is_file(), f"{block.where}: {target} does not exist"
                continue
            if block.lang in ("toml", "json", "yaml", "ini"):
                check_config(block)
                if name and name.endswith((".service", ".socket", ".timer")):
                    check_systemd_unit(block, tmp_path / name)
                continue
            if block.lang == "dockerfile":
                check_dockerfile(block)
                continue
            if "skip" in block.words():
                continue
            if block.lang == "python":
                run_python(state, block)
            elif block.lang in ("sh", "console", "bash", "shell"):
                run_shell(state, block)
    finally:
        state.cleanup()


# --------------------------------------------------------------------------- the README


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"^(python3 dev\.py \w+)", text, re.M)


def _dev_commands() -> dict[str, list[str]]:
    tree = ast.parse((ROOT / "dev.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "commands":
            value = ast.literal_eval(node.value)
            assert isinstance(value, dict)
            return value
    raise AssertionError("dev.py has no `commands` table")


def test_the_readme_names_the_two_commands_on_its_first_screen() -> None:
    first_screen = "\n".join((ROOT / "README.md").read_text().splitlines()[:60])
    assert "pip install" in first_screen
    assert "python3 dev.py demo" in first_screen and "python3 dev.py test" in first_screen
    assert sorted(set(_readme_commands())) == ["python3 dev.py demo", "python3 dev.py test"]


def test_dev_py_test_runs_the_default_nox_sessions() -> None:
    # `python3 dev.py test` cannot run inside the test suite it starts: check what it runs.
    assert _dev_commands()["test"] == []  # no -s: nox's default sessions
    tree = ast.parse((ROOT / "noxfile.py").read_text())
    sessions = next(
        ast.literal_eval(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "nox.options.sessions"
    )
    assert {"lint", "typecheck", "tests", "docs"} <= set(sessions)
    assert '"docs/tests"' in (ROOT / "noxfile.py").read_text()  # this suite is one of them


def test_dev_py_demo_runs(tmp_path: Path) -> None:
    assert _dev_commands()["demo"] == ["-s", "demo"]
    done = subprocess.run(
        ["python3", "dev.py", "demo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "scheduled tick for" in done.stdout
    assert "workers stopped" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


# --------------------------------------------------------------------------- the CLI page


def _cli_help(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "taskkit.cli", *args, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_cli_page_names_every_command_and_option_of_the_parser() -> None:
    page = (DOCS / "cli.md").read_text()
    top = _cli_help()
    section = top.split("positional arguments:", 1)[1].split("options:", 1)[0]
    commands = re.findall(r"^ {4}([a-z][a-z-]*)\s", section, re.M)
    assert {"worker", "stats", "cancel"} <= set(commands), top
    parser_options = set(re.findall(r"(--[a-z][a-z-]+)", top))
    for command in commands:
        assert f"`{command}" in page, f"docs/cli.md does not describe `taskkit {command}`"
        parser_options |= set(re.findall(r"(--[a-z][a-z-]+)", _cli_help(command)))
    documented_extra = {"--help"}
    documented = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", page))
    for option in sorted(parser_options):
        assert option in documented, f"docs/cli.md does not describe {option}"
    for option in sorted(documented - documented_extra):
        assert option in parser_options, f"docs/cli.md names {option}, which taskkit lacks"


# --------------------------------------------------------------------------- what they teach


def _python_blocks_under(page: Path, heading: str) -> list[Block]:
    text = page.read_text()
    start = text.index(f"\n{heading}\n")
    end = text.find("\n## ", start + len(heading) + 2)
    first, last = text[:start].count("\n") + 1, text[: end if end > 0 else None].count("\n") + 1
    return [b for b in blocks(page) if b.lang == "python" and first <= b.line <= last]


def test_the_quickstarts_run_workers_supervised() -> None:
    # taskkit 0.2's README taught start_processes(daemon=True), which replaces no dead worker.
    readme = _python_blocks_under(ROOT / "README.md", "## Quickstart")
    assert readme and "kit.start" in readme[0].text
    guide = [b for b in blocks(DOCS / "quickstart.md") if b.lang in ("python", "sh")]
    for block in [*readme, *guide]:
        assert "start_processes(" not in block.text, f"{block.where} runs workers unsupervised"
    assert any("kit.start(" in b.text for b in guide)
    assert any("taskkit --app" in b.text and " worker " in b.text for b in guide)
    api = (DOCS / "api.md").read_text()
    assert "is **not replaced**" in api and "leases expire" in api


def test_every_retry_example_agrees() -> None:
    # The README waited retry_count seconds, the docs 2 ** retry_count: one example only.
    formulas = {
        line.strip()
        for page in RUN_PAGES
        for block in blocks(page)
        if block.lang == "python" and "def get_retry_interval" in block.text
        for line in block.text.splitlines()
        if line.strip().startswith("return") and "retry_count" in line
    }
    assert len(formulas) <= 1, formulas


def test_the_api_reference_covers_every_public_name() -> None:
    import taskkit

    reference = (DOCS / "api.md").read_text() + (DOCS / "backend-contract.md").read_text()
    missing = [
        n for n in taskkit.__all__ if not re.search(rf"taskkit\.{re.escape(n)}\b", reference)
    ]
    assert not missing, f"docs/api.md does not document taskkit.{', taskkit.'.join(missing)}"
