"""Profile changes handed to the rooms in version order, even when they arrive out of it.

Two writes of one user commit in version order, but the requests that made
them may publish in the other order (each resumes when its own reply is read),
and a broker keeps the order in which changes were published.  Left alone, the
rooms would show version 3 and then drop version 2 as stale.  So a change that
skips ahead of the last version shown waits, up to ``wait`` seconds, for the
ones before it; whatever has arrived then goes out in order.  A repair (a
re-read, which finds the latest version after a gap) never waits.

:class:`ChangeOrder` decides and returns; it never shows anything itself.  ``offer`` and
``release`` return the changes to show now, in order; the caller shows them, and when
``offer`` parks a user's first early change it asks the caller to ``release`` that user
after ``wait`` seconds (the caller owns the loop and hands the timer back to be held).
"""

from __future__ import annotations

import asyncio
from collections.abc import Container, Iterable

from ..broker import Change
from ..storage import User

#: How long a change that skipped ahead waits for the versions before it.
WAIT = 0.1


class ChangeOrder:
    """user → (last version shown, deleted), for the users present in rooms here, and the
    changes that wait for the versions before them."""

    def __init__(self, wait: float = WAIT):
        self.wait = wait
        self._last: dict[str, tuple[int, bool]] = {}
        self._parked: dict[str, dict[int, Change]] = {}  # user → version → change
        self._timers: dict[str, asyncio.TimerHandle] = {}

    # -- what the rooms have shown ---------------------------------------------------

    def last(self, user_id: str) -> tuple[int, bool] | None:
        """(last version shown, deleted), or None for a user not heard of."""
        return self._last.get(user_id)

    def knows(self, user_id: str) -> bool:
        return user_id in self._last

    def baseline(self, user_id: str, version: int) -> None:
        """What a read found for a user never heard of: the rooms showed it already."""
        self._last.setdefault(user_id, (version, False))

    def shown(self, records: Iterable[object], present: Container[str]) -> None:
        """Records a frame showed, of users ``present`` here: the versions later news is new
        against.  (Without this, a change that reached no one, e.g. a write made outside
        svc, would be taken for the baseline by the next re-read, and never shown.)"""
        for record in records:
            if isinstance(record, User) and record.id in present:
                self._last.setdefault(record.id, (record.version, False))

    def deleted(self, user_id: str) -> bool:
        """A re-read found no such user: True if that is news (we knew it as existing)."""
        last = self._last.get(user_id)
        if last is not None and not last[1]:
            self._last[user_id] = (last[0] + 1, True)
            return True
        return False

    def forget(self, user_id: str) -> None:
        """The user is in no room here: nothing of them is needed any more."""
        self._last.pop(user_id, None)
        self._drop_parked(user_id)

    # -- the order ---------------------------------------------------------------------

    def offer(self, change: Change, repair: bool = False) -> tuple[list[Change], bool]:
        """The changes to show now, in order, and whether the caller must call
        ``release(change.user_id)`` after ``wait`` seconds (then :meth:`hold` the timer)."""
        user_id = change.user_id
        last = self._last.get(user_id)
        skips_ahead = last is not None and not last[1] and change.version > last[0] + 1
        if skips_ahead and not repair and not change.deleted:
            first = user_id not in self._parked  # else a release is due already
            self._parked.setdefault(user_id, {})[change.version] = change
            return [], first
        if change.deleted:
            self._drop_parked(user_id)  # whatever waited is moot now
        show = [change] if self._is_new(change) else []
        if user_id in self._parked:
            self._next_in_line(user_id, show)
        return show, False

    def hold(self, user_id: str, timer: asyncio.TimerHandle) -> None:
        """The timer that will call ``release(user_id)``: cancelled if the wait ends sooner."""
        self._timers[user_id] = timer

    def release(self, user_id: str) -> list[Change]:
        """Waited long enough: what did not arrive is skipped; the rest goes out in order."""
        self._timers.pop(user_id, None)
        parked = self._parked.pop(user_id, {})
        return [parked[v] for v in sorted(parked) if self._is_new(parked[v])]

    def cancel(self) -> None:
        for user_id in list(self._timers):
            self._drop_parked(user_id)

    def _is_new(self, change: Change) -> bool:
        """Whether the change moves its user forward; if so, remember it.

        Older or equal versions than the last shown are stale, except that after a deletion
        the id may be created again, starting over at version 1.
        """
        last = self._last.get(change.user_id)
        if last is None or change.version > last[0] or (last[1] and not change.deleted):
            self._last[change.user_id] = (change.version, change.deleted)
            return True
        return False

    def _drop_parked(self, user_id: str) -> None:
        self._parked.pop(user_id, None)
        timer = self._timers.pop(user_id, None)
        if timer is not None:
            timer.cancel()

    def _next_in_line(self, user_id: str, show: list[Change]) -> None:
        """Add the parked changes that now come next, then drop the overtaken ones."""
        parked = self._parked[user_id]
        while True:
            last = self._last.get(user_id)
            following = parked.pop(last[0] + 1, None) if last and not last[1] else None
            if following is None:
                break
            if self._is_new(following):
                show.append(following)
        last = self._last.get(user_id)
        for version in [v for v in parked if last is not None and v <= last[0]]:
            del parked[version]  # a repair showed a later version already
        if not parked:
            self._drop_parked(user_id)
