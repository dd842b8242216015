"""Who is present in some room, service-wide: the only users whose changes are news.

A transaction that has sent ``NOTIFY`` takes a lock shared by the whole database
at commit, so every notification costs every writer a little.  Most profile
writes are of users connected nowhere; the broker sends those no notification.

The set is built from the presence notifications the broker hears anyway (every
process's joins and leaves) plus one read of ``svc_presence`` at start and after
each LISTEN gap.  It errs one way only: until that read is in, or when a leave
was missed, a user counts as present and their changes are notified.  The one
window it cannot close is a change committed while a join elsewhere is still
on its way here (a millisecond or so): that member's welcome may have read the
older record, and the rooms' periodic re-read (every 15 s) sends the newer one.
"""

from __future__ import annotations

from collections.abc import Iterable

from svc.broker import PresenceChange

#: Every (room, user) present, from every process.
SNAPSHOT = "SELECT DISTINCT room_id, user_id FROM svc_presence"


class PresentUsers:
    def __init__(self) -> None:
        self._rooms: dict[str, set[str]] = {}  # user → rooms where present
        #: False until a snapshot is in (start, and after a gap): everyone counts as present.
        self.known = False
        #: Bumped by each gap: a snapshot begun before the latest gap proves nothing.
        self.generation = 0

    def wants(self, user_id: str) -> bool:
        """Is a change of ``user_id`` news for some room?"""
        return not self.known or user_id in self._rooms

    def apply(self, change: PresenceChange) -> None:
        rooms = self._rooms.get(change.user_id)
        if change.present:
            if rooms is None:
                self._rooms[change.user_id] = {change.room_id}
            else:
                rooms.add(change.room_id)
        elif rooms is not None:
            rooms.discard(change.room_id)
            if not rooms:
                del self._rooms[change.user_id]

    def forget(self) -> None:
        """Notifications may have been missed: know nothing until the next snapshot."""
        self.known = False
        self.generation += 1
        self._rooms.clear()

    def add_snapshot(self, rows: Iterable[tuple[str, str]], generation: int) -> None:
        """Merge a read of svc_presence.  Only adds: a notification heard while the read
        was on its way is newer than it, and a stale entry only costs a notification."""
        for room_id, user_id in rows:
            self._rooms.setdefault(user_id, set()).add(room_id)
        if generation == self.generation:
            self.known = True
