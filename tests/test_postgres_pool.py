"""The pool (svc_postgres/pool.py): borrowers take turns, first come first served, and a
connection is kept between turns unless it failed.

aiopg alone lets a borrower that arrives while a connection is being handed back take it
before the waiter woken for it; here each worker asks again the moment its statement is
done, and with aiopg alone the first worker kept the one connection for all its turns.
"""

from __future__ import annotations

import asyncio
import contextlib

import aiopg
import pytest
from svc_postgres import pool as pg

from svc.storage import Unavailable

pytestmark = pytest.mark.postgres


async def test_borrowers_of_a_busy_pool_are_served_in_the_order_they_came(postgres_url):
    pool = await pg.create(postgres_url, maxsize=1)
    served: list[str] = []

    async def worker(name: str) -> None:
        for _ in range(4):
            # pg_sleep: an answer that is not there yet when aiopg first polls. A plain
            # SELECT on loopback could be, and then (Python 3.12+, whose wait_for does not
            # yield on a done future) the first worker ran all its turns before the others
            # had asked for one: nothing to order, and the test failed 1 run in 3 on 3.13.
            (value,) = await pg.run(pool, "SELECT %s FROM pg_sleep(0.01)", (name,))
            served.append(value)

    try:
        await asyncio.gather(*(worker(name) for name in "abc"))
    finally:
        await pg.terminate(pool)
    assert served == list("abc" * 4)


async def test_a_borrower_waits_for_its_turn_no_longer_than_the_pool_timeout(
    postgres_url, monkeypatch
):
    pool = await pg.create(postgres_url, maxsize=1)  # its statements: the usual timeout
    monkeypatch.setattr(pg, "TIMEOUT", 0.2)
    try:
        holder = asyncio.ensure_future(pg.run(pool, "SELECT pg_sleep(1)", ()))
        await asyncio.sleep(0.05)  # the holder has the one connection
        with pytest.raises(Unavailable):
            await pg.run(pool, "SELECT 1", ())
        await holder
        # The turn that timed out was not lost: the pool still serves.
        assert await pg.run(pool, "SELECT 2", ()) == (2,)
    finally:
        await pg.terminate(pool)


async def test_a_connection_the_server_ended_is_not_kept_for_the_next_turn(postgres_url):
    pool = await pg.create(postgres_url, maxsize=1)
    try:
        (pid,) = await pg.run(pool, "SELECT pg_backend_pid()", ())
        assert await pg.run(pool, "SELECT pg_backend_pid()", ()) == (pid,)  # kept
        async with aiopg.connect(postgres_url) as admin, admin.cursor() as cur:
            await cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
        # The driver learns of it by using it: this turn may fail, never the next.
        with contextlib.suppress(Unavailable):
            await pg.run(pool, "SELECT 1", ())
        (new_pid,) = await pg.run(pool, "SELECT pg_backend_pid()", ())
        assert new_pid != pid
        assert len(pool.idle) == 1 and pool.aiopg.size == 1
    finally:
        await pg.terminate(pool)
