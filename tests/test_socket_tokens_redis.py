"""A new password closes older-token sockets on every process, over the Redis broker: two
apps in one test process (memory storage), and two real ``python -m svc`` processes
(Postgres storage, with private rooms and the first-frame handshake end to end)."""

from __future__ import annotations

import dataclasses

import aiohttp
import pytest
from svc_memory import MemoryStorage
from svc_process import SvcProcess
from token_helpers import PRIVATE, SECRET, closed_with, login, private_room, room_token
from ws_helpers import frame_where, next_frame

from svc.app import create_app
from svc.testing import unique_id

pytestmark = pytest.mark.redis


async def new_account(http, base: str) -> tuple[str, str, str]:
    """(user id, username, login token) of an account made through ``base``."""
    username = unique_id()
    resp = await http.post(f"{base}/users", json={"username": username, "password": "pass word 1"})
    assert resp.status == 201, await resp.text()
    user_id = (await resp.json())["id"]
    resp = await http.post(
        f"{base}/auth/token", json={"username": username, "password": "pass word 1"}
    )
    return user_id, username, (await resp.json())["access_token"]


async def change_password(http, base: str, user_id: str, token: str) -> None:
    resp = await http.put(
        f"{base}/users/{user_id}/password",
        json={"current_password": "pass word 1", "new_password": "pass word 2"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert resp.status == 200, await resp.text()


@pytest.fixture
async def two(aiohttp_client, redis_url):
    from conftest import TEST_SETTINGS

    shared = MemoryStorage()
    settings = dataclasses.replace(
        TEST_SETTINGS, broker_url=redis_url, jwt_secret_key=SECRET, private_rooms=PRIVATE
    )
    return [await aiohttp_client(create_app(settings, storage=shared)) for _ in range(2)]


async def test_a_new_password_closes_the_sockets_of_both_apps(two):
    one, other = two
    base = str(one.make_url("")).rstrip("/")
    async with aiohttp.ClientSession() as http:
        user_id, username, token = await new_account(http, base)
    room = unique_id("room")
    here = await one.ws_connect(f"/ws/{room}?token={token}")
    there = await other.ws_connect(f"/ws/{room}?token={token}")
    for ws in (here, there):
        assert (await next_frame(ws))["type"] == "welcome"
    async with aiohttp.ClientSession() as http:
        await change_password(http, base, user_id, token)
    for ws in (here, there):
        code, said = await closed_with(ws)
        assert code == 4401 and said.startswith("the token was issued before")
    fresh = await login(other, username, "pass word 2")
    again = await one.ws_connect(f"/ws/{room}?token={fresh}")
    assert (await next_frame(again))["type"] == "welcome"
    await again.close()


@pytest.fixture
async def two_processes(postgres_url, redis_url, tmp_path):
    env = {
        "DATABASE_URL": postgres_url,
        "BROKER_URL": redis_url,
        "JWT_SECRET_KEY": SECRET,
        "PRIVATE_ROOMS": PRIVATE,
        "BCRYPT_ROUNDS": "4",
    }
    started = [await SvcProcess(env, tmp_path / f"svc{n}.log").start() for n in (1, 2)]
    yield started
    for svc in started:
        await svc.stop()


@pytest.mark.postgres
async def test_two_processes_private_room_first_frame_and_a_new_password(two_processes):
    one, two = two_processes
    room = private_room()
    async with aiohttp.ClientSession() as http:
        user_id, _, token = await new_account(http, one.base)
        friend_id, _, friend_token = await new_account(http, two.base)
        sockets = []
        for base, uid, tok in ((one.base, user_id, token), (two.base, user_id, token)):
            ws = await http.ws_connect(f"{base}/ws/{room}")  # tokens out of the URL
            await ws.send_json({"type": "auth", "token": tok, "room_token": room_token(uid, room)})
            assert (await next_frame(ws))["type"] == "welcome"
            sockets.append(ws)
        friend = await http.ws_connect(
            f"{two.base}/ws/{room}?token={friend_token}&room_token={room_token(friend_id, room)}"
        )
        assert (await next_frame(friend))["member_count"] == 2
        # The members of the private room, from either process, need its room token.
        for base in (one.base, two.base):
            assert (await http.get(f"{base}/rooms/{room}/members")).status == 401
            resp = await http.get(
                f"{base}/rooms/{room}/members",
                headers={"Authorization": f"Bearer {room_token(friend_id, room)}"},
            )
            assert resp.status == 200 and (await resp.json())["member_count"] == 2

        await change_password(http, one.base, user_id, token)
        for ws in sockets:  # one on each process
            code, said = await closed_with(ws)
            assert code == 4401 and said.startswith("the token was issued before")
        # The friend stays, and sees the user leave.
        left = await frame_where(friend, lambda f: f["type"] == "presence" and f["left"])
        assert left["left"] == [user_id]
        await friend.close()
