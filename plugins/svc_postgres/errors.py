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
from typing import NoReturn

import psycopg2
import psycopg2.errors

from svc.storage import Conflict, Misconfigured, Unavailable

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


def refusal(exc: BaseException) -> str | None:
    """The server's (or a pooler's) own words when it refused the connection at start
    (libpq: ``connection to server at … failed: FATAL:  <why>``), else None: a refusal
    is not a server that did not answer."""
    text = " ".join(describe(exc).split())
    words = text.partition(" failed: FATAL: ")[2] or text.partition("FATAL: ")[2]
    if not words:
        return None
    hint = next((h for key, h in REFUSAL_HINTS.items() if key in words), None)
    return f"the server refused the connection: {words}" + (f" ({hint})" if hint else "")


#: SQLSTATEs that waiting will not cure: 28 invalid authorisation, 3D000 no such
#: database, 3F000 no such schema, 42 the schema refused (42501 no right to create; 42P07
#: and the like: the database holds another program's tables, not svc's).
PERMANENT_SQLSTATES = ("28", "3D000", "3F000", "42")
#: libpq's words for the same when it fails before the server gives a SQLSTATE
#: (a server set to another language is not recognised, and is retried as before).
PERMANENT_MESSAGES = (
    "password authentication failed",
    "authentication failed",
    "no pg_hba.conf entry",
    "does not exist",  # role "x" / database "x" does not exist
    "invalid sslmode value",
    "invalid connection option",
    "invalid integer value",
    "SSL was required",
    "server does not support SSL",
    "permission denied",
    # A pooler's refusals (PgBouncer, Supavisor): it answered, and will answer the same.
    "unsupported startup parameter",
    "no such database",
    "no such user",
    "Tenant or user not found",
)
#: What to do about a refusal, when svc knows: added to its message.
REFUSAL_HINTS = {
    "unsupported startup parameter": (
        "a pooler (PgBouncer, Supavisor) refuses start-up parameters such as `options`:"
        " remove them from the URL (svc sends none of its own)"
    ),
}


def is_permanent(exc: BaseException) -> bool:
    """Does ``exc``, raised while opening, mean it can never work as configured?"""
    if not isinstance(exc, psycopg2.Error):
        return False
    code = exc.pgcode or ""
    if code and code.startswith(PERMANENT_SQLSTATES):
        return True
    text = str(exc)
    return any(words in text for words in PERMANENT_MESSAGES)


#: A prepared statement missing, or there already: session state lost to a pooler.
PREPARED_LOST = (
    psycopg2.errors.InvalidSqlStatementName,
    psycopg2.errors.DuplicatePreparedStatement,
)

#: What :func:`domain_error` translates.
DATABASE_ERRORS = (*CONNECTION_ERRORS, psycopg2.Error)


def domain_error(
    exc: BaseException,
    user_id: str | None = None,
    username: str | None = None,
    opening: bool = False,
) -> BaseException:
    """The domain error for a psycopg2 or connection error (``exc`` itself if it has none).
    ``opening``: also tell a configuration that can never work (Misconfigured: svc stops
    at once) from a database not up yet."""
    if isinstance(exc, psycopg2.errors.UniqueViolation):
        if exc.diag.constraint_name == USERNAME_KEY:
            return Conflict(f"username {username!r} is taken", field="username")
        return Conflict(f"user {user_id!r} already exists", field="id")
    if isinstance(exc, PREPARED_LOST):
        # A pooler svc did not recognise at start (pooling.py) handed this statement to a
        # server connection that lacks it, or that another client prepared it on: a 503
        # that says what to do, never a 500.
        return Unavailable(
            f"database unavailable: {describe(exc)} (a transaction pooler? add"
            " prepared_statements=false to DATABASE_URL)"
        )
    if opening and is_permanent(exc):
        return Misconfigured(refusal(exc) or describe(exc))
    if isinstance(exc, CONNECTION_ERRORS):
        return Unavailable(f"database unavailable: {refusal(exc) or describe(exc)}")
    return exc


def raise_translated(exc: BaseException, **context) -> NoReturn:
    """Raise :func:`domain_error` of ``exc`` (``context``: its keyword arguments)."""
    error = domain_error(exc, **context)
    if error is exc:
        raise exc
    raise error from None


@contextmanager
def translated(**context) -> Iterator[None]:
    """:func:`raise_translated` around a block."""
    try:
        yield
    except DATABASE_ERRORS as exc:
        raise_translated(exc, **context)
