"""The frame budget of a member: one token bucket per user per room, not per socket.

With a bucket per connection, a user opening k sockets in a room would get k
times the rate every other member gets.  So every connection of one user in one
room draws on the same :class:`FrameBudget`; a watcher (no user) has its own.
Budgets are found through a weak table: one lives exactly as long as a
connection uses it, so a user who leaves and comes back starts with a full
burst, and nothing accumulates.  Per process: a user's sockets spread over N
processes get N budgets.

A connection finds its budget at the first frame its client sends: an idle socket
holds none (the table's entry, its key and the bucket were ~250 B of each idle
socket, bench/memory_per_socket.py).  So a budget lives as long as a connection
that has sent a frame: a user whose sending sockets have all gone starts again
with a full burst, as one who leaves and comes back does.
"""

from __future__ import annotations

import weakref

from .limits import RoomSettings


class FrameBudget:
    """A token bucket over client frames, refilled at ``limits.frame_rate`` per second."""

    __slots__ = ("_limits", "_tokens", "_last_refill", "__weakref__")

    def __init__(self, limits: RoomSettings):
        self._limits = limits
        self._tokens = float(limits.frame_burst)
        self._last_refill = 0.0

    def take(self, now: float) -> bool:
        """Spend one token; False when there is none (the frame is over the rate)."""
        limits = self._limits
        self._tokens = min(
            limits.frame_burst, self._tokens + (now - self._last_refill) * limits.frame_rate
        )
        self._last_refill = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


# Keyed by the hub's limits object too, so two hubs in one process (tests) never share.
_budgets: weakref.WeakValueDictionary[tuple[int, str, str], FrameBudget] = (
    weakref.WeakValueDictionary()
)


def budget_for(limits: RoomSettings, room_id: str, user_id: str | None) -> FrameBudget:
    if user_id is None:
        return FrameBudget(limits)
    key = (id(limits), room_id, user_id)
    budget = _budgets.get(key)
    if budget is None:
        budget = _budgets[key] = FrameBudget(limits)
    return budget
