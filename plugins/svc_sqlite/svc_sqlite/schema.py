"""Create or migrate the database file.  Blocking: ``open`` runs it in a thread.

The schema's version is SQLite's own ``PRAGMA user_version``; each step of
``MIGRATIONS`` moves it up by one, inside a ``BEGIN IMMEDIATE`` transaction so two
processes starting on one new file do not both apply a step.
"""

from __future__ import annotations

import os
import sqlite3

#: RETURNING arrived in SQLite 3.35: every write is one statement that hands back its row.
MINIMUM_SQLITE = (3, 35, 0)

#: One script per schema version; never edit a step that has shipped, add one.
MIGRATIONS = (
    # 1: users.  The profile is one JSON object holding every profile field, so a
    # partial update is one json_set() statement that writes only the fields given
    # (concurrent updates of different fields both survive).  The username's
    # uniqueness lives in its own column: svc.storage.username_key(username), or NULL.
    # Timestamps are ISO 8601 text in UTC, microseconds included.
    """
    CREATE TABLE users (
        id TEXT NOT NULL PRIMARY KEY,
        profile TEXT NOT NULL CHECK (json_valid(profile)),
        username_key TEXT UNIQUE,
        version INTEGER NOT NULL,
        password_hash TEXT,
        password_updated_at TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    """,
)


def check_library() -> None:
    """RuntimeError if the SQLite library Python links against is too old."""
    if sqlite3.sqlite_version_info < MINIMUM_SQLITE:
        wanted = ".".join(map(str, MINIMUM_SQLITE))
        raise RuntimeError(f"SQLite {sqlite3.sqlite_version} is too old: svc_sqlite needs {wanted}")


def migrate(path: str, busy_timeout: float) -> int:
    """Bring the file at ``path`` (created if missing) to the latest schema; its version."""
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        # Not made for you: a typo in a path should not quietly start a new, empty database.
        raise RuntimeError(f"the folder {folder} does not exist")
    conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
    try:
        # WAL is kept in the file: readers never wait for the writer, and a crash
        # mid-write leaves the last committed state.
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise RuntimeError(
                    f"the database is at schema version {version}, newer than this "
                    f"svc_sqlite knows ({len(MIGRATIONS)}): upgrade svc-sqlite"
                )
            for number in range(version + 1, len(MIGRATIONS) + 1):
                for statement in _statements(MIGRATIONS[number - 1]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return len(MIGRATIONS)
    finally:
        conn.close()


def _statements(script: str) -> list[str]:
    """A migration's statements (``executescript`` would commit our transaction)."""
    return [s.strip() for s in script.split(";") if s.strip()]
