"""One error catalogue (svc/http/errors.py CATALOGUE): every code the server can give is in it,
and docs/api-errors.md is generated from it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from svc.http.errors import CATALOGUE, markdown

ROOT = Path(__file__).resolve().parents[1]


def test_docs_api_errors_md_is_the_catalogue():
    page = ROOT / "docs" / "api-errors.md"
    assert page.read_text() == markdown(), (
        "docs/api-errors.md is out of date: python -m svc.http.errors > docs/api-errors.md"
    )


def test_each_code_has_one_status_and_each_line_is_whole():
    statuses = {}
    for kind in CATALOGUE:
        assert statuses.setdefault(kind.code, kind.status) == kind.status, kind.code
        assert 400 <= kind.status < 600 and kind.meaning


def errors_raised_in_source() -> list[tuple[str, int, str]]:
    """Every ``APIError(status, "code", ...)`` and ``error_response(...)`` in svc/ and plugins/."""
    found = []
    for path in [*ROOT.glob("svc/**/*.py"), *ROOT.glob("plugins/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", None))
            if name not in ("APIError", "error_response") or len(node.args) < 2:
                continue
            status, code = node.args[0], node.args[1]
            if isinstance(status, ast.Constant) and isinstance(code, ast.Constant):
                found.append((f"{path.relative_to(ROOT)}:{node.lineno}", status.value, code.value))
    return found


def test_the_source_finds_the_errors_it_should():
    """The scan below is worth something only if it sees the handlers' errors."""
    codes = {code for _, _, code in errors_raised_in_source()}
    assert {"malformed_json", "not_found", "validation_failed", "forbidden"} <= codes


@pytest.mark.parametrize("where, status, code", errors_raised_in_source())
def test_every_error_the_source_gives_is_in_the_catalogue(where, status, code):
    assert (status, code) in {(kind.status, kind.code) for kind in CATALOGUE}, where


@pytest.mark.parametrize(
    "method, path, status, code",
    [
        ("get", "/nowhere", 404, "not_found"),
        ("patch", "/users/x", 405, "method_not_allowed"),
    ],
)
async def test_the_http_layer_takes_its_codes_from_the_catalogue(
    client, method, path, status, code
):
    resp = await client.request(method, path)
    assert resp.status == status
    assert (await resp.json())["error"]["code"] == code
