"""Two svc apps in one test process, sharing memory storage and one Redis broker prefix.

The combination memory storage + Redis broker, without processes: what crosses
the broker is exactly what crosses between processes (test_redis_processes.py
does the same with real processes on Postgres storage).
"""

from __future__ import annotations

import dataclasses

import pytest
from svc_memory import MemoryStorage
from ws_helpers import frame_where, join, new_user, presence_where

from svc.app import create_app
from svc.testing import unique_id

pytestmark = pytest.mark.redis


@pytest.fixture
async def two(aiohttp_client, redis_url):
    from conftest import TEST_SETTINGS

    shared = MemoryStorage()
    settings = dataclasses.replace(TEST_SETTINGS, broker_url=redis_url)
    return [await aiohttp_client(create_app(settings, storage=shared)) for _ in range(2)]


async def test_presence_changes_and_messages_cross_between_apps(two):
    one, other = two
    alice, bob = await new_user(one), await new_user(other)
    room = unique_id("r")
    ws_alice, _ = await join(one, room, alice)
    ws_bob, welcome = await join(other, room, bob)
    assert {m["id"] for m in welcome["members"]} == {alice, bob}
    await frame_where(ws_alice, presence_where(room, joined=bob))
    for client in (one, other):
        body = await (await client.get(f"/rooms/{room}/members?limit=1")).json()
        assert [m["id"] for m in body["members"]] == [min(alice, bob)]
        assert body["member_count"] == 2

    response = await one.put(f"/users/{bob}/profile", json={"display_name": "Bob"})
    assert response.status == 200
    for ws in (ws_alice, ws_bob):  # this app's member, and the other's
        update = await frame_where(ws, lambda f: f["type"] == "profile_updated")
        assert update["id"] == bob and update["version"] == 2

    for n in range(10):
        await ws_bob.send_json({"type": "message", "data": n})
    got = [
        (await frame_where(ws_alice, lambda f: f["type"] == "message"))["data"] for _ in range(10)
    ]
    assert got == list(range(10))

    await ws_bob.close()
    left = await frame_where(ws_alice, presence_where(room, left=bob))
    assert left["member_count"] == 1
    await ws_alice.close()
