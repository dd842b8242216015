"""The Postgres broker's room numbers and history, in its own tables (docs/postgres.md,
"Room history"): what the shared conformance rules do not look at.
"""

import asyncio
from datetime import datetime, timezone

import aiopg
import pytest
from svc_postgres import PostgresBroker
from svc_postgres.history import SWEEP

from svc.broker import Change, RoomMessage
from svc.storage import PROFILE_FIELDS, User
from svc.testing import unique_id
from svc.testing.history import brokers_with_history

pytestmark = pytest.mark.postgres


@pytest.fixture
async def open_broker(postgres_url):
    async with brokers_with_history(lambda: PostgresBroker(postgres_url)) as factory:
        yield factory


async def sql(url: str, query: str, *params):
    async with aiopg.connect(url) as conn, conn.cursor() as cur:
        await cur.execute(query, params)
        return await cur.fetchall() if cur.description else None


async def test_the_postgres_broker_numbers_so_the_history_rules_run(open_broker):
    """The conformance suite's history rules skip a broker that numbers nothing: this one
    must number (its own presence transitions included, announced with their numbers)."""
    broker, heard = await open_broker()
    room, alice = unique_id("r"), unique_id()
    assert await broker.room_position(room) is not None
    await broker.presence_join(room, alice)
    (joined,) = heard.events
    assert joined.epoch is not None and joined.seq == 1
    message = await broker.publish_message(RoomMessage(room, alice, '"hi"'))
    assert (message.epoch, message.seq) == (joined.epoch, 2)


async def test_the_history_is_trimmed_as_it_grows(open_broker, postgres_url):
    broker, _ = await open_broker(size=3)
    room = unique_id("r")
    for n in range(10):
        await broker.publish_message(RoomMessage(room, "w", str(n)))
    rows = await sql(
        postgres_url, "SELECT seq FROM svc_room_events WHERE room_id = %s ORDER BY seq", room
    )
    assert rows == [(8,), (9,), (10,)], "each event deletes the one that fell out"


async def test_the_sweep_drops_old_events_and_silent_rooms(open_broker, postgres_url):
    broker, _ = await open_broker()
    empty, occupied, alice = unique_id("r"), unique_id("r"), unique_id()
    await broker.presence_join(occupied, alice)
    first = await broker.publish_message(RoomMessage(empty, "w", "old"))
    await broker.publish_message(RoomMessage(occupied, "w", "old"))
    await sql(
        postgres_url,
        "UPDATE svc_room_events SET at = at - interval '1 hour' WHERE room_id = ANY(%s)",
        [empty, occupied],
    )
    await sql(
        postgres_url,
        "UPDATE svc_room_numbers SET touched_at = touched_at - interval '1 hour'"
        " WHERE room_id = ANY(%s)",
        [empty, occupied],
    )
    await sql(postgres_url, SWEEP, 300.0, 300.0)
    left = await sql(
        postgres_url,
        "SELECT room_id FROM svc_room_events WHERE room_id = ANY(%s)",
        [empty, occupied],
    )
    assert left == [], "events past ROOM_HISTORY_TTL are deleted"
    counters = await sql(
        postgres_url,
        "SELECT room_id FROM svc_room_numbers WHERE room_id = ANY(%s)",
        [empty, occupied],
    )
    assert counters == [(occupied,)], "a silent room with nobody present loses its counter"
    again = await broker.publish_message(RoomMessage(empty, "w", "new"))
    assert again.epoch != first.epoch and again.seq == 1, "its next event starts a new epoch"
    assert await broker.room_history(empty, first.epoch, first.seq) is None


async def test_batches_over_shared_rooms_neither_deadlock_nor_skip_a_number(open_broker):
    """Two processes write at once to the same rooms, in opposite orders, with joins, leaves
    and changes of a user present in all of them: every call succeeds (no deadlock: the
    counter rows are locked in room order) and each room's numbers run 1..N with no gap."""
    one, _ = await open_broker()
    two, _ = await open_broker()
    rooms = [unique_id("r") for _ in range(4)]
    everywhere = unique_id()
    for room in rooms:
        await one.presence_join(room, everywhere)
        await two.presence_join(room, everywhere)  # the same user on both processes

    async def writer(broker, order, tag):
        for n in range(30):
            for room in order:
                await broker.publish_message(RoomMessage(room, tag, str(n)))

    async def changes(broker, start):
        for version in range(start, start + 30, 2):
            await broker.publish_change(Change(everywhere, version, _user(everywhere, version)))

    async def crowd(broker, order):
        for _ in range(10):
            users = [unique_id() for _ in range(4)]
            await asyncio.gather(*(broker.presence_join(room, u) for room in order for u in users))
            await asyncio.gather(*(broker.presence_leave(room, u) for room in order for u in users))

    tasks = [
        writer(one, rooms, "one"),
        writer(two, rooms[::-1], "two"),
        changes(one, 2),
        changes(two, 3),
        crowd(one, rooms),
        crowd(two, rooms[::-1]),
    ]
    # one task per kind per process, each sending while the others' statements are in
    # flight: their batches overlap in every room
    await asyncio.wait_for(asyncio.gather(*(asyncio.create_task(t) for t in tasks)), 120)
    for room in rooms:
        epoch, last = await one.room_position(room)
        history = await one.room_history(room, epoch, max(0, last - 100))
        assert history is not None
        assert [seq for seq, _ in history.events] == list(range(max(0, last - 100) + 1, last + 1))


def _user(user_id: str, version: int) -> User:
    moment = datetime(2024, 5, 17, 12, 30, 15, tzinfo=timezone.utc)
    profile = {name: None for name in PROFILE_FIELDS}
    return User(id=user_id, profile=profile, version=version, created_at=moment, updated_at=moment)
