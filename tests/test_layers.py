"""Imports in svc/ flow one way, top to bottom (the layers of the house, DESIGN's layout):

    wiring    python -m svc, create_app, settings, serving, workers
    testing   the conformance suites plugin authors subclass (nothing in svc imports them)
    http      the REST API and the WebSocket route
    rooms     the real-time layer
    broker    what crosses processes
    storage   users
    leaves    everything else: keys, logs, passwords, drain, ... (they import only leaves)

Read from the source with ``ast``, not by importing: every import counts, at module level,
inside a function (a lazy import dodging a cycle is still the cycle) and under
``TYPE_CHECKING`` (a back-import for annotations still ties the layers together).  Each
failure names the importing file, its line and what it imports.
"""

from __future__ import annotations

import ast
import importlib
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

import svc
from svc import keys
from svc.app import create_app
from svc.keys import OPENAPI_JSON
from svc.settings import Settings

ROOT = Path(svc.__file__).parent

#: Top to bottom; a module belongs to the first layer one of whose prefixes it starts with,
#: else it is a leaf.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "wiring",
        (
            "svc.__main__",
            "svc.app",
            "svc.settings",
            "svc.serving",
            "svc.workers",
            "svc.listen",
            "svc.collector",
        ),
    ),
    ("testing", ("svc.testing",)),
    ("http", ("svc.http",)),
    ("rooms", ("svc.rooms",)),
    ("broker", ("svc.broker",)),
    # svc.serialize serialises storage's records for http and rooms: it sits on storage.
    ("storage", ("svc.storage", "svc.serialize")),
    ("leaves", ("svc",)),
)
RANK = {name: rank for rank, (name, _) in enumerate(LAYERS)}


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name
    imported: str
    where: str  # file:line

    def __str__(self) -> str:
        return f"{self.where}: {self.importer} imports {self.imported}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def imports_of(name: str, path: Path, known: dict[str, Path], root: Path = ROOT) -> list[Import]:
    """Every svc module ``path`` imports, wherever in the file the import is."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            # ``from . import routing`` imports the module svc.http.routing; ``from .keys
            # import HUB`` imports svc.keys.
            submodules = [f"{stem}.{alias.name}" for alias in node.names]
            targets = [m for m in submodules if m in known] or [stem]
        for target in targets:
            if target == "svc" or target.startswith("svc."):
                while target not in known:  # ``import svc.http.errors as e`` and the like
                    target = target.rpartition(".")[0]
                where = f"{path.relative_to(root.parent)}:{node.lineno}"
                found.append(Import(name, target, where))
    return found


def graph() -> list[Import]:
    known = modules()
    return [edge for name, path in known.items() for edge in imports_of(name, path, known)]


def layer_of(module: str) -> str:
    for name, prefixes in LAYERS:
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return name
    raise AssertionError(module)  # "svc" is the last prefix: unreachable


def upward(edges: list[Import]) -> list[Import]:
    return [e for e in edges if RANK[layer_of(e.importer)] > RANK[layer_of(e.imported)]]


def cycles(edges: list[Import]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    after: dict[str, set[str]] = {}
    for edge in edges:
        if edge.importer != edge.imported:
            after.setdefault(edge.importer, set()).add(edge.imported)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:  # svc has a few dozen modules: recursion is shallow
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in after.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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

    for node in sorted(after):
        if node not in index:
            visit(node)
    return found


def test_no_import_goes_up_a_layer():
    offending = [
        f"{edge} ({layer_of(edge.importer)} -> {layer_of(edge.imported)})"
        for edge in upward(graph())
    ]
    assert not offending, "imports from a lower layer to a higher one:\n" + "\n".join(offending)


def test_no_import_cycle():
    edges = graph()
    problems = []
    for component in cycles(edges):
        members = set(component)
        inside = [str(e) for e in edges if e.importer in members and e.imported in members]
        problems.append(" <-> ".join(component) + "\n  " + "\n  ".join(sorted(inside)))
    assert not problems, "import cycles:\n" + "\n".join(problems)


def test_keys_is_a_leaf_importing_nothing_of_svc():
    """Every layer that reads the app's state imports svc.keys: it may import no svc module."""
    assert [str(e) for e in graph() if e.importer == "svc.keys"] == []


def test_each_key_names_the_class_of_its_value():
    """svc.keys names its values' classes as text (importing them would tie it to every
    layer): each name must be where that class lives, and the value an instance of it."""
    app = create_app(Settings())
    app[OPENAPI_JSON] = b"{}"  # rendered at start-up
    checked = 0
    for name in dir(keys):
        key = getattr(keys, name)
        if not isinstance(key, web.AppKey):
            continue
        named = key._t  # what svc.keys wrote: a dotted name, or a class
        if isinstance(named, str):
            module, _, attribute = named.rpartition(".")
            named = getattr(importlib.import_module(module), attribute)
        assert isinstance(app[key], named), (name, key, type(app[key]))
        checked += 1
    assert checked == 12


# --- the checker itself, on made-up sources ---------------------------------------------


def _edges_of(tmp_path: Path, files: dict[str, str]) -> list[Import]:
    paths = {}
    for relative, text in files.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        parts = list(Path(relative).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        paths[".".join(parts)] = path
    return [
        edge
        for name, path in paths.items()
        for edge in imports_of(name, path, paths, root=tmp_path / "svc")
    ]


def test_a_lazy_or_type_checking_import_counts(tmp_path):
    edges = _edges_of(
        tmp_path,
        {
            "svc/__init__.py": "",
            "svc/keys.py": "def f():\n    from .http import metrics\n",
            "svc/http/__init__.py": "",
            "svc/http/metrics.py": (
                "from typing import TYPE_CHECKING\n"
                "from .. import keys\n"
                "if TYPE_CHECKING:\n    from ..rooms.hub import Hub\n"
            ),
            "svc/rooms/__init__.py": "",
            "svc/rooms/hub.py": "import svc.http.metrics as m\n",
        },
    )
    assert {(e.importer, e.imported) for e in edges} == {
        ("svc.keys", "svc.http.metrics"),
        ("svc.http.metrics", "svc.keys"),
        ("svc.http.metrics", "svc.rooms.hub"),
        ("svc.rooms.hub", "svc.http.metrics"),
    }
    assert cycles(edges) == [["svc.http.metrics", "svc.keys", "svc.rooms.hub"]]
    assert sorted(str(e) for e in upward(edges)) == [
        "svc/keys.py:2: svc.keys imports svc.http.metrics",
        "svc/rooms/hub.py:1: svc.rooms.hub imports svc.http.metrics",
    ]


# --- svc.client: a leaf that third parties import ----------------------------------------


def test_the_client_imports_nothing_of_the_server():
    """svc.client is what a third party installs to talk to svc: importing it must not pull
    in the server (its storage drivers, bcrypt, the app), so it may import only itself."""
    outside = [
        str(e)
        for e in graph()
        if e.importer.startswith("svc.client")
        and not (e.imported == "svc.client" or e.imported.startswith("svc.client."))
    ]
    assert not outside, "svc.client imports the server:\n" + "\n".join(outside)


def test_the_server_does_not_import_the_client():
    """The service never needs its own client: an edge into svc.client from the server
    would tie the client's release to the server's internals."""
    inward = [
        str(e)
        for e in graph()
        if e.imported.startswith("svc.client") and not e.importer.startswith("svc.client")
    ]
    assert not inward, "the server imports svc.client:\n" + "\n".join(inward)


def test_the_client_needs_only_aiohttp():
    """Outside the standard library, svc.client imports aiohttp and nothing else."""
    import sys

    found = set()
    for path in (ROOT / "client").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level:
                found.add((node.module or "").split(".")[0])
    third_party = found - set(sys.stdlib_module_names) - {"__future__", "svc"}
    assert third_party == {"aiohttp"}, third_party


def test_importing_the_client_loads_no_server_module():
    import subprocess
    import sys

    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, svc.client; "
            "print(' '.join(m for m in sys.modules if m.split('.')[0].startswith('svc')))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert "svc.client" in loaded
    assert all(m == "svc" or m.startswith("svc.client") for m in loaded), loaded
