"""Postgres on uvloop (svc's default loop): a refused connect must not stop the next one.

aiopg 1.4 leaves a refused connection's socket registered for writing (aio-libs/aiopg#909);
uvloop then refuses to watch the next socket the kernel gives the same number, and svc
would never reconnect after an outage.  plugins/svc_postgres/connection.py takes the
registration back.  Here: its connections and pools, refused then good, on one uvloop
loop (and asyncio's, which must be unharmed); then a real ``python -m svc`` on uvloop whose
database goes away and comes back through a relay the test controls (as in
test_postgres_faults.py, the shared cluster is never stopped).
"""

from __future__ import annotations

import asyncio
import socket

import psycopg2
import pytest
import uvloop
from svc_postgres.connection import Connection, Pool, connect, create_pool

pytestmark = pytest.mark.postgres

LOOPS = {"uvloop": uvloop.new_event_loop, "asyncio": asyncio.new_event_loop}


def refused_dsn() -> str:
    """A port nobody listens on (bound, then closed): every connect is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"host=127.0.0.1 port={port} dbname=postgres user=postgres connect_timeout=3"


def run_on(loop_name: str, coroutine) -> None:
    loop = LOOPS[loop_name]()
    try:
        loop.run_until_complete(asyncio.wait_for(coroutine, 60))
    finally:
        loop.close()


async def select_one(conn) -> int:
    async with conn.cursor() as cur:
        await cur.execute("SELECT 1")
        return (await cur.fetchone())[0]


# Plain (not async) tests: each runs its own loop, uvloop's or asyncio's, from start to end.
@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_refused_connect_then_a_good_one_on_one_loop(loop_name, postgres_url):
    async def scenario():
        for _ in range(3):  # the kernel hands out the freed number again each time
            with pytest.raises(psycopg2.OperationalError, match="refused"):
                await connect(refused_dsn(), timeout=5)
        conn = await connect(postgres_url, timeout=5)
        try:
            assert isinstance(conn, Connection)
            assert await select_one(conn) == 1
        finally:
            await conn.close()
        # aiopg's async context manager, as pool.migrate_schema uses it.
        async with connect(postgres_url, timeout=5) as conn:
            assert await select_one(conn) == 1

    run_on(loop_name, scenario())


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_pool_refused_then_made_and_refilled_on_one_loop(loop_name, postgres_url):
    async def scenario():
        for _ in range(3):
            with pytest.raises(psycopg2.OperationalError, match="refused"):
                await create_pool(refused_dsn(), minsize=1, maxsize=2, timeout=5)
        pool = await create_pool(postgres_url, minsize=1, maxsize=2, timeout=5)
        try:
            assert isinstance(pool, Pool)
            conn = await pool.acquire()
            assert isinstance(conn, Connection)
            # A connection the pool made, lost, and made again (its fill path).
            conn.close()
            pool.release(conn)
            conn = await pool.acquire()
            assert await select_one(conn) == 1
            pool.release(conn)
        finally:
            pool.terminate()
            await pool.wait_closed()

    run_on(loop_name, scenario())
