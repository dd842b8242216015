"""svc.client's ``Room`` resuming against real svc apps over real sockets, on every broker:
a room that was away while messages were sent, profiles changed and people came and went
resumes (on the same app, and on another one sharing the broker) with every message once,
in order, and the server's state; past the history it is told ``resumed: false`` and
rebuilds from the welcome.

"Away" is made exact with a token function that waits on a gate: the room cannot reconnect
until the test has done everything it wants done in its absence.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from svc_memory import MemoryStorage
from ws_helpers import join, new_user

from svc.app import create_app
from svc.client import Backoff, Room, SvcClient
from svc.testing import unique_id, wait_until

QUICK = Backoff(initial=0.01, max=0.05)


def base(client) -> str:
    return str(client.make_url("")).rstrip("/")


class Gate:
    """A token function that holds each reconnection until opened."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.open.set()
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1
        await self.open.wait()
        return None  # no token: the room joins with its user_id (auth off)


async def away(room: Room, gate: Gate) -> None:
    """Drop the room's socket as a network would, and hold it out until ``gate`` opens."""
    gate.open.clear()
    calls = gate.calls
    await room._ws.close()
    await wait_until(lambda: gate.calls > calls, timeout=10)


async def server_members(client, room: str) -> dict[str, int]:
    async with SvcClient(base(client)) as api:
        return {m["id"]: m["version"] async for m in api.members(room)}


def held(room: Room) -> dict[str, int]:
    return {user_id: user["version"] for user_id, user in room.members.items()}


async def events_while_away(here, there, room_id: str, sender_ws, sender: str, count: int):
    """Messages, a profile change, a join and a leave, through the other app."""
    for n in range(count):
        await sender_ws.send_json({"type": "message", "data": n})
    async with SvcClient(base(there)) as api:
        await api.update_profile(sender, {"bio": "while away"})
    newcomer = await new_user(there)
    newcomer_ws, _ = await join(there, room_id, newcomer)
    return newcomer_ws


@pytest.fixture
async def memory_two(aiohttp_client):
    """Two apps on one memory storage and one named in-process bus, as processes would
    share a broker."""
    from conftest import TEST_SETTINGS

    shared = MemoryStorage()
    settings = dataclasses.replace(TEST_SETTINGS, broker_url=f"memory://{unique_id('bus')}")
    return [await aiohttp_client(create_app(settings, storage=shared)) for _ in range(2)]


@pytest.mark.parametrize("resume_on", ["same app", "other app"])
async def test_a_room_resumes_with_every_event_once(memory_two, resume_on):
    await resumes_with_every_event_once(*memory_two, resume_on)


@pytest.fixture
async def redis_two(aiohttp_client, redis_url):
    """Two apps on one memory storage and one Redis broker (its own key prefix)."""
    from conftest import TEST_SETTINGS

    shared = MemoryStorage()
    settings = dataclasses.replace(TEST_SETTINGS, broker_url=redis_url)
    return [await aiohttp_client(create_app(settings, storage=shared)) for _ in range(2)]


@pytest.mark.redis
@pytest.mark.parametrize("resume_on", ["same app", "other app"])
async def test_a_room_resumes_with_every_event_once_on_redis(redis_two, resume_on):
    await resumes_with_every_event_once(*redis_two, resume_on)


async def resumes_with_every_event_once(here, there, resume_on: str) -> None:
    room_id = unique_id("room")
    me, sender, leaver = [await new_user(here) for _ in range(3)]
    sender_ws, _ = await join(there, room_id, sender)
    leaver_ws, _ = await join(there, room_id, leaver)
    gate = Gate()
    got: list = []
    room = Room(base(here), room_id, user_id=me, token=gate, backoff=QUICK)
    room.on_message = lambda message: got.append(message["data"])
    async with room:
        assert room.state.epoch is not None and room.state.seq is not None
        await sender_ws.send_json({"type": "message", "data": "before"})
        await wait_until(lambda: got == ["before"], timeout=10)

        await away(room, gate)
        newcomer_ws = await events_while_away(here, there, room_id, sender_ws, sender, 30)
        await leaver_ws.close()
        if resume_on == "other app":
            room.base_url = base(there)
        await asyncio.sleep(0.3)  # the presence window has passed: the events are history
        gate.open.set()

        await wait_until(lambda: room.welcomes == 2, timeout=10)
        expected = await server_members(there, room_id)
        assert me in expected and leaver not in expected
        await wait_until(lambda: held(room) == expected, timeout=10)
        await wait_until(lambda: len(got) >= 31, timeout=10)
        await sender_ws.send_json({"type": "message", "data": "after"})
        await wait_until(lambda: got[-1:] == ["after"], timeout=10)
        assert got == ["before", *range(30), "after"]  # nothing missed, nothing twice
        assert room.welcomes == 2 and room.resumes == 1
        assert room.members[sender]["profile"]["bio"] == "while away"
        assert room.member_count == len(expected)
        await newcomer_ws.close()
    await sender_ws.close()


async def test_past_the_history_the_room_rebuilds_from_the_welcome(make_client):
    """Five events of history, thirty missed: ``resumed: false``, and a state rebuilt
    from the welcome that matches the server's (the messages of the gap are lost, and the
    client can tell: its ``resumes`` did not move)."""
    client = await make_client(room_history=5)
    room_id = unique_id("room")
    me, sender = await new_user(client), await new_user(client)
    sender_ws, _ = await join(client, room_id, sender)
    gate = Gate()
    got: list = []
    room = Room(base(client), room_id, user_id=me, token=gate, backoff=QUICK)
    room.on_message = lambda message: got.append(message["data"])
    async with room:
        epoch = room.state.epoch
        await away(room, gate)
        newcomer_ws = await events_while_away(client, client, room_id, sender_ws, sender, 30)
        await asyncio.sleep(0.3)
        gate.open.set()
        await wait_until(lambda: room.welcomes == 2, timeout=10)
        assert room.resumes == 0 and room.state.epoch == epoch
        expected = await server_members(client, room_id)
        await wait_until(lambda: held(room) == expected, timeout=10)
        assert room.members[sender]["profile"]["bio"] == "while away"
        await sender_ws.send_json({"type": "message", "data": "after"})
        await wait_until(lambda: got == ["after"], timeout=10)
        await newcomer_ws.close()
    await sender_ws.close()


async def test_resume_off_on_the_client_rebuilds(client):
    room_id = unique_id("room")
    me, sender = await new_user(client), await new_user(client)
    sender_ws, _ = await join(client, room_id, sender)
    gate = Gate()
    async with Room(base(client), room_id, user_id=me, token=gate, resume=False) as room:
        await away(room, gate)
        await sender_ws.send_json({"type": "message", "data": "missed"})
        gate.open.set()
        await wait_until(lambda: room.welcomes == 2, timeout=10)
        assert room.resumes == 0
    await sender_ws.close()


async def test_a_change_of_the_resumed_members_own_profile_is_not_missed(memory_two):
    here, there = memory_two
    room_id = unique_id("room")
    me = await new_user(here)
    gate = Gate()
    async with Room(base(here), room_id, user_id=me, token=gate, backoff=QUICK) as room:
        await away(room, gate)
        async with SvcClient(base(there)) as api:
            await api.update_profile(me, {"bio": "mine, changed while away"})
        await asyncio.sleep(0.3)
        gate.open.set()
        await wait_until(lambda: room.welcomes == 2, timeout=10)
        assert room.resumes == 1
        await wait_until(lambda: room.members[me]["version"] == 2, timeout=3)
