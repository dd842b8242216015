"""Direct, or through a transaction pooler: what svc's connections may rely on.

A pooled URL (PgBouncer or Supavisor in transaction mode, as Supabase, Heroku and Railway
hand out) gives each *transaction* some server connection, shared with every other client.
Through it:

- a start-up parameter such as ``options=-c statement_timeout=…`` is refused (PgBouncer:
  ``unsupported startup parameter: options``), so svc sends none;
- a session ``SET`` lands on a server connection that the next transaction may not get, and
  that other clients will: svc's settings (UTC timestamps, the statement timeout) go with
  each statement instead, as ``SET LOCAL`` in the same round trip (:func:`per_transaction`);
- a ``PREPARE``\\ d statement lives on one server connection: svc does not prepare there;
- ``LISTEN`` hears nothing once its transaction is over (the listener proves it at start).

On a direct connection (or a session pooler) the settings are made once per connection
(:func:`per_session`, with the prepared statements) and cost the requests nothing.

Which one a URL is, svc finds out at start (:func:`transaction_pooled`), so the operator
never has to say.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiopg


def _settings(set_: str, statement_timeout: float) -> list[str]:
    # Timestamps come back in UTC whatever the database's default time zone, and no statement
    # outlives the request that sent it (storage.py says why the server's limit is longer).
    return [
        f"{set_} TimeZone = 'UTC'",
        f"{set_} statement_timeout = {int(statement_timeout * 1000)}",
    ]


def per_session(statement_timeout: float) -> str:
    """svc's settings for a whole connection (direct, or through a session pooler)."""
    return ";\n".join(_settings("SET", statement_timeout))


def per_transaction(statement_timeout: float) -> str:
    """The same as a prefix for one statement: sent in one query string, the ``SET LOCAL``\\ s
    and the statement form one (implicit) transaction, which a transaction pooler runs on
    one server connection.  One round trip still; the server parses two more short
    statements."""
    return "".join(f"{sql}; " for sql in _settings("SET LOCAL", statement_timeout))


_PID = "SELECT pg_backend_pid()"


async def transaction_pooled(connect: Callable[[], Awaitable[aiopg.Connection]]) -> bool:
    """Does this URL hand each transaction a server connection of the pool's choosing?

    Two client connections, A and B, each ask for the server process answering them, in
    the order A B B A.  Directly (or through a session pooler) each is one server process
    for its whole life: A's two answers agree, B's too, and A's differs from B's.  A
    transaction pooler hands a freed server connection to the next transaction: PgBouncer
    gives the most recently freed one by default (B gets A's: two live clients, one
    server process), and with ``server_round_robin`` the next one in turn (B's two answers
    differ).  Four short statements, at start only."""
    first = await connect()
    try:
        second = await connect()
        try:
            pids = []
            for conn in (first, second, second, first):
                async with conn.cursor() as cur:
                    await cur.execute(_PID)
                    pids.append((await cur.fetchone())[0])
        finally:
            second.close()
    finally:
        first.close()
    a1, b1, b2, a2 = pids
    return not (a1 == a2 and b1 == b2 and a1 != b1)
