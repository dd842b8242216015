"""GET /openapi.json: every route documented at its handler, the same document in every mode,
errors described from the one catalogue, refs whole.  (Real answers against it:
test_openapi_responses.py.)"""

from __future__ import annotations

import dataclasses
import json

import pytest
from aiohttp import web

from svc.app import create_app
from svc.http import openapi
from svc.http.errors import CATALOGUE, kinds_of
from svc.http.operation import Reply, documented
from svc.keys import OPENAPI_JSON
from svc.settings import Settings
from svc.testing import unique_id

METHODS = {"get", "put", "post", "delete", "patch"}
SECRET = "k" * 32

# The contract's routes (docs/api.md), written out here.
CONTRACT_ROUTES = {
    ("get", "/"),
    ("get", "/health/ready"),
    ("post", "/users"),
    ("get", "/users/{user_id}"),
    ("put", "/users/{user_id}/profile"),
    ("put", "/users/{user_id}/password"),
    ("delete", "/users/{user_id}"),
    ("get", "/rooms/{room_id}/members"),
    ("post", "/auth/token"),
    ("get", "/openapi.json"),
    ("get", "/ws/{room_id}"),
    ("get", "/docs"),
}
OWNER_ONLY = {
    ("put", "/users/{user_id}/profile"),
    ("put", "/users/{user_id}/password"),
    ("delete", "/users/{user_id}"),
}


async def document(client) -> dict:
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    return await resp.json()


def documented_routes(doc: dict) -> set[tuple[str, str]]:
    return {(m, path) for path, ops in doc["paths"].items() for m in ops if m in METHODS}


def routed(app: web.Application) -> set[tuple[str, str]]:
    return {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.method not in ("HEAD", "OPTIONS", "*")  # "*": svc's own 404 and 405
    }


async def test_served_from_bytes_built_at_start(client):
    first = await (await client.get("/openapi.json")).read()
    assert first == client.app[OPENAPI_JSON]
    doc = json.loads(first)
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["title"] == "svc"


async def test_every_route_of_the_app_is_documented_and_nothing_else(client):
    """Also catches a route added after openapi.setup (which start-up cannot see)."""
    doc = await document(client)
    assert documented_routes(doc) == routed(client.app)
    assert CONTRACT_ROUTES <= documented_routes(doc)


def test_a_route_without_an_operation_stops_the_build():
    app = create_app(Settings())

    async def metrics(request):  # pragma: no cover - never called
        return web.Response()

    app.router.add_get("/metrics", metrics)
    with pytest.raises(openapi.UndocumentedRoute, match=r"GET /metrics .*metrics.*documented"):
        openapi.build_document(app.router.routes())


@pytest.mark.parametrize(
    "operation, problem",
    [
        ({"errors": (418,)}, "error status 418 is not in the error catalogue"),
        ({"replies": {200: Reply("x", "Nothing")}}, "no schema component 'Nothing'"),
        ({"replies": {200: Reply("x", headers=("X-Nope",))}}, "no header component 'X-Nope'"),
        ({"parameters": ("NoSuchParameter",)}, "no parameter component"),
    ],
)
def test_an_operation_naming_what_the_document_lacks_stops_the_build(operation, problem):
    app = web.Application()
    fields = {"summary": "s", "tag": "t", "replies": {200: Reply("ok")}, **operation}

    @documented(**fields)
    async def handler(request):  # pragma: no cover - never called
        return web.Response()

    app.router.add_get("/x", handler)
    with pytest.raises(openapi.BadOperation, match=f"GET /x: {problem}"):
        openapi.build_document(app.router.routes())


async def test_the_same_bytes_in_open_and_auth_mode(client, make_client):
    """Issue 9 item 13: a client generated against a development server works in production."""
    open_mode = await (await client.get("/openapi.json")).read()
    auth = await make_client(jwt_secret_key=SECRET)
    assert await (await auth.get("/openapi.json")).read() == open_mode
    assert auth.app[OPENAPI_JSON] == client.app[OPENAPI_JSON]


async def test_auth_is_described_in_every_mode(client):
    doc = await document(client)
    scheme = doc["components"]["securitySchemes"]["bearerAuth"]
    assert scheme["scheme"] == "bearer" and "auth on" in scheme["description"]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if (method, path) in OWNER_ONLY:
                # optional, because with auth off no token is needed
                assert op["security"] == [{"bearerAuth": []}, {}]
                assert {"401", "403"} <= set(op["responses"])
                assert "**Auth on:**" in op["description"]
            else:
                assert "security" not in op, (method, path)
    token = doc["paths"]["/auth/token"]["post"]["responses"]
    assert {"200", "401", "404"} <= set(token)


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


async def test_every_ref_resolves(client):
    doc = await document(client)
    for ref in set(refs(doc)):
        _, _, kind, name = ref.split("/")
        assert name in doc["components"][kind], ref


async def test_error_answers_come_from_the_catalogue(client):
    doc = await document(client)
    responses = doc["components"]["responses"]
    for status in {kind.status for kind in CATALOGUE}:
        codes = [kind.code for kind in kinds_of(status)]
        (name,) = [n for n, r in responses.items() if r["description"].startswith(f"`{codes[0]}`")]
        schema = responses[name]["content"]["application/json"]["schema"]
        assert schema["allOf"] == [{"$ref": "#/components/schemas/Error"}]
        assert schema["properties"]["error"]["properties"]["code"]["enum"] == codes
        for kind in kinds_of(status):
            assert kind.meaning in responses[name]["description"]
            assert set(kind.headers) <= set(responses[name].get("headers", {}))
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert any(s.startswith(("1", "2")) for s in op["responses"]), (method, path)
            for status, response in op["responses"].items():
                if status.startswith(("4", "5")):
                    assert response["$ref"].startswith("#/components/responses/"), (path, status)


async def test_one_presence_window_everywhere(client):
    from svc.rooms import RoomSettings

    doc = json.dumps(await document(client))
    window = f"within {round(RoomSettings.presence_window * 1000)} ms"
    assert window in doc
    assert doc.count(" ms ") == doc.count(window + " ")  # no other window stated


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


def test_the_document_does_not_depend_on_settings():
    """Built from the router alone: storage, auth, CORS or limits change nothing in it."""
    from svc.settings import Settings

    base = create_app(Settings())
    other = create_app(
        dataclasses.replace(Settings(), jwt_secret_key=SECRET, cors_origins=("https://a.example",))
    )
    assert base[OPENAPI_JSON] == other[OPENAPI_JSON]
    # Built afresh (setup shares the bytes between apps with the same routes):
    built = [openapi.build_document(app.router.routes()) for app in (base, other)]
    assert built[0] == built[1] == json.loads(base[OPENAPI_JSON])


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
