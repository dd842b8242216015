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
from itertools import count

from .base import RoomEvent, RoomHistory

__all__ = ["RoomNumbers"]


class _Record:
    """Its events are numbered without a gap (each number given is kept), so the last one
    is ``seq`` and the numbers need not be kept; the events and their times are two deques
    of one length, not a tuple per event (a room of 100 keeps about one event per member,
    for as long as its sockets idle: ~60 B each)."""

    __slots__ = ("epoch", "seq", "events", "times", "touched")

    def __init__(self, epoch: str, size: int):
        self.epoch = epoch
        self.seq = 0
        self.events: deque[RoomEvent] = deque(maxlen=size or 1)
        #: the monotonic time of each event
        self.times: deque[float] = deque(maxlen=size or 1)
        self.touched = 0.0

    def keep(self, event: RoomEvent, now: float, size: int) -> None:
        if self.events.maxlen != size:
            self.events = deque(self.events, maxlen=size)
            self.times = deque(self.times, maxlen=size)
        self.events.append(event)
        self.times.append(now)

    def forget_events(self) -> None:
        self.events.clear()
        self.times.clear()


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
            record.keep(event, now, size)
        elif record.events:  # a gap: what is kept must end at seq (an instance on the bus
            record.forget_events()  # without a history numbered this one)
        return record.epoch, record.seq

    def position(self, room_id: str) -> tuple[str, int]:
        record = self._records.get(room_id)
        if record is None:  # no event yet: the record is made now, so its epoch holds
            self._generation += 1
            record = self._records[room_id] = _Record(f"{self._name}-{self._generation}", 1)
            record.touched = self._clock()
        return record.epoch, record.seq

    def history(self, room_id: str, epoch: str, after: int, ttl: float) -> RoomHistory | None:
        record = self._records.get(room_id)
        if record is None or record.epoch != epoch or not 0 <= after <= record.seq:
            return None
        oldest = self._clock() - ttl
        numbered = zip(count(record.seq - len(record.events) + 1), record.times, record.events)
        events = [(seq, event) for seq, at, event in numbered if seq > after and at > oldest]
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
                record.forget_events()  # but every event in it has expired
                return
            del self._records[room_id]
