"""Rooms under abuse: one user's many sockets, and the logs during a database outage."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from urllib.parse import urlsplit

import pytest
from aiohttp import WSMsgType
from relay_helpers import Relay, through
from ws_helpers import frame_where, join, new_user, presence_where

from svc.app import create_app
from svc.keys import HUB
from svc.settings import Settings
from svc.testing import deadline, unique_id


async def answers(ws, sent: int) -> list[str]:
    """The type (or error code) of the answer to each of ``sent`` pings."""
    seen = []
    async with deadline(10):
        while len(seen) < sent:
            msg = await ws.receive()
            assert msg.type is WSMsgType.TEXT, msg
            frame = msg.json()
            if frame["type"] in ("pong", "error"):
                seen.append(frame.get("code", frame["type"]))
    return seen


async def test_a_users_sockets_in_a_room_share_one_frame_budget(make_client):
    client = await make_client()
    limits = client.app[HUB].limits
    limits.frame_burst, limits.frame_rate, limits.flood_strikes = 10, 0.001, 1000
    alice, bob = await new_user(client), await new_user(client)
    room = unique_id("r")
    sockets = [(await join(client, room, alice))[0] for _ in range(4)]
    for ws in sockets:
        for _ in range(10):
            await ws.send_json({"type": "ping"})
    seen = [code for ws in sockets for code in await answers(ws, 10)]
    # Four sockets, one budget: ten frames in all, not forty.
    assert seen.count("pong") == 10, seen
    assert seen.count("rate_limited") == 30
    # Another member of the room, and the same user in another room, have their own.
    other, _ = await join(client, room, bob)
    elsewhere, _ = await join(client, unique_id("r"), alice)
    for ws in (other, elsewhere):
        for _ in range(10):
            await ws.send_json({"type": "ping"})
        assert await answers(ws, 10) == ["pong"] * 10
    # Once every socket of the user has left, the user comes back to a full budget.
    for ws in sockets:
        await ws.close()
    # Gone for the server too (with a real broker the leave takes a round trip): bob hears it.
    await frame_where(other, presence_where(room, left=alice))
    back, _ = await join(client, room, alice)
    for _ in range(10):
        await back.send_json({"type": "ping"})
    assert await answers(back, 10) == ["pong"] * 10
    for ws in (other, elsewhere, back):
        await ws.close()


@pytest.fixture
async def relay(postgres_url):
    parts = urlsplit(postgres_url)
    relay = Relay(parts.hostname or "127.0.0.1", parts.port or 5432)
    await relay.start()
    yield relay
    await relay.cut()


@pytest.mark.postgres
async def test_a_database_outage_logs_one_presence_line_and_one_when_it_is_over(
    aiohttp_client, postgres_url, relay, caplog
):
    """The presence sender of a process whose database is gone retries, backing off, with
    one warning for the outage (no traceback) and one line when it sends again."""
    caplog.set_level(logging.INFO, "svc.rooms.presence")
    bus = f"memory://{unique_id('bus')}"  # two processes' worth of apps on one broker
    settings = Settings(bcrypt_rounds=4, database_timeout=5)
    cut_off = await aiohttp_client(
        create_app(
            dataclasses.replace(settings, database_url=through(postgres_url, relay), broker_url=bus)
        )
    )
    healthy = await aiohttp_client(
        create_app(dataclasses.replace(settings, database_url=postgres_url, broker_url=bus))
    )
    alice, bob = await new_user(healthy), await new_user(healthy)
    room = unique_id("r")
    watching, _ = await join(cut_off, room, alice)
    await relay.cut()
    joined, _ = await join(healthy, room, bob)  # news the cut-off process cannot read
    await asyncio.sleep(3)  # long enough for dozens of retries at the old 50 ms pace

    def presence_lines():
        return [r for r in caplog.records if r.name == "svc.rooms.presence"]

    # Messages do not wait for storage (nor cut the presence's back-off short): numbered,
    # they go at once, ahead of the presence that waits.
    await joined.send_json({"type": "message", "data": "during the outage"})
    during = await frame_where(watching, lambda f: f["type"] == "message", timeout=2)
    assert during["data"] == "during the outage" and isinstance(during["seq"], int)

    lines = presence_lines()
    assert [r.levelname for r in lines] == ["WARNING"], [r.getMessage() for r in lines]
    assert lines[0].exc_info is None and "retrying" in lines[0].getMessage()

    await relay.restore()
    await frame_where(watching, presence_where(room, joined=bob), timeout=20)
    lines = presence_lines()
    assert [r.levelname for r in lines] == ["WARNING", "INFO"], [r.getMessage() for r in lines]
    assert "sending again" in lines[1].getMessage()
    for ws in (watching, joined):
        await ws.close()
