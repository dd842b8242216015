"""A room's welcome member list: each body serialised once, for every joiner while it holds.

A join burst asks for the same first 100 members thousands of times: reading their records
and joining their bodies per welcome was most of what a welcome cost.  The list is kept
with the very ``MemberSet.first`` list it shows (a new list whenever the first ids change)
and with each member's body, so when the first ids change only the newcomers among them are
read.  Everything is dropped whenever a member's record changes (the room shows the change
and calls :meth:`WelcomeCache.forget`); a read that such a change overtook is used for its
own welcome but not kept (``generation``).

In a burst, the first ids change while their records are being read, and every joiner
meanwhile missed the cache: each read every id it did not know, the same ones again and
again (2,000 joins read 32,000 ids in 500 reads).  So an id being read is waited for, not
read again: a read in flight is shared by the welcomes that need its ids, as long as no
change came in since it started.  A welcome that waits for it joined after it started, so a
change that the read missed either came before (and ended the sharing) or reaches that
welcome's connection as ``profile_updated``.

Each body's version is kept beside it: the room tells a joiner's connection which version
its welcome showed of each member, so a change it showed already is not sent to it again
(see ``Connection.start``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ..serialize import Member, member_json

Read = Callable[[list[str]], Awaitable[list[Member]]]
#: member id → (its body, the version it shows; 0 for a member without a profile)
Bodies = dict[str, tuple[bytes, int]]


class WelcomeCache:
    __slots__ = ("ids", "parts", "versions", "bodies", "generation", "reading")

    def __init__(self) -> None:
        #: the ``MemberSet.first`` list that ``listed`` shows
        self.ids: list[str] | None = None
        #: the bodies of ``ids``, in order: the inside of the welcome's ``members`` once
        #: comma-joined.  Joined per welcome, not kept joined: the joined copy held every
        #: member's body a second time (~190 B of every idle socket in rooms of 100), and
        #: joining ~100 bodies is a copy that the welcome's frame makes twice more anyway.
        self.parts: list[bytes] = []
        #: member id → the version ``listed`` shows of them
        self.versions: dict[str, int] = {}
        #: the ids of ``ids``, and those read since it was stored
        self.bodies: Bodies = {}
        self.generation = 0
        #: member id → the read in flight that brings its body (started in this generation)
        self.reading: dict[str, asyncio.Future[Bodies]] = {}

    async def members(self, ids: list[str], read: Read, with_email: bool) -> bytes:
        """The bodies of ``ids``, comma-separated; ``read`` gets the records not known."""
        return (await self.listing(ids, read, with_email))[0]

    async def listing(
        self, ids: list[str], read: Read, with_email: bool
    ) -> tuple[bytes, dict[str, int]]:
        """The bodies of ``ids``, comma-separated, and the version each shows."""
        if ids is self.ids:
            return b",".join(self.parts), self.versions
        generation, known, reading = self.generation, self.bodies, self.reading
        waits: dict[asyncio.Future[Bodies], None] = {}  # ordered, distinct
        unread = []
        for user_id in ids:
            if user_id not in known:
                pending = reading.get(user_id)
                if pending is None:
                    unread.append(user_id)
                else:
                    waits[pending] = None
        if unread:
            mine = asyncio.ensure_future(self._read(unread, read, with_email))
            for user_id in unread:
                reading[user_id] = mine
            waits[mine] = None
        fetched: Bodies = {}
        for pending in waits:
            # Shielded: a welcome that gives up must not cancel the others' read.
            fetched.update(await asyncio.shield(pending))
        if ids is self.ids:  # another welcome of the same list has stored it meanwhile
            return b",".join(self.parts), self.versions
        bodies = {user_id: known.get(user_id) or fetched[user_id] for user_id in ids}
        parts = [body for body, _ in bodies.values()]
        versions = {user_id: version for user_id, (_, version) in bodies.items()}
        if generation == self.generation:  # else a change came in while reading
            self.ids, self.parts, self.versions, self.bodies = ids, parts, versions, bodies
        return b",".join(parts), versions

    async def _read(self, ids: list[str], read: Read, with_email: bool) -> Bodies:
        generation, reading = self.generation, self.reading
        try:
            records = await read(ids)
        finally:
            for user_id in ids:
                reading.pop(user_id, None)
        fetched = {
            record.id: (member_json(record, with_email), getattr(record, "version", 0))
            for record in records
        }
        if generation == self.generation:  # for the welcomes that come before one stores it
            self.bodies.update(fetched)
        return fetched

    def forget(self) -> None:
        """A member's record changed: nothing kept may be shown again, nor a read in flight
        shared with a welcome that comes after."""
        self.ids, self.parts, self.versions, self.bodies, self.reading = None, [], {}, {}, {}
        self.generation += 1
