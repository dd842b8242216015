"""Resume after a reconnect, over real sockets (docs/resume.md): ``?since=<epoch>:<seq>``.

On the memory broker (apps sharing a ``memory://NAME`` bus, as processes share a real
broker), on the Redis broker (the real server, a key prefix of the test's own) and on the
Postgres broker (the test database; each test's rooms are its own), each on one app and
across two apps.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random

import aiohttp
import pytest
from conftest import TEST_SETTINGS
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from ws_helpers import frame_where, join, new_user, next_frame

from svc.app import create_app
from svc.keys import BROKER
from svc.testing import deadline, unique_id


@pytest.fixture(
    params=[
        "memory",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def broker_url(request):
    """A broker URL shared by the apps of one ``apps()`` call, fresh for each call."""
    if request.param == "redis":
        base = request.getfixturevalue("redis_server_url")
        return lambda: f"{base}?prefix={unique_id('resume-')}"
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        return lambda: url
    return lambda: f"memory://{unique_id('bus')}"


@pytest.fixture
async def apps(aiohttp_client, broker_url):
    """``await apps(n, **settings)``: n clients on apps sharing one storage and broker."""
    from svc_memory import MemoryStorage

    async def factory(n: int = 1, **overrides):
        shared = MemoryStorage()
        settings = dataclasses.replace(TEST_SETTINGS, broker_url=broker_url(), **overrides)
        return [await aiohttp_client(create_app(settings, storage=shared)) for _ in range(n)]

    return factory


async def rejoin(client, room: str, user_id: str | None, since: str):
    path = f"/ws/{room}"
    params = {"since": since}
    if user_id:
        params["user_id"] = user_id
    ws = await client.ws_connect(path, params=params)
    welcome = await next_frame(ws)
    assert welcome["type"] == "welcome", welcome
    return ws, welcome


async def last_seq_after(ws, welcome: dict, predicate) -> int:
    """Read frames until one matches ``predicate``; the last seq the client holds then."""
    seq = welcome["seq"]
    frame = await frame_where(ws, predicate)
    return frame.get("seq", seq)


async def frames_until(ws, predicate) -> list[dict]:
    seen: list[dict] = []
    last = await frame_where(ws, predicate, seen=seen)
    return [*seen, last]


async def missed_while_away(writer_client, writer_ws, room: str, writer: str):
    """What happens while bob is away: two messages, carol joins, the writer's profile
    changes, a third message."""
    broker = writer_client.app[BROKER]
    _, start = await broker.room_position(room)
    await writer_ws.send_json({"type": "message", "data": "one"})
    await writer_ws.send_json({"type": "message", "data": "two"})
    # Numbered before carol joins (the writer does not hear its own messages; a broker with a
    # slower round trip, Postgres, could otherwise number her join first: a true order too).
    for _ in range(1000):  # 10 s
        if (await broker.room_position(room))[1] >= start + 2:
            break
        await asyncio.sleep(0.01)
    carol = await new_user(writer_client)
    carol_ws, _ = await join(writer_client, room, carol)
    response = await writer_client.put(f"/users/{writer}/profile", json={"bio": "away"})
    assert response.status == 200
    await writer_ws.send_json({"type": "message", "data": "three"})
    # The writer's own view: the last of those reached the room.
    await asyncio.sleep(0.2)
    return carol, carol_ws


async def check_resume(away_client, back_client):
    alice, bob = await new_user(away_client), await new_user(away_client)
    room = unique_id("r")
    alice_ws, _ = await join(away_client, room, alice)
    bob_ws, welcome = await join(away_client, room, bob)
    assert isinstance(welcome["epoch"], str) and isinstance(welcome["seq"], int)
    await alice_ws.send_json({"type": "message", "data": "before"})
    before = await frame_where(bob_ws, lambda f: f["type"] == "message")
    assert before["seq"] > welcome["seq"]
    since = f"{welcome['epoch']}:{before['seq']}"
    await bob_ws.close()
    carol, carol_ws = await missed_while_away(away_client, alice_ws, room, alice)

    bob_ws, resumed = await rejoin(back_client, room, bob, since)
    assert resumed["resumed"] is True, resumed
    assert (resumed["epoch"], resumed["seq"]) == (welcome["epoch"], before["seq"])
    replay = await frames_until(bob_ws, lambda f: f["type"] == "message" and f["data"] == "three")
    kinds = [
        (f["type"], f.get("data") or [u["id"] for u in f.get("joined", [])] or f.get("id"))
        for f in replay
    ]
    assert kinds == [
        ("message", "one"),
        ("message", "two"),
        ("presence", [carol]),
        ("profile_updated", alice),
        ("message", "three"),
    ], kinds
    seqs = [f["seq"] for f in replay]
    assert seqs == sorted(set(seqs)) and seqs[0] > before["seq"], seqs
    # bob's own leave and return are not news to him; nothing else came
    assert all(bob not in f.get("left", []) for f in replay)
    # then live events follow, numbered after the replay
    await alice_ws.send_json({"type": "message", "data": "live"})
    live = await frame_where(bob_ws, lambda f: f["type"] == "message")
    # (bob's own return is the event between: numbered, not shown to him)
    assert (live["data"], live["seq"]) == ("live", seqs[-1] + 2)
    for ws in (alice_ws, bob_ws, carol_ws):
        await ws.close()


async def test_a_client_resumes_on_the_same_process(apps):
    (client,) = await apps(1)
    await check_resume(client, client)
    metrics = await (await client.get("/metrics")).text()
    assert 'svc_websocket_resumes_total{resumed="true"} 1.0' in metrics.splitlines()


async def test_a_client_resumes_on_another_process(apps):
    one, two = await apps(2)
    await check_resume(one, two)


async def test_a_history_too_short_is_a_normal_welcome(apps):
    (client,) = await apps(1, room_history=3)
    alice, bob = await new_user(client), await new_user(client)
    room = unique_id("r")
    alice_ws, _ = await join(client, room, alice)
    bob_ws, welcome = await join(client, room, bob)
    since = f"{welcome['epoch']}:{welcome['seq']}"
    await bob_ws.close()
    for n in range(5):  # bob's leave and these: more than 3 events
        await alice_ws.send_json({"type": "message", "data": n})
    await asyncio.sleep(0.2)
    bob_ws, again = await rejoin(client, room, bob, since)
    assert again["resumed"] is False
    metrics = (await (await client.get("/metrics")).text()).splitlines()
    assert 'svc_websocket_resumes_total{resumed="false"} 1.0' in metrics
    assert {m["id"] for m in again["members"]} == {alice, bob}, "a normal welcome: members"
    assert again["seq"] >= welcome["seq"] + 6
    await alice_ws.send_json({"type": "message", "data": "live"})
    live = await frame_where(bob_ws, lambda f: f["type"] == "message")
    assert (live["data"], live["seq"]) == ("live", again["seq"] + 1), "no replay, then live"
    # with 3 kept, missing 3 (bob's leave, a message, bob's return) resumes
    since = f"{again['epoch']}:{live['seq']}"
    await bob_ws.close()
    await alice_ws.send_json({"type": "message", "data": "short"})
    await asyncio.sleep(0.2)
    bob_ws, third = await rejoin(client, room, bob, since)
    assert third["resumed"] is True
    first = await next_frame(bob_ws)
    assert (first["type"], first["data"]) == ("message", "short")
    await alice_ws.close()
    await bob_ws.close()


async def test_room_history_zero_turns_resume_off_but_frames_are_numbered(apps):
    (client,) = await apps(1, room_history=0)
    alice, bob = await new_user(client), await new_user(client)
    room = unique_id("r")
    alice_ws, _ = await join(client, room, alice)
    bob_ws, welcome = await join(client, room, bob)
    await alice_ws.send_json({"type": "message", "data": "x"})
    frame = await frame_where(bob_ws, lambda f: f["type"] == "message")
    assert frame["seq"] == welcome["seq"] + 1
    await bob_ws.close()
    bob_ws, again = await rejoin(client, room, bob, f"{welcome['epoch']}:{frame['seq']}")
    assert again["resumed"] is False and "members" in again
    await alice_ws.close()
    await bob_ws.close()


async def lose_postgres_history(url: str) -> None:
    import aiopg

    async with aiopg.connect(url) as conn, conn.cursor() as cur:
        await cur.execute("TRUNCATE svc_room_numbers, svc_room_events")


async def test_an_epoch_of_another_history_is_not_resumed(apps, request):
    """Another backend (a bus started anew, a Redis prefix emptied) numbers the room in
    another epoch."""
    (client,) = await apps(1)
    (other,) = await apps(1)
    alice = await new_user(client)
    room = unique_id("r")
    ws, welcome = await join(client, room, alice)
    await ws.close()
    if request.node.callspec.params["broker_url"] == "postgres":
        # apps on one database share one backend: its history tables lost stand for another
        await lose_postgres_history(request.getfixturevalue("postgres_url"))
    watcher, again = await rejoin(other, room, None, f"{welcome['epoch']}:{welcome['seq']}")
    assert again["epoch"] != welcome["epoch"]
    assert again["resumed"] is False
    await watcher.close()


@pytest.fixture
async def one_app(apps):
    (client,) = await apps(1)
    alice = await new_user(client)
    room = unique_id("r")
    ws, welcome = await join(client, room, alice)
    yield client, room, welcome
    await ws.close()


@hypothesis_settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(since=st.one_of(st.text(max_size=80), st.from_regex(r"[!-~]{0,70}:-?[0-9]{0,20}")))
async def test_any_since_value_is_a_welcome_never_an_error(one_app, since):
    client, room, welcome = one_app
    ws = await client.ws_connect(f"/ws/{room}", params={"since": since})
    frame = await next_frame(ws)
    await ws.close()
    assert frame["type"] == "welcome", frame
    valid = since == f"{welcome['epoch']}:{welcome['seq']}"
    assert frame["resumed"] is valid, (since, frame)


async def test_the_seam_under_load_every_event_once_in_order(apps):
    """A writer publishes at full speed (another process's broker instance) while 100
    clients leave at random points and resume at once: each ends with every event exactly
    once, in order."""
    total, clients = 600, 100
    one, two = await apps(2, room_history=total * 2)
    room = unique_id("r")
    watchers = []
    for _ in range(clients):
        ws, welcome = await join(one, room)
        watchers.append((ws, welcome))
    writer = two.app[BROKER]
    from svc.broker import RoomMessage

    async def write() -> None:
        for n in range(total):
            await writer.publish_message(RoomMessage(room, "writer", str(n)))
            if n % 20 == 0:
                await asyncio.sleep(0)  # let the readers read: the socket buffers are finite

    async def client_life(ws, welcome, leave_after: int) -> list[int]:
        got: list[int] = []
        seq = welcome["seq"]
        while len(got) < leave_after:
            frame = await next_frame(ws)
            got.append(int(frame["data"]))
            seq = frame["seq"]
        await ws.close()
        ws, again = await rejoin(one, room, None, f"{welcome['epoch']}:{seq}")
        assert again["resumed"] is True, again
        async with deadline(60):
            while not got or got[-1] != total - 1:
                msg = await ws.receive()
                assert msg.type is aiohttp.WSMsgType.TEXT, msg
                got.append(int(json.loads(msg.data)["data"]))
        await ws.close()
        return got

    rng = random.Random(27)
    lives = [
        asyncio.create_task(client_life(ws, welcome, rng.randrange(0, total // 2)))
        for ws, welcome in watchers
    ]
    await write()
    results = await asyncio.gather(*lives)
    for got in results:
        assert got == list(range(total)), "every event exactly once, in order"


@pytest.mark.redis
async def test_redis_restarted_empty_changes_the_epoch_and_nobody_resumes(aiohttp_client, tmp_path):
    """Redis killed and started again, empty: the room's history is gone, so its epoch
    changes, an old ``since`` is answered ``resumed: false``, and live events go on, numbered
    in the new epoch, to the members who stayed and to the one who came back."""
    from redis_helpers import OwnRedis
    from svc_memory import MemoryStorage

    server = OwnRedis(tmp_path)
    server.start()
    try:
        url = f"{server.url}?prefix={unique_id('lost-')}&heartbeat=0.5&node_ttl=3"
        settings = dataclasses.replace(TEST_SETTINGS, broker_url=url)
        client = await aiohttp_client(create_app(settings, storage=MemoryStorage()))
        alice, bob = await new_user(client), await new_user(client)
        room = unique_id("r")
        alice_ws, _ = await join(client, room, alice)
        bob_ws, welcome = await join(client, room, bob)
        await alice_ws.send_json({"type": "message", "data": "before"})
        before = await frame_where(bob_ws, lambda f: f["type"] == "message")
        await bob_ws.close()

        server.kill()
        await asyncio.sleep(1)
        server.start()  # empty
        for _ in range(75):  # 15 s
            if (await client.get("/health/ready")).status == 200:
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(1)  # the re-join has numbered alice's presence anew

        bob_ws, again = await rejoin(client, room, bob, f"{welcome['epoch']}:{before['seq']}")
        assert again["resumed"] is False, again
        assert again["epoch"] != welcome["epoch"], "a history lost is another epoch"
        await alice_ws.send_json({"type": "message", "data": "after"})
        live = await frame_where(bob_ws, lambda f: f["type"] == "message")
        assert live["data"] == "after" and live["seq"] > again["seq"]
        await alice_ws.close()
        await bob_ws.close()
    finally:
        server.kill()
