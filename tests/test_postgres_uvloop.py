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
from urllib.parse import urlsplit

import aiohttp
import psycopg2
import pytest
import uvloop
from relay_helpers import Relay, through
from svc_postgres.connection import Connection, Pool, connect, create_pool
from svc_process import SvcProcess
from ws_helpers import frame_where

from svc.testing import unique_id, wait_until

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


@pytest.fixture
async def relay(postgres_url):
    parts = urlsplit(postgres_url)
    relay = Relay(parts.hostname or "127.0.0.1", parts.port or 5432)
    await relay.start()
    yield relay
    await relay.cut()


async def test_svc_on_uvloop_recovers_from_an_outage_and_a_restart(postgres_url, relay, tmp_path):
    """The database refuses (relay closed): 503 ``unavailable``; it comes back: 200 again,
    ready again, and the broker's LISTEN delivers a PUT to a WebSocket member.  Then the
    server ends every connection of this svc at once (a restart, as svc sees one): the same."""
    name = unique_id("uvloop")
    url = through(postgres_url, relay)
    url += ("&" if "?" in url else "?") + f"application_name={name}"
    svc = SvcProcess({"DATABASE_URL": url, "EVENT_LOOP": "uvloop"}, tmp_path / "svc.log")
    await svc.start()
    try:
        assert "event loop: uvloop" in svc.log()
        async with aiohttp.ClientSession(svc.base) as http:
            user = unique_id()
            resp = await http.put(f"/users/{user}/profile", json={"username": user})
            assert resp.status == 201
            ws = await http.ws_connect(f"/ws/{unique_id('r')}?user_id={user}")
            assert (await ws.receive_json())["type"] == "welcome"

            await relay.cut()
            resp = await http.get(f"/users/{user}")
            assert resp.status == 503
            assert (await resp.json())["error"]["code"] == "unavailable"

            async def every_part_down_and_retried():
                resp = await http.get("/health/ready")
                message = (await resp.json())["error"]["message"] if resp.status == 503 else ""
                return "pool is down" in message and "listener is down" in message

            await wait_until(every_part_down_and_retried, 15, 0.05)
            # Requests meanwhile make the pool try, and be refused, again and again.
            for _ in range(3):
                resp = await http.put(f"/users/{user}/profile", json={"bio": "lost"})
                assert resp.status == 503
                assert (await resp.json())["error"]["code"] == "unavailable"

            await relay.restore()

            async def ready():
                return (await http.get("/health/ready")).status == 200

            await wait_until(ready, 30, 0.05)
            resp = await http.get(f"/users/{user}")
            assert resp.status == 200
            resp = await http.put(f"/users/{user}/profile", json={"bio": "back"})
            assert resp.status == 200
            version = (await resp.json())["version"]
            update = await frame_where(
                ws, lambda f: f["type"] == "profile_updated" and f["version"] == version
            )
            assert update["profile"]["bio"] == "back"

            async with connect(postgres_url) as admin, admin.cursor() as cur:
                await cur.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name LIKE %s",
                    (f"{name}%",),
                )
                assert (await cur.fetchone())[0] >= 3  # storage pool, broker pool, listener

            async def written_again():
                resp = await http.put(f"/users/{user}/profile", json={"bio": "restarted"})
                return resp.status == 200 and (await resp.json())["version"]

            version = await wait_until(written_again, 15, 0.05)
            update = await frame_where(
                ws, lambda f: f["type"] == "profile_updated" and f["version"] >= version
            )
            assert update["profile"]["bio"] == "restarted"
            await wait_until(ready, 15, 0.05)
            await ws.close()
        assert "UVPoll" not in svc.log() and "Traceback" not in svc.log(), svc.log()
    finally:
        await svc.stop()
