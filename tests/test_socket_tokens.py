"""A socket lives no longer than its tokens: the first-frame handshake, expiry with 4401,
renewal in band, and a new password closing older-token sockets.  Real sockets, every
storage backend (the ``two`` apps share a broker as two processes would)."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest
from token_helpers import (
    PRIVATE,
    SECRET,
    closed_with,
    login,
    login_token,
    private_room,
    room_token,
    user_and_token,
)
from ws_helpers import frame_where, next_frame

from svc.testing import unique_id


@pytest.fixture
def settings(settings):
    """Auth on, with private rooms, for every app of these tests (``two`` included)."""
    return dataclasses.replace(settings, jwt_secret_key=SECRET, private_rooms=PRIVATE)


@pytest.fixture
async def auth_client(make_client):
    return await make_client()


async def first_frame_join(client, room: str, frame: dict):
    ws = await client.ws_connect(f"/ws/{room}")
    await ws.send_json(frame)
    return ws


# -- the first-frame handshake -------------------------------------------------------------


async def test_tokens_in_the_first_frame_join_a_private_room(auth_client):
    user_id, token = await user_and_token(auth_client)
    room = private_room()
    frame = {"type": "auth", "token": token, "room_token": room_token(user_id, room)}
    ws = await first_frame_join(auth_client, room, frame)
    welcome = await next_frame(ws)
    assert welcome["type"] == "welcome" and [m["id"] for m in welcome["members"]] == [user_id]
    await ws.send_json({"type": "ping"})
    assert (await next_frame(ws))["type"] == "pong"
    await ws.close()


@pytest.mark.parametrize(
    "first, reason",
    [
        ("not json", "JSON auth frame"),
        ('{"type": "ping"}', "expected"),
        ('{"type": "auth"}', 'needs "token"'),
        ('{"type": "auth", "token": 5}', 'needs "token"'),
        ('{"type": "auth", "token": "x.y.z"}', "not valid"),
        ('{"type": "auth", "token": "{token}", "room_token": 7}', "must be a string"),
    ],
)
async def test_a_bad_first_frame_is_4401_at_once(auth_client, first, reason):
    _, token = await user_and_token(auth_client)
    ws = await auth_client.ws_connect(f"/ws/{unique_id('room')}")
    started = time.monotonic()
    await ws.send_str(first.replace("{token}", token))
    code, said = await closed_with(ws)
    assert code == 4401 and reason in said, said
    assert time.monotonic() - started < 4  # not the 5 s deadline


async def test_a_binary_first_frame_is_4401(auth_client):
    ws = await auth_client.ws_connect(f"/ws/{unique_id('room')}")
    await ws.send_bytes(b"\x00")
    code, said = await closed_with(ws)
    assert code == 4401 and "auth frame" in said


async def test_no_auth_frame_within_5_seconds_is_4401(auth_client):
    ws = await auth_client.ws_connect(f"/ws/{unique_id('room')}")
    started = time.monotonic()
    code, said = await closed_with(ws, timeout=15)
    waited = time.monotonic() - started
    assert code == 4401 and "no auth frame within 5 s" in said
    assert 4.5 < waited < 10, waited


async def test_a_private_room_refusal_in_the_first_frame_is_4403(auth_client):
    user_id, token = await user_and_token(auth_client)
    room = private_room()
    ws = await first_frame_join(
        auth_client, room, {"type": "auth", "token": token, "room_token": room_token(user_id, "x")}
    )
    code, said = await closed_with(ws)
    assert code == 4403 and "another room" in said


async def closed_for(client, reason: str) -> float:
    """``svc_websocket_closed_total{reason=...}`` as ``client``'s /metrics says it."""
    text = await (await client.get("/metrics")).text()
    prefix = f'svc_websocket_closed_total{{reason="{reason}"}} '
    return float(next(line for line in text.splitlines() if line.startswith(prefix)).split()[1])


# -- expiry ----------------------------------------------------------------------------------


async def test_a_socket_is_closed_with_4401_when_its_login_token_expires(auth_client):
    user_id, _ = await user_and_token(auth_client)
    ws = await auth_client.ws_connect(f"/ws/{unique_id('room')}?token={login_token(user_id, 1.5)}")
    assert (await next_frame(ws))["type"] == "welcome"
    started = time.monotonic()
    code, said = await closed_with(ws)
    assert code == 4401 and said == "the token has expired"
    assert 0.5 < time.monotonic() - started < 5
    assert await closed_for(auth_client, "token_expired") == 1
    assert await closed_for(auth_client, "password_set") == 0


async def test_in_a_private_room_the_earlier_room_token_expiry_closes_it(auth_client):
    user_id, token = await user_and_token(auth_client)
    room = private_room()
    frame = {"type": "auth", "token": token, "room_token": room_token(user_id, room, 1.5)}
    ws = await first_frame_join(auth_client, room, frame)
    assert (await next_frame(ws))["type"] == "welcome"
    code, said = await closed_with(ws)
    assert code == 4401 and said == "the room token has expired"


# -- renewal ---------------------------------------------------------------------------------


async def test_an_auth_frame_renews_and_the_socket_outlives_the_first_token(auth_client):
    user_id, _ = await user_and_token(auth_client)
    room = private_room()
    ws = await first_frame_join(
        auth_client,
        room,
        {
            "type": "auth",
            "token": login_token(user_id, 2),
            "room_token": room_token(user_id, room, 2),
        },
    )
    assert (await next_frame(ws))["type"] == "welcome"
    fresh_login, fresh_room = login_token(user_id, 60), room_token(user_id, room, 30)
    await ws.send_json({"type": "auth", "token": fresh_login, "room_token": fresh_room})
    ok = await frame_where(ws, lambda f: f["type"] == "auth_ok")
    assert abs(ok["expires_at"] - (time.time() + 30)) < 5  # the earlier of the two
    await asyncio.sleep(3)  # past the first tokens' exp
    await ws.send_json({"type": "ping"})
    assert (await frame_where(ws, lambda f: f["type"] == "pong"))["type"] == "pong"
    await ws.close()


@pytest.mark.parametrize("bad", ["forged", "other user", "other room", "expired", "room token"])
async def test_a_bad_renewal_is_an_error_frame_and_changes_nothing(auth_client, bad):
    user_id, _ = await user_and_token(auth_client)
    other_id, other_token = await user_and_token(auth_client)
    room = private_room()
    first = login_token(user_id, 2.5)
    ws = await first_frame_join(
        auth_client, room, {"type": "auth", "token": first, "room_token": room_token(user_id, room)}
    )
    assert (await next_frame(ws))["type"] == "welcome"
    good_room = room_token(user_id, room)
    frame = {
        "forged": {"token": first[:-4] + "AAAA", "room_token": good_room},
        "other user": {"token": other_token, "room_token": room_token(other_id, room)},
        "other room": {"token": login_token(user_id), "room_token": room_token(user_id, "x")},
        "expired": {"token": login_token(user_id, -5), "room_token": good_room},
        "room token": {"token": good_room, "room_token": good_room},
    }[bad]
    await ws.send_json({"type": "auth", **frame})
    error = await frame_where(ws, lambda f: f["type"] == "error")
    assert error["code"] == "invalid_token" and "nothing changed" in error["message"]
    # The first deadline still holds.
    code, said = await closed_with(ws)
    assert code == 4401 and said == "the token has expired"


async def test_auth_frames_with_auth_off_are_unknown(make_client):
    client = await make_client(jwt_secret_key=None, private_rooms=None)
    ws = await client.ws_connect(f"/ws/{unique_id('room')}?user_id={unique_id()}")
    await next_frame(ws)
    await ws.send_json({"type": "auth", "token": "x"})
    assert (await next_frame(ws))["code"] == "unknown_type"
    await ws.close()


# -- a new password ----------------------------------------------------------------------------


async def set_password(client, user_id: str, token: str, old: str, new: str):
    resp = await client.put(
        f"/users/{user_id}/password",
        json={"current_password": old, "new_password": new},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert resp.status == 200, await resp.text()


async def test_a_new_password_closes_older_token_sockets_on_every_process(two):
    one, other = two
    username = unique_id()
    resp = await one.post("/users", json={"username": username, "password": "pass word 1"})
    user_id = (await resp.json())["id"]
    token = await login(one, username, "pass word 1")
    room = unique_id("room")
    here = await one.ws_connect(f"/ws/{room}?token={token}")
    there = await other.ws_connect(f"/ws/{room}?token={token}")
    watcher_id, watcher_token = await user_and_token(other)
    watcher = await other.ws_connect(f"/ws/{room}?token={watcher_token}")
    for ws in (here, there, watcher):
        assert (await next_frame(ws))["type"] == "welcome"

    await set_password(one, user_id, token, "pass word 1", "pass word 2")
    for ws in (here, there):
        code, said = await closed_with(ws)
        assert code == 4401 and said.startswith("the token was issued before")
    for client in (one, other):  # each process counts the sockets it closed
        assert await closed_for(client, "password_set") == 1
        assert await closed_for(client, "token_expired") == 0
    # A token from after the change joins and stays; other users are untouched.
    fresh = await login(other, username, "pass word 2")
    again = await one.ws_connect(f"/ws/{room}?token={fresh}")
    assert (await next_frame(again))["type"] == "welcome"
    await again.send_json({"type": "message", "data": "still here"})
    got = await frame_where(watcher, lambda f: f["type"] == "message")
    assert got["from"] == user_id and got["data"] == "still here"
    await again.close()
    await watcher.close()


async def test_deleting_the_user_still_closes_with_4404(auth_client):
    user_id, token = await user_and_token(auth_client)
    ws = await auth_client.ws_connect(f"/ws/{unique_id('room')}?token={token}")
    await next_frame(ws)
    resp = await auth_client.delete(
        f"/users/{user_id}", headers={"Authorization": f"Bearer {token}"}
    )
    assert resp.status == 204
    code, _ = await closed_with(ws)
    assert code == 4404


async def test_an_idle_socket_is_not_closed_before_its_token_expires(auth_client):
    user_id, token = await user_and_token(auth_client)
    ws = await auth_client.ws_connect(f"/ws/{unique_id('room')}?token={token}")
    await next_frame(ws)
    await asyncio.sleep(1.5)
    await ws.send_json({"type": "ping"})
    assert (await next_frame(ws))["type"] == "pong"
    await ws.close()


async def test_a_join_that_raced_a_new_password_is_closed_as_it_binds(auth_client):
    """The join read the credentials just before another process set a new password, and
    completes just after that process's news arrived: it must not outlive the news."""
    import jwt

    from svc.broker import PasswordSet
    from svc.keys import HUB

    user_id, token = await user_and_token(auth_client)
    issued = jwt.decode(token, options={"verify_signature": False})["pat"]
    # The news first (as if the write elsewhere were not yet visible to this join's read).
    auth_client.app[HUB].on_password_set(PasswordSet(user_id, issued + 1))
    ws = await auth_client.ws_connect(f"/ws/{unique_id('room')}?token={token}")
    code, said = await closed_with(ws)
    assert code == 4401 and said.startswith("the token was issued before")
    # Another user's sockets, and a later token's, are not touched by it.
    other_id, other_token = await user_and_token(auth_client)
    ws = await auth_client.ws_connect(f"/ws/{unique_id('room')}?token={other_token}")
    assert (await next_frame(ws))["type"] == "welcome"
    await ws.close()
