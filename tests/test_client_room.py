"""svc.client's ``Room`` against real svc apps over real sockets: its state is the server's
after joins, leaves and updates made through another app; messages reach the callback and
the iterators; refusals end it at once (no retry loop); the members past a welcome's 100
are paged in."""

from __future__ import annotations

import asyncio
import dataclasses

import aiohttp
import pytest
from ws_helpers import join, new_user

from svc.client import Backoff, Room, RoomRefused, SvcClient
from svc.testing import unique_id, wait_until, within

QUICK = Backoff(initial=0.02, max=0.2)
SECRET = "client-room-secret-" + "q" * 32


def base(client) -> str:
    return str(client.make_url("")).rstrip("/")


async def server_members(client, room: str) -> dict[str, int]:
    """user id -> version of each present member, as the server lists them."""
    async with SvcClient(base(client)) as api:
        return {m["id"]: m["version"] async for m in api.members(room)}


def held(room: Room) -> dict[str, int]:
    return {user_id: user["version"] for user_id, user in room.members.items()}


async def test_state_follows_joins_leaves_and_updates_made_on_another_app(two):
    """Memory (a named bus) and Postgres."""
    await state_follows_another_app(*two)


@pytest.mark.redis
async def test_state_follows_another_app_over_redis(aiohttp_client, redis_url):
    from conftest import TEST_SETTINGS
    from svc_memory import MemoryStorage

    from svc.app import create_app

    shared = MemoryStorage()
    settings = dataclasses.replace(TEST_SETTINGS, broker_url=redis_url)
    apps = [await aiohttp_client(create_app(settings, storage=shared)) for _ in range(2)]
    await state_follows_another_app(*apps)


async def state_follows_another_app(here, there) -> None:
    room_id = unique_id("room")
    me = await new_user(here)
    early = await new_user(there, display_name="early")
    early_ws, _ = await join(there, room_id, early)
    changes: list[str] = []
    async with Room(base(here), room_id, user_id=me, on_change=changes.append) as room:
        assert held(room) == {me: 1, early: 1} and room.member_count == 2
        assert changes == ["welcome"]
        late = [await new_user(there) for _ in range(3)]
        sockets = [(await join(there, room_id, user))[0] for user in late]
        async with SvcClient(base(there)) as api:
            for version in range(2, 6):
                await api.update_profile(early, {"bio": f"v{version}"})
            await api.update_profile(late[0], {"display_name": "late"})
        await sockets[1].close()
        await early_ws.close()
        expected = {me: 1, late[0]: 2, late[2]: 1}
        await wait_until(lambda: held(room) == expected, timeout=10)
        assert await server_members(here, room_id) == expected
        assert room.member_count == 3
        assert room.members[late[0]]["profile"]["display_name"] == "late"
        assert {"join", "update", "leave"} <= set(changes)
        for ws in sockets:
            await ws.close()


async def test_an_older_version_arriving_late_is_ignored(client):
    room_id = unique_id("room")
    me = await new_user(client)
    async with Room(base(client), room_id, user_id=me) as room:
        record = dict(room.members[me], version=5)
        assert room.state.merge(record, present=True) == ("update", record)
        stale = dict(record, version=4, profile=dict(record["profile"], bio="stale"))
        assert room.state.merge(stale, present=True) is None
        assert room.members[me]["version"] == 5


async def test_messages_reach_the_callback_and_every_iterator(client):
    room_id = unique_id("room")
    alice, bob = await new_user(client), await new_user(client)
    called = []
    async with (
        Room(base(client), room_id, user_id=alice, on_message=called.append) as listener,
        Room(base(client), room_id, user_id=bob) as sender,
    ):
        first, second = listener.messages(), listener.messages()
        reads = [asyncio.ensure_future(_take(it, 3)) for it in (first, second)]
        await asyncio.sleep(0)  # both iterators registered before anything is sent
        for n in range(3):
            await sender.send({"n": n})
        for read in reads:
            got = await within(10, read)
            assert [(m["sender"], m["data"]) for m in got] == [(bob, {"n": n}) for n in range(3)]
        assert [m["data"] for m in called] == [{"n": n} for n in range(3)]


async def _take(iterator, count: int) -> list:
    got = []
    async for message in iterator:
        got.append(message)
        if len(got) == count:
            return got
    return got


async def test_send_while_not_connected_raises(client):
    room = Room(base(client), unique_id("room"))
    with pytest.raises(ConnectionError):
        await room.send("x")


async def test_members_past_the_welcome_are_paged_in(client):
    room_id = unique_id("room")
    # a socket holds its connection: past aiohttp's default pool of 100, one more would wait
    crowd = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    url = f"{base(client)}/ws/{room_id}"
    sockets = [await crowd.ws_connect(url, params={"user_id": f"u{n:03}"}) for n in range(120)]
    try:
        for ws in sockets:
            await ws.receive(timeout=10)
        async with Room(base(client), room_id) as room:
            await wait_until(lambda: len(room.members) == 120, timeout=10)
            assert room.member_count == 120
        async with Room(base(client), room_id, page_members=False) as room:
            assert len(room.members) == 100 and room.member_count == 120
    finally:
        for ws in sockets:
            await ws.close()
        await crowd.close()


# -- refusals: surfaced, never retried -----------------------------------------------------


async def refusal_of(room: Room) -> RoomRefused:
    with pytest.raises(RoomRefused) as refused:
        await within(10, room.connect())
    assert room.status == "closed" and room.welcomes == 0
    assert room.attempts == 1  # tried once: a retry could not change the answer
    with pytest.raises(RoomRefused):
        await room.wait_closed()
    await room.close()
    return refused.value


async def test_a_bad_token_is_4401(make_client):
    server = await make_client(jwt_secret_key=SECRET)
    refused = await refusal_of(
        Room(base(server), unique_id("room"), token="not.a.jwt", backoff=QUICK)
    )
    assert (refused.status, refused.code) == (4401, "unauthorized") and refused.message


async def test_a_deleted_users_token_is_4404_and_a_token_function_is_called(make_client):
    server = await make_client(jwt_secret_key=SECRET)
    async with SvcClient(base(server)) as api:
        name = unique_id()
        user = await api.create_user(name, password="pass word 1")
        token = await api.login(name, "pass word 1")
        await api.delete_user(user["id"])
    calls = []

    async def fresh_token() -> str:
        calls.append(1)
        return token

    refused = await refusal_of(Room(base(server), unique_id("room"), token=fresh_token))
    assert refused.status == 4404 and calls == [1]


async def test_a_bad_user_id_is_4422(client):
    refused = await refusal_of(Room(base(client), unique_id("room"), user_id="not an id!"))
    assert refused.status == 4422 and refused.code == "invalid_id"


async def test_a_refusal_after_a_reconnection_ends_the_iterators_too(make_client):
    """A token that expires while the socket is down: the reconnection is refused (4401) and
    the iterator of messages ends with that refusal, instead of waiting for ever."""
    server = await make_client(jwt_secret_key=SECRET)
    async with SvcClient(base(server)) as api:
        name = unique_id()
        await api.create_user(name, password="pass word 1")
        tokens = [await api.login(name, "pass word 1"), "expired.or.bad"]
    room = Room(base(server), unique_id("room"), token=lambda: tokens.pop(0), backoff=QUICK)
    await room.connect()
    iterator = room.messages()
    read = asyncio.ensure_future(iterator.__anext__())
    await room._ws.close()  # the network drops the socket
    with pytest.raises(RoomRefused) as refused:
        await within(10, read)
    assert refused.value.status == 4401 and room.attempts == 2
    await room.close()


async def test_an_iterator_of_a_room_that_ended_ends_at_once(client):
    room = Room(base(client), unique_id("room"), user_id="not an id!")
    with pytest.raises(RoomRefused):
        await room.connect()
    with pytest.raises(RoomRefused):
        await within(5, _take(room.messages(), 1))
    await room.close()
    never_connected = Room(base(client), unique_id("room"))
    assert await within(5, _take(never_connected.messages(), 1)) == []
