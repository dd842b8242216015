"""Who is present in some room, service-wide: the only users whose changes are news.

A transaction that has sent ``NOTIFY`` takes a lock shared by the whole database
at commit, so every notification costs every writer a little.  Most profile
writes are of users connected nowhere; the broker sends those no notification.

The set is built from the presence notifications the broker hears anyway (every
process's joins and leaves) plus one read of ``svc_presence`` at start and after
each LISTEN gap.  It errs one way only: until that read is in, or when a leave
was missed, a user counts as present and their changes are notified.

A join made elsewhere reaches this process a little after its commit (milliseconds,
more under load), and the joiner's welcome may have read the record before a change
this process makes meanwhile.  So a change notified to nobody is held back
(:class:`HeldBack`, for ``HOLD`` seconds): when the join of its user is heard, the
change is notified then, as id and version (the rooms read the record and show it
if it is news to them).  Past ``HOLD``, the rooms' periodic re-read (every 15 s)
repairs.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from svc.broker import Change, PresenceChange

#: Every (room, user) present, from every process.
SNAPSHOT = "SELECT DISTINCT room_id, user_id FROM svc_presence"
#: Seconds a change notified to nobody is held back, waiting for a join heard late.
HOLD = 5.0
#: At most this many held back, the oldest dropped first, so memory stays bounded at any
#: write rate (50,000 entries: about 10 MiB).  Five seconds of 10,000 writes a second.
MOST_HELD = 50_000


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


class HeldBack:
    """The changes notified to nobody lately: user → (version, deleted, when), oldest first."""

    def __init__(
        self, hold: float = HOLD, most: int = MOST_HELD, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._hold = hold
        self._most = most
        self._clock = clock
        # An OrderedDict, not a dict: dropping the oldest again and again stays O(1).
        self._held: OrderedDict[str, tuple[int, bool, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._held)

    def hold(self, change: Change) -> None:
        now = self._clock()
        held = self._held
        held[change.user_id] = (change.version, change.deleted, now)
        held.move_to_end(change.user_id)  # the latest of a user replaces theirs, last in line
        while held:
            oldest = next(iter(held.values()))
            if len(held) <= self._most and now - oldest[2] <= self._hold:
                break
            held.popitem(last=False)

    def release(self, user_id: str) -> Change | None:
        """The change of ``user_id`` held back, if still within ``HOLD``, as id and version
        (the record may be newer by now: receivers read it)."""
        entry = self._held.pop(user_id, None)
        if entry is None:
            return None
        version, deleted, when = entry
        if self._clock() - when > self._hold:
            return None
        return Change(user_id, version, None, deleted=deleted)
