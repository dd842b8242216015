"""Room presence shared by every svc process on one database.

Each process is a node: a row in ``svc_nodes`` whose ``seen_at`` it refreshes
every ``HEARTBEAT`` seconds.  ``svc_presence`` holds (room, user, node) rows.
A user is present in a room while any node holds a row for them; the
functions below (migration 2) take an advisory lock per (room, user), so
"first in" and "last out" are decided exactly once, and then ``NOTIFY`` on
``svc_presence``.  Every node expires nodes silent for ``NODE_TTL`` seconds,
announcing their members' departure, so a process that died leaves no ghost
for longer than ``NODE_TTL + HEARTBEAT`` (25 s).

The node that made a change announces it to its own hub at once (a joiner's
welcome must count them); its own notification is then skipped.  A node
found expired while alive (a long database outage) registers again and
re-joins what it holds.  Notifications lost while the LISTEN connection
was down are not replayed here: the hub re-reads every room it hosts every
15 s (``Hub.reconcile``) and sends what differs.
"""

from __future__ import annotations

import asyncio
import json
import logging

from svc.broker import PresenceChange

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

_REGISTER = (
    "INSERT INTO svc_nodes (id) VALUES (%s)"
    " ON CONFLICT (id) DO UPDATE SET seen_at = now() RETURNING id"
)
_BEAT = "UPDATE svc_nodes SET seen_at = now() WHERE id = %s RETURNING id"
_EXPIRE = (
    "SELECT svc_presence_drop_nodes(ARRAY("
    "SELECT id FROM svc_nodes WHERE seen_at < now() - %s * interval '1 second'))"
)
_MEMBERS = (
    "SELECT DISTINCT user_id FROM svc_presence WHERE room_id = %s AND user_id > %s"
    " ORDER BY user_id LIMIT %s"
)
_COUNT = "SELECT count(DISTINCT user_id) FROM svc_presence WHERE room_id = %s"


class PostgresPresence:
    """Presence hooks for ``PostgresStorage`` (mixed in before ``Storage``)."""

    _presence_tasks: list[asyncio.Task] | None = None

    @property
    def node_id(self) -> str:
        return self.application_name

    async def _presence_start(self) -> None:
        if self._presence_tasks is not None:
            return
        await self._fetchone(_REGISTER, (self.node_id,))
        # Notifications ride on the change feed's LISTEN connection (no extra connection).
        self._feed.channels[CHANNEL] = self._presence_notified
        self._presence_tasks = [
            asyncio.create_task(self._presence_heartbeat(), name="svc-presence-heartbeat")
        ]

    async def _presence_stop(self) -> None:
        tasks, self._presence_tasks = self._presence_tasks, None
        if tasks is None:
            return
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:  # goodbye: our members leave now, not after NODE_TTL
            await self._fetchone("SELECT svc_presence_drop_nodes(%s)", ([self.node_id],))
        except Exception as exc:  # noqa: BLE001 - the others expire us anyway
            log.warning("postgres: could not remove presence node (%s)", exc)

    # -- the hooks --------------------------------------------------------------

    async def presence_join(self, room_id: str, user_id: str) -> None:
        holders = self._presence.setdefault(room_id, {})
        holders[user_id] = holders.get(user_id, 0) + 1
        try:
            row = await self._fetchone(
                "SELECT svc_presence_join(%s, %s, %s, 1)", (room_id, user_id, self.node_id)
            )
        except BaseException:
            self._forget(room_id, user_id)
            raise
        if row[0]:
            self.announce_presence(PresenceChange(room_id, user_id, True))

    async def presence_leave(self, room_id: str, user_id: str) -> None:
        self._forget(room_id, user_id)
        row = await self._fetchone(
            "SELECT svc_presence_leave(%s, %s, %s)", (room_id, user_id, self.node_id)
        )
        if row[0]:
            self.announce_presence(PresenceChange(room_id, user_id, False))

    async def presence_members(
        self, room_id: str, after: str | None = None, limit: int = 100
    ) -> list[str]:
        rows = await self._fetch(_MEMBERS, (room_id, after or "", limit), one=False)
        return [row[0] for row in rows]

    async def presence_count(self, room_id: str) -> int:
        return (await self._fetchone(_COUNT, (room_id,)))[0]

    def _forget(self, room_id: str, user_id: str) -> None:
        holders = self._presence.get(room_id, {})
        if holders.get(user_id, 0) > 1:
            holders[user_id] -= 1
        else:
            holders.pop(user_id, None)
            if not holders:
                self._presence.pop(room_id, None)

    # -- background work --------------------------------------------------------

    async def _presence_heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT)
            try:
                if await self._fetchone(_BEAT, (self.node_id,)) is None:
                    await self._presence_rejoin()
                await self._fetchone(_EXPIRE, (NODE_TTL,))
            except Exception as exc:  # noqa: BLE001 - database trouble: try again next beat
                log.warning("postgres: presence heartbeat failed (%s)", exc)

    async def _presence_rejoin(self) -> None:
        """We were expired while alive: register again and hold what our hub holds."""
        log.warning("postgres: presence node %s had expired; re-joining its members", self.node_id)
        await self._fetchone(_REGISTER, (self.node_id,))
        for room_id, holders in list(self._presence.items()):
            for user_id, count in list(holders.items()):
                row = await self._fetchone(
                    "SELECT svc_presence_join(%s, %s, %s, %s)",
                    (room_id, user_id, self.node_id, count),
                )
                if row[0]:
                    self.announce_presence(PresenceChange(room_id, user_id, True))

    def _presence_notified(self, payload: str) -> None:
        try:
            data = json.loads(payload)
            change = PresenceChange(data["r"], data["u"], bool(data["p"]))
            node = data.get("n")
        except (ValueError, KeyError, TypeError):
            log.warning("postgres: ignoring a malformed notification on %s", CHANNEL)
            return
        if node != self.node_id:  # our own changes were announced when made
            self.announce_presence(change)
