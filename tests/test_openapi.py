"""GET /openapi.json and /docs: every route documented, every contract route known, refs whole."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from svc.http import openapi
from svc.keys import OPENAPI_JSON
from svc.testing import unique_id

API_MD = Path(__file__).resolve().parents[2] / "shared" / "API.md"
METHODS = {"get", "put", "post", "delete", "patch"}


async def document(client) -> dict:
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    return await resp.json()


def documented(doc: dict) -> set[tuple[str, str]]:
    return {(m, path) for path, ops in doc["paths"].items() for m in ops if m in METHODS}


async def test_served_from_bytes_built_at_start(client):
    first = await (await client.get("/openapi.json")).read()
    assert first == client.app[OPENAPI_JSON]
    assert first == await (await client.get("/openapi.json")).read()
    doc = json.loads(first)
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["title"] == "svc"


async def test_every_route_of_the_app_is_documented_and_nothing_else(client):
    routed = {
        (route.method.lower(), route.resource.canonical)
        for route in client.app.router.routes()
        if route.method not in ("HEAD", "OPTIONS")
    }
    assert documented(await document(client)) == routed


def contract_routes() -> set[tuple[str, str]]:
    text = API_MD.read_text()
    routes = {
        (method.lower(), path)
        for method, path in re.findall(r"^\| `(GET|POST|PUT|DELETE) (/[^` ?]*)", text, re.M)
    }
    assert re.search(r"`GET /ws/\{room_id\}", text)
    return routes | {("get", "/ws/{room_id}"), ("get", "/docs")}


@pytest.mark.skipif(not API_MD.exists(), reason="shared/API.md is not beside the repository")
@pytest.mark.parametrize("auth", [False, True])
def test_every_contract_route_is_described(auth):
    """The document covers what the app routes (above); here: it can describe all of API.md."""
    assert contract_routes() <= set(openapi._operations(auth))


def refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


@pytest.mark.parametrize("secret", [None, "k" * 32])
async def test_every_ref_resolves_and_every_error_has_the_one_shape(make_client, secret):
    doc = await document(await make_client(jwt_secret_key=secret))
    for ref in set(refs(doc)):
        _, _, kind, name = ref.split("/")
        assert name in doc["components"][kind], ref
    error = doc["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    detail = doc["components"]["schemas"]["ErrorDetail"]
    assert set(detail["required"]) == {"code", "message"}
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            statuses = op["responses"]
            if secret or path != "/auth/token":  # with auth off, that one is only 404
                assert any(s.startswith(("1", "2")) for s in statuses), (method, path)
            for status, response in statuses.items():
                if status.startswith(("4", "5")):
                    if "$ref" in response:
                        response = doc["components"]["responses"][response["$ref"].split("/")[-1]]
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)


async def test_headers_and_path_rules_are_described(client):
    doc = await document(client)
    ops = doc["paths"]
    created = ops["/users"]["post"]["responses"]["201"]["headers"]
    assert set(created) == {"ETag", "Location"}
    profile = ops["/users/{user_id}/profile"]["put"]
    params = [p["$ref"].split("/")[-1] for p in profile["parameters"]]
    assert params == ["UserId", "IfMatch"]
    user_id = doc["components"]["parameters"]["UserId"]
    assert user_id["schema"]["pattern"] == "^[A-Za-z0-9_-]{1,64}$"
    schemas = doc["components"]["schemas"]
    urls = schemas["NewUser"]["properties"]["avatar_urls"]
    assert urls["maxProperties"] == 16
    assert urls["propertyNames"] == {"minLength": 1, "maxLength": 64, "pattern": "^[^\\u0000]*$"}
    assert "format" not in urls["additionalProperties"]  # "url" is no JSON Schema format
    assert schemas["ProfileUpdate"]["minProperties"] == 1
    assert schemas["NewUser"]["additionalProperties"] is False
    assert set(schemas["Profile"]["required"]) == set(schemas["ProfileUpdate"]["properties"])
    assert "\\Z" not in json.dumps(doc)


async def test_auth_appears_only_when_it_is_on(client, make_client):
    off = await document(client)
    assert "securitySchemes" not in off["components"]
    assert "404" in off["paths"]["/auth/token"]["post"]["responses"]
    on = await document(await make_client(jwt_secret_key="k" * 32))
    assert on["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    for method, path in [
        ("put", "/users/{user_id}/profile"),
        ("put", "/users/{user_id}/password"),
        ("delete", "/users/{user_id}"),
    ]:
        op = on["paths"][path][method]
        assert op["security"] == [{"bearerAuth": []}]
        assert {"401", "403"} <= set(op["responses"])
    assert "security" not in on["paths"]["/users/{user_id}"]["get"]
    assert "security" not in on["paths"]["/users"]["post"]
    assert "200" in on["paths"]["/auth/token"]["post"]["responses"]


async def test_docs_page_works_offline_and_lists_every_operation(client):
    resp = await client.get("/docs")
    assert resp.status == 200 and resp.content_type == "text/html"
    page = await resp.text()
    assert not re.search(
        r"""(src|href)=["']?(https?:)?//""", page
    )  # nothing fetched from elsewhere
    for method, path in documented(await document(client)):
        assert f"<span class='m {method}'>{method}</span> <code>{path}</code>" in page


@pytest.mark.parametrize(
    "field, value",
    [
        ("username", "ada_lovelace\n"),  # Python's $ would let the newline through
        ("id", "ada\n"),
        ("avatar_url", "https://example.com?"),  # marshmallow's Url refuses a bare "?"
        ("avatar_url", "https://exa_mple.com/"),
        ("avatar_url", "https://example.com/ü"),  # non-ASCII must be percent-encoded
        ("bio", "a\x00b"),  # PostgreSQL cannot store U+0000: no backend takes it
        ("display_name", "\x00"),
        ("avatar_urls", {"sm\x00all": "https://example.com/a.png"}),
    ],
)
async def test_the_server_holds_the_documented_patterns(client, field, value):
    body = {"username": unique_id(), field: value}
    resp = await client.post("/users", json=body)
    assert resp.status == 422
    assert field in (await resp.json())["error"]["fields"]


async def test_a_precondition_is_checked_after_the_body(client):
    """RFC 9110 13.2.1: a malformed request is 4xx for what it is, not 412."""
    resp = await client.put(
        f"/users/{unique_id()}/profile",
        data="{",
        headers={"If-Match": "nonsense", "Content-Type": "application/json"},
    )
    assert resp.status == 400
