"""Listeners prove themselves: a receiving broker connection that goes mute is found by its
probe, named by readiness, logged once, re-opened, and the rooms re-read.

Two apps share Postgres storage and a broker.  The first reaches its broker's server
through a relay (relay_helpers.py) that can stop forwarding the server's bytes to the
receiving connection (``LISTEN``, or Redis ``SUBSCRIBE``) while leaving it open and every
other connection working: nothing fails, events just stop arriving, as behind a pooler
that unlinked the session.  Real sockets, real servers.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from urllib.parse import urlsplit

import pytest
from relay_helpers import Relay, through
from ws_helpers import frame_where, join, new_user

from svc.app import create_app
from svc.settings import Settings
from svc.testing import unique_id, wait_until

pytestmark = pytest.mark.postgres

PROBE_EVERY = 1.0


def with_param(url: str, param: str) -> str:
    return url + ("&" if "?" in url else "?") + param


def app(database_url: str, broker_url: str):
    settings = Settings(database_url=database_url, bcrypt_rounds=4)
    return create_app(dataclasses.replace(settings, broker_url=broker_url))


async def _ready_message(client) -> tuple[int, str]:
    response = await client.get("/health/ready")
    body = await response.json()
    return response.status, body["error"]["message"] if response.status == 503 else ""


async def _a_listener_that_goes_mute(aiohttp_client, caplog, postgres_url, broker_url, marker):
    """The whole story, for either broker; returns the readiness message seen while mute."""
    parts = urlsplit(broker_url)
    relay = Relay(parts.hostname, parts.port, marker)
    await relay.start()
    caplog.set_level(logging.INFO)
    clients = []
    try:
        muted_url = with_param(through(broker_url, relay), f"probe_every={PROBE_EVERY:g}")
        client = await aiohttp_client(app(postgres_url, muted_url))
        other = await aiohttp_client(app(postgres_url, broker_url))
        clients += [client, other]
        watched = await new_user(other)
        room = unique_id("r")
        ws, _ = await join(client, room, watched)
        response = await other.put(f"/users/{watched}/profile", json={"bio": "before"})
        assert response.status == 200
        frame = await frame_where(ws, lambda f: f["type"] == "profile_updated")
        assert frame["profile"]["bio"] == "before"
        caplog.clear()

        relay.mute()
        started = time.monotonic()

        async def not_ready():
            status, message = await _ready_message(client)
            return message if status == 503 else None

        # Found within two probe periods (one to send, one for the echo), with slack.
        message = await wait_until(not_ready, 2 * PROBE_EVERY + 3, 0.02)  # readiness 503 while mute
        assert time.monotonic() - started < 2 * PROBE_EVERY + 3
        # A change made now is lost to the mute connection: only the repair brings it.
        response = await other.put(f"/users/{watched}/profile", json={"bio": "while mute"})
        assert response.status == 200
        relay.unmute()

        async def ready():
            return (await _ready_message(client))[0] == 200

        await wait_until(ready, 4 * PROBE_EVERY + 5, 0.02)  # readiness 200 again
        frame = await frame_where(
            ws, lambda f: f["type"] == "profile_updated" and f["profile"]["bio"] == "while mute"
        )
        # Delivery resumed: a change made through the other app arrives live.
        response = await other.put(f"/users/{watched}/profile", json={"bio": "after"})
        version = (await response.json())["version"]
        frame = await frame_where(ws, lambda f: f["type"] == "profile_updated")
        assert (frame["version"], frame["profile"]["bio"]) == (version, "after")

        lines = [r.getMessage() for r in caplog.records if r.name.startswith(("svc", "svc_"))]
        stalled = [line for line in lines if "not delivering" in line]
        assert len(stalled) == 1, lines
        assert len([line for line in lines if "delivers again" in line]) == 1, lines
        # The probe's line is the only one about it: no "lost"/"reconnected" beside it.
        assert not [line for line in lines if "lost" in line or "reconnected" in line], lines
        await ws.close()
        return message
    finally:
        relay.unmute()
        for each in clients:  # before the relay goes: their goodbyes pass through it
            await each.close()
        await relay.close()


async def test_a_mute_listen_connection_is_named_by_readiness_reopened_and_repaired(
    aiohttp_client, caplog, postgres_url
):
    message = await _a_listener_that_goes_mute(
        aiohttp_client, caplog, postgres_url, postgres_url, b"LISTEN SVC_"
    )
    assert message.startswith("broker is not ready: listener is"), message
    assert f"not delivering: no echo in {PROBE_EVERY:g} s" in message


@pytest.mark.redis
async def test_a_mute_pubsub_connection_is_named_by_readiness_reopened_and_repaired(
    aiohttp_client, caplog, postgres_url, redis_url
):
    message = await _a_listener_that_goes_mute(
        aiohttp_client, caplog, postgres_url, redis_url, b"SUBSCRIBE"
    )
    assert message.startswith("broker is not ready: redis"), message
    assert f"not delivering: no echo in {PROBE_EVERY:g} s" in message
