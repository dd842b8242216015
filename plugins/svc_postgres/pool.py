"""The aiopg pool both the storage and the broker use: made, migrated, borrowed from, closed.

Requests never wait long on a database in trouble: taking a connection (connecting
included) and every statement are bounded by ``TIMEOUT`` seconds.

Borrowers take turns (:class:`Pool`): aiopg wakes one waiter for each connection given
back, but a borrower that arrives meanwhile may take it first, and the woken one goes back
to the end of the queue.  Under load (32 requests on 10 connections) a few requests waited
220-450 ms while the rest took 10 ms.  Here they wait in a first-come-first-served queue,
at most ``maxsize`` get past it, and a connection that ran its statement cleanly is kept
for the next turn rather than given back to aiopg (whose acquire and release take a lock,
walk its free list and start a task each time).  aiopg still opens every connection, and
takes back, to close, any that failed: the next turn gets a new one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import aiopg
import psycopg2

from svc.deadline import deadline
from svc.storage import Unavailable

from . import connection
from .errors import DATABASE_ERRORS, raise_translated
from .migrations import migrate

log = logging.getLogger(__name__)

#: Seconds to wait for a pooled connection, and for one statement.
TIMEOUT = 5.0
#: hstore would cost a query per new connection, and we store jsonb.
CONNECTION_OPTIONS = {"enable_hstore": False, "enable_uuid": False}


class Pool:
    """An aiopg pool (``aiopg``), the queue its borrowers wait in (``turns``) and the
    connections kept between turns (``idle``)."""

    __slots__ = ("aiopg", "turns", "idle")

    def __init__(self, pool: aiopg.Pool):
        self.aiopg = pool
        #: FIFO: asyncio's semaphore wakes its waiters in the order they came.
        self.turns = asyncio.Semaphore(pool.maxsize)
        #: taken from aiopg, each between two turns; at most ``maxsize`` with those in use
        self.idle: list[aiopg.Connection] = []


async def create(
    dsn: str,
    maxsize: int,
    on_connect: Callable[[aiopg.Connection], Awaitable[None]] | None = None,
) -> Pool:
    """A pool; ``on_connect`` runs on each connection it opens (prepared.on_connect)."""
    pool = await connection.create_pool(
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
    return await connection.connect(dsn, timeout=TIMEOUT, **CONNECTION_OPTIONS)


async def migrate_schema(dsn: str) -> None:
    """Apply the migrations on a connection of their own (migrations.py)."""
    async with connection.connect(dsn, timeout=TIMEOUT, **CONNECTION_OPTIONS) as conn:
        await migrate(conn)


async def terminate(pool: Pool | None) -> None:
    """Close every connection of ``pool`` now, and wait (at most ``TIMEOUT`` seconds) until
    aiopg says so.  Bounded: aiopg waits until its count of connections comes down, and in
    one CI run it never did, while a cancelled task of the broker still ran (a cancellation
    swallowed inside a driver, as asyncio.wait_for on Python 3.11 can): the shutdown hung."""
    if pool is not None:
        pool.aiopg.terminate()
        try:
            async with deadline(TIMEOUT):
                await pool.aiopg.wait_closed()
        except TimeoutError:
            log.warning("postgres: the pool did not close within %.0f s; left to close", TIMEOUT)


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
            conn = pool.idle.pop() if pool.idle else await _acquire(pool.aiopg)
            if conn.closed:  # since its last turn (the server went away): aiopg drops it
                pool.aiopg.release(conn)
                conn = await _acquire(pool.aiopg)
            try:
                cur = await conn.cursor()
                try:
                    await cur.execute(sql, params)
                    if one is None:
                        result = None
                    else:
                        result = await (cur.fetchone() if one else cur.fetchall())
                finally:
                    cur.close()
            except BaseException:
                pool.aiopg.release(conn)  # closed if broken, or mid-statement (a timeout)
                raise
            pool.idle.append(conn)
            return result
        finally:
            turns.release()
    except DATABASE_ERRORS as exc:
        raise_translated(exc, **context)


async def _wait_turn(turns: asyncio.Semaphore) -> None:
    # As long as aiopg would wait for a connection: the database may be in trouble.
    async with deadline(TIMEOUT):
        await turns.acquire()


async def _acquire(pool: aiopg.Pool) -> aiopg.Connection:
    try:
        return await pool.acquire()
    except AssertionError:
        return await _acquire_again(pool)


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
