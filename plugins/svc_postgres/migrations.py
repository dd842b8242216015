"""The schema, as an ordered list of migrations, applied at start.

To change the schema, append ``(next_version, sql)`` to :data:`MIGRATIONS`;
never edit one that has shipped.  Those a database has not seen run in one
transaction together with their rows in ``svc_migrations``, under a
transaction-level advisory lock, so two svc processes starting on one database
at the same moment apply each once.  One transaction, not a session: through a
transaction pooler (pooling.py) a session-level lock would be taken on one
server connection and released on another, and stay held for good.
"""

from __future__ import annotations

import logging

from .history import SCHEMA as ROOM_HISTORY
from .messages import SCHEMA as MESSAGES
from .presence import JOIN_MANY_SCHEMA as PRESENCE_JOIN_MANY
from .presence import LEAVE_MANY_SCHEMA as PRESENCE_LEAVE_MANY
from .presence import NUMBERED_SCHEMA as PRESENCE_NUMBERED
from .presence import SCHEMA as PRESENCE

log = logging.getLogger(__name__)

#: Any constant shared by every svc process: the key of the advisory lock around migrating.
LOCK_KEY = 0x5F5C_0001
# Migration 1 as shipped (migration 3 removes its trigger: the broker publishes changes now).
CHANNEL = "svc_users"
PAYLOAD_LIMIT = 7900

USERS = f"""
CREATE TABLE users (
    id                  text PRIMARY KEY,
    profile             jsonb NOT NULL,
    version             bigint NOT NULL,
    password_hash       text,
    password_updated_at timestamptz,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL
);

-- usernames are unique without regard to case; a clash is a Conflict, never a 500
CREATE UNIQUE INDEX users_username_lower_key ON users (lower(profile->>'username'));

-- The change feed.  A trigger, so every write (any process, any client) is announced,
-- and NOTIFY is transactional: a rolled-back write is never announced, and listeners
-- receive notifications in commit order.  The row rides along when it fits, so no
-- process has to read it back; a bigger one is read back by the listener.
CREATE FUNCTION users_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    payload text;
BEGIN
    IF TG_OP = 'DELETE' THEN
        payload := json_build_object('id', OLD.id, 'v', OLD.version + 1, 'd', true)::text;
    ELSE
        payload := json_build_object(
            'id', NEW.id, 'v', NEW.version, 'p', NEW.profile,
            'c', to_char(NEW.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'),
            'u', to_char(NEW.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US')
        )::text;
        IF octet_length(payload) > {PAYLOAD_LIMIT} THEN
            payload := json_build_object('id', NEW.id, 'v', NEW.version)::text;
        END IF;
    END IF;
    PERFORM pg_notify('{CHANNEL}', payload);
    RETURN NULL;
END
$$;

CREATE TRIGGER users_notify_insert_delete AFTER INSERT OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION users_notify();
-- a password change does not move the version: it is not a profile change, nothing to announce
CREATE TRIGGER users_notify_update AFTER UPDATE ON users
    FOR EACH ROW WHEN (OLD.version IS DISTINCT FROM NEW.version) EXECUTE FUNCTION users_notify();
"""

# Usernames are unique under svc.storage.username_key (str.casefold), which Postgres cannot
# compute (lower('ß') is 'ß', casefold gives 'ss'): svc computes the key and stores it beside
# the profile, in the same statement as the profile.  Rows written before this migration came
# through the HTTP field rule (ASCII), where lower() and casefold agree.
USERNAME_CASEFOLD = """
ALTER TABLE users ADD COLUMN username_key text;
UPDATE users SET username_key = lower(profile->>'username');
CREATE UNIQUE INDEX users_username_casefold_key ON users (username_key);
DROP INDEX users_username_lower_key;
"""

# svc publishes each change itself, after its commit, through the broker (one batched
# NOTIFY for a burst of writes).  The trigger cost every commit a global lock on the
# notification queue, even when nobody listened.  A write made outside svc is no longer
# announced at once: the rooms' periodic re-read (every 15 s) picks it up.
NO_USERS_TRIGGER = """
DROP TRIGGER users_notify_insert_delete ON users;
DROP TRIGGER users_notify_update ON users;
DROP FUNCTION users_notify();
"""

#: (version, sql), in order.  Append only.
MIGRATIONS: list[tuple[int, str]] = [
    (1, USERS),
    (2, PRESENCE),  # WebSocket room presence shared by every process (presence.py)
    (3, USERNAME_CASEFOLD),
    (4, NO_USERS_TRIGGER),
    (5, MESSAGES),  # room messages too big for a NOTIFY payload (messages.py)
    (6, PRESENCE_JOIN_MANY),  # joins written together (presence.py, batches.py)
    (7, PRESENCE_LEAVE_MANY),  # leaves written together, the same way
    (8, ROOM_HISTORY + PRESENCE_NUMBERED),  # room events numbered and kept (history.py)
]


async def migrate(
    conn, migrations: list[tuple[int, str]] = MIGRATIONS, timeout: float = 60
) -> None:
    """Apply the migrations ``conn``'s database has not seen yet (aiopg connection, autocommit)."""
    versions = [version for version, _ in migrations]
    if versions != sorted(set(versions)):
        raise ValueError(f"migration versions must increase: {versions}")
    applied_now = []
    async with conn.cursor(timeout=timeout) as cur:
        await cur.execute("BEGIN")
        try:
            # Waiting for another process's migration may take longer than a statement may.
            await cur.execute("SET LOCAL statement_timeout = 0")
            # Released at COMMIT or ROLLBACK, or by the server if this connection dies.
            await cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            await cur.execute(
                "CREATE TABLE IF NOT EXISTS svc_migrations ("
                " version integer PRIMARY KEY,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            await cur.execute("SELECT version FROM svc_migrations")
            applied = {row[0] for row in await cur.fetchall()}
            for version, sql in migrations:
                if version in applied:
                    continue
                await cur.execute(sql)
                await cur.execute("INSERT INTO svc_migrations (version) VALUES (%s)", (version,))
                applied_now.append(version)
            await cur.execute("COMMIT")
        except BaseException:
            if not conn.closed:
                await cur.execute("ROLLBACK")
            raise
    for version in applied_now:
        log.info("postgres: applied schema migration %d", version)
