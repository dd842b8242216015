"""The SQL of every operation, and rows turned into ``User``.

Every write is one statement in autocommit mode, so it is atomic on its own: the
version moves in the same statement as the data, and ``RETURNING`` hands back the
row as written.  No read-modify-write in Python, so nothing can interleave.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from svc.storage import PROFILE_FIELDS, User, username_key

COLUMNS = "id, profile, version, created_at, updated_at, password_updated_at"

GET_USER = f"SELECT {COLUMNS} FROM users WHERE id = ?"
# json_each: any number of ids in one parameter (no limit on host parameters to hit).
GET_USERS = f"SELECT {COLUMNS} FROM users WHERE id IN (SELECT value FROM json_each(?))"
GET_VERSION = "SELECT version FROM users WHERE id = ?"

# A taken id inserts nothing (no row back: the id is the conflict) before the username's
# unique index is ever consulted: else which constraint SQLite checks first would tell a
# caller with any existing id whether a username is taken (an oracle creating nothing).
CREATE_USER = f"""
INSERT INTO users (id, profile, username_key, version, password_hash, password_updated_at,
                   created_at, updated_at)
SELECT :id, :profile, :username_key, 1, :hash, CASE WHEN :hash IS NULL THEN NULL ELSE :now END,
       :now, :now
WHERE NOT EXISTS (SELECT 1 FROM users WHERE id = :id)
RETURNING {COLUMNS}
"""

# With an expected hash, a compare-and-set in the one statement (a re-hash racing a change).
SET_PASSWORD_HASH = """
UPDATE users SET password_hash = ?, password_updated_at = ?
WHERE id = ? AND (? IS NULL OR password_hash = ?)
RETURNING password_updated_at
"""
EXISTS = "SELECT 1 FROM users WHERE id = ?"
CREDENTIALS = "id, password_hash, password_updated_at, created_at"
GET_CREDENTIALS = f"SELECT {CREDENTIALS} FROM users WHERE id = ?"
FIND_CREDENTIALS = f"SELECT {CREDENTIALS} FROM users WHERE username_key = ?"
DELETE_USER = f"DELETE FROM users WHERE id = ? RETURNING {COLUMNS}"


def now() -> str:
    """The time a write stamps, as stored: ISO 8601 in UTC with microseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def full_profile(profile: Mapping[str, Any]) -> dict[str, Any]:
    """Every field present (``None`` when unset), so a read needs no filling in."""
    return {name: profile.get(name) for name in PROFILE_FIELDS}


def key_of(username: str | None) -> str | None:
    return None if username is None else username_key(username)


def profile_update(changes: Mapping[str, Any], expected: bool, upsert: bool) -> tuple[str, dict]:
    """The one statement that merges ``changes`` into a user's profile, and its parameters.

    ``json_set`` writes only the fields given (a ``None`` stores JSON null: the field is
    cleared, not removed).  With ``expected`` the row must be at ``:expected``; with
    ``upsert`` a missing user is inserted at version 1 instead.
    """
    params: dict[str, Any] = {}
    pairs = []
    for i, (name, value) in enumerate(changes.items()):
        if name not in PROFILE_FIELDS:
            raise ValueError(f"not a profile field: {name!r}")
        params[f"p{i}"] = f"$.{name}"
        params[f"v{i}"] = json.dumps(value)
        pairs.append(f", :p{i}, json(:v{i})")
    merged = f"json_set(profile{''.join(pairs)})"
    assignments = f"profile = {merged}, version = version + 1, updated_at = :now"
    if "username" in changes:
        params["username_key"] = key_of(changes["username"])
        assignments += ", username_key = :username_key"
    if upsert:
        params["profile"] = json.dumps(full_profile(changes))
        params.setdefault("username_key", key_of(changes.get("username")))
        # On an existing row the version becomes at least 2: version 1 in RETURNING
        # means this statement inserted the user.
        sql = f"""
        INSERT INTO users (id, profile, username_key, version, created_at, updated_at)
        VALUES (:id, :profile, :username_key, 1, :now, :now)
        ON CONFLICT (id) DO UPDATE SET {assignments}
        RETURNING {COLUMNS}
        """
    else:
        condition = "id = :id AND version = :expected" if expected else "id = :id"
        sql = f"UPDATE users SET {assignments} WHERE {condition} RETURNING {COLUMNS}"
    return sql, params


def user_from_row(row: tuple) -> User:
    return User(
        id=row[0],
        profile=full_profile(json.loads(row[1])),
        version=row[2],
        created_at=datetime.fromisoformat(row[3]),
        updated_at=datetime.fromisoformat(row[4]),
        password_updated_at=None if row[5] is None else datetime.fromisoformat(row[5]),
    )
