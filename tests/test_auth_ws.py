"""Auth on the WebSocket: ``?token=`` names the user; a bad one, or none, is refused with a
close code a browser can read."""

from __future__ import annotations

import time

import aiohttp
import jwt
import pytest
from ws_helpers import next_frame

from svc.testing import unique_id

SECRET = "ws-secret-for-tests-" + "y" * 32


@pytest.fixture
async def auth_client(make_client):
    return await make_client(jwt_secret_key=SECRET)


async def user_and_token(client) -> tuple[str, str]:
    """A user made through the API, and a token got through POST /auth/token."""
    username = unique_id()
    resp = await client.post("/users", json={"username": username, "password": "pass word 1"})
    assert resp.status == 201
    user_id = (await resp.json())["id"]
    resp = await client.post("/auth/token", json={"username": username, "password": "pass word 1"})
    assert resp.status == 200
    return user_id, (await resp.json())["access_token"]


async def refused(client, path: str, **kwargs) -> tuple[int, str]:
    """The close code and reason of a handshake the server refuses: upgraded, then closed."""
    ws = await client.ws_connect(path, **kwargs)
    msg = await ws.receive(timeout=10)
    assert msg.type is aiohttp.WSMsgType.CLOSE, (msg.type, msg.data)
    await ws.close()
    return msg.data, msg.extra


async def test_the_token_names_the_member(auth_client):
    user_id, token = await user_and_token(auth_client)
    other_id, _ = await user_and_token(auth_client)
    room = unique_id("room")
    # ?user_id= beside a token is ignored: the user comes from the token.
    ws = await auth_client.ws_connect(f"/ws/{room}?token={token}&user_id={other_id}")
    try:
        welcome = await next_frame(ws)
        assert welcome["type"] == "welcome" and welcome["member_count"] == 1
        assert [m["id"] for m in welcome["members"]] == [user_id]
    finally:
        await ws.close()


@pytest.mark.parametrize(
    "query",
    [
        "token=not.a.token",
        "token={expired}",
        "token={forged}",
        "user_id={user_id}",  # claiming a user needs proof
        "user_id={user_id}&token=",
    ],
)
async def test_a_bad_claim_is_closed_with_4401(auth_client, query):
    user_id, _ = await user_and_token(auth_client)
    now = int(time.time())
    expired = jwt.encode({"sub": user_id, "iat": now - 60, "exp": now - 5}, SECRET, "HS256")
    forged = jwt.encode({"sub": user_id, "exp": now + 60}, "z" * 40, "HS256")
    path = f"/ws/{unique_id('room')}?" + query.format(
        user_id=user_id, expired=expired, forged=forged
    )
    code, reason = await refused(auth_client, path)
    assert code == 4401
    assert "expired" in reason if "expired" in query else "token" in reason


async def test_without_token_or_user_id_a_socket_is_4401_not_a_watcher(auth_client):
    """With auth on there are no invisible watchers: every socket is a known user."""
    member_id, token = await user_and_token(auth_client)
    room = unique_id("room")
    member = await auth_client.ws_connect(f"/ws/{room}?token={token}")
    try:
        await next_frame(member)
        code, reason = await refused(auth_client, f"/ws/{room}")
        assert code == 4401 and "token" in reason
        # The member is still alone, and was never told of anyone.
        await member.send_json({"type": "ping"})
        assert (await next_frame(member))["type"] == "pong"
    finally:
        await member.close()


async def test_a_token_issued_before_the_password_was_set_cannot_join(auth_client):
    user_id, _ = await user_and_token(auth_client)
    old = jwt.encode(
        {"sub": user_id, "iat": int(time.time()) - 60, "exp": int(time.time()) + 60},
        SECRET,
        "HS256",
    )
    code, reason = await refused(auth_client, f"/ws/{unique_id('room')}?token={old}")
    assert code == 4401 and "before" in reason


async def test_a_token_of_a_deleted_user_cannot_join(auth_client):
    user_id, token = await user_and_token(auth_client)
    resp = await auth_client.delete(
        f"/users/{user_id}", headers={"Authorization": f"Bearer {token}"}
    )
    assert resp.status == 204
    code, reason = await refused(auth_client, f"/ws/{unique_id('room')}?token={token}")
    assert code == 4404


async def test_with_auth_off_user_id_is_taken_as_given(client):
    resp = await client.post("/users", json={"username": unique_id()})
    user_id = (await resp.json())["id"]
    ws = await client.ws_connect(f"/ws/{unique_id('room')}?user_id={user_id}")
    try:
        welcome = await next_frame(ws)
        assert [m["id"] for m in welcome["members"]] == [user_id]
    finally:
        await ws.close()


@pytest.mark.parametrize("where", ["url", "first frame"])
async def test_a_signed_token_whose_user_id_breaks_the_id_rule_is_4422(auth_client, where):
    """The id rule's refusal, whichever way the token comes: 4422, as for ``?user_id=``."""
    now = int(time.time())
    claims = {"sub": "not an id!", "iat": now, "exp": now + 60}
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    room = unique_id("room")
    if where == "url":
        code, reason = await refused(auth_client, f"/ws/{room}?token={token}")
    else:
        ws = await auth_client.ws_connect(f"/ws/{room}")
        await ws.send_json({"type": "auth", "token": token})
        msg = await ws.receive(timeout=10)
        assert msg.type is aiohttp.WSMsgType.CLOSE, (msg.type, msg.data)
        code, reason = msg.data, msg.extra
        await ws.close()
    assert code == 4422 and "user id" in reason
