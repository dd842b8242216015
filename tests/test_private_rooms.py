"""Private rooms: ``PRIVATE_ROOMS`` names them, room tokens open them, over real sockets on
every storage backend.  svc checks the room token; the application's backend decides."""

from __future__ import annotations

import time

import jwt
import pytest
from token_helpers import (
    PRIVATE,
    SECRET,
    closed_with,
    login_token,
    private_room,
    room_token,
    user_and_token,
)
from ws_helpers import next_frame

from svc.settings import Settings, SettingsError
from svc.testing import unique_id


@pytest.fixture
async def auth_client(make_client):
    return await make_client(jwt_secret_key=SECRET, private_rooms=PRIVATE)


async def test_a_room_token_for_the_room_and_the_user_lets_them_in(auth_client):
    user_id, token = await user_and_token(auth_client)
    room = private_room()
    ws = await auth_client.ws_connect(
        f"/ws/{room}?token={token}&room_token={room_token(user_id, room)}"
    )
    welcome = await next_frame(ws)
    assert welcome["type"] == "welcome" and [m["id"] for m in welcome["members"]] == [user_id]
    await ws.close()


@pytest.mark.parametrize(
    "which, reason",
    [
        ("missing", "room token is needed"),
        ("forged", "not valid"),
        ("expired", "expired"),
        ("other room", "another room"),
        ("other user", "another user"),
        ("login token", "not valid"),  # a login token is not a room token
        ("no room claim", "not valid"),
    ],
)
async def test_a_private_room_refuses_with_4403_saying_which(auth_client, which, reason):
    user_id, token = await user_and_token(auth_client)
    other_id, _ = await user_and_token(auth_client)
    room = private_room()
    given = {
        "missing": None,
        "forged": room_token(user_id, room, secret="f" * 40),
        "expired": room_token(user_id, room, lifetime=-5),
        "other room": room_token(user_id, private_room()),
        "other user": room_token(other_id, room),
        "login token": token,
        "no room claim": jwt.encode({"sub": user_id, "exp": time.time() + 60}, SECRET, "HS256"),
    }[which]
    query = f"token={token}" + (f"&room_token={given}" if given else "")
    ws = await auth_client.ws_connect(f"/ws/{room}?{query}")
    code, said = await closed_with(ws)
    assert code == 4403 and reason in said, said
    # Nobody was let in: the room is empty for the next (good) joiner.
    good = await auth_client.ws_connect(
        f"/ws/{room}?token={token}&room_token={room_token(user_id, room)}"
    )
    assert (await next_frame(good))["member_count"] == 1
    await good.close()


async def test_a_room_token_is_no_login_token_on_any_route(auth_client):
    user_id, _ = await user_and_token(auth_client)
    room = private_room()
    as_login = room_token(user_id, room)
    ws = await auth_client.ws_connect(f"/ws/{room}?token={as_login}&room_token={as_login}")
    code, said = await closed_with(ws)
    assert code == 4401 and "room token is not a login token" in said
    bearer = {"Authorization": f"Bearer {as_login}"}
    resp = await auth_client.put(f"/users/{user_id}/profile", json={"bio": "x"}, headers=bearer)
    assert resp.status == 401
    assert "room token" in (await resp.json())["error"]["message"]
    resp = await auth_client.delete(f"/users/{user_id}", headers=bearer)
    assert resp.status == 401
    # email is read with a login token only: a room token reads as anyone.
    body = await (await auth_client.get(f"/users/{user_id}", headers=bearer)).json()
    assert body["profile"]["email"] is None
    assert (await auth_client.get(f"/users/{user_id}")).status == 200


async def test_public_rooms_need_no_room_token_and_the_match_is_full(auth_client):
    user_id, token = await user_and_token(auth_client)
    for room in (unique_id("public-"), "x" + private_room()):  # "xprivate-…" is public
        ws = await auth_client.ws_connect(f"/ws/{room}?token={token}")
        assert (await next_frame(ws))["type"] == "welcome"
        await ws.close()
        assert (await auth_client.get(f"/rooms/{room}/members")).status == 200


async def test_without_private_rooms_every_room_is_public(make_client):
    client = await make_client(jwt_secret_key=SECRET)
    _, token = await user_and_token(client)
    ws = await client.ws_connect(f"/ws/{private_room()}?token={token}")
    assert (await next_frame(ws))["type"] == "welcome"
    await ws.close()


async def test_the_members_of_a_private_room_need_its_room_token(auth_client):
    user_id, token = await user_and_token(auth_client)
    room = private_room()
    ws = await auth_client.ws_connect(
        f"/ws/{room}?token={token}&room_token={room_token(user_id, room)}"
    )
    await next_frame(ws)
    path = f"/rooms/{room}/members"

    async def status(bearer: str | None) -> int:
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        resp = await auth_client.get(path, headers=headers)
        body = await resp.json()
        if resp.status != 200:
            assert set(body) == {"error"}  # the usual error shape, no member leaked
        return resp.status

    assert await status(None) == 401
    assert await status(token) == 401  # a login token is not a room token
    assert await status(login_token(user_id)) == 401
    assert await status(room_token(user_id, room, lifetime=-5)) == 401
    assert await status(room_token(user_id, room, secret="g" * 40)) == 401
    assert await status(room_token(user_id, private_room())) == 403
    assert await status(room_token(user_id, room)) == 200
    # Any user's room token for the room will do: the backend let them in, they may look.
    other_id, _ = await user_and_token(auth_client)
    resp = await auth_client.get(
        path, headers={"Authorization": f"Bearer {room_token(other_id, room)}"}
    )
    assert [m["id"] for m in (await resp.json())["members"]] == [user_id]
    await ws.close()


def test_private_rooms_need_auth_on_and_a_good_pattern():
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"PRIVATE_ROOMS": "private-.*"})
    assert "PRIVATE_ROOMS" in str(caught.value) and "JWT_SECRET_KEY" in str(caught.value)
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"PRIVATE_ROOMS": "private-(", "JWT_SECRET_KEY": SECRET})
    assert str(caught.value).startswith("PRIVATE_ROOMS: not a regular expression")
    settings = Settings.from_env({"PRIVATE_ROOMS": "team-[0-9]+", "JWT_SECRET_KEY": SECRET})
    assert settings.private_rooms == "team-[0-9]+"
    assert Settings.from_env({}).private_rooms is None


async def test_the_demo_room_token_route_is_off_by_default_and_for_its_room_only(make_client):
    off = await make_client(jwt_secret_key=SECRET, private_rooms=".*")
    _, token = await user_and_token(off)
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await off.post("/demo/room-token", headers=bearer)).status == 404

    on = await make_client(jwt_secret_key=SECRET, private_rooms=".*", demo_room_tokens=True)
    assert (await on.post("/demo/room-token")).status == 401
    room_as_login = {"Authorization": f"Bearer {room_token('x', 'demo-private')}"}
    assert (await on.post("/demo/room-token", headers=room_as_login)).status == 401
    user_id, token = await user_and_token(on)
    resp = await on.post(
        "/demo/room-token?room=other", headers={"Authorization": f"Bearer {token}"}
    )
    assert resp.status == 200 and resp.headers["Cache-Control"] == "no-store"
    body = await resp.json()
    assert body["room"] == "demo-private" and body["expires_in"] == 600
    given = body["room_token"]
    ws = await on.ws_connect(f"/ws/demo-private?token={token}&room_token={given}")
    assert (await next_frame(ws))["type"] == "welcome"
    await ws.close()
    # Every other room stays closed to it (PRIVATE_ROOMS=.* makes them all private).
    ws = await on.ws_connect(f"/ws/other?token={token}&room_token={given}")
    code, said = await closed_with(ws)
    assert code == 4403 and "another room" in said
