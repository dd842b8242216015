"""A process that expires a dead peer's presence says so in one line (Postgres broker)."""

from __future__ import annotations

import asyncio
import logging

import aiopg
import pytest
from svc_postgres import PostgresBroker

from svc.broker import PresenceChange
from svc.testing import unique_id, wait_until
from svc.testing.broker import Recorder

pytestmark = pytest.mark.postgres


async def test_a_dead_node_is_expired_once_and_logged_once(postgres_url, caplog):
    caplog.set_level(logging.WARNING, logger="svc_postgres.presence")
    brokers = [PostgresBroker(postgres_url) for _ in range(2)]
    heard = [Recorder(), Recorder()]
    for broker, recorder in zip(brokers, heard, strict=True):
        await broker.open(recorder)
    ghost, room, alice = unique_id("ghost-"), unique_id("r"), unique_id()
    try:
        # A process that died without a goodbye, its last heartbeat long ago.
        async with aiopg.connect(postgres_url) as conn, conn.cursor() as cur:
            await cur.execute(
                "INSERT INTO svc_nodes (id, seen_at) VALUES (%s, now() - interval '1 hour')",
                (ghost,),
            )
            await cur.execute("SELECT svc_presence_join(%s, %s, %s, 1)", (room, alice, ghost))
        # Both live processes beat at once: one of them expires it, and says so once.
        await asyncio.gather(*(broker._presence.beat() for broker in brokers))
        # (Only this ghost's lines: nodes of other tests' killed processes may expire too.)
        lines = [r.getMessage() for r in caplog.records if ghost in r.getMessage()]
        assert len(lines) == 1 and "expired presence node" in lines[0], lines
        gone = PresenceChange(room, alice, False)
        await wait_until(lambda: all(gone in recorder.presence for recorder in heard))
    finally:
        for broker in brokers:
            await broker.close()
