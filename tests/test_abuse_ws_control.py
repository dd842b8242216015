"""WebSocket control frames under abuse: a ping flood is cut off like a text flood (issue 24,
finding 4), and a client that pings and resets its connection costs no 500 (finding 6)."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import socket
import struct

from aiohttp import WSMsgType
from ws_helpers import frames_until_pong

from svc.app import create_app
from svc.keys import HUB
from svc.settings import Settings
from svc.testing import deadline, unique_id, wait_until

SETTINGS = Settings(bcrypt_rounds=4)


async def test_a_ping_flood_is_closed_with_1008_like_a_text_flood(aiohttp_client):
    """A watcher sending control pings as fast as it can was answered every one (842,000
    pongs in 8 s) and never closed: pings now draw on the frame budget."""
    client = await aiohttp_client(create_app(SETTINGS))
    ws = await client.ws_connect(f"/ws/{unique_id('r')}", autoping=False)
    assert (await ws.receive(timeout=10)).type is WSMsgType.TEXT  # the welcome
    sent = 0
    # burst 100 + 100 strikes: closed after ~200 frames; 2,000 sent leaves room for a slow CI.
    while sent < 2000 and not ws.closed:
        try:
            await ws.ping(b"x")
        except ConnectionError:
            break
        sent += 1
    pongs = 0
    async with deadline(10):
        while (msg := await ws.receive()).type is WSMsgType.PONG:
            pongs += 1
    assert msg.type is WSMsgType.CLOSE, msg
    assert ws.close_code == 1008, ws.close_code
    assert msg.extra == "too many frames"
    # Over the rate, a ping gets no pong: the flood got a burst's worth back, not one each.
    assert pongs <= 110, pongs


async def test_a_ping_within_the_rate_is_still_answered(aiohttp_client):
    client = await aiohttp_client(create_app(SETTINGS))
    ws = await client.ws_connect(f"/ws/{unique_id('r')}", autoping=False)
    assert (await ws.receive(timeout=10)).type is WSMsgType.TEXT
    await ws.ping(b"hello")
    msg = await ws.receive(timeout=10)
    assert msg.type is WSMsgType.PONG and msg.data == b"hello"
    await frames_until_pong(ws)  # and the socket goes on
    await ws.close()


def _ping_and_reset(port: int, room: str) -> None:
    """A raw client: handshake, one masked ping, then RST (SO_LINGER 0) without reading."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /ws/{room} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    mask = os.urandom(4)
    payload = b"bye!"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(bytes((0x89, 0x80 | len(payload))) + mask + masked)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


async def test_a_client_that_pings_and_resets_costs_no_500(aiohttp_client, caplog):
    app = create_app(SETTINGS)
    client = await aiohttp_client(app)
    room = unique_id("r")
    caplog.set_level(logging.ERROR)
    for _ in range(20):  # the 20 resets gave 20 tracebacks
        await asyncio.to_thread(_ping_and_reset, client.port, room)
    # Every reset socket has left (each handler has ended) before the log is read.
    await wait_until(lambda: app[HUB].connection_count() == 0, timeout=10)
    await asyncio.sleep(0.1)  # the last handler's own end, after its leave
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []
    metrics = await (await client.get("/metrics")).text()
    ws_samples = [line for line in metrics.splitlines() if 'route="/ws/{room_id}"' in line]
    assert ws_samples, "no sample of the WebSocket route"
    assert not [line for line in ws_samples if 'status="500"' in line], ws_samples
