"""Borrowing a connection from the aiopg pool when connections may die at any moment."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiopg
import psycopg2


@asynccontextmanager
async def connection(pool: aiopg.Pool) -> AsyncIterator[aiopg.Connection]:
    conn = await _acquire(pool)
    try:
        yield conn
    finally:
        await pool.release(conn)


async def _acquire(pool: aiopg.Pool) -> aiopg.Connection:
    # aiopg asserts that the connection it hands out is open, but one the server
    # just ended can close between aiopg's check and the hand-out (while the pool
    # awaits a new connection).  aiopg has already dropped it: ask again.
    for _ in range((pool.maxsize or 1) + 1):
        try:
            return await pool.acquire()
        except AssertionError:
            continue
    raise psycopg2.OperationalError("every pooled connection was lost")
