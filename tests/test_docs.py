"""The documentation holds to the repository: it stands alone, its links lead somewhere, the
README's test command is the one CI runs, and every setting svc reads is documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SKIP_DIRS = {".git", ".venv", ".nox", ".hypothesis", ".pytest_cache", ".ruff_cache", "build"}
SKIP_DIRS |= {"__pycache__", "dist", ".schemathesis"}
TEXT_SUFFIXES = {".md", ".py", ".sh", ".toml", ".cfg", ".txt", ".js", ".html", ".css", ".ini"}
TEXT_NAMES = {"Dockerfile", "run", "lock", "nox-beside", ".dockerignore", ".gitignore"}
#: Places outside the repository that its text once pointed to: a reader of a clone has none.
OUTSIDE = (
    re.compile(r"\.\./shared"),
    re.compile(r"shared/(bench|API)"),
    re.compile(r"(?<![\w.-])/work/"),
    re.compile(r"\bAPI\.md\b"),  # the contract is docs/api.md (lower case) in this repository
)
MARKDOWN_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def repository_text_files() -> list[Path]:
    files = []
    for path in ROOT.rglob("*"):
        parts = set(path.relative_to(ROOT).parts)
        if parts & SKIP_DIRS or any(p.endswith(".egg-info") for p in parts):
            continue
        if path.is_file() and (path.suffix in TEXT_SUFFIXES or path.name in TEXT_NAMES):
            files.append(path)
    return files


def markdown_files() -> list[Path]:
    return [p for p in repository_text_files() if p.suffix == ".md"]


def test_nothing_points_outside_the_repository():
    this_file = Path(__file__).resolve()
    hits = []
    for path in repository_text_files():
        if path == this_file:
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if any(pattern.search(line) for pattern in OUTSIDE):
                hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not hits, "text pointing outside the repository:\n" + "\n".join(hits)


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    anchors = set()
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


@pytest.mark.parametrize(
    "page", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)) if isinstance(p, Path) else p
)
def test_every_relative_link_leads_to_a_file_and_heading_of_the_repository(page: Path):
    text = page.read_text()
    broken = []
    for target in MARKDOWN_LINK.findall(re.sub(r"```.*?```", "", text, flags=re.S)):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:: not ours to check
            continue
        file_part, _, anchor = target.partition("#")
        linked = (page.parent / file_part).resolve() if file_part else page
        if not linked.is_relative_to(ROOT) or not linked.exists():
            broken.append(f"{target}: no such file in the repository")
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked.read_text()):
            broken.append(f"{target}: no such heading in {linked.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_readme_test_command_is_the_one_ci_runs():
    readme = (ROOT / "README.md").read_text()
    commands = [line for line in readme.splitlines() if "pip install -e '.[test]'" in line]
    assert commands, "README.md has no install-and-test command"
    ci = (ROOT / ".ci" / "run").read_text()
    for command in commands:
        assert command.strip() in ci, f".ci/run does not run the README's {command.strip()!r}"


def variables_svc_reads() -> set[str]:
    """Every environment variable the code reads: the settings' typed reads, and direct ones."""
    names = set()
    for path in (ROOT / "svc").rglob("*.py"):
        source = path.read_text()
        names |= set(re.findall(r"\bget\.\w+\(\s*\"([A-Z][A-Z0-9_]+)\"", source))
        names |= set(re.findall(r"environ(?:\.get\(|\[)\s*\"([A-Z][A-Z0-9_]+)\"", source))
    return names


def documented_variables(page: Path) -> set[str]:
    """The variables named in the first column of the page's configuration table."""
    rows = re.findall(r"^\| (`[A-Z][A-Z0-9_]+`(?:, `[A-Z][A-Z0-9_]+`)*) \|", page.read_text(), re.M)
    return {name for row in rows for name in re.findall(r"`([A-Z0-9_]+)`", row)}


@pytest.mark.parametrize("page", ["README.md", "docs/api.md"])
def test_every_setting_is_in_the_configuration_tables(page: str):
    read = variables_svc_reads()
    assert {"DATABASE_URL", "PORT", "JWT_SECRET_KEY"} <= read  # the scan itself works
    documented = documented_variables(ROOT / page)
    assert read - documented == set(), f"{page} does not document {sorted(read - documented)}"
    assert documented - read == set(), f"{page} documents {sorted(documented - read)}, unread"
