"""The SQL of every operation, and rows turned into ``User``.

Each write is one statement (autocommit), so it is atomic on its own; the
version moves in the same statement as the data, and timestamps come from
the database clock.
"""

from __future__ import annotations

from typing import Any

from svc.storage import PROFILE_FIELDS, User

from .prepared import statement

COLUMNS = "id, profile, version, created_at, updated_at, password_updated_at"

# The statements of every read and profile write are prepared on each pooled connection
# (prepared.py); each declares its parameters' types.
GET_USER = statement("svc_get_user", f"SELECT {COLUMNS} FROM users WHERE id = %(id)s", id="text")
GET_USERS = statement(
    "svc_get_users", f"SELECT {COLUMNS} FROM users WHERE id = ANY(%(ids)s)", ids="text[]"
)
GET_VERSION = "SELECT version FROM users WHERE id = %s"

# clock_timestamp() read once, so created_at == updated_at for a new user.
# %(key)s is svc.storage.username_key of the username (NULL without one), computed by
# svc: Postgres has no casefold.  %(sets_username)s says whether the changes hold a username.
CREATE_USER = statement(
    "svc_create_user",
    f"""
INSERT INTO users (id, profile, username_key, version, password_hash, password_updated_at,
                   created_at, updated_at)
SELECT %(id)s, %(profile)s, %(key)s, 1, %(hash)s,
       CASE WHEN %(hash)s IS NULL THEN NULL ELSE t END, t, t
FROM (SELECT clock_timestamp() AS t) AS now
RETURNING {COLUMNS}
""",
    id="text",
    profile="jsonb",
    key="text",
    hash="text",
)

# `||` merges only the given keys into the stored profile: concurrent updates of
# different fields both survive, and the row lock orders the version bumps.
_UPDATE_PROFILE = f"""
UPDATE users SET profile = profile || %(changes)s, version = version + 1,
                 updated_at = clock_timestamp(),
                 username_key = CASE WHEN %(sets_username)s THEN %(key)s ELSE username_key END
WHERE id = %(id)s
RETURNING {COLUMNS}, false
"""
_PROFILE_TYPES = {"id": "text", "changes": "jsonb", "sets_username": "boolean", "key": "text"}
UPDATE_PROFILE = statement("svc_update_profile", _UPDATE_PROFILE, **_PROFILE_TYPES)
UPDATE_PROFILE_AT_VERSION = statement(
    "svc_update_profile_at_version",
    _UPDATE_PROFILE.replace("WHERE id = %(id)s", "WHERE id = %(id)s AND version = %(expected)s"),
    **_PROFILE_TYPES,
    expected="bigint",
)

# Create-or-merge in one statement: two concurrent creates of one id cannot both insert.
# xmax = 0 holds only for a freshly inserted row.
UPSERT_PROFILE = statement(
    "svc_upsert_profile",
    f"""
INSERT INTO users AS u (id, profile, username_key, version, created_at, updated_at)
SELECT %(id)s, %(profile)s, %(key)s, 1, t, t FROM (SELECT clock_timestamp() AS t) AS now
ON CONFLICT (id) DO UPDATE
    SET profile = u.profile || %(changes)s, version = u.version + 1, updated_at = clock_timestamp(),
        username_key = CASE WHEN %(sets_username)s THEN %(key)s ELSE u.username_key END
RETURNING {COLUMNS}, (u.xmax = 0)
""",
    **_PROFILE_TYPES,
    profile="jsonb",
)
PREPARED = (
    GET_USER,
    GET_USERS,
    CREATE_USER,
    UPDATE_PROFILE,
    UPDATE_PROFILE_AT_VERSION,
    UPSERT_PROFILE,
)

# With an expected hash, a compare-and-set in one statement (the row lock orders racers).
SET_PASSWORD_HASH = """
UPDATE users SET password_hash = %(hash)s, password_updated_at = clock_timestamp()
WHERE id = %(id)s AND (%(expected)s::text IS NULL OR password_hash = %(expected)s)
RETURNING password_updated_at
"""
CREDENTIALS = "id, password_hash, password_updated_at, created_at"
GET_CREDENTIALS = f"SELECT {CREDENTIALS} FROM users WHERE id = %s"
FIND_CREDENTIALS = f"SELECT {CREDENTIALS} FROM users WHERE username_key = %s"
DELETE_USER = f"DELETE FROM users WHERE id = %s RETURNING {COLUMNS}"

#: Constraint names, to tell which unique value a UniqueViolation is about.
ID_KEY = "users_pkey"
USERNAME_KEY = "users_username_casefold_key"


def full_profile(profile: dict[str, Any]) -> dict[str, Any]:
    """Every field present (``None`` when unset), so a read needs no filling in."""
    return {name: profile.get(name) for name in PROFILE_FIELDS}


def user_from_row(row: tuple) -> User:
    return User(
        id=row[0],
        profile=row[1],
        version=row[2],
        created_at=row[3],
        updated_at=row[4],
        password_updated_at=row[5],
    )
