"""A room's event numbers: events are applied in the order the broker numbered them.

The broker gives each room event (a message, a presence transition, a change of a member)
the room's next number, the same at every process, and delivers a room's events in that
order; but a process learns the number of its own message from the broker's answer, which
may come after later events heard on the channel.  So an event that skips ahead waits
(parked) for those before it, at most ``wait`` seconds: whatever did not come by then was
lost to this process, and the room moves on (the reconcile repairs what it can).

An event of another epoch means the broker lost the room's history (restarted empty, or it
expired): the room adopts the new epoch at that event, and :attr:`rebased` is called so the
room can forget marks that counted in the old one.  Events of an epoch left behind (late
answers from before the loss) are dropped.

An event the broker could not number (its batch failed) is still shown here, after the
events parked when it failed (:meth:`Sequence.then`): those may be its sender's earlier
messages, numbered and waiting for another process's events, and it must not overtake them.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

#: Seconds an event that skipped ahead waits for those before it.
GAP_WAIT = 1.0

Apply = Callable[[], None]


class Sequence:
    __slots__ = (
        "epoch",
        "seq",
        "gaps",
        "rebased",
        "_parked",
        "_timer",
        "_wait",
        "_retired",
        "_after",
    )

    def __init__(self, rebased: Callable[[], None], wait: float = GAP_WAIT):
        #: None: the broker numbers nothing; events are applied as they come
        self.epoch: str | None = None
        #: the last event applied
        self.seq = 0
        #: events given up on (never arrived within ``wait``)
        self.gaps = 0
        self.rebased = rebased
        self._parked: dict[int, Apply] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._wait = wait
        self._retired: tuple[str, ...] = ()
        #: (the last event parked when it came, an unnumbered event to apply after it)
        self._after: deque[tuple[int, Apply]] = deque()

    def start(self, position: tuple[str, int] | None) -> None:
        """Where the room stands when it is first read (None: unnumbered)."""
        if position is not None:
            self.epoch, self.seq = position

    def offer(self, epoch: str | None, seq: int | None, apply: Apply) -> None:
        """Apply now if ``seq`` is next; later if it skipped ahead; never if seen already."""
        if epoch is None or seq is None or self.epoch is None:
            apply()  # unnumbered (a repair, or a broker that numbers nothing): now
            return
        if epoch != self.epoch:
            if epoch in self._retired:
                return
            self._rebase(epoch, seq)
        if seq <= self.seq:
            return
        if seq > self.seq + 1:
            self._parked[seq] = apply
            if self._timer is None:
                self._timer = asyncio.get_running_loop().call_later(self._wait, self._give_up)
            return
        self.seq = seq
        apply()
        self._then_due()
        self._next()

    def then(self, apply: Apply) -> None:
        """Apply an unnumbered event once every event parked now has been applied (or given
        up on): at once when none is parked."""
        if self._parked:
            self._after.append((max(self._parked), apply))
        else:
            apply()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._parked.clear()
        self._after.clear()

    def _next(self) -> None:
        parked = self._parked
        while parked:
            apply = parked.pop(self.seq + 1, None)
            if apply is None:
                return
            self.seq += 1
            apply()
            self._then_due()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _then_due(self) -> None:
        """The unnumbered events whose turn came with the event just applied."""
        after = self._after
        while after and after[0][0] <= self.seq:
            after.popleft()[1]()

    def _give_up(self) -> None:
        self._timer = None
        if not self._parked:
            return
        first = min(self._parked)
        self.gaps += first - self.seq - 1
        self.seq = first - 1
        self._next()
        if self._parked and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._wait, self._give_up)

    def _rebase(self, epoch: str, seq: int) -> None:
        after = [apply for _, apply in self._after]  # shown still: the parked are lost
        self.cancel()
        self._retired = (*self._retired[-3:], self.epoch)
        self.epoch, self.seq = epoch, seq - 1
        self.rebased()
        for apply in after:
            apply()
