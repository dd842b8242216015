"""svc's one middleware (svc/http/middleware.py): what it adds reaches every answer, routed
or not."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from test_observability import samples

from svc.app import create_app
from svc.logs import request_id
from svc.settings import Settings

ORIGIN = "https://app.example"


async def test_unrouted_answers_carry_json_request_id_and_metrics(client):
    for method, path, status in (
        ("GET", "/no/such/route", 404),
        ("POST", "/", 405),
        ("PATCH", "/users/u1", 405),
        ("HEAD", "/no/such/route", 404),
    ):
        response = await client.request(method, path)
        assert response.status == status, (method, path)
        assert response.headers["X-Request-ID"]
        assert response.content_type == "application/json"
        if method != "HEAD":
            assert (await response.json())["error"]["code"] in ("not_found", "method_not_allowed")
    assert (await client.post("/")).headers["Allow"] == "GET,HEAD"
    counts = samples(
        await (await client.get("/metrics")).text(), "svc_http_request_duration_seconds_count"
    )
    # No route has the method or the path: "unmatched", as aiohttp's own answers were.
    assert counts['{method="GET",route="unmatched",status="404"}'] == 1
    assert counts['{method="POST",route="unmatched",status="405"}'] == 2
    assert counts['{method="PATCH",route="unmatched",status="405"}'] == 1
    assert not any("{path" in labels for labels in counts)


async def test_head_of_a_get_route_is_routed_and_counted_under_it(client):
    response = await client.head("/")
    assert response.status == 200
    assert response.headers["X-Request-ID"]
    counts = samples(
        await (await client.get("/metrics")).text(), "svc_http_request_duration_seconds_count"
    )
    assert counts['{method="HEAD",route="/",status="200"}'] == 1


@pytest.mark.parametrize("path", ["/users/u1", "/no/such/route", "/"])
async def test_a_preflight_is_answered_on_any_path(aiohttp_client, path):
    client = await aiohttp_client(create_app(Settings(cors_origins=(ORIGIN,))))
    response = await client.options(
        path, headers={"Origin": ORIGIN, "Access-Control-Request-Method": "PUT"}
    )
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "PUT" in response.headers["Access-Control-Allow-Methods"]
    assert response.headers["X-Request-ID"]


async def test_options_without_cors_is_a_405_or_404(client):
    preflight = {"Origin": ORIGIN, "Access-Control-Request-Method": "PUT"}
    assert (await client.options("/users/u1", headers=preflight)).status == 405
    assert (await client.options("/no/such/route", headers=preflight)).status == 404


async def test_a_route_added_with_aiohttp_s_own_router_is_observed_like_any(aiohttp_client):
    """svc's middleware, not a wrapper added with the route: a handler added the plain
    aiohttp way gets the request id, the JSON errors and its metrics too."""
    app = create_app(Settings())

    async def raw(request):
        raise KeyError("a bug")

    app.router.add_get("/raw/{n}", raw)
    client = await aiohttp_client(app)
    response = await client.get("/raw/1", headers={"X-Request-ID": "raw-1"})
    assert response.status == 500
    assert response.headers["X-Request-ID"] == "raw-1"
    assert (await response.json())["error"]["code"] == "internal_error"
    counts = samples(
        await (await client.get("/metrics")).text(), "svc_http_request_duration_seconds_count"
    )
    assert counts['{method="GET",route="/raw/{n}",status="500"}'] == 1


async def test_a_request_id_ends_with_its_request(client):
    """The wrapper sets the id without resetting it: each request runs in a task of its own
    (aiohttp copies the context per request), so nothing outside it ever sees the id."""
    for sent in ("first-1", "second-2"):
        response = await client.get("/", headers={"X-Request-ID": sent})
        assert response.headers["X-Request-ID"] == sent
        assert request_id.get() is None  # the test server runs in this very loop


@hypothesis_settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]),
    segments=st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=3),
)
@example(method="DELETE", segments=["users", "\n"])
@example(method="GET", segments=["users", "u\n1"])
async def test_any_path_gets_a_json_answer_with_a_request_id(client, method, segments):
    """Any text in a path, control characters and newlines included (schemathesis found
    DELETE /users/%0A answered by aiohttp's own text/plain 404): routed or not, the
    answer is svc's, never a 5xx."""
    path = "/" + "/".join(quote(segment, safe="") for segment in segments)
    response = await client.request(method, path)
    assert response.status < 500, (method, path, response.status)
    assert response.headers["X-Request-ID"]
    if method != "HEAD" and response.status != 204:
        assert response.content_type == "application/json", (method, path)
