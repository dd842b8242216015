"""``PostgresStorage``: svc's users in PostgreSQL through an aiopg pool.

Requests never wait long on a database in trouble: taking a connection from
the pool (connecting included) and every statement are bounded by
``TIMEOUT`` seconds, after which the request gets ``Unavailable`` (503).  A
pooled connection that died is dropped by the pool and a new one is made on
demand, so the service recovers by itself when the database is back.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Iterable, Mapping
from datetime import datetime
from typing import Any

from psycopg2.extras import Json

from svc.storage import (
    Conflict,
    Credentials,
    Misconfigured,
    NotFound,
    Storage,
    Unavailable,
    User,
    VersionMismatch,
    username_key,
)

from . import pool as pg
from . import pooling
from . import queries as q
from .errors import translated
from .pool import TIMEOUT
from .prepared import Statement, on_connect
from .url import PostgresURL

log = logging.getLogger(__name__)

# The server gives up on a statement a second after the client has (TIMEOUT): a write
# answered with 503 cannot still commit minutes later, e.g. after a lock wait.  (Never
# before the client: aiopg turns a server-side cancel into CancelledError.)
STATEMENT_TIMEOUT = TIMEOUT + 1


class PostgresStorage(Storage):
    def __init__(self, url: str):
        super().__init__(url)
        self._url = PostgresURL.parse(url)
        #: Distinct per instance, so an operator (or a test) can tell its connections apart.
        self.application_name = self._url.instance_name()
        self._dsn = self._url.dsn(self.application_name)
        self._pool: pg.Pool | None = None
        #: Found at open (pooling.py): through a transaction pooler, every statement carries
        #: svc's settings (this prefix) and none is prepared.
        self._per_statement = ""
        self._prepared = self._url.prepared_statements

    @classmethod
    def check_url(cls, url: str) -> None:
        PostgresURL.parse(url)

    @classmethod
    def default_broker_url(cls, url: str) -> str | None:
        return url  # LISTEN/NOTIFY on the same database: nothing else to run

    def __repr__(self) -> str:
        return f"<PostgresStorage {self._url.redacted} {self.application_name}>"

    # -- life cycle -------------------------------------------------------

    async def open(self) -> None:
        try:
            await self._open()
        except Unavailable as exc:
            # Secrets libpq may quote are scrubbed where svc opens any storage (svc.app).
            raise Unavailable(f"{self._url.redacted}: {exc}") from None
        except Misconfigured as exc:
            raise Misconfigured(f"{self._url.redacted}: {exc}") from None
        log.info(
            "postgres: %s, pool of %d, application_name %s%s",
            self._url.redacted,
            self._url.pool_size,
            self.application_name,
            " (through a transaction pooler: settings sent with each statement, none prepared)"
            if self._per_statement
            else "",
        )

    async def _open(self) -> None:
        with translated(opening=True):
            # The schema first: each pooled connection prepares statements on its tables.
            await pg.migrate_schema(self._dsn)
            if self._pool is None:
                await self._choose_path()
                statements = q.PREPARED if self._prepared else ()
                setup = None
                if not self._per_statement:
                    setup = on_connect(pooling.per_session(STATEMENT_TIMEOUT), statements)
                self._pool = await pg.create(self._dsn, self._url.pool_size, setup)

    async def _choose_path(self) -> None:
        """Direct (or a session pooler): settings and prepared statements once per
        connection, nothing per request.  A transaction pooler: both per statement."""
        if await pooling.transaction_pooled(lambda: pg.connect(self._dsn)):
            self._per_statement = pooling.per_transaction(STATEMENT_TIMEOUT)
            self._prepared = False
        else:
            self._per_statement = ""
            self._prepared = self._url.prepared_statements

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        await pg.terminate(pool)

    async def ping(self) -> dict[str, str]:
        try:
            await self._fetchone("SELECT 1", ())
        except Unavailable as exc:
            raise Unavailable(f"pool is down ({exc})") from None
        return {"pool": "ok"}

    # Plain functions handing back pg.run's coroutine, not coroutines awaiting it: every
    # time the statement waits on its socket, each coroutine between it and the task is
    # resumed and suspended again.
    def _fetch(self, sql: str | Statement, params, one: bool = True, **context) -> Awaitable:
        if isinstance(sql, Statement):
            sql = sql.text(self._prepared)
        if self._per_statement:
            sql = self._per_statement + sql
        return pg.run(self._pool, sql, params, one, **context)

    def _fetchone(self, sql: str | Statement, params, **context) -> Awaitable[tuple | None]:
        return self._fetch(sql, params, **context)

    # -- users -------------------------------------------------------------

    async def create_user(
        self, user_id: str, profile: Mapping[str, Any], password_hash: str | None = None
    ) -> User:
        row = await self._fetchone(
            q.CREATE_USER,
            {
                "id": user_id,
                "profile": Json(q.full_profile(profile)),
                "key": _key(profile.get("username")),
                "hash": password_hash,
            },
            user_id=user_id,
            username=profile.get("username"),
        )
        return q.user_from_row(row)

    async def get_user(self, user_id: str) -> User:
        row = await self._fetchone(q.GET_USER, {"id": user_id})
        if row is None:
            raise NotFound(user_id)
        return q.user_from_row(row)

    async def get_users(self, user_ids: Iterable[str]) -> list[User]:
        wanted = list(user_ids)
        if not wanted:
            return []
        rows = await self._fetch(q.GET_USERS, {"ids": wanted}, one=False)
        by_id = {row[0]: q.user_from_row(row) for row in rows}
        return [by_id[i] for i in wanted if i in by_id]

    async def update_profile(
        self,
        user_id: str,
        changes: Mapping[str, Any],
        expected_version: int | None = None,
        create: bool = False,
    ) -> tuple[User, bool]:
        params = {
            "id": user_id,
            "changes": Json(dict(changes)),
            "expected": expected_version,
            "sets_username": "username" in changes,
            "key": _key(changes.get("username")),
        }
        context = {"user_id": user_id, "username": changes.get("username")}
        sql = q.UPDATE_PROFILE if expected_version is None else q.UPDATE_PROFILE_AT_VERSION
        # The plain UPDATE first: the common case, and cheaper for the server than an
        # upsert.  Only a user that is missing costs the second statement, whose
        # ON CONFLICT makes a create racing another create (or a delete) still atomic.
        row = await self._fetchone(sql, params, **context)
        if row is None and create and expected_version is None:
            params["profile"] = Json(q.full_profile(changes))
            row = await self._fetchone(q.UPSERT_PROFILE, params, **context)
        if row is None:
            if expected_version is None:
                # No re-read: a user created since this statement would turn "not found"
                # into a version mismatch nobody asked about.
                raise NotFound(user_id)
            # Nothing written: say why (this read is only for the error, not the write).
            current = await self._fetchone(q.GET_VERSION, (user_id,))
            if current is None:
                raise NotFound(user_id)
            raise VersionMismatch(current[0])
        return q.user_from_row(row), bool(row[6])

    async def set_password_hash(
        self, user_id: str, password_hash: str, expected_hash: str | None = None
    ) -> datetime:
        params = {"id": user_id, "hash": password_hash, "expected": expected_hash}
        row = await self._fetchone(q.SET_PASSWORD_HASH, params)
        if row is None:
            # Nothing written: say why (this read is only for the error, not the write).
            if await self._fetchone(q.GET_VERSION, (user_id,)) is None:
                raise NotFound(user_id)
            raise Conflict("the password hash has changed", field=None)
        return row[0]

    async def get_credentials(self, user_id: str) -> Credentials:
        row = await self._fetchone(q.GET_CREDENTIALS, (user_id,))
        if row is None:
            raise NotFound(user_id)
        return Credentials(*row)

    async def find_credentials(self, username: str) -> Credentials:
        row = await self._fetchone(q.FIND_CREDENTIALS, (username_key(username),))
        if row is None:
            raise NotFound(username)
        return Credentials(*row)

    async def delete_user(self, user_id: str) -> User:
        row = await self._fetchone(q.DELETE_USER, (user_id,))
        if row is None:
            raise NotFound(user_id)
        return q.user_from_row(row)


def _key(username: str | None) -> str | None:
    return None if username is None else username_key(username)
