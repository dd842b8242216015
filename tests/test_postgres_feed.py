"""The Postgres broker's change feed: published by svc after commit, batched, read back when
too big; a write made outside svc reaches rooms through the hub's periodic re-read."""

from __future__ import annotations

import asyncio
import json

import aiopg
import pytest
from svc_postgres import messages
from svc_postgres.payloads import MESSAGES
from svc_postgres.publisher import Publisher
from ws_helpers import frame_where, frames_until_pong, join, new_user

from svc.app import create_app
from svc.keys import HUB
from svc.settings import Settings
from svc.testing import deadline, unique_id

pytestmark = pytest.mark.postgres


@pytest.fixture
async def admin(postgres_url):
    """A connection of the test's own, outside svc."""
    async with aiopg.connect(postgres_url) as conn:
        yield conn


async def sql(conn, query: str, *params):
    async with conn.cursor() as cur:
        await cur.execute(query, params)
        return await cur.fetchall() if cur.description else None


async def first_row(conn, query: str, *params):
    return (await sql(conn, query, *params))[0]


async def test_no_trigger_announces_writes(postgres_storage, admin):
    """Migration 3 removed the per-row NOTIFY trigger (a global lock at every commit)."""
    rows = await sql(admin, "SELECT tgname FROM pg_trigger WHERE tgrelid = 'users'::regclass")
    assert [name for (name,) in rows if not name.startswith("RI_")] == []


async def test_a_burst_of_notifications_is_one_statement_and_keeps_its_order(admin, postgres_url):
    statements = []

    async def execute(query, params):
        statements.append(params)
        return (await sql(admin, query, *params))[0]

    channel = unique_id("svc_test_")
    async with aiopg.connect(postgres_url) as listening:
        await sql(listening, f"LISTEN {channel}")
        publisher = Publisher("test-node", execute)
        await asyncio.gather(*(publisher.send(channel, str(n)) for n in range(50)))
        heard = []
        async with deadline(10):
            while len(heard) < 50:
                heard.append((await listening.notifies.get()).payload)
    assert heard == [str(n) for n in range(50)]
    # The first send goes alone or takes the others along; never a statement each.
    assert len(statements) <= 2, len(statements)


async def test_a_message_too_big_for_a_payload_goes_through_the_table(admin, postgres_url):
    async with aiopg.connect(postgres_url) as listening:
        await sql(listening, f"LISTEN {MESSAGES}")
        body = '{"r":"r1","f":"u1","d":"' + "x" * 9000 + '"}'
        publisher = Publisher("test-node", lambda q, p: first_row(admin, q, *p))
        await publisher.send(MESSAGES, body, True)
        async with deadline(10):
            while '"test-node"' not in (notify := await listening.notifies.get()).payload:
                pass  # another test's message
    row_id = json.loads(notify.payload)["i"]
    assert await sql(admin, messages.READ, [row_id]) == [(row_id, body)]
    # Housekeeping deletes it once it is older than KEEP seconds.
    await sql(
        admin, "UPDATE svc_messages SET sent_at = sent_at - interval '1 hour' WHERE id = %s", row_id
    )
    await sql(admin, messages.CLEAN, messages.KEEP)
    assert await sql(admin, messages.READ, [row_id]) == []


async def test_a_write_made_outside_svc_reaches_rooms_by_the_re_read(
    aiohttp_client, postgres_url, admin
):
    client = await aiohttp_client(create_app(Settings(database_url=postgres_url, bcrypt_rounds=4)))
    alice = await new_user(client)
    room = unique_id("r")
    ws, _ = await join(client, room, alice)
    await sql(
        admin,
        'UPDATE users SET profile = profile || \'{"bio": "by hand"}\', version = version + 1'
        " WHERE id = %s",
        alice,
    )
    # Not announced (no trigger): nothing arrives until the hub re-reads (every 15 s).
    assert not [f for f in await frames_until_pong(ws) if f["type"] == "profile_updated"]
    await client.app[HUB].reconcile()
    update = await frame_where(ws, lambda f: f["type"] == "profile_updated")
    assert (update["version"], update["profile"]["bio"]) == (2, "by hand")
    await ws.close()


async def test_a_profile_too_big_for_a_payload_is_read_back(aiohttp_client, postgres_url):
    settings = Settings(database_url=postgres_url, bcrypt_rounds=4)
    one, two = [await aiohttp_client(create_app(settings)) for _ in range(2)]
    alice = await new_user(one)
    room = unique_id("r")
    ws, _ = await join(two, room, alice)
    urls = {f"size{i}": "https://cdn.example/" + "a" * 1000 + str(i) for i in range(16)}
    response = await one.put(f"/users/{alice}/profile", json={"avatar_urls": urls})
    assert response.status == 200
    update = await frame_where(ws, lambda f: f["type"] == "profile_updated")
    seq = update.pop("seq", None)  # numbered, or a repair without seq: the record is the same
    assert seq is None or type(seq) is int
    assert update == {"type": "profile_updated", "room": room, **(await response.json())}
    await ws.close()


async def test_a_password_change_is_not_a_profile_event(aiohttp_client, postgres_url):
    client = await aiohttp_client(create_app(Settings(database_url=postgres_url, bcrypt_rounds=4)))
    alice = await new_user(client)
    room = unique_id("r")
    ws, _ = await join(client, room, alice)
    response = await client.put(f"/users/{alice}/password", json={"new_password": "long enough"})
    assert response.status == 200
    await client.put(f"/users/{alice}/profile", json={"bio": "after"})
    update = await frame_where(ws, lambda f: f["type"] == "profile_updated")
    assert update["version"] == 2  # the first event: the password change made none
    await ws.close()


async def test_stored_changes_travel_exactly(aiohttp_client, postgres_url):
    """The record rides in the payload: the other app shows it without reading it back."""
    settings = Settings(database_url=postgres_url, bcrypt_rounds=4)
    one, two = [await aiohttp_client(create_app(settings)) for _ in range(2)]
    alice = await new_user(one)
    room = unique_id("r")
    ws, _ = await join(two, room, alice)
    response = await one.put(
        f"/users/{alice}/profile", json={"display_name": "Ünïcødé ☃", "bio": 'a\nb"c'}
    )
    update = await frame_where(ws, lambda f: f["type"] == "profile_updated")
    # Numbered (seq) when the writer's process had heard alice's join when it published; a
    # repair without seq when it had not (docs/resume.md): the record is the same either way.
    seq = update.pop("seq", None)
    assert seq is None or type(seq) is int
    assert update == {"type": "profile_updated", "room": room, **(await response.json())}
    await ws.close()


async def test_metrics_show_the_broker(aiohttp_client, postgres_url):
    client = await aiohttp_client(create_app(Settings(database_url=postgres_url, bcrypt_rounds=4)))
    alice, bob = await new_user(client), await new_user(client)
    ws, _ = await join(client, unique_id("r"), alice)  # alice's changes are news now
    await client.put(f"/users/{alice}/profile", json={"bio": "counted"})
    await client.put(f"/users/{bob}/profile", json={"bio": "connected nowhere: no NOTIFY"})
    text = await (await client.get("/metrics")).text()
    await ws.close()
    figures = {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line.startswith("svc_broker_")
    }
    assert figures["svc_broker_listener_up"] == 1
    assert figures["svc_broker_notifications_sent"] >= 1  # alice's update
    assert figures["svc_broker_changes_unsent"] >= 3  # the two creates, bob's update
    assert 1 <= figures["svc_broker_notify_statements"] <= figures["svc_broker_notifications_sent"]
