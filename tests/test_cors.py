"""CORS through real preflight and simple requests, in each configuration: a list of origins,
a regex alone, both, ``*``, and none."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from svc.origin import compile_pattern
from svc.settings import Settings, SettingsError
from svc.testing import unique_id

ALLOWED = "https://app.example.com"
PREVIEW = "https://pr-42.preview.example.net"  # matches REGEX, listed nowhere
REGEX = r"https://pr-\d+\.preview\.example\.net"
DISALLOWED = "https://evil.example.org"
NEAR_MISS = "https://pr-42.preview.example.net.evil.org"  # the regex must match in full

ACAO = "Access-Control-Allow-Origin"
EVERY_METHOD = {"GET", "HEAD", "POST", "PUT", "DELETE"}
EVERY_HEADER = {"content-type", "authorization", "if-match", "if-none-match"}

#: configuration → (settings, origins it allows, origins it refuses)
CONFIGURATIONS = {
    "list": ({"cors_origins": (ALLOWED,)}, [ALLOWED], [PREVIEW, DISALLOWED, "null"]),
    "regex": ({"cors_origin_regex": REGEX}, [PREVIEW], [ALLOWED, NEAR_MISS, DISALLOWED]),
    "both": (
        {"cors_origins": (ALLOWED,), "cors_origin_regex": REGEX},
        [ALLOWED, PREVIEW],
        [NEAR_MISS, DISALLOWED, "null"],
    ),
    "star": ({"cors_origins": ("*",)}, [ALLOWED, PREVIEW, DISALLOWED, "null"], []),
}


@pytest.fixture(params=CONFIGURATIONS)
async def configured(request, make_client):
    overrides, allowed, refused = CONFIGURATIONS[request.param]
    client = await make_client(**overrides)
    return client, request.param, allowed, refused


async def preflight(
    client, path, origin, method="PUT", headers="Content-Type, Authorization, If-Match"
):
    request_headers = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers is not None:
        request_headers["Access-Control-Request-Headers"] = headers
    return await client.options(path, headers=request_headers)


async def create_user(client) -> str:
    resp = await client.post("/users", json={"username": unique_id()})
    assert resp.status == 201
    return (await resp.json())["id"]


def every_route(app) -> list[tuple[str, str]]:
    """(method, path template) of every route the app serves, preflights aside."""
    return sorted(
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method not in ("HEAD", "OPTIONS", "*")  # "*": svc's own 404 and 405
    )


def varies_by_origin(resp) -> bool:
    return "origin" in {
        token.strip().lower()
        for value in resp.headers.getall("Vary", ())
        for token in value.split(",")
    }


def expected_acao(name: str, origin: str) -> str:
    return "*" if name == "star" else origin


async def test_preflight_of_every_route_allows_every_method_and_header(configured):
    """One preflight per URL covers every write: its answer lists everything the API accepts."""
    client, name, allowed, _ = configured
    user_id = await create_user(client)
    routes = every_route(client.app)
    assert ("PUT", "/users/{user_id}/profile") in routes
    for origin in allowed:
        for method, template in routes:
            path = template.format(
                user_id=user_id, room_id="lobby", asset="console.js", name="svc-client.js"
            )
            resp = await preflight(client, path, origin, method)
            assert resp.status == 200, (name, origin, method, template, await resp.text())
            assert resp.headers[ACAO] == expected_acao(name, origin)
            methods = {m.strip() for m in resp.headers["Access-Control-Allow-Methods"].split(",")}
            assert methods == EVERY_METHOD
            headers = {
                h.strip().lower() for h in resp.headers["Access-Control-Allow-Headers"].split(",")
            }
            assert headers == EVERY_HEADER
            assert int(resp.headers["Access-Control-Max-Age"]) > 0
            assert "Access-Control-Allow-Credentials" not in resp.headers
            assert varies_by_origin(resp) is (name != "star")


async def test_a_preflight_without_requested_headers_still_lists_them_all(configured):
    client, name, allowed, _ = configured
    resp = await preflight(client, "/users/x/profile", allowed[0], "PUT", headers=None)
    assert resp.status == 200
    assert "if-match" in resp.headers["Access-Control-Allow-Headers"].lower()


async def test_a_refused_origin_gets_no_allow_headers(configured):
    client, name, _, refused = configured
    user_id = await create_user(client)
    for origin in refused:
        resp = await preflight(client, f"/users/{user_id}", origin, "DELETE")
        assert resp.status == 403, (name, origin)
        assert (await resp.json())["error"]["code"] == "forbidden"
        assert not any(h.startswith("Access-Control-") for h in resp.headers)
        assert varies_by_origin(resp)
        resp = await client.get(f"/users/{user_id}", headers={"Origin": origin})
        assert resp.status == 200  # the browser enforces CORS; the server just does not allow
        assert not any(h.startswith("Access-Control-") for h in resp.headers)
        assert varies_by_origin(resp)


async def test_simple_requests_from_an_allowed_origin_expose_etag_and_location(configured):
    client, name, allowed, _ = configured
    for origin in allowed:
        resp = await client.post(
            "/users", json={"username": unique_id()}, headers={"Origin": origin}
        )
        assert resp.status == 201
        assert resp.headers[ACAO] == expected_acao(name, origin)
        exposed = {h.strip() for h in resp.headers["Access-Control-Expose-Headers"].split(",")}
        assert {"ETag", "Location", "WWW-Authenticate", "Retry-After"} <= exposed
        assert varies_by_origin(resp) is (name != "star")
        user_id = (await resp.json())["id"]
        resp = await client.get(f"/users/{user_id}", headers={"Origin": origin})
        assert resp.headers[ACAO] == expected_acao(name, origin)
        assert resp.headers["ETag"] == '"1"'


async def test_an_answer_without_origin_still_varies_by_it(configured):
    """A cache must not hand the answer to an origin-less request to a page, or back."""
    client, name, _, _ = configured
    resp = await client.get("/")
    assert ACAO not in resp.headers
    assert varies_by_origin(resp) is (name != "star")


@pytest.mark.parametrize(
    "method, path, body, status",
    [
        ("GET", "/users/nobody-here", None, 404),  # routed, error from the handler
        ("PUT", "/users/someone/profile", {"unknown": 1}, 422),
        ("POST", "/users", "not json", 415),
        ("GET", "/no/such/route", None, 404),  # not routed
        ("PATCH", "/users/someone", None, 405),
    ],
)
async def test_error_responses_carry_cors_headers(configured, method, path, body, status):
    client, name, allowed, refused = configured
    kwargs = {"data": body} if isinstance(body, str) else {"json": body}
    for origin in allowed:
        resp = await client.request(method, path, headers={"Origin": origin}, **kwargs)
        assert resp.status == status
        assert resp.headers[ACAO] == expected_acao(name, origin)
        assert "ETag" in resp.headers["Access-Control-Expose-Headers"]
    for origin in refused:
        resp = await client.request(method, path, headers={"Origin": origin}, **kwargs)
        assert resp.status == status
        assert ACAO not in resp.headers


async def test_a_method_or_header_outside_the_api_fails_the_preflight(configured):
    client, _, allowed, _ = configured
    resp = await preflight(client, "/users", allowed[0], "POST", "Content-Type, X-Custom")
    assert resp.status == 403
    assert "x-custom" in (await resp.json())["error"]["message"]
    assert ACAO not in resp.headers
    resp = await preflight(client, "/users/x", allowed[0], "PATCH")
    assert resp.status == 403
    assert ACAO not in resp.headers


async def test_auth_errors_carry_cors_headers(make_client):
    client = await make_client(cors_origins=(ALLOWED,), jwt_secret_key="k" * 32)
    resp = await client.delete("/users/someone", headers={"Origin": ALLOWED})
    assert resp.status == 401
    assert resp.headers[ACAO] == ALLOWED
    assert "WWW-Authenticate" in resp.headers["Access-Control-Expose-Headers"]


async def test_configured_origins_are_compared_as_browsers_send_them(make_client):
    """Upper case and a default port in CORS_ORIGINS still match what a browser sends."""
    settings = Settings.from_env({"CORS_ORIGINS": "HTTPS://App.Example.com:443"})
    assert settings.cors_origins == (ALLOWED,)
    client = await make_client(cors_origins=settings.cors_origins)
    resp = await preflight(client, "/users", ALLOWED, "POST")
    assert resp.status == 200


@pytest.mark.parametrize(
    ("regex", "origin"),
    [
        (REGEX, "https://pr-\u0663.preview.example.net"),  # ARABIC-INDIC DIGIT THREE
        (REGEX, "https://pr-\uff14\uff12.preview.example.net"),  # FULLWIDTH 4 2
        (r"https://.*", "https://pr-\u0663.preview.example.net"),  # no browser sends it
        (r"https://.*", f"{DISALLOWED} {PREVIEW}"),  # an origin list (RFC 6454)
        (r"https://.*", f"{PREVIEW}/path"),
    ],
    ids=["arabic_digit", "fullwidth_digits", "non_ascii", "origin_list", "path"],
)
async def test_the_regex_matches_only_ascii_origins_as_browsers_send_them(
    make_client, regex, origin
):
    """``\\d`` in CORS_ORIGIN_REGEX is [0-9] (re.ASCII), and a pattern's ``.*`` passes only
    a single origin written as a browser writes it."""
    client = await make_client(cors_origin_regex=regex)
    resp = await preflight(client, "/users", origin)
    assert resp.status == 403 and ACAO not in resp.headers, origin
    resp = await client.get("/", headers={"Origin": origin})
    assert ACAO not in resp.headers
    ws = await client.ws_connect(f"/ws/{unique_id('room')}", origin=origin)
    msg = await ws.receive(timeout=10)
    assert msg.data == 4403, (origin, msg)
    await ws.close()
    resp = await preflight(client, "/users", "https://pr-42.preview.example.net")
    assert resp.status == 200  # ASCII digits still match


def test_the_regex_is_compiled_ascii():
    assert compile_pattern(r"\d+").fullmatch("\u0663") is None
    assert compile_pattern(r"\w+").fullmatch("\u00e9") is None
    assert compile_pattern(r"\d+").fullmatch("42") is not None


async def test_two_origin_headers_get_no_cors(make_client):
    """A browser sends one Origin: with two, neither is allowed (the first no longer counts)."""
    client = await make_client(cors_origins=(ALLOWED,))
    for pair in ((ALLOWED, DISALLOWED), (DISALLOWED, ALLOWED)):
        headers = CIMultiDict(
            [("Origin", pair[0]), ("Origin", pair[1]), ("Access-Control-Request-Method", "PUT")]
        )
        resp = await client.options("/users", headers=headers)
        assert resp.status == 403 and ACAO not in resp.headers, pair
        assert "more than one Origin" in (await resp.json())["error"]["message"]
        resp = await client.get("/", headers=CIMultiDict([("Origin", o) for o in pair]))
        assert resp.status == 200 and ACAO not in resp.headers, pair


async def test_without_settings_there_is_no_cors(client):
    resp = await client.get("/", headers={"Origin": ALLOWED})
    assert ACAO not in resp.headers and "Vary" not in resp.headers
    resp = await preflight(client, "/users", ALLOWED, "POST")
    assert resp.status == 405
    assert ACAO not in resp.headers


@pytest.mark.parametrize(
    "value, words",
    [
        ("https://app.example.com/", "not even '/'"),
        ("https://app.example.com/path", "not even '/'"),
        ("https://a.example, app.example.com", "scheme"),
        ("https://app.example.com?x=1", "not even '/'"),
        ("https://user@app.example.com", "scheme://host"),
        ("https://app.example.com:http", "port"),
        ("null", "null"),
    ],
)
def test_a_malformed_origin_stops_start_up_naming_it(value, words):
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"CORS_ORIGINS": value})
    message = str(info.value)
    assert message.startswith("CORS_ORIGINS: ") and words in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "env, words",
    [
        ({}, "CORS off"),
        ({"CORS_ORIGINS": "*"}, "every origin"),
        ({"CORS_ORIGIN_REGEX": REGEX}, REGEX),
        ({"CORS_ORIGINS": f"{ALLOWED},https://b.example", "CORS_ORIGIN_REGEX": REGEX}, ALLOWED),
    ],
)
async def test_the_policy_in_force_is_logged_at_start_up(env, words):
    from test_auth import start_log

    lines = [line for line in await start_log(env) if "CORS" in line]
    assert len(lines) == 1, lines
    assert words in lines[0]
    if "b.example" in env.get("CORS_ORIGINS", ""):
        assert "https://b.example" in lines[0]
