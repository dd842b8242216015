"""``email`` is private with auth on: only a request carrying its owner's token reads it; other
readers, the members route and every room frame see null.  With auth off nothing is hidden."""

from __future__ import annotations

import pytest
from ws_helpers import frame_where, next_frame, presence_where

from svc.testing import unique_id

SECRET = "email-privacy-secret-" + "e" * 32
PASSWORD = "pass word 1"


@pytest.fixture
async def auth_client(make_client):
    return await make_client(jwt_secret_key=SECRET)


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


async def user_with_email(client, login: bool = True) -> tuple[dict, str | None]:
    username = unique_id()
    email = f"{username}@example.com"
    resp = await client.post(
        "/users", json={"username": username, "email": email, "password": PASSWORD}
    )
    assert resp.status == 201
    user = await resp.json()
    # The creator sent the email: the answer to its own POST shows it.
    assert user["profile"]["email"] == email
    if not login:
        return user, None
    resp = await client.post("/auth/token", json={"username": username, "password": PASSWORD})
    return user, (await resp.json())["access_token"]


async def test_only_the_owner_reads_the_email(auth_client):
    ada, ada_token = await user_with_email(auth_client)
    _, bob_token = await user_with_email(auth_client)
    path, email = f"/users/{ada['id']}", ada["profile"]["email"]
    readers = [
        ({}, None),
        (bearer(bob_token), None),
        (bearer("not.a.token"), None),  # reads are open: a bad token reads as anyone
        (bearer(ada_token), email),
        ({}, None),  # and the owner's read did not leak into the cached body of others
    ]
    for headers, expected in readers:
        resp = await auth_client.get(path, headers=headers)
        assert resp.status == 200
        body = await resp.json()
        assert body["profile"]["email"] == expected, headers
        assert body["profile"]["username"] == ada["profile"]["username"]
        assert "Authorization" in resp.headers.getall("Vary")
    resp = await auth_client.get(path, headers={"If-None-Match": '"1"'})
    assert resp.status == 304 and "Authorization" in resp.headers.getall("Vary")
    # The owner's own write answers show it.
    resp = await auth_client.put(f"{path}/profile", json={"bio": "hi"}, headers=bearer(ada_token))
    assert resp.status == 200
    assert (await resp.json())["profile"]["email"] == email


async def test_members_and_every_room_frame_hide_the_email(auth_client):
    ada, ada_token = await user_with_email(auth_client)
    bob, bob_token = await user_with_email(auth_client)
    room = unique_id("room")
    ada_ws = await auth_client.ws_connect(f"/ws/{room}?token={ada_token}")
    try:
        welcome = await next_frame(ada_ws)
        assert [m["profile"]["email"] for m in welcome["members"]] == [None]
        bob_ws = await auth_client.ws_connect(f"/ws/{room}?token={bob_token}")
        try:
            welcome = await next_frame(bob_ws)
            assert {m["id"]: m["profile"]["email"] for m in welcome["members"]} == {
                ada["id"]: None,
                bob["id"]: None,
            }
            joined = await frame_where(ada_ws, presence_where(room, joined=bob["id"]))
            assert all(u["profile"]["email"] is None for u in joined["joined"])

            resp = await auth_client.get(f"/rooms/{room}/members")
            members = (await resp.json())["members"]
            assert sorted(m["id"] for m in members) == sorted([ada["id"], bob["id"]])
            assert all(m["profile"]["email"] is None for m in members)

            resp = await auth_client.put(
                f"/users/{ada['id']}/profile",
                json={"email": "new@example.com"},
                headers=bearer(ada_token),
            )
            assert (await resp.json())["profile"]["email"] == "new@example.com"
            for ws in (ada_ws, bob_ws):  # the owner's own socket too: a frame has many readers
                update = await frame_where(ws, lambda f: f["type"] == "profile_updated")
                assert update["id"] == ada["id"] and update["version"] == 2
                assert update["profile"]["email"] is None
        finally:
            await bob_ws.close()
    finally:
        await ada_ws.close()


async def test_with_auth_off_the_email_is_public(client):
    ada, _ = await user_with_email(client, login=False)
    email = ada["profile"]["email"]
    resp = await client.get(f"/users/{ada['id']}")
    assert (await resp.json())["profile"]["email"] == email
    assert "Vary" not in resp.headers
    room = unique_id("room")
    ws = await client.ws_connect(f"/ws/{room}?user_id={ada['id']}")
    try:
        welcome = await next_frame(ws)
        assert welcome["members"][0]["profile"]["email"] == email
        resp = await client.get(f"/rooms/{room}/members")
        assert (await resp.json())["members"][0]["profile"]["email"] == email
        await client.put(f"/users/{ada['id']}/profile", json={"bio": "x"})
        update = await frame_where(ws, lambda f: f["type"] == "profile_updated")
        assert update["profile"]["email"] == email
    finally:
        await ws.close()
