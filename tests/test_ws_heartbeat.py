"""The hub's one heartbeat (svc.rooms.connection.beat_forever): quiet clients are pinged,
live ones stay, dead ones are dropped; a client's own WebSocket ping is answered."""

from __future__ import annotations

import asyncio

from aiohttp import WSMsgType
from ws_helpers import TIMEOUT, frame_where, frames_until_pong, join, new_user

from svc.app import create_app
from svc.keys import HUB
from svc.testing import deadline, unique_id


async def next_control(ws, kind: WSMsgType):
    """The next message of type ``kind``, skipping the JSON frames before it."""
    async with deadline(TIMEOUT):
        while True:
            msg = await ws.receive()
            if msg.type is kind:
                return msg
            assert msg.type is WSMsgType.TEXT, (msg.type, msg.data)


async def test_a_quiet_client_that_answers_pings_stays(aiohttp_client, settings):
    app = create_app(settings)
    app[HUB].limits.heartbeat = 0.5  # a pong is due within 0.25 s: room for a loaded CI machine
    client = await aiohttp_client(app)
    alice, bob = await new_user(client), await new_user(client)
    room = unique_id("r")
    ws_b, _ = await join(client, room, bob, autoping=False)
    for _ in range(3):  # three pings answered: each would have dropped a silent peer
        ping = await next_control(ws_b, WSMsgType.PING)
        await ws_b.pong(ping.data)
    # Still there: a newcomer sees bob, and bob's socket still answers.
    ws_a, welcome = await join(client, room, alice)
    assert bob in [member["id"] for member in welcome["members"]]
    await frames_until_pong(ws_b)
    assert app[HUB].connection_count() == 2
    await ws_a.close()
    await ws_b.close()


async def test_a_client_that_stops_answering_is_dropped_after_its_ping(aiohttp_client, settings):
    app = create_app(settings)
    app[HUB].limits.heartbeat = 0.5
    client = await aiohttp_client(app)
    alice, bob = await new_user(client), await new_user(client)
    room = unique_id("r")
    ws_a, _ = await join(client, room, alice)
    # Alice reads all along: her client answers the server's pings only while it reads, and
    # left unread (a slow CI run) she missed her pong's deadline and was dropped too.
    bob_left = asyncio.ensure_future(
        frame_where(ws_a, lambda f: f["type"] == "presence" and bob in f["left"])
    )
    ws_b, _ = await join(client, room, bob, autoping=False)
    await next_control(ws_b, WSMsgType.PING)  # pinged, and never answered
    left = await bob_left
    assert left["member_count"] == 1
    closed = await next_control(ws_b, WSMsgType.CLOSED)
    assert closed.type is WSMsgType.CLOSED
    await ws_a.close()


async def test_a_clients_websocket_ping_is_answered_with_its_data(aiohttp_client, settings):
    client = await aiohttp_client(create_app(settings))
    ws, _ = await join(client, unique_id("r"), await new_user(client), autoping=False)
    await ws.ping(b"are you there")
    pong = await next_control(ws, WSMsgType.PONG)
    assert pong.data == b"are you there"
    await ws.close()


async def test_a_sweep_pings_a_slice_at_a_time_not_all_at_once(aiohttp_client, settings):
    # 40 sockets go quiet together.  Swept in one go, they were all pinged at the same instant
    # (and their pongs came back together); the sweep now spreads them over its period, in
    # slices at least svc.rooms.connection.SLICE apart: here 10 slices of 4.
    app = create_app(settings)
    app[HUB].limits.heartbeat = 2.0  # a sweep every 0.5 s
    client = await aiohttp_client(app)
    room = unique_id("r")
    sockets = [(await join(client, room, autoping=False))[0] for _ in range(40)]
    loop = asyncio.get_running_loop()

    async def pinged_at(ws) -> float:
        await next_control(ws, WSMsgType.PING)
        return loop.time()

    times = sorted(await asyncio.gather(*(pinged_at(ws) for ws in sockets)))
    together = max(sum(1 for t in times[i:] if t - start < 0.04) for i, start in enumerate(times))
    assert together <= 16, f"{together} of 40 pings within 40 ms: {times}"
    for ws in sockets:
        await ws.close()
