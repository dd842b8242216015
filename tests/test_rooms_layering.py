"""svc.rooms is a one-way stack (docs/development.md): each module imports only the modules
below it, never svc.http or the wiring above, and nothing under ``TYPE_CHECKING``.

Read from the source (ast), so an import made inside a function, lazily, counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import svc.rooms

ROOMS = Path(svc.rooms.__file__).parent
#: top to bottom: a module may import only those after it
STACK = [
    "hub",
    "resume",
    "history_reads",
    "room",
    "ordering",
    "sequence",
    "welcome_cache",
    "member_set",
    "connection",
    "send_budget",
    "budget",
    "token_expiry",
    "frames",
    "limits",
]
#: svc's layers above the rooms
ABOVE = {"svc.http", "svc.app", "svc.keys", "svc.settings", "svc.__main__"}


def imports_of(path: Path) -> tuple[set[str], bool]:
    """The absolute svc modules ``path`` imports, and whether it tests TYPE_CHECKING."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module or ""
            else:
                base = ".".join(["svc", "rooms"][: 3 - node.level])
                base = f"{base}.{node.module}" if node.module else base
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    checks = any(isinstance(n, ast.Name) and n.id == "TYPE_CHECKING" for n in ast.walk(tree))
    return found, checks


def test_every_rooms_module_has_its_place_in_the_stack():
    modules = {p.stem for p in ROOMS.glob("*.py")} - {"__init__"}
    assert modules == set(STACK)


def test_rooms_import_only_downwards():
    for place, name in enumerate(STACK):
        imported, type_checking = imports_of(ROOMS / f"{name}.py")
        assert not type_checking, f"svc/rooms/{name}.py tests TYPE_CHECKING"
        upper = {f"svc.rooms.{other}" for other in STACK[: place + 1]}
        for module in imported:
            assert not any(module == u or module.startswith(u + ".") for u in ABOVE), (
                f"svc/rooms/{name}.py imports {module}, a layer above the rooms"
            )
            assert module not in upper, f"svc/rooms/{name}.py imports {module}, above it"
