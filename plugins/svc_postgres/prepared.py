"""Server-side prepared statements for the hot statements (a read, a profile update).

Postgres parses and plans a plain statement every time it runs: for a primary-key read
that is about half of the server's work (pgbench, the read of ``GET /users/{id}`` on this
kind of machine: 14k/s as plain statements, 30k/s prepared).  So every pooled connection
``PREPARE``\\ s them once, when the pool opens it, and requests ``EXECUTE`` them.

psycopg2 interpolates parameters on the client, so an ``EXECUTE name(…)`` carries its
values as literals, typed by the declared parameter types; the statements keep their
``%(name)s`` form for the plain path, used when the URL says ``prepared_statements=false``
and whenever svc finds a transaction pooler at start (pooling.py): a pooler that hands
each transaction another server connection, shared with other clients, keeps a
``PREPARE`` neither for this client's next statement nor away from the other clients.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import aiopg

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


@dataclass(frozen=True)
class Statement:
    """One statement with named ``%(name)s`` parameters, each of a declared SQL type."""

    name: str
    sql: str
    #: (parameter, SQL type), in the order of the prepared statement's ``$1``, ``$2``…
    types: tuple[tuple[str, str], ...]
    prepare: str = field(init=False)
    execute: str = field(init=False)

    def __post_init__(self) -> None:
        order = {param: index for index, (param, _) in enumerate(self.types, 1)}
        missing = set(_PLACEHOLDER.findall(self.sql)) - order.keys()
        if missing:
            raise ValueError(f"{self.name}: no type declared for {sorted(missing)}")
        body = _PLACEHOLDER.sub(lambda m: f"${order[m.group(1)]}", self.sql)
        declared = ", ".join(sql_type for _, sql_type in self.types)
        object.__setattr__(self, "prepare", f"PREPARE {self.name} ({declared}) AS {body}")
        arguments = ", ".join(f"%({param})s" for param, _ in self.types)
        object.__setattr__(self, "execute", f"EXECUTE {self.name} ({arguments})")

    def text(self, prepared: bool) -> str:
        """What to send: ``EXECUTE`` on a connection that prepared it, else the statement."""
        return self.execute if prepared else self.sql


def statement(name: str, sql: str, **types: str) -> Statement:
    return Statement(name, sql, tuple(types.items()))


def on_connect(setup: str, statements: Iterable[Statement] = ()):
    """The pool's ``on_connect``: run ``setup`` (pooling.per_session) and prepare every
    statement on each new connection, all in one round trip."""
    script = ";\n".join([setup, *(s.prepare for s in statements)])

    async def prepare(conn: aiopg.Connection) -> None:
        async with conn.cursor() as cur:
            await cur.execute(script)

    return prepare
