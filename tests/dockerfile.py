"""Reading the Dockerfile, and laying out its build context, for the image replay.

Only the instructions svc's Dockerfile uses are understood; anything else is an error,
so the replay cannot silently drift from the image.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, COPY, RUN...
    argument: str


def instructions(path: Path = ROOT / "Dockerfile") -> list[Instruction]:
    """The instructions, continuation lines joined, comments dropped."""
    found, pending = [], ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        keyword, _, argument = (pending + line).strip().partition(" ")
        found.append(Instruction(keyword.upper(), " ".join(argument.split())))
        pending = ""
    return found


def exec_form(argument: str) -> list[str]:
    """``["python", "-m", "svc"]`` → its argv; a shell-form command is refused."""
    argv = json.loads(argument)
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv), argument
    return argv


def env_pairs(argument: str) -> dict[str, str]:
    """``ENV A=1 B=2`` (the only ENV form used here)."""
    return dict(pair.split("=", 1) for pair in argument.split())


class DockerIgnore:
    """The ``.dockerignore`` patterns: ``*`` within a segment, ``**/`` at any depth."""

    def __init__(self, path: Path = ROOT / ".dockerignore"):
        lines = [line.strip() for line in path.read_text().splitlines()]
        self.patterns = [re.compile(_regex(p)) for p in lines if p and not p.startswith("#")]

    def ignores(self, relative: str) -> bool:
        parts = relative.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]  # a folder's content
        return any(p.fullmatch(prefix) for p in self.patterns for prefix in prefixes)


def _regex(pattern: str) -> str:
    out, i = "", 0
    pattern = pattern.strip("/")
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return out


def copy(argument: str, workdir: Path, ignore: DockerIgnore) -> list[str]:
    """Do ``COPY src... dest`` from the repository into ``workdir``; the sources copied."""
    *sources, dest = argument.split()
    assert not any(s.startswith("--") for s in sources), f"COPY options not replayed: {argument}"
    target = workdir / dest
    for source in sources:
        assert not ignore.ignores(source), f"COPY {source}, but .dockerignore leaves it out"
        origin = ROOT / source
        if origin.is_dir():  # a folder's content goes into dest
            for path in sorted(origin.rglob("*")):
                relative = path.relative_to(ROOT).as_posix()
                if path.is_file() and not ignore.ignores(relative):
                    destination = target / path.relative_to(origin)
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, destination)
        else:
            destination = target / origin.name if dest.endswith("/") else target
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, destination)
    return sources
