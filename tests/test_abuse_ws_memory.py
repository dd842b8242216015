"""What WebSockets may cost in memory (issue 24, finding 2): at most MAX_SOCKETS_PER_USER
sockets per user (4429), and SEND_BUFFER_BUDGET bounds the bytes waiting for every slow
consumer together (the slowest closed with 1013 first)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import os
import socket

from aiohttp import WSMsgType
from ws_helpers import frame_where, frames_until_pong, join, new_user

from svc.app import create_app
from svc.keys import HUB
from svc.settings import Settings
from svc.testing import deadline, unique_id, wait_until

SETTINGS = Settings(bcrypt_rounds=4)


async def metric_line(client, prefix: str) -> float:
    text = await (await client.get("/metrics")).text()
    for line in text.splitlines():
        if line.startswith(prefix + " "):
            return float(line.split()[1])
    raise AssertionError(f"{prefix} is not in /metrics")


# -- MAX_SOCKETS_PER_USER -----------------------------------------------------------------------


async def test_the_socket_past_max_sockets_per_user_is_closed_with_4429(aiohttp_client):
    app = create_app(dataclasses.replace(SETTINGS, max_sockets_per_user=3))
    client = await aiohttp_client(app)
    alice, bob = await new_user(client), await new_user(client)
    # In any rooms: the count is the user's, not the room's.
    held = [(await join(client, unique_id("r"), alice))[0] for _ in range(3)]
    extra = await client.ws_connect(f"/ws/{unique_id('r')}?user_id={alice}")
    msg = await extra.receive(timeout=10)
    assert msg.type is WSMsgType.CLOSE, msg
    assert extra.close_code == 4429 and msg.extra == "too many connections"
    # Another user is not affected, nor are alice's sockets.
    ws_bob, _ = await join(client, unique_id("r"), bob)
    await frames_until_pong(held[0])
    # One of alice's goes: she may open one again.
    await held.pop().close()
    await wait_until(lambda: app[HUB].connection_count() == 3, timeout=10)
    again, _ = await join(client, unique_id("r"), alice)
    assert await metric_line(client, 'svc_websocket_closed_total{reason="too_many_sockets"}') == 1
    for ws in (*held, ws_bob, again):
        await ws.close()


async def test_a_burst_of_joins_cannot_all_pass_the_per_user_limit(aiohttp_client):
    """The count is taken as a join starts, before any await: 10 at once, 3 get in."""
    app = create_app(dataclasses.replace(SETTINGS, max_sockets_per_user=3))
    client = await aiohttp_client(app)
    alice = await new_user(client)
    room = unique_id("r")
    sockets = await asyncio.gather(
        *(client.ws_connect(f"/ws/{room}?user_id={alice}") for _ in range(10))
    )
    firsts = [await ws.receive(timeout=10) for ws in sockets]
    welcomed = [m for m in firsts if m.type is WSMsgType.TEXT]
    refused = [ws for ws, m in zip(sockets, firsts, strict=True) if m.type is WSMsgType.CLOSE]
    assert len(welcomed) == 3 and len(refused) == 7
    assert {ws.close_code for ws in refused} == {4429}
    for ws in sockets:
        await ws.close()


# -- SEND_BUFFER_BUDGET ---------------------------------------------------------------------------


def stalled_socket(port: int, path: str) -> socket.socket:
    """A WebSocket client that never reads, with the smallest receive buffer the kernel
    allows: what the server sends it piles up in the server's memory."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    return sock


async def test_past_the_send_budget_the_slowest_are_closed_first(aiohttp_client):
    budget = 1024 * 1024
    app = create_app(dataclasses.replace(SETTINGS, send_buffer_budget=budget))
    hub = app[HUB]
    hub.limits.frame_rate = hub.limits.frame_burst = 100_000  # the sender floods on purpose
    # Tested alone: no socket is closed for its own backlog (256 KiB by default) here.
    hub.limits.max_backlog = 8 * 1024 * 1024
    client = await aiohttp_client(app)
    room = unique_id("r")
    sender, reader = await new_user(client), await new_user(client)
    ws_sender, _ = await join(client, room, sender)
    ws_reader, _ = await join(client, room, reader)
    # Eight that never read: what is sent to them piles up in the server.
    stalled = [stalled_socket(client.port, f"/ws/{room}") for _ in range(8)]
    await wait_until(lambda: hub.connection_count() == 10, timeout=10)

    received = 0

    async def read_messages():
        nonlocal received
        while True:
            frame = await frame_where(ws_reader, lambda f: f["type"] == "message")
            if frame["data"]["n"] == "last":
                return
            received += 1

    reading = asyncio.create_task(read_messages())
    data = "x" * 8000
    sent = 0
    # Kernel buffers absorb some first; the stalled ones must be closed long before 4,000.
    while hub.stats.closed_budget == 0 and sent < 4000:
        await ws_sender.send_json({"type": "message", "data": {"n": sent, "pad": data}})
        sent += 1
        if sent % 20 == 0:
            # The reader keeps up, as a live client would: it is never the slowest.
            await wait_until(lambda sent=sent: received >= sent - 20, timeout=10)
            assert hub.send_budget.total <= budget + 8 * 9000
    assert hub.stats.closed_budget >= 1, "nothing was closed for the budget"
    assert hub.stats.closed_backlog == 0
    # What waits, sockets being closed included, is within the budget and a frame each.
    assert hub.send_budget.total <= budget + 8 * 9000
    await ws_sender.send_json({"type": "message", "data": {"n": "last"}})
    async with deadline(10):
        await reading
    assert received == sent  # the reader that keeps up lost nothing
    closed = await metric_line(client, 'svc_websocket_closed_total{reason="send_budget"}')
    assert closed == hub.stats.closed_budget
    for sock in stalled:
        sock.close()
    for ws in (ws_sender, ws_reader):
        await ws.close()
