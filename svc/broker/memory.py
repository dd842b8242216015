"""``memory://``: the in-process broker (the default with ``memory://`` storage).

``memory://`` alone is private to one instance: one process, one service.
``memory://NAME`` joins the in-process bus ``NAME``: every instance opened
with that URL in this process sees the others, as processes sharing a real
broker would (tests and embedders use it to run several apps in one process).

Delivery is synchronous: a publish has reached every listener on the bus when
it returns, so there is nothing to lose and ``on_gap`` is never called.

Room events are numbered on the bus (:mod:`.history`): a message, a presence transition,
and a change in each room where its user is present get the room's next number as they
are delivered, so every instance hears a room's events in number order.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import replace
from urllib.parse import urlsplit
from weakref import WeakValueDictionary

from .base import (
    Broker,
    BrokerListener,
    Change,
    PasswordSet,
    PresenceChange,
    RoomHistory,
    RoomMessage,
)
from .history import RoomNumbers
from .pubsub import deliver, tell_password_set

__all__ = ["MemoryBroker"]


class _Bus:
    """The instances sharing one ``memory://NAME``, and who each holds in which room."""

    def __init__(self) -> None:
        self.members: list[MemoryBroker] = []
        #: room → user → who holds them: see _Holders
        self.presence: dict[str, dict[str, _Holders]] = {}
        #: user → the rooms where they are present (a change is numbered in each): a user
        #: in one room (nearly every user) is stored as that room's id, not a set of one
        #: (~240 B per member: bench/memory_per_socket.py)
        self.rooms_of: dict[str, str | set[str]] = {}
        self.numbers = RoomNumbers()

    def each(self, call: Callable[[BrokerListener], None], skip: MemoryBroker | None = None):
        for broker in tuple(self.members):
            if broker is not skip:
                deliver(broker._listener, call)  # one bad listener must not starve the rest


_named_buses: WeakValueDictionary[str, _Bus] = WeakValueDictionary()


def _unpack(held: _Holders | None) -> dict[MemoryBroker, int]:
    if held is None:
        return {}
    if isinstance(held, tuple):
        return {held[0]: held[1]}
    return dict(held)


def _pack(holders: dict[MemoryBroker, int]) -> _Holders:
    return next(iter(holders.items())) if len(holders) == 1 else holders


class MemoryBroker(Broker):
    def __init__(self, url: str = "memory://"):
        super().__init__(url)
        name = urlsplit(url).netloc
        self._bus_name = name or None
        self._bus: _Bus | None = None
        self._listener: BrokerListener | None = None

    @classmethod
    def check_url(cls, url: str) -> None:
        parts = urlsplit(url)
        if parts.path not in ("", "/") or parts.query:
            raise ValueError("a memory broker URL is memory:// or memory://NAME")

    def __repr__(self) -> str:
        return f"<MemoryBroker {self._bus_name or '(private)'}>"

    # -- life cycle -------------------------------------------------------

    async def open(self, listener: BrokerListener) -> None:
        if self._bus is not None:
            return
        if self._bus_name is None:
            bus = _Bus()
        else:
            bus = _named_buses.get(self._bus_name)
            if bus is None:
                bus = _named_buses[self._bus_name] = _Bus()
        self._listener = listener
        self._bus = bus
        bus.members.append(self)

    async def close(self) -> None:
        bus, self._bus = self._bus, None
        if bus is None:
            return
        # Goodbye: whoever only this instance held leaves now, as a process would.
        for room_id, users in list(bus.presence.items()):
            for user_id, held in list(users.items()):
                holders = _unpack(held)
                if holders.pop(self, None) is None:
                    continue
                if holders:
                    users[user_id] = _pack(holders)
                else:
                    self._drop(bus, room_id, user_id)
        bus.members.remove(self)
        self._listener = None

    async def ping(self) -> dict[str, str]:
        return {"broker": "ok"}

    # -- news ---------------------------------------------------------------

    async def publish_change(self, change: Change) -> None:
        bus = self._open_bus()
        rooms = bus.rooms_of.get(change.user_id)
        if rooms:
            if isinstance(rooms, str):
                rooms = (rooms,)
            seqs = {room_id: self._number(bus, room_id, change) for room_id in sorted(rooms)}
            change = replace(change, seqs=seqs)
        bus.each(lambda listener: listener.on_change(change))

    async def publish_message(self, message: RoomMessage) -> RoomMessage:
        bus = self._open_bus()
        epoch, seq = self._number(bus, message.room_id, message)
        message = replace(message, epoch=epoch, seq=seq)
        bus.each(lambda listener: listener.on_message(message), skip=self)
        return message

    # -- numbered room events -------------------------------------------------------

    async def room_position(self, room_id: str) -> tuple[str, int]:
        return self._open_bus().numbers.position(room_id)

    async def room_history(self, room_id: str, epoch: str, after: int) -> RoomHistory | None:
        if not self.history_size:
            return None
        return self._open_bus().numbers.history(room_id, epoch, after, self.history_ttl)

    def _number(self, bus: _Bus, room_id: str, event) -> tuple[str, int]:
        return bus.numbers.number(
            room_id, event, self.history_size, self.history_ttl, bus.presence.__contains__
        )

    async def publish_password_set(self, event: PasswordSet) -> None:
        self._open_bus().each(lambda listener: tell_password_set(listener, event), skip=self)

    # -- presence -------------------------------------------------------------

    async def presence_join(self, room_id: str, user_id: str) -> None:
        bus = self._open_bus()
        users = bus.presence.setdefault(room_id, {})
        holders = _unpack(users.get(user_id))
        holders[self] = holders.get(self, 0) + 1
        users[user_id] = _pack(holders)
        if sum(holders.values()) == 1:
            rooms = bus.rooms_of.get(user_id)
            if rooms is None:
                bus.rooms_of[user_id] = room_id
            elif isinstance(rooms, str):
                bus.rooms_of[user_id] = {rooms, room_id}
            else:
                rooms.add(room_id)
            change = PresenceChange(room_id, user_id, True)
            epoch, seq = self._number(bus, room_id, change)
            change = replace(change, epoch=epoch, seq=seq)
            bus.each(lambda listener: listener.on_presence(change))

    async def presence_leave(self, room_id: str, user_id: str) -> None:
        bus = self._open_bus()
        users = bus.presence.get(room_id, {})
        holders = _unpack(users.get(user_id))
        if self not in holders:
            return
        holders[self] -= 1
        if holders[self] <= 0:
            del holders[self]
        if holders:
            users[user_id] = _pack(holders)
        else:
            self._drop(bus, room_id, user_id)

    async def presence_members(
        self, room_id: str, after: str | None = None, limit: int = 100
    ) -> list[str]:
        ids = sorted(self._open_bus().presence.get(room_id, ()))
        start = bisect.bisect_right(ids, after) if after is not None else 0
        return ids[start : start + limit]

    async def presence_count(self, room_id: str) -> int:
        return len(self._open_bus().presence.get(room_id, ()))

    # -------------------------------------------------------------------------

    def _open_bus(self) -> _Bus:
        if self._bus is None:
            raise RuntimeError("the broker is not open")
        return self._bus

    def _drop(self, bus: _Bus, room_id: str, user_id: str) -> None:
        users = bus.presence[room_id]
        del users[user_id]
        if not users:
            del bus.presence[room_id]
        rooms = bus.rooms_of[user_id]
        if isinstance(rooms, str):
            del bus.rooms_of[user_id]  # its one room: room_id
        else:
            rooms.discard(room_id)
            if len(rooms) == 1:
                bus.rooms_of[user_id] = next(iter(rooms))
            elif not rooms:
                del bus.rooms_of[user_id]
        change = PresenceChange(room_id, user_id, False)
        epoch, seq = self._number(bus, room_id, change)
        change = replace(change, epoch=epoch, seq=seq)
        bus.each(lambda listener: listener.on_presence(change))


#: instance → connections held; a user held by one instance (nearly every user) is stored
#: as the pair (instance, connections): 56 B per member instead of a dict's ~230 B.
_Holders = tuple[MemoryBroker, int] | dict[MemoryBroker, int]
