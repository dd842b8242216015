"""The aiopg pool both the storage and the broker use: made, migrated, borrowed from, closed.

Requests never wait long on a database in trouble: taking a connection (connecting
included) and every statement are bounded by ``TIMEOUT`` seconds.

Borrowers take turns (:class:`Pool`): aiopg wakes one waiter for each connection given
back, but a borrower that arrives meanwhile may take it first, and the woken one goes back
to the end of the queue.  Under load (32 requests on 10 connections) a few requests waited
220-450 ms while the rest took 10 ms.  Waiting in a first-come-first-served queue before
aiopg, with at most ``maxsize`` borrowers past it, aiopg always has a connection free.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiopg
import psycopg2

from svc.storage import Unavailable

from .errors import DATABASE_ERRORS, raise_translated
from .migrations import migrate

#: Seconds to wait for a pooled connection, and for one statement.
TIMEOUT = 5.0
#: hstore would cost a query per new connection, and we store jsonb.
CONNECTION_OPTIONS = {"enable_hstore": False, "enable_uuid": False}


class Pool:
    """An aiopg pool (``aiopg``) and the queue its borrowers wait in (``turns``)."""

    __slots__ = ("aiopg", "turns")

    def __init__(self, pool: aiopg.Pool):
        self.aiopg = pool
        #: FIFO: asyncio's semaphore wakes its waiters in the order they came.
        self.turns = asyncio.Semaphore(pool.maxsize)


async def create(
    dsn: str,
    maxsize: int,
    on_connect: Callable[[aiopg.Connection], Awaitable[None]] | None = None,
) -> Pool:
    """A pool; ``on_connect`` runs on each connection it opens (prepared.py's preparer)."""
    pool = await aiopg.create_pool(
        dsn,
        minsize=1,
        maxsize=maxsize,
        timeout=TIMEOUT,
        on_connect=on_connect,
        **CONNECTION_OPTIONS,
    )
    return Pool(pool)


async def connect(dsn: str) -> aiopg.Connection:
    """A connection of its own, outside the pool."""
    return await aiopg.connect(dsn, timeout=TIMEOUT, **CONNECTION_OPTIONS)


async def migrate_schema(dsn: str) -> None:
    """Apply the migrations on a connection of their own: waiting for another process's
    migration may take a while, longer than a statement may."""
    async with aiopg.connect(dsn, timeout=TIMEOUT, **CONNECTION_OPTIONS) as conn:
        async with conn.cursor() as cur:
            await cur.execute("SET statement_timeout = 0")
        await migrate(conn)


async def terminate(pool: Pool | None) -> None:
    if pool is not None:
        pool.aiopg.terminate()
        await pool.aiopg.wait_closed()


async def run(pool: Pool | None, sql: str, params, one: bool | None = True, **context):
    """One statement: its first row (``one``), every row (False), or nothing (None: a
    statement without results).  Database trouble is ``Unavailable`` (errors.py)."""
    if pool is None:
        raise Unavailable("not open")
    # Plain try/except/finally rather than context managers: this is every request's path,
    # and contextlib's wrappers were ~2-3 % of svc's samples on GET (py-spy, get-pg).
    turns = pool.turns
    try:
        if turns.locked():
            await _wait_turn(turns)  # bounded, out of line: no timer when nobody waits
        else:
            await turns.acquire()
        try:
            try:
                conn = await pool.aiopg.acquire()
            except AssertionError:  # retried out of line: no extra coroutine on every request
                conn = await _acquire_again(pool.aiopg)
            try:
                cur = await conn.cursor()
                try:
                    await cur.execute(sql, params)
                    if one is None:
                        return None
                    return await (cur.fetchone() if one else cur.fetchall())
                finally:
                    cur.close()
            finally:
                await pool.aiopg.release(conn)
        finally:
            turns.release()
    except DATABASE_ERRORS as exc:
        raise_translated(exc, **context)


async def _wait_turn(turns: asyncio.Semaphore) -> None:
    # As long as aiopg would wait for a connection: the database may be in trouble.
    await asyncio.wait_for(turns.acquire(), TIMEOUT)


async def _acquire_again(pool: aiopg.Pool) -> aiopg.Connection:
    # aiopg asserts that the connection it hands out is open, but one the server
    # just ended can close between aiopg's check and the hand-out (while the pool
    # awaits a new connection).  aiopg has already dropped it: ask again.
    for _ in range(pool.maxsize or 1):
        try:
            return await pool.acquire()
        except AssertionError:
            continue
    raise psycopg2.OperationalError("every pooled connection was lost")
