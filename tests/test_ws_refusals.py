"""Refused WebSockets, over real sockets: a browser reads why (a close code and reason, not
1006), and the upgrade checks ``Origin`` against the same allow-list as HTTP CORS."""

from __future__ import annotations

import dataclasses
import time
from urllib.parse import urlsplit

import aiohttp
import jwt
import pytest
from conftest import TEST_SETTINGS
from multidict import CIMultiDict
from relay_helpers import Relay, through
from ws_helpers import join, new_user, next_frame

from svc.app import create_app
from svc.testing import unique_id

ALLOWED = "https://app.example.com"
PREVIEW = "https://pr-7.preview.example.net"
REGEX = r"https://pr-\d+\.preview\.example\.net"
EVIL = "https://evil.example.org"


async def refused(client, path: str, **kwargs) -> tuple[int, str]:
    """The close code and reason of a refused handshake: it is upgraded, then closed."""
    ws = await client.ws_connect(path, **kwargs)
    msg = await ws.receive(timeout=10)
    assert msg.type is aiohttp.WSMsgType.CLOSE, (msg.type, msg.data)
    await ws.close()
    return msg.data, msg.extra


def own_origin(client) -> str:
    return f"http://{client.host}:{client.port}"


async def test_a_plain_get_keeps_its_json_error(client):
    resp = await client.get("/ws/lobby")
    assert resp.status == 426
    assert (await resp.json())["error"]["code"] == "upgrade_required"
    resp = await client.get("/ws/not.a.room")
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "path, words",
    [
        ("/ws/lobby?user_id=not%20valid", "user_id"),
        ("/ws/lobby?user_id=" + "a" * 65, "user_id"),
        ("/ws/not.a.room", "room id"),
        ("/ws/" + "r" * 65, "room id"),
    ],
)
async def test_a_bad_id_is_closed_with_4422(client, path, words):
    code, reason = await refused(client, path)
    assert code == 4422
    assert words in reason and "A-Z" in reason


async def test_without_cors_settings_only_the_own_origin_may_open_a_socket(client):
    user_id = await new_user(client)
    room = unique_id("room")
    # No Origin: not a browser (aiohttp sends none by default).
    ws, welcome = await join(client, room, user_id)
    await ws.close()
    ws, welcome = await join(client, room, user_id, origin=own_origin(client))
    await ws.close()
    for origin in (EVIL, ALLOWED, "null", f"http://{client.host}:1"):
        code, reason = await refused(client, f"/ws/{room}?user_id={user_id}", origin=origin)
        assert code == 4403, origin
        assert "origin" in reason


async def test_a_dns_rebinding_page_cannot_pass_for_the_own_origin(make_client):
    """Issue 24, finding 9: Host and X-Forwarded-Host are the client's to write. A page at
    http://evil.example:PORT whose name was re-pointed at svc sends an Origin and a Host that
    agree; only an IP or localhost Host (which no one else's DNS can re-point) proves the
    page is svc's own."""
    client = await make_client()
    room, port = unique_id("room"), client.port
    for origin, headers in (
        (f"http://evil.example:{port}", {"Host": f"evil.example:{port}"}),
        ("https://svc.example.app", {"X-Forwarded-Host": "svc.example.app"}),
        ("https://svc.example.app", {"Host": "svc.example.app"}),
    ):
        code, reason = await refused(client, f"/ws/{room}", origin=origin, headers=headers)
        assert code == 4403 and "origin" in reason, (origin, headers)
    # svc's own page on an IP or on localhost needs no configuration (the /demo page).
    for origin, headers in (
        (own_origin(client), {}),
        (f"http://localhost:{port}", {"Host": f"localhost:{port}"}),
        (f"http://[::1]:{port}", {"Host": f"[::1]:{port}"}),
    ):
        ws = await client.ws_connect(f"/ws/{room}", origin=origin, headers=headers)
        assert (await next_frame(ws))["type"] == "welcome", origin
        await ws.close()
    # Under a DNS name the operator lists the page's origin (behind a TLS proxy: https).
    listed = await make_client(cors_origins=("https://svc.example.app",))
    ws = await listed.ws_connect(f"/ws/{room}", origin="https://svc.example.app")
    assert (await next_frame(ws))["type"] == "welcome"
    await ws.close()


async def test_two_origin_headers_are_refused(make_client):
    """A browser sends one Origin; with two, "the first counts" let an allowed one mask
    another. Refused whichever comes first."""
    client = await make_client(cors_origins=(ALLOWED,))
    room = unique_id("room")
    for pair in ((ALLOWED, EVIL), (EVIL, ALLOWED), (ALLOWED, ALLOWED)):
        headers = CIMultiDict([("Origin", pair[0]), ("Origin", pair[1])])
        code, reason = await refused(client, f"/ws/{room}", headers=headers)
        assert code == 4403 and "more than one Origin" in reason, pair
    ws = await client.ws_connect(f"/ws/{room}", origin=ALLOWED)
    assert (await next_frame(ws))["type"] == "welcome"
    await ws.close()


@pytest.mark.parametrize(
    "overrides, allowed, refused_origins",
    [
        ({"cors_origins": (ALLOWED,)}, [ALLOWED], [PREVIEW, EVIL]),
        ({"cors_origin_regex": REGEX}, [PREVIEW], [ALLOWED, EVIL, PREVIEW + ".evil.org"]),
        ({"cors_origins": (ALLOWED,), "cors_origin_regex": REGEX}, [ALLOWED, PREVIEW], [EVIL]),
        ({"cors_origins": ("*",)}, [ALLOWED, PREVIEW, EVIL, "null"], []),
    ],
    ids=["list", "regex", "both", "star"],
)
async def test_the_upgrade_checks_origin_like_cors(
    make_client, overrides, allowed, refused_origins
):
    client = await make_client(**overrides)
    room = unique_id("room")
    for origin in [*allowed, own_origin(client)]:
        ws = await client.ws_connect(f"/ws/{room}", origin=origin)
        assert (await next_frame(ws))["type"] == "welcome", origin
        await ws.close()
    for origin in refused_origins:
        code, reason = await refused(client, f"/ws/{room}", origin=origin)
        assert code == 4403, origin
        # A CORS preflight from there is refused too: one allow-list.
        resp = await client.options(
            "/users", headers={"Origin": origin, "Access-Control-Request-Method": "POST"}
        )
        assert resp.status == 403


async def test_a_refused_socket_never_counts_as_present(make_client):
    client = await make_client(cors_origins=(ALLOWED,))
    member_id, intruder_id = await new_user(client), await new_user(client)
    room = unique_id("room")
    ws, _ = await join(client, room, member_id)
    code, _ = await refused(client, f"/ws/{room}?user_id={intruder_id}", origin=EVIL)
    assert code == 4403
    resp = await client.get(f"/rooms/{room}/members")
    assert [m["id"] for m in (await resp.json())["members"]] == [member_id]
    await ws.close()


@pytest.mark.postgres
@pytest.mark.parametrize("auth", [False, True])
async def test_storage_down_is_closed_with_4503(aiohttp_client, postgres_url, auth):
    relay = Relay(urlsplit(postgres_url).hostname or "127.0.0.1", urlsplit(postgres_url).port)
    await relay.start()
    try:
        app = create_app(
            dataclasses.replace(
                TEST_SETTINGS,
                database_url=through(postgres_url, relay),
                broker_url="memory://",
                jwt_secret_key="k" * 32 if auth else None,
            )
        )
        client = await aiohttp_client(app)
        await relay.cut()
        query = "token=" + _token_for(unique_id()) if auth else f"user_id={unique_id()}"
        code, reason = await refused(client, f"/ws/{unique_id('room')}?{query}")
        assert code == 4503 and reason == "storage is unavailable, try again shortly"
    finally:
        await relay.cut()


def _token_for(user_id: str) -> str:
    now = int(time.time())
    return jwt.encode({"sub": user_id, "iat": now, "exp": now + 60}, "k" * 32, "HS256")
