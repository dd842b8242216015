"""WebSocket rooms over real sockets: presence, profile events, relay, paging; every backend."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from ws_helpers import (
    frame_where,
    frames_until_pong,
    join,
    new_user,
    next_frame,
    presence_where,
)

from svc.keys import BROKER, HUB
from svc.testing import deadline, unique_id


async def test_each_socket_is_welcomed_with_a_connection_id_of_its_own(client):
    """The id is made as the welcome is (a socket keeps none): two sockets of one user in
    one room, and a third after both, each get their own."""
    alice = await new_user(client)
    room = unique_id("r")
    ws_1, welcome_1 = await join(client, room, alice)
    ws_2, welcome_2 = await join(client, room, alice)
    await ws_1.close()
    ws_3, welcome_3 = await join(client, room, alice)
    ids = [w["connection_id"] for w in (welcome_1, welcome_2, welcome_3)]
    assert all(isinstance(i, str) and len(i) == 16 for i in ids), ids
    assert len(set(ids)) == 3, ids
    await ws_2.close()
    await ws_3.close()


async def test_a_change_reaches_exactly_the_rooms_its_user_is_in_as_they_come_and_go(client):
    """The hub keeps a user in one room as that room's id, in several as a tuple: each step
    between one, three, two, one and no rooms, a change of their profile reaches a watcher
    in each room they are in, and only those.  ``mark``, a member of every room, changes
    after ``star`` does: a room's frames keep the order of its events, so a watcher that
    has ``mark``'s change has had ``star``'s, if it was to come."""
    star, mark = await new_user(client), await new_user(client)
    rooms = [unique_id("r") for _ in range(3)]
    watchers = [(await join(client, room))[0] for room in rooms]  # watchers: not members
    marks = [(await join(client, room, mark))[0] for room in rooms]
    held: dict[str, object] = {}
    versions = {star: 1, mark: 1}

    async def change(user: str) -> int:
        versions[user] += 1
        response = await client.put(f"/users/{user}/profile", json={"bio": "x"})
        assert response.status == 200
        return versions[user]

    async def reached() -> set[str]:
        star_version, mark_version = await change(star), await change(mark)
        found = set()
        for room, watcher in zip(rooms, watchers, strict=True):
            seen: list[dict] = []
            await frame_where(
                watcher,
                lambda f: (
                    f["type"] == "profile_updated"
                    and f["id"] == mark
                    and f["version"] == mark_version
                ),
                seen=seen,
            )
            if any(f["type"] == "profile_updated" and f["id"] == star for f in seen):
                assert [f["version"] for f in seen if f.get("id") == star] == [star_version]
                found.add(room)
        return found

    async def enter(room: str) -> None:
        held[room], _ = await join(client, room, star)

    async def leave(room: str) -> None:
        await held.pop(room).close()
        await frame_where(watchers[rooms.index(room)], presence_where(room, left=star))

    await enter(rooms[0])
    assert await reached() == {rooms[0]}
    await enter(rooms[1])
    await enter(rooms[2])
    assert await reached() == set(rooms)
    await leave(rooms[1])
    assert await reached() == {rooms[0], rooms[2]}
    await leave(rooms[0])
    assert await reached() == {rooms[2]}
    await leave(rooms[2])
    assert await reached() == set()
    await enter(rooms[1])
    assert await reached() == {rooms[1]}
    for socket in [*held.values(), *watchers, *marks]:
        await socket.close()


async def test_two_devices_see_each_other_and_profile_changes(client):
    alice, bob, carol = [await new_user(client) for _ in range(3)]
    r1, r2 = unique_id("r"), unique_id("r")
    ws_a, welcome_a = await join(client, r1, alice)
    assert welcome_a["room"] == r1 and welcome_a["connection_id"]
    assert welcome_a["member_count"] == 1
    assert [m["id"] for m in welcome_a["members"]] == [alice]
    ws_b, welcome_b = await join(client, r1, bob)
    assert welcome_b["member_count"] == 2
    assert {m["id"] for m in welcome_b["members"]} == {alice, bob}
    ws_c, _ = await join(client, r2, carol)

    joined = await frame_where(ws_a, presence_where(r1, joined=bob))
    assert joined["member_count"] == 2
    assert {"id", "user_id", "profile", "version"} <= set(joined["joined"][0])

    response = await client.put(f"/users/{bob}/profile", json={"display_name": "Bob B."})
    assert response.status == 200
    update = await frame_where(ws_a, lambda f: f["type"] == "profile_updated")
    # The whole user record, in the shape of every REST body.
    assert isinstance(update.pop("seq", 0), int)  # a broker that numbers events: seq
    assert update == {"type": "profile_updated", "room": r1, **(await response.json())}
    assert update["profile"]["display_name"] == "Bob B."
    # Bob's own device is in r1 too; Carol, in r2, gets nothing about Bob.
    assert (await frame_where(ws_b, lambda f: f["type"] == "profile_updated"))["version"] == 2
    assert not [f for f in await frames_until_pong(ws_c) if f["type"] != "presence"]
    for ws in (ws_a, ws_b, ws_c):
        await ws.close()


async def test_message_is_relayed_to_others_but_not_the_sender(client):
    alice, bob = await new_user(client), await new_user(client)
    room = unique_id("r")
    ws_a, _ = await join(client, room, alice)
    ws_b, _ = await join(client, room, bob)
    watcher, _ = await join(client, room)
    await ws_a.send_json({"type": "message", "data": {"text": "hi", "n": [1, 2]}})
    expected = {"type": "message", "room": room, "from": alice, "data": {"text": "hi", "n": [1, 2]}}
    for ws in (ws_b, watcher):
        frame = await frame_where(ws, lambda f: f["type"] == "message")
        assert isinstance(frame.pop("seq", 0), int)  # a broker that numbers events: seq
        assert frame == expected
    assert not [f for f in await frames_until_pong(ws_a) if f["type"] == "message"]
    for ws in (ws_a, ws_b, watcher):
        await ws.close()


async def test_leave_with_the_last_connection(client):
    alice, bob = await new_user(client), await new_user(client)
    room = unique_id("r")
    ws_a, _ = await join(client, room, alice)
    phone, _ = await join(client, room, bob)
    laptop, welcome = await join(client, room, bob)
    assert welcome["member_count"] == 2  # one user, however many devices
    await phone.close()
    # Bob is still there through his laptop: no leave.
    await frame_where(ws_a, presence_where(room, joined=bob))
    assert not [f for f in await frames_until_pong(ws_a) if f["type"] == "presence" and f["left"]]
    await laptop.close()
    left = await frame_where(ws_a, presence_where(room, left=bob))
    assert left["member_count"] == 1
    response = await client.get(f"/rooms/{room}/members")
    assert [m["id"] for m in (await response.json())["members"]] == [alice]
    await ws_a.close()


async def test_watcher_sees_the_room_without_being_a_member(client):
    alice = await new_user(client)
    room = unique_id("r")
    watcher, welcome = await join(client, room)
    assert welcome["member_count"] == 0 and welcome["members"] == []
    ws_a, _ = await join(client, room, alice)
    assert (await frame_where(watcher, presence_where(room, joined=alice)))["member_count"] == 1
    await client.put(f"/users/{alice}/profile", json={"bio": "hello"})
    update = await frame_where(watcher, lambda f: f["type"] == "profile_updated")
    assert update["user_id"] == alice and update["profile"]["bio"] == "hello"
    await watcher.send_json({"type": "message", "data": "x"})
    error = await frame_where(watcher, lambda f: f["type"] == "error")
    assert error["code"] == "not_a_member"
    await watcher.close()
    await ws_a.close()


async def test_rapid_updates_arrive_in_order_at_every_member(client):
    users = [await new_user(client) for _ in range(3)]
    room = unique_id("r")
    sockets = [(await join(client, room, u))[0] for u in users]
    target = users[0]
    responses = await asyncio.gather(
        *(client.put(f"/users/{target}/profile", json={"bio": f"b{i}"}) for i in range(20))
    )
    assert all(r.status == 200 for r in responses)
    final = {r["version"]: r["profile"] for r in [await r.json() for r in responses]}
    for ws in sockets:
        versions = []
        while len(versions) < 20:
            frame = await frame_where(ws, lambda f: f["type"] == "profile_updated")
            assert frame["user_id"] == target
            assert frame["profile"] == final[frame["version"]]
            versions.append(frame["version"])
        assert versions == list(range(2, 22))
        assert not [f for f in await frames_until_pong(ws) if f["type"] == "profile_updated"]
        await ws.close()


async def test_crowd_join_is_coalesced_and_paged(client):
    """500 members join at once: each gets a handful of presence frames, all agree on the count."""
    n = 500
    users = [await new_user(client) for _ in range(n)]
    room = unique_id("r")
    loop = asyncio.get_running_loop()
    started = loop.time()
    # The test client's own session allows 100 connections; the crowd needs its own.
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    async with deadline(60):
        sockets = await asyncio.gather(
            *(session.ws_connect(client.make_url(f"/ws/{room}?user_id={u}")) for u in users)
        )

    async def presence_frames_until_full(ws) -> tuple[int, dict]:
        count, last = 0, None
        while last is None or last.get("member_count") != n:
            last = await next_frame(ws, timeout=30)
            count += last["type"] == "presence"
        return count, last

    async with deadline(60):
        results = await asyncio.gather(*(presence_frames_until_full(ws) for ws in sockets))
    elapsed = loop.time() - started
    counts = [count for count, _ in results]
    # One frame per 50 ms window at most (plus the edges), never one per joiner.
    bound = elapsed / 0.05 + 3
    print("crowd", max(counts), sum(counts) / n, round(elapsed, 2))
    assert max(counts) <= bound, (max(counts), elapsed)
    assert max(counts) < n / 5
    # Everything that joined is in the joined lists a socket saw, or its welcome.
    hub = client.app[HUB]
    assert len(hub.room(room).members) == n

    # The members route pages through all of them, in order, without repeats.
    seen, cursor, pages = [], None, 0
    while True:
        query = "?limit=200" + (f"&cursor={cursor}" if cursor else "")
        response = await client.get(f"/rooms/{room}/members{query}")
        assert response.status == 200
        body = await response.json()
        assert body["member_count"] == n
        assert len(body["members"]) <= 200
        seen += [m["id"] for m in body["members"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and seen == sorted(users)
    first_page = await (await client.get(f"/rooms/{room}/members")).json()
    assert len(first_page["members"]) == 100  # default limit
    await asyncio.gather(*(ws.close() for ws in sockets))
    await session.close()


@pytest.mark.parametrize(
    "query, field",
    [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("limit=-1", "limit"),
        ("cursor=%21%21%21", "cursor"),
        ("cursor=Zm9vIGJhcg", "cursor"),  # base64 of "foo bar": not an id
    ],
)
async def test_members_route_rejects_bad_params(client, query, field):
    response = await client.get(f"/rooms/r1/members?{query}")
    assert response.status == 422
    body = await response.json()
    assert body["error"]["code"] == "validation_failed" and field in body["error"]["fields"]


async def test_members_of_an_empty_room(client):
    response = await client.get(f"/rooms/{unique_id('r')}/members")
    assert response.status == 200
    assert await response.json() == {"members": [], "member_count": 0, "next_cursor": None}
    assert (await client.get("/rooms/bad!room/members")).status == 404


async def test_a_user_without_a_profile_may_join_and_gets_one_later(client):
    """Open mode, like the service svc replaces: any valid id joins; the profile can follow."""
    alice, newcomer = await new_user(client), unique_id()
    room = unique_id("r")
    ws_a, _ = await join(client, room, alice)
    ws_n, welcome = await join(client, room, newcomer)
    placeholder = {
        "id": newcomer,
        "user_id": newcomer,
        "profile": dict.fromkeys(
            ["display_name", "username", "bio", "email", "avatar_url", "avatar_urls"]
        ),
        "version": 0,
        "created_at": None,
        "updated_at": None,
    }
    assert placeholder in welcome["members"] and welcome["member_count"] == 2
    joined = await frame_where(ws_a, presence_where(room, joined=newcomer))
    assert placeholder in joined["joined"]
    members = await (await client.get(f"/rooms/{room}/members")).json()
    assert placeholder in members["members"]

    response = await client.put(f"/users/{newcomer}/profile", json={"username": newcomer})
    assert response.status == 201
    for ws in (ws_a, ws_n):
        update = await frame_where(ws, lambda f: f["type"] == "profile_updated")
        assert (update["user_id"], update["version"]) == (newcomer, 1)
        assert update["profile"]["username"] == newcomer
    for ws in (ws_a, ws_n):
        await ws.close()


async def test_lost_presence_announcements_are_repaired(client):
    alice, bob = await new_user(client), await new_user(client)
    room = unique_id("r")
    ws_a, _ = await join(client, room, alice)
    hub, broker = client.app[HUB], client.app[BROKER]

    async def unheard(change):
        # As if the broker's connection were down: the hub hears nothing.
        hub.on_presence = lambda change: None
        await change
        del hub.on_presence

    await unheard(broker.presence_join(room, bob))
    assert bob not in hub.room(room).members  # the hub missed it
    await hub.reconcile()
    assert (await frame_where(ws_a, presence_where(room, joined=bob)))["member_count"] == 2
    await unheard(broker.presence_leave(room, bob))
    await hub.reconcile()
    assert (await frame_where(ws_a, presence_where(room, left=bob)))["member_count"] == 1
    await ws_a.close()
