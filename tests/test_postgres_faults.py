"""Postgres in trouble: lost connections mid-traffic, an outage, and recovery without a restart.

The shared cluster is never stopped (other tests use it).  Two real faults instead:
``pg_terminate_backend`` on exactly this app's server-side connections (storage
and broker, found by their application_name), and an outage of the network path between svc and
Postgres, made by routing svc through a TCP relay the test can cut and restore.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

import aiopg
import pytest
from aiohttp import WSMsgType
from relay_helpers import Relay, through
from ws_helpers import frame_where, frames_until_pong, join, new_user, presence_where

from svc.app import create_app
from svc.keys import BROKER, STORAGE
from svc.settings import Settings
from svc.testing import deadline, unique_id, wait_until

pytestmark = pytest.mark.postgres


@pytest.fixture
async def relay(postgres_url):
    parts = urlsplit(postgres_url)
    relay = Relay(parts.hostname or "127.0.0.1", parts.port or 5432)
    await relay.start()
    yield relay
    await relay.cut()


@pytest.fixture
async def admin(postgres_url):
    """A connection of the test's own, outside svc."""
    conn = await aiopg.connect(postgres_url)
    yield conn
    conn.close()


async def sql(conn, query: str, *params):
    async with conn.cursor() as cur:
        await cur.execute(query, params)
        return await cur.fetchall() if cur.description else None


def postgres_app(url: str):
    return create_app(Settings(database_url=url, bcrypt_rounds=4))


async def test_outage_503_then_recovery_and_repair(aiohttp_client, postgres_url, relay):
    client = await aiohttp_client(postgres_app(through(postgres_url, relay)))
    other = await aiohttp_client(postgres_app(postgres_url))  # another process, not cut off
    watched = await new_user(client)
    room = unique_id("r")
    # A member connected throughout: the database goes away, the socket does not.
    ws, _ = await join(client, room, watched)

    await relay.cut()
    for method, path, body in [
        ("GET", f"/users/{watched}", None),
        ("PUT", f"/users/{watched}/profile", {"bio": "lost"}),
        ("POST", "/users", {"username": unique_id()}),
    ]:
        started = time.monotonic()
        resp = await client.request(method, path, json=body)
        assert resp.status == 503, (method, path)
        assert (await resp.json())["error"]["code"] == "unavailable"
        assert resp.headers["Retry-After"] == "1"
        assert time.monotonic() - started < 6  # bounded by the pool timeout, never a hang

    async def ready_names_every_part_down():
        resp = await client.get("/health/ready")
        message = (await resp.json())["error"]["message"] if resp.status == 503 else ""
        return (
            "storage is not ready: pool is down" in message
            and "broker is not ready: pool is down" in message
            and "listener is down" in message
        )

    await wait_until(ready_names_every_part_down, 15, 0.05)

    # Another process writes while this one cannot hear: its NOTIFY is lost to us.
    resp = await other.put(f"/users/{watched}/profile", json={"bio": "during the outage"})
    assert (await resp.json())["version"] == 2

    await relay.restore()

    async def ready():
        resp = await client.get("/health/ready")
        return resp.status == 200 and await resp.json()

    body = await wait_until(ready, 15, 0.05)
    assert body["checks"] == {"storage.pool": "ok", "broker.pool": "ok", "broker.listener": "ok"}
    # The listener came back and reported the gap: the hub re-read and repaired...
    update = await frame_where(ws, lambda f: f["type"] == "profile_updated", timeout=15)
    assert (update["version"], update["profile"]["bio"]) == (2, "during the outage")
    # ...and the change made right after recovery arrives as usual, once, in order.
    resp = await client.put(f"/users/{watched}/profile", json={"bio": "after"})
    assert resp.status == 200
    assert (await resp.json())["version"] == 3  # the refused PUT left no trace
    update = await frame_where(ws, lambda f: f["type"] == "profile_updated")
    assert (update["version"], update["profile"]["bio"]) == (3, "after")
    assert not [f for f in await frames_until_pong(ws) if f["type"] == "profile_updated"]
    await ws.close()


async def test_a_deletion_during_an_outage_is_repaired(aiohttp_client, postgres_url, relay):
    client = await aiohttp_client(postgres_app(through(postgres_url, relay)))
    other = await aiohttp_client(postgres_app(postgres_url))
    alice, bob = await new_user(client), await new_user(client)
    room = unique_id("r")
    ws_a, _ = await join(client, room, alice)
    ws_b, _ = await join(client, room, bob)
    await relay.cut()
    assert (await other.delete(f"/users/{alice}")).status == 204  # unheard here
    await relay.restore()
    # The re-read after the gap finds her gone: her socket is closed, and she leaves.
    async with deadline(15):
        while (msg := await ws_a.receive()).type is WSMsgType.TEXT:
            pass
    assert msg.type is WSMsgType.CLOSE and msg.data == 4404
    left = await frame_where(ws_b, presence_where(room, left=alice), timeout=15)
    assert left["member_count"] == 1
    await ws_b.close()


async def test_terminated_connections_mid_traffic(aiohttp_client, postgres_url, admin):
    client = await aiohttp_client(postgres_app(postgres_url))
    storage, broker = client.app[STORAGE], client.app[BROKER]
    watcher, _ = await join(client, unique_id("r"))
    results: list[tuple[int, str, dict]] = []
    terminated = asyncio.Event()

    async def writer(n: int):
        for _ in range(n):
            username = unique_id()
            resp = await client.post("/users", json={"username": username})
            results.append((resp.status, username, await resp.json()))
            if len(results) == 30:
                terminated.set()

    traffic = asyncio.gather(*(writer(20) for _ in range(4)))
    await terminated.wait()
    killed = await sql(
        admin,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = ANY(%s)",
        [storage.application_name, broker.node_id],
    )
    await traffic
    assert len(killed) >= 3  # the storage pool's, the broker pool's and the listener's

    statuses = {status for status, _, _ in results}
    assert statuses <= {201, 503}, statuses  # never a 500
    assert all(body["error"]["code"] == "unavailable" for s, _, body in results if s == 503)
    # No acknowledged write is lost.
    created = [username for status, username, _ in results if status == 201]
    rows = await sql(
        admin,
        "SELECT profile->>'username' FROM users WHERE profile->>'username' = ANY(%s)",
        created,
    )
    assert sorted(r[0] for r in rows) == sorted(created)

    # Recovered by itself: ready again (the listener is back), and rooms work across apps.
    async def ready():
        return (await client.get("/health/ready")).status == 200

    await wait_until(ready, 15, 0.05)
    other = await aiohttp_client(postgres_app(postgres_url))
    alice = await new_user(other)
    room = unique_id("r")
    ws, _ = await join(client, room, alice)
    await other.put(f"/users/{alice}/profile", json={"bio": "heard"})
    update = await frame_where(ws, lambda f: f["type"] == "profile_updated")
    assert update["profile"]["bio"] == "heard"
    await ws.close()
    await watcher.close()


async def test_a_stuck_write_answers_503_in_seconds_and_never_commits_late(
    aiohttp_client, postgres_url, admin
):
    """A row locked elsewhere: the request gives up after the pool timeout, and the server
    cancels the statement right after, so the write does not land once the lock is gone."""
    client = await aiohttp_client(postgres_app(postgres_url))
    resp = await client.post("/users", json={"username": unique_id()})
    user_id = (await resp.json())["id"]
    async with aiopg.connect(postgres_url) as locker, locker.cursor() as cur:
        await cur.execute("BEGIN")
        await cur.execute("SELECT 1 FROM users WHERE id = %s FOR UPDATE", (user_id,))
        started = time.monotonic()
        resp = await client.put(f"/users/{user_id}/profile", json={"bio": "stuck"})
        waited = time.monotonic() - started
        assert resp.status == 503
        assert (await resp.json())["error"]["code"] == "unavailable"
        assert waited < 8
        name = client.app[STORAGE].application_name

        async def server_gave_up():
            waiting = await sql(
                admin,
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE application_name = %s AND wait_event_type = 'Lock'",
                name,
            )
            return waiting[0][0] == 0

        # The statement timeout, not the lock, ended it.
        await wait_until(server_gave_up, 15, 0.05)
        await cur.execute("COMMIT")
    resp = await client.get(f"/users/{user_id}")
    body = await resp.json()
    assert (body["version"], body["profile"]["bio"]) == (1, None)
