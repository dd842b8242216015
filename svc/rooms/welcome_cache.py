"""A room's welcome member list, serialised once for every joiner while it holds.

A join burst asks for the same first 100 members thousands of times: reading their records
and joining their bodies per welcome was most of what a welcome cost.  The list is kept
with the very ``MemberSet.first`` list it shows (a new list whenever the first ids change)
and with each member's body, so when the first ids change only the newcomers among them are
read.  Everything is dropped whenever a member's record changes (the hub shows the change
and calls :meth:`WelcomeCache.forget`); a read that such a change overtook is used for its
own welcome but not kept (``generation``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ..views import Member, member_json


class WelcomeCache:
    __slots__ = ("ids", "listed", "bodies", "generation")

    def __init__(self) -> None:
        #: the ``MemberSet.first`` list that ``listed`` shows
        self.ids: list[str] | None = None
        #: the bodies of ``ids``, comma-separated (the inside of the welcome's ``members``)
        self.listed = b""
        #: member id → its body, for the ids of ``ids``
        self.bodies: dict[str, bytes] = {}
        self.generation = 0

    async def members(
        self,
        ids: list[str],
        read: Callable[[list[str]], Awaitable[list[Member]]],
        with_email: bool,
    ) -> bytes:
        """The bodies of ``ids``, comma-separated; ``read`` gets the records not known."""
        if ids is self.ids:
            return self.listed
        generation, known = self.generation, self.bodies
        records = await read([user_id for user_id in ids if user_id not in known])
        bodies = {user_id: known[user_id] for user_id in ids if user_id in known}
        bodies.update((record.id, member_json(record, with_email)) for record in records)
        listed = b",".join(bodies[user_id] for user_id in ids)
        if generation == self.generation:  # else a change came in while reading
            self.ids, self.listed, self.bodies = ids, listed, bodies
        return listed

    def forget(self) -> None:
        """A member's record changed: nothing kept may be shown again."""
        self.ids, self.listed, self.bodies = None, b"", {}
        self.generation += 1
