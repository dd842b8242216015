"""sqlite3's exceptions → svc's domain errors, in one place."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from svc.storage import Conflict, Unavailable


@contextmanager
def translated(user_id: str | None = None, username: str | None = None) -> Iterator[None]:
    try:
        yield
    except sqlite3.IntegrityError as exc:
        # SQLite names the column: "UNIQUE constraint failed: users.username_key".
        if "users.username_key" in str(exc):
            raise Conflict(f"username {username!r} is taken", field="username") from None
        if "users.id" in str(exc):
            raise Conflict(f"user {user_id!r} already exists", field="id") from None
        raise
    except sqlite3.OperationalError as exc:
        # "database is locked" (another process held it past the busy timeout), a full
        # disk, an I/O error: this request fails with 503, the next one may work.
        raise Unavailable(f"sqlite: {exc}") from None
    except sqlite3.DatabaseError as exc:  # e.g. the file was corrupted under us
        raise Unavailable(f"sqlite: {exc}") from None
