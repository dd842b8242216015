"""WebSocket rooms under abuse: slow consumers (1013), shutdown (1001), bad frames of every kind."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer
from ws_helpers import frame_where, frames_until_pong, join, new_user, presence_where

from svc.app import create_app
from svc.keys import HUB
from svc.testing import deadline, unique_id


async def test_a_client_that_stops_reading_is_closed_with_1013(aiohttp_client, settings):
    app = create_app(settings)
    hub = app[HUB]
    hub.limits.max_backlog = 64 * 1024
    hub.limits.frame_rate = hub.limits.frame_burst = 100_000  # the sender here floods on purpose
    client = await aiohttp_client(app)
    sender, reader, sleeper = [await new_user(client) for _ in range(3)]
    room = unique_id("r")
    ws_sender, _ = await join(client, room, sender)
    ws_reader, _ = await join(client, room, reader)
    # aiohttp's client stops reading its socket once ~64 KiB wait unread: a real stalled peer.
    ws_sleeper, _ = await join(client, room, sleeper)

    data = "x" * 8000
    received: list = []
    sleeper_left = asyncio.Event()

    async def read_messages():
        while True:
            frame = await frame_where(ws_reader, lambda f: f["type"] in ("message", "presence"))
            if frame["type"] == "message":
                received.append(frame["data"]["n"])
                if frame["data"]["n"] == "last":
                    return
            elif sleeper in frame["left"]:
                sleeper_left.set()

    reading = asyncio.create_task(read_messages())
    sent = 0
    # Kernel buffers absorb a few MiB first; the sleeper must be gone long before 4,000 frames.
    while not sleeper_left.is_set() and sent < 4000:
        await ws_sender.send_json({"type": "message", "data": {"n": sent, "pad": data}})
        sent += 1
        if sent % 50 == 0:
            # Let the reader keep up, as a live client would: where the broker numbers each
            # message on a round trip (Postgres), the members here hear it only then, and a
            # sender flooding ahead of that would be done before the sleeper's backlog grew.
            for _ in range(6000):  # 30 s
                if len(received) >= sent - 100 or sleeper_left.is_set():
                    break
                await asyncio.sleep(0.005)
    assert sleeper_left.is_set(), "the stalled client was never closed"
    await ws_sender.send_json({"type": "message", "data": {"n": "last"}})
    await asyncio.wait_for(reading, 10)
    # The reader got every message, in order, while the sleeper was being dropped.
    assert received == [*range(sent), "last"]

    # The stalled client, reading at last, finds the close code after its backlog.
    async with deadline(10):
        while (msg := await ws_sleeper.receive()).type is WSMsgType.TEXT:
            pass
    assert msg.type is WSMsgType.CLOSE and ws_sleeper.close_code == 1013
    for ws in (ws_sender, ws_reader):
        await ws.close()


async def test_shutdown_closes_every_socket_with_1001(settings):
    app = create_app(settings)
    client = TestClient(TestServer(app))
    await client.start_server()
    alice = await new_user(client)
    room = unique_id("r")
    member, _ = await join(client, room, alice)
    watcher, _ = await join(client, room)
    closing = asyncio.create_task(client.server.close())  # the server only: sockets stay ours
    for ws in (member, watcher):
        msg = await ws.receive(timeout=10)
        assert msg.type is WSMsgType.CLOSE, msg
        assert msg.data == 1001
    await asyncio.wait_for(closing, 10)
    await client.close()


@pytest.fixture
async def member(client):
    alice = await new_user(client)
    ws, _ = await join(client, unique_id("r"), alice)
    yield ws
    await ws.close()


@pytest.mark.parametrize(
    "send, code",
    [
        (lambda ws: ws.send_bytes(b"\x00\x01"), "unsupported_frame"),
        (lambda ws: ws.send_str("not json"), "invalid_json"),
        (lambda ws: ws.send_str("[1, 2]"), "invalid_frame"),
        (lambda ws: ws.send_str('{"data": 1}'), "invalid_frame"),
        (lambda ws: ws.send_str('{"type": 7}'), "invalid_frame"),
        (lambda ws: ws.send_json({"type": "shout"}), "unknown_type"),
        (lambda ws: ws.send_json({"type": "message"}), "invalid_frame"),
        (lambda ws: ws.send_json({"type": "message", "data": "x" * 9000}), "message_too_large"),
        (lambda ws: ws.send_str('{"type": "message", "data": "\\ud800"}'), None),  # lone surrogate
    ],
)
async def test_a_bad_frame_gets_an_error_and_the_connection_stays(member, send, code):
    await send(member)
    frames = await frames_until_pong(member)  # answered: the connection is alive
    errors = [f for f in frames if f["type"] == "error"]
    if code is None:
        assert not errors
    else:
        assert [e["code"] for e in errors] == [code]
        assert errors[0]["message"]


async def test_a_frame_past_64_kib_is_closed_with_1009(member):
    await member.send_str('{"type": "message", "data": "' + "x" * 70_000 + '"}')
    async with deadline(10):
        while (msg := await member.receive()).type is WSMsgType.TEXT:
            pass
    assert msg.type is WSMsgType.CLOSE and member.close_code == 1009


async def test_a_flood_is_refused_then_closed_with_1008(make_client):
    client = await make_client()
    alice = await new_user(client)
    ws, _ = await join(client, unique_id("r"), alice)
    hub = client.app[HUB]
    for _ in range(int(hub.limits.frame_burst) + hub.limits.flood_strikes + 50):
        await ws.send_json({"type": "ping"})
    codes = []
    async with deadline(10):
        while (msg := await ws.receive()).type is WSMsgType.TEXT:
            frame = msg.json()
            if frame["type"] == "error":
                codes.append(frame["code"])
    assert codes and set(codes) == {"rate_limited"}
    assert msg.type is WSMsgType.CLOSE and ws.close_code == 1008


async def test_a_member_that_leaves_abruptly_is_gone_from_presence(client):
    alice, bob = await new_user(client), await new_user(client)
    room = unique_id("r")
    ws_a, _ = await join(client, room, alice)
    session = aiohttp.ClientSession()
    ws_b = await session.ws_connect(client.make_url(f"/ws/{room}?user_id={bob}"))
    await ws_b.receive()
    await frame_where(ws_a, presence_where(room, joined=bob))
    ws_b._response.connection.transport.abort()  # no closing handshake at all
    left = await frame_where(ws_a, presence_where(room, left=bob))
    assert left["member_count"] == 1
    await session.close()
    await ws_a.close()


async def test_one_frame_bigger_than_the_bound_still_goes_out(aiohttp_client, settings):
    app = create_app(settings)
    app[HUB].limits.max_backlog = 1024  # smaller than the message below
    client = await aiohttp_client(app)
    alice, bob = await new_user(client), await new_user(client)
    room = unique_id("r")
    ws_a, _ = await join(client, room, alice)
    ws_b, _ = await join(client, room, bob)
    await ws_a.send_json({"type": "message", "data": "y" * 8000})
    relayed = await frame_where(ws_b, lambda f: f["type"] == "message")
    assert relayed["data"] == "y" * 8000
    await ws_a.close()
    await ws_b.close()


async def test_a_peer_that_stops_answering_pings_is_dropped(aiohttp_client, settings):
    app = create_app(settings)
    app[HUB].limits.heartbeat = 0.5  # alice, who reads, has 0.25 s to answer each ping
    client = await aiohttp_client(app)
    alice, bob = await new_user(client), await new_user(client)
    room = unique_id("r")
    ws_a, _ = await join(client, room, alice)
    # autoping=False and never reading: the server's pings go unanswered, like a dead peer.
    ws_b = await client.ws_connect(f"/ws/{room}?user_id={bob}", autoping=False)
    await frame_where(ws_a, presence_where(room, joined=bob))
    left = await frame_where(ws_a, lambda f: f["type"] == "presence" and bob in f["left"])
    assert left["member_count"] == 1
    await ws_a.close()
    await ws_b.close()
