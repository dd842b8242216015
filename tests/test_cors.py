"""CORS through real preflight and simple requests from allowed, disallowed, regex origins."""

from __future__ import annotations

import pytest

from svc.testing import unique_id

ALLOWED = "https://app.example.com"
PREVIEW = "https://pr-42.preview.example.net"  # matches REGEX, listed nowhere
REGEX = r"https://pr-\d+\.preview\.example\.net"
DISALLOWED = "https://evil.example.org"
NEAR_MISS = "https://pr-42.preview.example.net.evil.org"  # the regex must match in full

ACAO = "Access-Control-Allow-Origin"


@pytest.fixture
async def cors_client(make_client):
    return await make_client(cors_origins=(ALLOWED,), cors_origin_regex=REGEX)


async def preflight(
    client, path, origin, method="PUT", headers="Content-Type, Authorization, If-Match"
):
    return await client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers,
        },
    )


async def create_user(client) -> str:
    resp = await client.post("/users", json={"username": unique_id()})
    assert resp.status == 201
    return (await resp.json())["id"]


def every_route(app) -> list[tuple[str, str]]:
    """(method, path template) of every route the app serves, preflights aside."""
    return sorted(
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method not in ("HEAD", "OPTIONS")
    )


@pytest.mark.parametrize("origin", [ALLOWED, PREVIEW])
async def test_preflight_is_answered_for_every_route(cors_client, origin):
    user_id = await create_user(cors_client)
    routes = every_route(cors_client.app)
    assert ("PUT", "/users/{user_id}/profile") in routes and (
        "DELETE",
        "/users/{user_id}",
    ) in routes
    for method, template in routes:
        path = template.format(
            user_id=user_id, room_id="lobby", asset="console.js", name="svc-client.js"
        )
        resp = await preflight(cors_client, path, origin, method)
        assert resp.status == 200, (method, template, await resp.text())
        assert resp.headers[ACAO] == origin
        assert resp.headers["Access-Control-Allow-Methods"] == method
        allowed = {
            h.strip().lower() for h in resp.headers["Access-Control-Allow-Headers"].split(",")
        }
        assert allowed == {"content-type", "authorization", "if-match"}
        assert int(resp.headers["Access-Control-Max-Age"]) > 0
        assert "Access-Control-Allow-Credentials" not in resp.headers


@pytest.mark.parametrize("origin", [DISALLOWED, NEAR_MISS, "null"])
async def test_a_disallowed_origin_gets_no_allow_headers(cors_client, origin):
    user_id = await create_user(cors_client)
    resp = await preflight(cors_client, f"/users/{user_id}", origin, "DELETE")
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "forbidden"
    assert not any(h.startswith("Access-Control-") for h in resp.headers)
    resp = await cors_client.get(f"/users/{user_id}", headers={"Origin": origin})
    assert resp.status == 200  # CORS is for the browser to enforce; the server just does not allow
    assert not any(h.startswith("Access-Control-") for h in resp.headers)


async def test_a_header_outside_the_list_fails_the_preflight(cors_client):
    resp = await preflight(cors_client, "/users", ALLOWED, "POST", "Content-Type, X-Custom")
    assert resp.status == 403
    assert ACAO not in resp.headers


@pytest.mark.parametrize("origin", [ALLOWED, PREVIEW])
async def test_simple_requests_expose_etag_and_location(cors_client, origin):
    resp = await cors_client.post(
        "/users", json={"username": unique_id()}, headers={"Origin": origin}
    )
    assert resp.status == 201
    assert resp.headers[ACAO] == origin
    exposed = {h.strip() for h in resp.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"ETag", "Location"} <= exposed
    assert "Origin" in resp.headers.getall("Vary")
    user_id = (await resp.json())["id"]
    resp = await cors_client.get(f"/users/{user_id}", headers={"Origin": origin})
    assert resp.headers[ACAO] == origin and resp.headers["ETag"] == '"1"'


@pytest.mark.parametrize(
    "method, path, body, status",
    [
        ("GET", "/users/nobody-here", None, 404),  # routed, error from the handler
        ("PUT", "/users/someone/profile", {"unknown": 1}, 422),
        ("POST", "/users", "not json", 415),
        ("GET", "/no/such/route", None, 404),  # not routed: aiohttp-cors does not see it
        ("PATCH", "/users/someone", None, 405),
    ],
)
async def test_error_responses_carry_cors_headers(cors_client, method, path, body, status):
    kwargs = {"data": body} if isinstance(body, str) else {"json": body}
    for origin in (ALLOWED, PREVIEW):
        resp = await cors_client.request(method, path, headers={"Origin": origin}, **kwargs)
        assert resp.status == status
        assert resp.headers[ACAO] == origin
        assert "ETag" in resp.headers["Access-Control-Expose-Headers"]
    resp = await cors_client.request(method, path, headers={"Origin": DISALLOWED}, **kwargs)
    assert resp.status == status
    assert ACAO not in resp.headers


async def test_auth_errors_carry_cors_headers(make_client):
    client = await make_client(cors_origins=(ALLOWED,), jwt_secret_key="k" * 32)
    resp = await client.delete("/users/someone", headers={"Origin": ALLOWED})
    assert resp.status == 401
    assert resp.headers[ACAO] == ALLOWED
    assert "WWW-Authenticate" in resp.headers["Access-Control-Expose-Headers"]


async def test_star_allows_any_origin(make_client):
    client = await make_client(cors_origins=("*",))
    resp = await preflight(client, "/users/x", "https://anyone.example", "DELETE")
    assert resp.status == 200
    assert resp.headers[ACAO] == "https://anyone.example"


async def test_the_regex_is_what_aiohttp_cors_alone_cannot_do(make_client):
    """The same settings without the regex: the preview origin is refused."""
    client = await make_client(cors_origins=(ALLOWED,))
    resp = await preflight(client, "/users", PREVIEW, "POST")
    assert resp.status == 403
    resp = await preflight(client, "/users", ALLOWED, "POST")
    assert resp.status == 200


async def test_without_settings_there_is_no_cors(client):
    resp = await client.get("/", headers={"Origin": ALLOWED})
    assert ACAO not in resp.headers and "Vary" not in resp.headers
    resp = await preflight(client, "/users", ALLOWED, "POST")
    assert resp.status == 405
