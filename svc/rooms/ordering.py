"""Profile changes handed to the rooms in version order, even when they arrive out of it.

Two writes of one user commit in version order, but the requests that made
them may publish in the other order (each resumes when its own reply is read),
and a broker keeps the order in which changes were published.  Left alone, the
rooms would show version 3 and then drop version 2 as stale.  So a change that
skips ahead of the last version shown waits, up to ``wait`` seconds, for the
ones before it; whatever has arrived then goes out in order.  A repair (a
re-read, which finds the latest version after a gap) never waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..broker import Change
from .versions import VersionBook

#: How long a change that skipped ahead waits for the versions before it.
WAIT = 0.1


class ChangeOrder:
    def __init__(self, versions: VersionBook, show: Callable[[Change], None], wait: float = WAIT):
        self._versions = versions
        self._show = show  # a change that moves its user forward, in version order
        self._wait = wait
        self._parked: dict[str, dict[int, Change]] = {}  # user → version → change
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def offer(self, change: Change, repair: bool = False) -> None:
        user_id = change.user_id
        last = self._versions.last(user_id)
        skips_ahead = last is not None and not last[1] and change.version > last[0] + 1
        if skips_ahead and not repair and not change.deleted:
            self._parked.setdefault(user_id, {})[change.version] = change
            if user_id not in self._timers:
                self._timers[user_id] = asyncio.get_running_loop().call_later(
                    self._wait, self._release, user_id
                )
            return
        if change.deleted:
            self.forget(user_id)  # whatever waited is moot now
        self._accept(change)
        self._next_in_line(user_id)

    def forget(self, user_id: str) -> None:
        self._parked.pop(user_id, None)
        timer = self._timers.pop(user_id, None)
        if timer is not None:
            timer.cancel()

    def cancel(self) -> None:
        for user_id in list(self._timers):
            self.forget(user_id)

    def _accept(self, change: Change) -> None:
        if self._versions.is_new(change.user_id, change.version, change.deleted):
            self._show(change)

    def _next_in_line(self, user_id: str) -> None:
        """Show the parked changes that now come next, then drop the overtaken ones."""
        parked = self._parked.get(user_id)
        if parked is None:
            return
        while True:
            last = self._versions.last(user_id)
            following = parked.pop(last[0] + 1, None) if last and not last[1] else None
            if following is None:
                break
            self._accept(following)
        last = self._versions.last(user_id)
        for version in [v for v in parked if last is not None and v <= last[0]]:
            del parked[version]  # a repair showed a later version already
        if not parked:
            self.forget(user_id)

    def _release(self, user_id: str) -> None:
        """Waited long enough: what did not arrive is skipped; the rest goes out in order."""
        self._timers.pop(user_id, None)
        parked = self._parked.pop(user_id, {})
        for version in sorted(parked):
            self._accept(parked[version])
