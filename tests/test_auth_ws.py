"""Auth on the WebSocket: ``?token=`` names the user, a bad one is refused before the upgrade."""

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


async def refused(client, path: str) -> int:
    """The status of a handshake the server refuses (a JSON error, before any upgrade)."""
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await client.ws_connect(path)
    return info.value.status


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
async def test_a_bad_claim_is_401_before_the_upgrade(auth_client, query):
    user_id, _ = await user_and_token(auth_client)
    now = int(time.time())
    expired = jwt.encode({"sub": user_id, "exp": now - 5}, SECRET, "HS256")
    forged = jwt.encode({"sub": user_id, "exp": now + 60}, "z" * 40, "HS256")
    path = f"/ws/{unique_id('room')}?" + query.format(
        user_id=user_id, expired=expired, forged=forged
    )
    status = await refused(auth_client, path)
    assert status == 401


async def test_without_token_or_user_id_a_socket_watches(auth_client):
    member_id, token = await user_and_token(auth_client)
    room = unique_id("room")
    member = await auth_client.ws_connect(f"/ws/{room}?token={token}")
    watcher = await auth_client.ws_connect(f"/ws/{room}")
    try:
        await next_frame(member)
        welcome = await next_frame(watcher)
        # The watcher sees the member, and is not counted as one.
        assert welcome["member_count"] == 1
        assert [m["id"] for m in welcome["members"]] == [member_id]
    finally:
        await member.close()
        await watcher.close()


async def test_a_token_of_a_deleted_user_cannot_join(auth_client):
    user_id, token = await user_and_token(auth_client)
    resp = await auth_client.delete(
        f"/users/{user_id}", headers={"Authorization": f"Bearer {token}"}
    )
    assert resp.status == 204
    status = await refused(auth_client, f"/ws/{unique_id('room')}?token={token}")
    assert status == 404


async def test_with_auth_off_user_id_is_taken_as_given(client):
    resp = await client.post("/users", json={"username": unique_id()})
    user_id = (await resp.json())["id"]
    ws = await client.ws_connect(f"/ws/{unique_id('room')}?user_id={user_id}")
    try:
        welcome = await next_frame(ws)
        assert [m["id"] for m in welcome["members"]] == [user_id]
    finally:
        await ws.close()
