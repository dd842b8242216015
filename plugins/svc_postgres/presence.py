"""Room presence shared by every svc process on one database, for ``PostgresBroker``.

Each broker instance is a node: a row in ``svc_nodes`` whose ``seen_at`` it
refreshes every ``HEARTBEAT`` seconds.  ``svc_presence`` holds (room, user,
node) rows.  A user is present in a room while any node holds a row for them;
the functions below (migration 2) take an advisory lock per (room, user), so
"first in" and "last out" are decided exactly once, and then ``NOTIFY`` on
``svc_presence``.  Every node expires nodes silent for ``NODE_TTL`` seconds,
announcing their members' departure, so a process that died leaves no ghost
for longer than ``NODE_TTL + HEARTBEAT`` (25 s).

Joins that arrive while one is being written are written together, in one transaction
(``svc_presence_join_many``, :class:`svc.broker.pubsub.OneInFlight`): each join costs a
commit and a ``NOTIFY``, and a ``NOTIFY`` holds a lock from its commit until the commit
is on disk, so a crowd joining at once would otherwise commit one join after another.
Leaves are written the same way (``svc_presence_leave_many``), in their own batches.

The node that made a change announces it to its own listener at once (a
joiner's welcome must count them); its own notification is then skipped.  A
node found expired while alive (a long database outage) registers again and
re-joins what it holds.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from svc.broker import PresenceChange
from svc.broker.pubsub import OneInFlight

from .history import numbers_of

log = logging.getLogger(__name__)

CHANNEL = "svc_presence"
HEARTBEAT = 5.0
NODE_TTL = 20.0

SCHEMA = f"""
CREATE TABLE svc_nodes (
    id      text PRIMARY KEY,
    seen_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE svc_presence (
    room_id text NOT NULL,
    user_id text NOT NULL,
    node_id text NOT NULL,
    holders integer NOT NULL,
    PRIMARY KEY (room_id, user_id, node_id)
);
CREATE INDEX svc_presence_node ON svc_presence (node_id);

CREATE FUNCTION svc_presence_notify(room text, member text, present boolean, node text)
RETURNS void LANGUAGE sql AS $$
    SELECT pg_notify('{CHANNEL}',
        json_build_object('r', room, 'u', member, 'p', present, 'n', node)::text)
$$;

-- true when the user just became present (the first holder anywhere)
CREATE FUNCTION svc_presence_join(room text, member text, node text, n integer)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext(room), hashtext(member));
    IF EXISTS (SELECT 1 FROM svc_presence WHERE room_id = room AND user_id = member) THEN
        INSERT INTO svc_presence AS p VALUES (room, member, node, n)
            ON CONFLICT (room_id, user_id, node_id) DO UPDATE SET holders = p.holders + n;
        RETURN false;
    END IF;
    INSERT INTO svc_presence VALUES (room, member, node, n);
    PERFORM svc_presence_notify(room, member, true, node);
    RETURN true;
END
$$;

-- true when the user just left (their last holder anywhere)
CREATE FUNCTION svc_presence_leave(room text, member text, node text)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    remaining integer;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext(room), hashtext(member));
    UPDATE svc_presence SET holders = holders - 1
        WHERE room_id = room AND user_id = member AND node_id = node
        RETURNING holders INTO remaining;
    IF remaining IS NULL THEN
        RETURN false;  -- not held here (expired meanwhile): its leave was announced then
    END IF;
    IF remaining <= 0 THEN
        DELETE FROM svc_presence WHERE room_id = room AND user_id = member AND node_id = node;
    END IF;
    IF EXISTS (SELECT 1 FROM svc_presence WHERE room_id = room AND user_id = member) THEN
        RETURN false;
    END IF;
    PERFORM svc_presence_notify(room, member, false, node);
    RETURN true;
END
$$;

-- Remove nodes (gone, or silent too long) and announce the users only they held.
CREATE FUNCTION svc_presence_drop_nodes(dead text[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    row record;
BEGIN
    FOR row IN SELECT DISTINCT room_id, user_id FROM svc_presence
               WHERE node_id = ANY(dead) ORDER BY room_id, user_id LOOP
        PERFORM pg_advisory_xact_lock(hashtext(row.room_id), hashtext(row.user_id));
        DELETE FROM svc_presence
            WHERE room_id = row.room_id AND user_id = row.user_id AND node_id = ANY(dead);
        IF NOT EXISTS (SELECT 1 FROM svc_presence
                       WHERE room_id = row.room_id AND user_id = row.user_id) THEN
            PERFORM svc_presence_notify(row.room_id, row.user_id, false, '');
        END IF;
    END LOOP;
    DELETE FROM svc_nodes WHERE id = ANY(dead);
END
$$;
"""

#: Migration 6: joins in one transaction, each as svc_presence_join decides it (true: the
#: first holder anywhere).  Locks are taken in (room, user) order, as svc_presence_drop_nodes
#: takes them, so two batches (or a batch and an expiry) cannot deadlock.
JOIN_MANY_SCHEMA = """
CREATE FUNCTION svc_presence_join_many(rooms text[], members text[], node text)
RETURNS boolean[] LANGUAGE plpgsql AS $$
DECLARE
    joined boolean[] := array_fill(false, ARRAY[cardinality(rooms)]);
    i integer;
BEGIN
    FOR i IN SELECT s.i FROM generate_subscripts(rooms, 1) AS s(i)
             ORDER BY rooms[s.i], members[s.i] LOOP
        joined[i] := svc_presence_join(rooms[i], members[i], node, 1);
    END LOOP;
    RETURN joined;
END
$$;
"""

#: Migration 7: leaves in one transaction, the same way (true: the last holder anywhere).
LEAVE_MANY_SCHEMA = """
CREATE FUNCTION svc_presence_leave_many(rooms text[], members text[], node text)
RETURNS boolean[] LANGUAGE plpgsql AS $$
DECLARE
    left_ boolean[] := array_fill(false, ARRAY[cardinality(rooms)]);
    i integer;
BEGIN
    FOR i IN SELECT s.i FROM generate_subscripts(rooms, 1) AS s(i)
             ORDER BY rooms[s.i], members[s.i] LOOP
        left_[i] := svc_presence_leave(rooms[i], members[i], node);
    END LOOP;
    RETURN left_;
END
$$;
"""

#: Migration 8 (after history.SCHEMA): every transition is numbered in its room and kept in
#: its history (history.py), and the functions answer its numbers ('EPOCH:SEQ', NULL: no
#: transition) instead of true/false, so the node that made it announces it numbered.  The
#: room's counter row, locked first, in room order, decides "first in" and "last out" (the
#: advisory locks are gone).  A caller of the previous release reads a text as true and a
#: NULL as false: a rolling restart keeps working.
NUMBERED_SCHEMA = f"""
DROP FUNCTION svc_presence_join_many(text[], text[], text);
DROP FUNCTION svc_presence_leave_many(text[], text[], text);
DROP FUNCTION svc_presence_join(text, text, text, integer);
DROP FUNCTION svc_presence_leave(text, text, text);
DROP FUNCTION svc_presence_notify(text, text, boolean, text);

CREATE FUNCTION svc_presence_notify(room text, member text, present boolean, node text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    e text;
    q bigint;
    payload text;
BEGIN
    SELECT room_epoch, room_seq INTO e, q FROM svc_room_number(room);
    -- "n" last: a node tells its own notifications by their tail (Presence._own_tail)
    payload := json_build_object(
        't', 'p', 'r', room, 'u', member, 'p', present, 'e', e, 'q', q, 'n', node)::text;
    PERFORM svc_room_keep(room, q, payload);
    PERFORM pg_notify('{CHANNEL}', payload);
    RETURN e || ':' || q;
END
$$;

CREATE FUNCTION svc_presence_join(room text, member text, node text, n integer)
RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM svc_room_lock(ARRAY[room]);
    IF EXISTS (SELECT 1 FROM svc_presence WHERE room_id = room AND user_id = member) THEN
        INSERT INTO svc_presence AS p VALUES (room, member, node, n)
            ON CONFLICT (room_id, user_id, node_id) DO UPDATE SET holders = p.holders + n;
        RETURN NULL;
    END IF;
    INSERT INTO svc_presence VALUES (room, member, node, n);
    RETURN svc_presence_notify(room, member, true, node);
END
$$;

CREATE FUNCTION svc_presence_leave(room text, member text, node text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    remaining integer;
BEGIN
    PERFORM svc_room_lock(ARRAY[room]);
    UPDATE svc_presence SET holders = holders - 1
        WHERE room_id = room AND user_id = member AND node_id = node
        RETURNING holders INTO remaining;
    IF remaining IS NULL THEN
        RETURN NULL;  -- not held here (expired meanwhile): its leave was announced then
    END IF;
    IF remaining <= 0 THEN
        DELETE FROM svc_presence WHERE room_id = room AND user_id = member AND node_id = node;
    END IF;
    IF EXISTS (SELECT 1 FROM svc_presence WHERE room_id = room AND user_id = member) THEN
        RETURN NULL;
    END IF;
    RETURN svc_presence_notify(room, member, false, node);
END
$$;

CREATE FUNCTION svc_presence_join_many(rooms text[], members text[], node text)
RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
    joined text[] := array_fill(NULL::text, ARRAY[cardinality(rooms)]);
    i integer;
BEGIN
    PERFORM svc_room_lock(rooms);
    FOR i IN SELECT s.i FROM generate_subscripts(rooms, 1) AS s(i)
             ORDER BY rooms[s.i], members[s.i] LOOP
        joined[i] := svc_presence_join(rooms[i], members[i], node, 1);
    END LOOP;
    RETURN joined;
END
$$;

CREATE FUNCTION svc_presence_leave_many(rooms text[], members text[], node text)
RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
    left_ text[] := array_fill(NULL::text, ARRAY[cardinality(rooms)]);
    i integer;
BEGIN
    PERFORM svc_room_lock(rooms);
    FOR i IN SELECT s.i FROM generate_subscripts(rooms, 1) AS s(i)
             ORDER BY rooms[s.i], members[s.i] LOOP
        left_[i] := svc_presence_leave(rooms[i], members[i], node);
    END LOOP;
    RETURN left_;
END
$$;

CREATE OR REPLACE FUNCTION svc_presence_drop_nodes(dead text[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    row record;
BEGIN
    PERFORM svc_room_lock(ARRAY(
        SELECT DISTINCT room_id FROM svc_presence WHERE node_id = ANY(dead)));
    FOR row IN SELECT DISTINCT room_id, user_id FROM svc_presence
               WHERE node_id = ANY(dead) ORDER BY room_id, user_id LOOP
        DELETE FROM svc_presence
            WHERE room_id = row.room_id AND user_id = row.user_id AND node_id = ANY(dead);
        IF NOT EXISTS (SELECT 1 FROM svc_presence
                       WHERE room_id = row.room_id AND user_id = row.user_id) THEN
            PERFORM svc_presence_notify(row.room_id, row.user_id, false, '');
        END IF;
    END LOOP;
    DELETE FROM svc_nodes WHERE id = ANY(dead);
END
$$;
"""

_REGISTER = (
    "INSERT INTO svc_nodes (id) VALUES (%s)"
    " ON CONFLICT (id) DO UPDATE SET seen_at = now() RETURNING id"
)
_BEAT = "UPDATE svc_nodes SET seen_at = now() WHERE id = %s RETURNING id"
# SKIP LOCKED: two nodes beating at once expire a dead one once, and one of them says so.
# Each statement that may number a transition says first how much history its node keeps
# (history.py: svc_room_keeping, for its own transaction).
_EXPIRE = (
    "SELECT dead, svc_presence_drop_nodes(dead) FROM svc_room_keeping(%s) AS k, (SELECT ARRAY("
    "SELECT id FROM svc_nodes WHERE seen_at < now() - %s * interval '1 second'"
    " FOR UPDATE SKIP LOCKED) AS dead) AS expiring"
)
_GOODBYE = "SELECT svc_presence_drop_nodes(%s) FROM svc_room_keeping(%s) AS k"
_JOIN = "SELECT svc_presence_join(%s, %s, %s, %s) FROM svc_room_keeping(%s) AS k"
_JOIN_MANY = (
    "SELECT svc_presence_join_many(%s::text[], %s::text[], %s) FROM svc_room_keeping(%s) AS k"
)
_LEAVE_MANY = (
    "SELECT svc_presence_leave_many(%s::text[], %s::text[], %s) FROM svc_room_keeping(%s) AS k"
)
_MEMBERS = (
    "SELECT DISTINCT user_id FROM svc_presence WHERE room_id = %s AND user_id > %s"
    " ORDER BY user_id LIMIT %s"
)
_COUNT = "SELECT count(DISTINCT user_id) FROM svc_presence WHERE room_id = %s"

#: Runs one statement on the broker's pool: (sql, params, one) → a row, or every row.
Fetch = Callable[..., Awaitable]

#: Joins asked for while a batch is being written go in the next, at most this many per
#: statement.  A crowd's joins wait for each other: with one statement in flight, each
#: costs a turn of the busy event loop, so the size sets how fast a crowd gets in.  The
#: best size has moved with the code around it (bench/README.md, "Joining a room").  When
#: every welcome re-read what it missed, bigger batches let crowds in at once and memory
#: per socket grew (18 KB to 170 KB with 32).  Since welcomes share their reads
#: (welcome_cache.py), 2,000 joins wait 32-66 ms each (median) with 64, against 245 ms
#: with 16, and connect in 0.94x the time of 16 with 0.94x the memory per socket; 128
#: and 256 gained nothing more.
JOINS_PER_BATCH = 64
#: Leaves, the same way: a crowd that goes at once (a deploy, a network blip) is written
#: in a few commits, not one commit per socket.
LEAVES_PER_BATCH = 64


class Presence:
    """One node's presence: what it holds, its heartbeat, its goodbye."""

    def __init__(
        self,
        node_id: str,
        fetch: Fetch,
        announce: Callable[[PresenceChange], None],
        keeping: Callable[[], int] = lambda: 100,
    ):
        self.node_id = node_id
        #: ROOM_HISTORY of this node, read at each statement (svc sets it before open)
        self._keeping = keeping
        self._fetch = fetch
        self._announce = announce
        #: room → user → connections this node holds (to re-join after being expired)
        self._held: dict[str, dict[str, int]] = {}
        self._joins = OneInFlight(self._join_many, "svc-postgres-joins", most=JOINS_PER_BATCH)
        self._leaves = OneInFlight(self._leave_many, "svc-postgres-leaves", most=LEAVES_PER_BATCH)
        #: How this node's own notifications end (json_build_object's spacing; the node
        #: comes last), so they are skipped unparsed: a crowd joining here sends one each.
        #: A name Postgres would escape otherwise is merely parsed.
        self._own_tail = f'"n" : {json.dumps(node_id, ensure_ascii=False)}}}'

    async def register(self) -> None:
        await self._fetch(_REGISTER, (self.node_id,))

    async def goodbye(self) -> None:
        """Drop this node: the users only it held leave now, for everyone, not after NODE_TTL."""
        self._held.clear()
        await self._fetch(_GOODBYE, ([self.node_id], self._keeping()))

    async def beat(self) -> bool:
        """Say we are alive and expire the silent (one line for each); True if we had been
        expired ourselves (and have re-joined what we hold)."""
        rejoined = False
        if await self._fetch(_BEAT, (self.node_id,)) is None:
            await self._rejoin()
            rejoined = True
        expired = await self._fetch(_EXPIRE, (self._keeping(), NODE_TTL))
        for node in expired[0] if expired else ():
            log.warning(
                "postgres: expired presence node %s (silent for over %g s); its members left",
                node,
                NODE_TTL,
            )
        return rejoined

    # -- the broker's presence methods -----------------------------------------

    async def join(self, room_id: str, user_id: str) -> None:
        holders = self._held.setdefault(room_id, {})
        holders[user_id] = holders.get(user_id, 0) + 1
        try:
            first = await self._joins.add((room_id, user_id))
        except BaseException:
            self._forget(room_id, user_id)
            raise
        if first:
            self._announce(PresenceChange(room_id, user_id, True, *numbers_of(first)))

    async def _join_many(self, joins: list[tuple[str, str]]) -> list[str | None]:
        """One batch of joins, one statement: for each, the numbers of its user's becoming
        present ('EPOCH:SEQ'), or None when they were present already."""
        return await self._write_many(_JOIN_MANY, joins)

    async def leave(self, room_id: str, user_id: str) -> None:
        self._forget(room_id, user_id)
        last = await self._leaves.add((room_id, user_id))
        if last:
            self._announce(PresenceChange(room_id, user_id, False, *numbers_of(last)))

    async def _leave_many(self, leaves: list[tuple[str, str]]) -> list[str | None]:
        """One batch of leaves, one statement: for each, the numbers of its user's leaving,
        or None when they are still present (or were not held here)."""
        return await self._write_many(_LEAVE_MANY, leaves)

    async def _write_many(self, sql: str, pairs: list[tuple[str, str]]) -> list[str | None]:
        rooms = [room_id for room_id, _ in pairs]
        users = [user_id for _, user_id in pairs]
        row = await self._fetch(sql, (rooms, users, self.node_id, self._keeping()))
        return row[0]

    async def members(self, room_id: str, after: str | None, limit: int) -> list[str]:
        rows = await self._fetch(_MEMBERS, (room_id, after or "", limit), one=False)
        return [row[0] for row in rows]

    async def count(self, room_id: str) -> int:
        return (await self._fetch(_COUNT, (room_id,)))[0]

    def parse(self, payload: str) -> PresenceChange | None:
        """A notification → the change, or None when it is our own (announced when made).
        ValueError/KeyError/TypeError when malformed."""
        if payload.endswith(self._own_tail):
            return None
        data = json.loads(payload)
        epoch, seq = data.get("e"), data.get("q")
        if not (isinstance(epoch, str) and isinstance(seq, int) and not isinstance(seq, bool)):
            epoch, seq = None, None  # from a node of the previous release: not numbered
        change = PresenceChange(data["r"], data["u"], bool(data["p"]), epoch, seq)
        return None if data.get("n") == self.node_id else change

    # -------------------------------------------------------------------------

    def _forget(self, room_id: str, user_id: str) -> None:
        holders = self._held.get(room_id, {})
        if holders.get(user_id, 0) > 1:
            holders[user_id] -= 1
        else:
            holders.pop(user_id, None)
            if not holders:
                self._held.pop(room_id, None)

    async def _rejoin(self) -> None:
        """We were expired while alive: register again and hold what we hold."""
        log.warning("postgres: presence node %s had expired; re-joining its members", self.node_id)
        await self.register()
        for room_id, holders in list(self._held.items()):
            for user_id, count in list(holders.items()):
                row = await self._fetch(
                    _JOIN, (room_id, user_id, self.node_id, count, self._keeping())
                )
                if row[0]:
                    self._announce(PresenceChange(room_id, user_id, True, *numbers_of(row[0])))
