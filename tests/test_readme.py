"""README's and the docs site's examples run, so what they say they print cannot drift from what they print.

README.md and every page under docs/ follow one convention. Every fenced ``bash``, ``console`` and
``python`` block carries a marker on the line before it: ``<!-- readme: run -->`` (run here, in a copy
of the repository's examples and data) or ``<!-- readme: skip: why -->`` (a fragment, and why). In a
``bash`` block a ``# …`` line after a command is a line it prints; in a ``console`` block the lines
after ``$ command`` are what it prints; in a ``python`` block ``print(...)  # …`` says what that print
shows. "…" stands for any text.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import warm
from shell import environment

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCUMENTS = [README, *sorted((REPO / "docs").rglob("*.md"))]
MARKER = re.compile(r"<!-- readme: (run|skip: (?P<why>.+?)) -->")
RUNNABLE = ("bash", "console", "python")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    language: str
    body: str
    marker: str | None  # "run", "skip", or None when missing

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}:{self.language}"


def blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    found, i = [], 0
    while i < len(lines):
        fence = re.match(r"^```(\w*)\s*$", lines[i])
        if not fence:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        marker = MARKER.match(lines[i - 1].strip()) if i else None
        found.append(
            Block(
                path,
                i + 1,
                fence.group(1),
                "\n".join(lines[i + 1 : end]),
                None if marker is None else marker.group(1).split(":")[0],
            )
        )
        i = end + 1
    return found


def matches(expected: str, actual: str) -> bool:
    """``…`` is any text; otherwise the line must be the same (trailing spaces aside)."""
    pattern = ".*".join(re.escape(part) for part in expected.rstrip().split("…"))
    return re.fullmatch(pattern, actual.rstrip()) is not None


def assert_prints(expected: list[str], output: str, where: str) -> None:
    """Each expected line appears in the output, in order."""
    lines = output.splitlines()
    at = 0
    for want in expected:
        hit = next((k for k in range(at, len(lines)) if matches(want, lines[k])), None)
        assert hit is not None, f"{where}: the page says it prints\n  {want}\nbut it printed\n" + output
        at = hit + 1


@pytest.fixture
def workdir(repo_copy: Path) -> Path:
    """Commands run from a copy of the repository's examples and data (tests/conftest.py), as from its root."""
    return repo_copy


def run_env() -> dict[str, str]:
    """A reader's shell (tests/support/shell.py) in a terminal 80 columns wide, as the pages' printed output is."""
    return environment(COLUMNS="80")


def shell(command: str, workdir: Path) -> str:
    """The command as bash runs it; a plain command line (no shell syntax) as the program bash would start."""
    plain = not set(command) & set("#|&;<>()$`*?~'\"\\{}[]=")
    argv = shlex.split(command) if plain else ["bash", "-c", command]
    done = warm.run(argv, cwd=workdir, env=run_env(), timeout=300)
    assert done.returncode == 0, f"`{command}` failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


ALL_BLOCKS = [block for path in DOCUMENTS for block in blocks(path)]


def test_every_runnable_block_is_marked():
    unmarked = [b.id for b in ALL_BLOCKS if b.language in RUNNABLE and b.marker is None]
    assert not unmarked, "mark these blocks <!-- readme: run --> or <!-- readme: skip: why -->: " + ", ".join(unmarked)


@pytest.mark.parametrize("block", [b for b in ALL_BLOCKS if b.marker == "run"], ids=lambda b: b.id)
def test_block_prints_what_the_page_says(block: Block, workdir: Path):
    if block.language == "python":
        expected = [m.group(1).strip() for m in re.finditer(r"print\(.*\)\s*#\s*(.+)$", block.body, re.M)]
        done = warm.run([sys.executable, "-c", block.body], cwd=workdir, env=run_env(), timeout=300)
        assert done.returncode == 0, done.stderr
        assert_prints(expected, done.stdout, block.id)
        return
    if block.language == "bash":
        steps: list[tuple[str, list[str]]] = []
        for line in block.body.splitlines():
            if line.startswith("# "):
                steps[-1][1].append(line[2:])
            elif line.strip():
                steps.append((line.split("  #")[0].strip(), []))
    else:  # console: `$ command`, then what it prints
        steps = []
        for line in block.body.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:].split("  #")[0].strip(), []))
            elif steps and line.strip():
                steps[-1][1].append(line)
    for command, expected in steps:
        if "<" in command:  # a placeholder such as <ID>: the reader fills it in
            continue
        assert_prints(expected, shell(command, workdir), f"{block.id} `{command}`")


def _git_status() -> str | None:
    done = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all", "--", "examples", "data", "src", "docs", "README.md"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    return done.stdout if done.returncode == 0 else None


STATUS_BEFORE = _git_status()  # when this module is collected, before any block runs


def test_running_the_examples_left_the_checkout_as_it_was():
    """The blocks above ran in a copy: the checkout's tracked and untracked files are as they were."""
    if STATUS_BEFORE is None:
        pytest.skip("not a git checkout")
    assert _git_status() == STATUS_BEFORE


def test_the_explain_quote_is_what_explain_prints():
    """docs/concepts.md quotes `calibration-policy explain` for the default policy; the quote must not drift from the code."""
    from calibration_policy import CalibrationUpdatePolicy

    text = (REPO / "docs" / "concepts.md").read_text()
    after = text.split("`calibration-policy explain` prints it in plain English with the live numbers:", 1)[1]
    lines = after.strip().splitlines()
    quote = " ".join(
        line[2:].strip() for line in lines[: next(i for i, line in enumerate(lines) if not line.startswith("> "))]
    )
    assert quote.strip() == CalibrationUpdatePolicy().explain()


def test_readme_is_a_page_a_newcomer_reads_and_links_every_docs_page_by_path():
    """README stays short (the reference lives under docs/), and each docs/ path it names exists."""
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    linked = set(re.findall(r"\]\((docs/[^)#]+)", text))
    assert {path for path in linked if not (REPO / path).is_file()} == set()
    pages = {str(page.relative_to(REPO)) for page in DOCUMENTS[1:]}
    assert pages - linked == set(), "README links every docs page by its path"
