"""Room event numbers and a bounded history, in process: what the memory broker keeps.

Each room that had an event has a record: its epoch, its last event number, and its last
``size`` events with the time they happened.  A record whose events have all expired
(``ttl``) and whose room has nobody present goes; the room's next event starts a new record
under a new epoch, so a client that held a number of the old one is told ``resumed: false``,
never resumed across the loss.  An epoch names the bus (new at every start of the process,
or once every instance on a ``memory://NAME`` bus has closed) and the record's generation.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from .base import RoomEvent, RoomHistory

__all__ = ["RoomNumbers"]


class _Record:
    __slots__ = ("epoch", "seq", "events", "touched")

    def __init__(self, epoch: str, size: int):
        self.epoch = epoch
        self.seq = 0
        #: (seq, monotonic time, event)
        self.events: deque[tuple[int, float, RoomEvent]] = deque(maxlen=size or 1)
        self.touched = 0.0


class RoomNumbers:
    """room → its epoch, last event number and recent events."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._name = secrets.token_hex(4)
        self._generation = 0
        #: least recently touched first: expired records are found at the front
        self._records: OrderedDict[str, _Record] = OrderedDict()

    def number(
        self, room_id: str, event: RoomEvent, size: int, ttl: float, occupied: Callable[[str], bool]
    ) -> tuple[str, int]:
        """Give ``event`` the room's next number (keeping it in the history if ``size``)."""
        now = self._clock()
        self._sweep(now, ttl, occupied)
        record = self._records.get(room_id)
        if record is None:
            self._generation += 1
            record = self._records[room_id] = _Record(f"{self._name}-{self._generation}", size)
        else:
            self._records.move_to_end(room_id)
        record.seq += 1
        record.touched = now
        if size:
            if record.events.maxlen != size:
                record.events = deque(record.events, maxlen=size)
            record.events.append((record.seq, now, event))
        return record.epoch, record.seq

    def position(self, room_id: str) -> tuple[str, int]:
        record = self._records.get(room_id)
        if record is None:  # no event yet: the record is made now, so its epoch holds
            self._generation += 1
            record = self._records[room_id] = _Record(f"{self._name}-{self._generation}", 1)
            record.touched = self._clock()
            record.events.clear()
        return record.epoch, record.seq

    def history(self, room_id: str, epoch: str, after: int, ttl: float) -> RoomHistory | None:
        record = self._records.get(room_id)
        if record is None or record.epoch != epoch or not 0 <= after <= record.seq:
            return None
        oldest = self._clock() - ttl
        events = [(seq, event) for seq, at, event in record.events if seq > after and at > oldest]
        wanted = record.seq - after
        if len(events) != wanted:
            return None  # the history no longer holds all of them
        return RoomHistory(record.epoch, record.seq, events)

    def _sweep(self, now: float, ttl: float, occupied: Callable[[str], bool]) -> None:
        while self._records:
            room_id, record = next(iter(self._records.items()))
            if now - record.touched <= ttl:
                return
            if occupied(room_id):
                self._records.move_to_end(room_id)  # kept: its members may still resume
                record.touched = now
                record.events.clear()  # but every event in it has expired
                return
            del self._records[room_id]
