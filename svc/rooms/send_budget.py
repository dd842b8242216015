"""``SEND_BUFFER_BUDGET``: the bytes waiting for all slow consumers together, bounded.

Each socket's own backlog is bounded (``max_backlog``, 256 KiB: past it, 1013), but
nothing bounded the sum: 4,000 sockets that never read, fed by one member at the
allowed rate, held 1 GiB of server memory from 0.8 MB sent.  Past the budget, the
sockets with the most bytes waiting (the slowest readers) are closed with 1013 first,
until the sum is back under it.

The sum is kept without a look at every socket per frame: a socket is noted here
when a write finds bytes already waiting on it (a socket that keeps up never is, so
the fan-out to those costs nothing more), with what waits after that write.  What a
socket drained since is seen at its next write, so the sum may only be too high; when
it passes the budget, every noted socket is read again (the ones drained, or gone, are
dropped) before anyone is closed.

Past the budget, the slowest are closed until the sum is a sixteenth under it (a low
watermark), not just under it: else, in a crowd of slow readers, the very next write passed
the budget again and every write re-read every noted socket (10,000 members that joined
at once and did not read: a fifth of the server's CPU went to those re-reads).  With the
margin, a re-read comes at most once per 1/16 of the budget written.

A socket being closed still holds its backlog (its close frame waits behind it, and a
closing socket is aborted only after ``close_timeout``), so it stays counted until its
bytes are gone.  When the budget is passed again, the sockets already closing that still
hold bytes are aborted first (their 1013 could not reach a client that does not read),
and only then are more closed: the sum, closing sockets included, stays bounded.
"""

from __future__ import annotations

from typing import Protocol

from aiohttp import WSCloseCode

from .limits import RoomSettings

REASON = "send buffer budget exceeded"
#: past the budget, the sum is brought this share of it under (see above)
MARGIN = 1 / 16


class Slow(Protocol):
    """What the budget needs of a socket (a :class:`svc.rooms.connection.Connection`)."""

    closed: bool

    def unsent(self) -> int: ...
    def abort(self) -> None: ...
    def close(self, code: int, reason: str) -> None: ...


class SendBudget:
    __slots__ = ("_limits", "total", "_waiting")

    def __init__(self, limits: RoomSettings):
        self._limits = limits  # read at each check: tests lower it on a live hub
        #: bytes waiting on the noted sockets, as last seen (an upper bound)
        self.total = 0
        self._waiting: dict[Slow, int] = {}

    def note(self, conn: Slow, waiting: int) -> None:
        """``conn`` has ``waiting`` bytes waiting after a write."""
        self.total += waiting - self._waiting.get(conn, 0)
        self._waiting[conn] = waiting
        if self.total > self._limits.send_buffer_budget:
            self._enforce()

    def forget(self, conn: Slow) -> None:
        self.total -= self._waiting.pop(conn, 0)

    def _enforce(self) -> None:
        waiting = self._waiting
        for conn in list(waiting):
            now = conn.unsent()
            if now:
                waiting[conn] = now
            else:
                del waiting[conn]
        self.total = sum(waiting.values())
        limit = self._limits.send_buffer_budget
        low = limit - int(limit * MARGIN)
        if self.total <= low:
            return
        for conn in [conn for conn in waiting if conn.closed]:
            self.total -= waiting.pop(conn)
            conn.abort()
        over = self.total - low
        for conn in sorted(waiting, key=waiting.__getitem__, reverse=True):
            if over <= 0:
                return
            # Still counted until its bytes are gone; aborted if the budget is passed
            # again first.
            over -= waiting[conn]
            conn.close(WSCloseCode.TRY_AGAIN_LATER, REASON)
