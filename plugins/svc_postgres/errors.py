"""psycopg2 / aiopg errors → svc's domain errors, in one place.

Anything that means "the database cannot answer now" (refused or lost
connection, a timeout, a pool that cannot hand out a connection in time)
becomes ``Unavailable``, which the service answers with 503.  Messages are
libpq's first line, which never holds the password.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
import psycopg2.errors

from svc.storage import Conflict, Unavailable

from .queries import USERNAME_KEY

#: Errors that mean the connection or the server is gone, not that the request is wrong.
CONNECTION_ERRORS = (
    psycopg2.OperationalError,
    psycopg2.InterfaceError,
    asyncio.TimeoutError,
    TimeoutError,
    OSError,
)


def describe(exc: BaseException) -> str:
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "timed out"
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


@contextmanager
def translated(user_id: str | None = None, username: str | None = None) -> Iterator[None]:
    try:
        yield
    except psycopg2.errors.UniqueViolation as exc:
        if exc.diag.constraint_name == USERNAME_KEY:
            raise Conflict(f"username {username!r} is taken", field="username") from None
        raise Conflict(f"user {user_id!r} already exists", field="id") from None
    except CONNECTION_ERRORS as exc:
        raise Unavailable(f"database unavailable: {describe(exc)}") from None
