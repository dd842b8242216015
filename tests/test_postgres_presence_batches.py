"""Presence on Postgres is written in batches: a crowd that joins or leaves at once costs a
few commits, and each join and leave is still decided, and announced, exactly once."""

from __future__ import annotations

import asyncio
import math

import aiopg
import pytest
from svc_postgres import pool as pg
from svc_postgres.presence import JOINS_PER_BATCH, LEAVES_PER_BATCH, Presence

from svc.broker import PresenceChange
from svc.testing import unique_id, within

pytestmark = pytest.mark.postgres

CROWD = 150


@pytest.fixture
async def database(postgres_url):
    await pg.migrate_schema(postgres_url)
    pool = await pg.create(postgres_url, 2)
    yield pool
    await pg.terminate(pool)


def a_node(
    database, statements: list[str], announced: list[PresenceChange], name: str = "node"
) -> Presence:
    async def fetch(sql, params, one=True):
        statements.append(sql.split("(")[0])
        return await pg.run(database, sql, params, one)

    return Presence(unique_id(name + "-"), fetch, announced.append)


async def test_a_crowd_leaving_at_once_is_a_few_statements_each_announced_once(database):
    statements: list[str] = []
    announced: list[PresenceChange] = []
    node = a_node(database, statements, announced)
    await node.register()
    room = unique_id("r")
    users = [unique_id("u") for _ in range(CROWD)]
    await asyncio.gather(*(node.join(room, user) for user in users))
    joins = statements.count("SELECT svc_presence_join_many")
    assert math.ceil(CROWD / JOINS_PER_BATCH) <= joins < CROWD

    await asyncio.gather(*(node.leave(room, user) for user in users))
    leaves = statements.count("SELECT svc_presence_leave_many")
    assert math.ceil(CROWD / LEAVES_PER_BATCH) <= leaves <= math.ceil(CROWD / LEAVES_PER_BATCH) + 1
    assert "SELECT svc_presence_leave" not in statements  # never one statement per leave
    assert sorted(c.user_id for c in announced if not c.present) == sorted(users)
    assert await node.count(room) == 0


async def test_a_leave_is_announced_only_when_the_last_holder_goes(database):
    statements: list[str] = []
    here: list[PresenceChange] = []
    there: list[PresenceChange] = []
    one, two = a_node(database, statements, here), a_node(database, statements, there)
    await one.register()
    await two.register()
    room, user = unique_id("r"), unique_id("u")
    await one.join(room, user)
    await one.join(room, user)  # a second socket of the same user on the same node
    await two.join(room, user)  # and one on another node
    assert here == [PresenceChange(room, user, True)] and there == []
    await asyncio.gather(one.leave(room, user), two.leave(room, user))
    assert [c for c in here + there if not c.present] == []  # one socket is still here
    await one.leave(room, user)
    assert here[-1] == PresenceChange(room, user, False)
    assert await one.count(room) == 0


async def test_a_leave_and_a_join_again_in_one_moment_leave_the_user_present(database):
    """A reconnect: the old socket's leave and the new one's join may be written in either
    order; the user ends present, held once."""
    statements: list[str] = []
    announced: list[PresenceChange] = []
    node = a_node(database, statements, announced)
    await node.register()
    room, user = unique_id("r"), unique_id("u")
    await node.join(room, user)
    await asyncio.gather(node.leave(room, user), node.join(room, user))
    assert await node.members(room, None, 10) == [user]
    await node.leave(room, user)
    assert await node.count(room) == 0


@pytest.mark.parametrize("name", ["svc-broker", 'odd "name" é\x01\\'])
async def test_a_node_skips_its_own_notifications_and_reads_the_others(
    database, postgres_url, name
):
    """Its own are recognised without parsing, by how they end (Postgres escapes a name as
    JSON does), and skipped.  Another node's are read."""
    statements: list[str] = []
    mine = a_node(database, statements, [], name)
    theirs = a_node(database, statements, [])
    room, user = unique_id("r"), unique_id("u")
    async with aiopg.connect(postgres_url) as listening:
        async with listening.cursor() as cur:
            await cur.execute("LISTEN svc_presence")
        await mine.join(room, user)
        payload = (await within(10, listening.notifies.get())).payload
    assert payload.endswith(mine._own_tail)
    assert mine.parse(payload) is None
    assert theirs.parse(payload) == PresenceChange(room, user, True)
