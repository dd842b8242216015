"""``SQLiteStorage``: svc's users in one SQLite file through aiosqlite.

aiosqlite runs every statement on one worker thread per connection, in the order
they were issued, so the event loop never blocks on the disk.  Each write is a
single statement (see ``queries``), which makes it atomic for its user with no lock
of our own: 50 concurrent partial updates of one user get versions 2 to 51 and keep
every field.  Commits are synced to disk (``synchronous = FULL``): what a client was
told is stored is there after a crash or a power cut, not only after a clean stop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import aiosqlite

from svc.storage import (
    Conflict,
    Credentials,
    Misconfigured,
    NotFound,
    Storage,
    Unavailable,
    User,
    VersionMismatch,
)

from . import queries as q
from .errors import translated
from .schema import check_library, migrate
from .url import database_path

log = logging.getLogger(__name__)
# aiosqlite logs every statement with its parameters at DEBUG, password hashes included:
# never let those lines out, whatever level the root logger is set to.
logging.getLogger("aiosqlite").setLevel(logging.INFO)

#: Seconds a statement waits for another process's lock on the file before giving up
#: (503), and that opening waits for another process's migration.
BUSY_TIMEOUT = 5.0


class SQLiteStorage(Storage):
    def __init__(self, url: str):
        super().__init__(url)
        self.path = database_path(url)
        self._conn: aiosqlite.Connection | None = None

    @classmethod
    def check_url(cls, url: str) -> None:
        database_path(url)

    def __repr__(self) -> str:
        return f"<SQLiteStorage {self.path}>"

    # -- life cycle -------------------------------------------------------

    async def open(self) -> None:
        try:
            check_library()
        except RuntimeError as exc:
            raise Misconfigured(str(exc)) from None
        try:
            await asyncio.to_thread(migrate, self.path, BUSY_TIMEOUT)
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise Unavailable(f"sqlite {self.path}: {exc}") from None  # retried
            raise Misconfigured(f"sqlite {self.path}: {exc}") from None
        except (sqlite3.DatabaseError, RuntimeError) as exc:  # not a database, no folder...
            raise Misconfigured(f"sqlite {self.path}: {exc}") from None
        if self._conn is None:
            # isolation_level=None: autocommit, each statement its own transaction.
            self._conn = await aiosqlite.connect(
                self.path, timeout=BUSY_TIMEOUT, isolation_level=None
            )
        with translated():
            await self._conn.execute("PRAGMA synchronous = FULL")
        log.info("sqlite: %s", self.path)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    async def ping(self) -> dict[str, str]:
        await self._fetchall("SELECT 1", ())
        return {"sqlite": "ok"}

    async def _fetchall(self, sql: str, params, **context) -> list[tuple]:
        """Run one statement and read all its rows, in one call on the worker thread (a
        write with RETURNING is finished, and committed, before anything else runs)."""
        conn = self._conn
        if conn is None:
            raise Unavailable("storage is not open")
        with translated(**context):
            try:
                return list(await conn.execute_fetchall(sql, params))
            except ValueError as exc:  # aiosqlite: "Connection closed", mid-shutdown
                raise Unavailable(f"sqlite: {exc}") from None

    async def _fetchone(self, sql: str, params, **context) -> tuple | None:
        rows = await self._fetchall(sql, params, **context)
        return rows[0] if rows else None

    # -- users -------------------------------------------------------------

    async def create_user(
        self, user_id: str, profile: Mapping[str, Any], password_hash: str | None = None
    ) -> User:
        username = profile.get("username")
        params = {
            "id": user_id,
            "profile": json.dumps(q.full_profile(profile)),
            "username_key": q.key_of(username),
            "hash": password_hash,
            "now": q.now(),
        }
        row = await self._fetchone(q.CREATE_USER, params, user_id=user_id, username=username)
        if row is None:  # the id is taken: said whatever the username (queries.CREATE_USER)
            raise Conflict(f"user {user_id!r} already exists", field="id")
        return q.user_from_row(row)

    async def get_user(self, user_id: str) -> User:
        row = await self._fetchone(q.GET_USER, (user_id,))
        if row is None:
            raise NotFound(user_id)
        return q.user_from_row(row)

    async def get_users(self, user_ids: Iterable[str]) -> list[User]:
        wanted = list(user_ids)
        if not wanted:
            return []
        rows = await self._fetchall(q.GET_USERS, (json.dumps(wanted),))
        by_id = {row[0]: q.user_from_row(row) for row in rows}
        return [by_id[i] for i in wanted if i in by_id]

    async def update_profile(
        self,
        user_id: str,
        changes: Mapping[str, Any],
        expected_version: int | None = None,
        create: bool = False,
    ) -> tuple[User, bool]:
        upsert = create and expected_version is None
        sql, params = q.profile_update(changes, expected_version is not None, upsert)
        params.update(id=user_id, now=q.now(), expected=expected_version)
        username = changes.get("username")
        row = await self._fetchone(sql, params, user_id=user_id, username=username)
        if row is None:
            # Nothing written: say why (this read is only for the error, not the write).
            current = await self._fetchone(q.GET_VERSION, (user_id,))
            if current is None:
                raise NotFound(user_id)
            raise VersionMismatch(current[0])
        user = q.user_from_row(row)
        return user, upsert and user.version == 1

    async def set_password_hash(
        self, user_id: str, password_hash: str, expected_hash: str | None = None
    ) -> datetime:
        row = await self._fetchone(
            q.SET_PASSWORD_HASH,
            (password_hash, q.now(), user_id, expected_hash, expected_hash),
        )
        if row is None:
            # Nothing written: say why (this read is only for the error, not the write).
            if await self._fetchone(q.EXISTS, (user_id,)) is None:
                raise NotFound(user_id)
            raise Conflict("the password hash has changed")
        return datetime.fromisoformat(row[0])

    async def get_credentials(self, user_id: str) -> Credentials:
        return await self._credentials(q.GET_CREDENTIALS, user_id, user_id)

    async def find_credentials(self, username: str) -> Credentials:
        return await self._credentials(q.FIND_CREDENTIALS, q.key_of(username), username)

    async def _credentials(self, sql: str, key: str, asked: str) -> Credentials:
        row = await self._fetchone(sql, (key,))
        if row is None:
            raise NotFound(asked)
        user_id, password_hash, password_updated_at, created_at = row
        return Credentials(
            user_id,
            password_hash,
            None if password_updated_at is None else datetime.fromisoformat(password_updated_at),
            datetime.fromisoformat(created_at),
        )

    async def delete_user(self, user_id: str) -> User:
        row = await self._fetchone(q.DELETE_USER, (user_id,))
        if row is None:
            raise NotFound(user_id)
        return q.user_from_row(row)
