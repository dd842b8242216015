"""The room history rules (resume), part of :class:`svc.testing.BrokerConformance`.

A broker that numbers room events (``room_position`` answers) must keep these; one that
does not is skipped here, with a line saying so (svc then sends no ``seq`` and nobody
resumes).  To check that a lost history changes the epoch, override ``lose_history``: an
async function that makes the shared backend forget everything (a restart, empty) and
returns a new, unopened instance on it (by default that test is skipped).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timezone

import pytest

from ..broker import Broker, Change, PresenceChange, RoomMessage
from ..storage import PROFILE_FIELDS, User
from .helpers import unique_id, wait_until

__all__ = ["RoomHistoryConformance", "brokers_with_history"]


async def position(broker: Broker, room: str) -> tuple[str, int]:
    found = await broker.room_position(room)
    if found is None:
        pytest.skip("this broker numbers no room events: frames carry no seq, resume is off")
    epoch, seq = found
    assert isinstance(epoch, str) and epoch, "rule broken: an epoch is a non-empty string"
    assert isinstance(seq, int) and seq >= 0, "rule broken: a room's number is an int >= 0"
    return epoch, seq


def heard_numbers(heard, room: str) -> list[tuple[str | None, int | None]]:
    """(epoch, seq) of every event of ``room`` a Recorder heard, in the order heard."""
    found = []
    for item in heard.events:
        if isinstance(item, Change):
            if item.seqs and room in item.seqs:
                found.append(item.seqs[room])
        elif item.room_id == room:
            found.append((item.epoch, item.seq))
    return found


class Heard:
    """A broker listener that keeps every event it hears, in order."""

    def __init__(self) -> None:
        self.events: list = []

    def on_change(self, change: Change) -> None:
        self.events.append(change)

    def on_message(self, message: RoomMessage) -> None:
        self.events.append(message)

    def on_presence(self, change: PresenceChange) -> None:
        self.events.append(change)

    def on_gap(self) -> None:
        pass


def kind(event) -> str:
    return type(event).__name__


OpenWith = Callable[..., Awaitable[tuple[Broker, Heard]]]


@contextlib.asynccontextmanager
async def brokers_with_history(make_broker: Callable[[], Broker]) -> AsyncIterator[OpenWith]:
    """``await factory(size=, ttl=)`` → (an instance from ``make_broker``, opened and keeping
    that history, what it hears); every instance opened is closed on the way out."""
    opened: list[Broker] = []

    async def factory(size: int = 100, ttl: float = 300.0) -> tuple[Broker, Heard]:
        broker, heard = make_broker(), Heard()
        broker.history_size, broker.history_ttl = size, ttl
        await broker.open(heard)
        opened.append(broker)
        return broker, heard

    try:
        yield factory
    finally:
        for broker in opened:
            await broker.close()


class RoomHistoryConformance:
    @pytest.fixture
    async def lose_history(self):
        """``await lose_history()``: the backend forgets everything; a new, unopened
        instance on it.  Override to check that the epoch then changes."""
        pytest.skip("override the `lose_history` fixture to check the epoch changes on loss")

    @pytest.fixture
    async def open_with(self, make_broker):
        """``await open_with(size=, ttl=)`` → (an opened instance keeping that history, what
        it hears)."""
        async with brokers_with_history(make_broker) as factory:
            yield factory

    async def test_room_events_are_numbered_in_order_the_same_everywhere(self, open_with):
        (one, heard_by_one), (two, heard_by_two) = await open_with(), await open_with()
        room, alice, bob = unique_id("r"), unique_id(), unique_id()
        epoch, start = await position(one, room)
        assert await two.room_position(room) == (epoch, start), (
            "rule broken: every instance on one backend sees a room at the same number"
        )
        own_one, own_two = [], []
        await one.presence_join(room, alice)
        own_two.append(await two.publish_message(RoomMessage(room, bob, '"hi"')))
        await one.publish_change(Change(alice, 1, _user(alice)))
        own_one.append(await one.publish_message(RoomMessage(room, alice, '"hello"')))
        await two.presence_join(room, bob)
        await one.presence_leave(room, alice)
        numbers = [(epoch, start + n) for n in range(1, 7)]
        for name, heard, own in (("one", heard_by_one, own_one), ("two", heard_by_two, own_two)):
            await _eventually(lambda h=heard, o=own: len(heard_numbers(h, room)) + len(o) >= 6)
            live = heard_numbers(heard, room)
            assert live == sorted(live), (
                f"rule broken: an instance ({name}) hears a room's events in number order: {live}"
            )
            mine = [(m.epoch, m.seq) for m in own]
            assert sorted(live + mine) == numbers, (
                f"rule broken: each event gets the room's next number, once, the same at every "
                f"instance ({name} heard {live}, published {mine}, expected {numbers})"
            )
        history = await two.room_history(room, epoch, start)
        assert history is not None, "rule broken: the history holds the room's recent events"
        assert (history.epoch, history.seq) == (epoch, start + 6)
        assert [seq for seq, _ in history.events] == list(range(start + 1, start + 7)), (
            "rule broken: the history holds every event after the one asked for, in order"
        )
        assert [kind(e) for _, e in history.events] == [
            "PresenceChange",
            "RoomMessage",
            "Change",
            "RoomMessage",
            "PresenceChange",
            "PresenceChange",
        ], "rule broken: the history holds each event as it was delivered"
        first, message = history.events[0][1], history.events[1][1]
        assert (first.user_id, first.present) == (alice, True)
        assert (message.sender, message.data) == (bob, '"hi"')
        assert await one.room_position(room) == (epoch, start + 6)

    async def test_the_history_has_everything_delivered_before_it_was_read(self, open_with):
        """The seam: a client marked at the last event its process heard, then reading the
        history, must find every event up to that one in it, however fast the room moves."""
        writer, _ = await open_with(size=1000)
        reader, heard = await open_with(size=1000)
        room = unique_id("r")
        epoch, start = await position(reader, room)
        total = 300

        async def write() -> None:
            for n in range(total):
                await writer.publish_message(RoomMessage(room, "w", str(n)))

        writing = asyncio.create_task(write())
        checks = 0
        while not writing.done() or checks == 0:
            live = heard_numbers(heard, room)
            last = live[-1][1] if live else start
            after = max(start, last - 20)
            history = await reader.room_history(room, epoch, after)
            assert history is not None, "rule broken: a history of 1000 holds the last 20"
            seqs = [seq for seq, _ in history.events]
            assert seqs == list(range(after + 1, history.seq + 1)), (
                "rule broken: the history is every event after `after`, none missing"
            )
            assert history.seq >= last, (
                f"rule broken: the history read after event {last} was delivered holds it "
                f"(it ends at {history.seq})"
            )
            checks += 1
            await asyncio.sleep(0)
        await writing
        await _eventually(lambda: len(heard_numbers(heard, room)) == total)
        history = await reader.room_history(room, epoch, start)
        assert [e.data for _, e in history.events] == [str(n) for n in range(total)], (
            "rule broken: the history holds a burst whole, in order"
        )

    async def test_the_history_keeps_the_last_n_events(self, open_with):
        broker, _ = await open_with(size=5)
        room = unique_id("r")
        epoch, start = await position(broker, room)
        for n in range(8):
            await broker.publish_message(RoomMessage(room, "w", str(n)))
        assert await broker.room_history(room, epoch, start) is None, (
            "rule broken: a history too short to hold every event asked for answers None"
        )
        history = await broker.room_history(room, epoch, start + 3)
        assert history is not None, "rule broken: the history keeps the last ROOM_HISTORY events"
        assert [e.data for _, e in history.events] == ["3", "4", "5", "6", "7"]
        end = start + 8
        assert (await broker.room_history(room, epoch, end)).events == [], (
            "rule broken: nothing after the last event is an empty history, not None"
        )
        for bad in ((epoch, end + 1), (epoch + "x", start + 7), ("", start + 7)):
            assert await broker.room_history(room, *bad) is None, (
                f"rule broken: since {bad} (another epoch, or beyond the last) answers None"
            )

    async def test_the_history_expires(self, open_with):
        broker, _ = await open_with(ttl=1.0)
        room = unique_id("r")
        epoch, start = await position(broker, room)
        for n in range(3):
            await broker.publish_message(RoomMessage(room, "w", str(n)))
        assert await broker.room_history(room, epoch, start) is not None
        await asyncio.sleep(1.6)
        found = await broker.room_history(room, epoch, start)
        assert found is None, "rule broken: events older than ROOM_HISTORY_TTL are gone"
        numbered = await broker.publish_message(RoomMessage(room, "w", "later"))
        later = await broker.room_history(room, numbered.epoch, numbered.seq - 1)
        assert later is not None and [e.data for _, e in later.events] == ["later"], (
            "rule broken: after expiry the room's new events are kept again"
        )

    async def test_no_history_kept_means_no_resume(self, open_with):
        broker, _ = await open_with(size=0)
        room = unique_id("r")
        epoch, start = await position(broker, room)
        numbered = await broker.publish_message(RoomMessage(room, "w", "1"))
        assert numbered is not None and numbered.seq == start + 1, (
            "rule broken: events are numbered with ROOM_HISTORY=0 too"
        )
        assert await broker.room_history(room, epoch, start) is None, (
            "rule broken: ROOM_HISTORY=0 keeps no history (nobody resumes)"
        )

    async def test_the_epoch_changes_when_the_history_is_lost(self, open_with, lose_history):
        one, _ = await open_with()
        room, alice = unique_id("r"), unique_id()
        await one.presence_join(room, alice)
        await one.publish_message(RoomMessage(room, alice, '"before"'))
        epoch, seq = await position(one, room)
        fresh = await lose_history()
        try:
            await fresh.open(Heard())
            new_epoch, _ = await position(fresh, room)
            assert new_epoch != epoch, (
                "rule broken: a backend that lost a room's history gives it another epoch"
            )
            assert await fresh.room_history(room, epoch, seq - 1) is None, (
                "rule broken: nobody resumes across a loss (the old epoch answers None)"
            )
            numbered = await fresh.publish_message(RoomMessage(room, alice, '"after"'))
            assert numbered.epoch == new_epoch
        finally:
            await fresh.close()


def _user(user_id: str) -> User:
    moment = datetime(2024, 5, 17, 12, 30, 15, tzinfo=timezone.utc)
    profile = {name: None for name in PROFILE_FIELDS}
    return User(id=user_id, profile=profile, version=1, created_at=moment, updated_at=moment)


async def _eventually(predicate, timeout: float = 10.0) -> None:
    try:
        await wait_until(predicate, timeout=timeout)
    except AssertionError:
        raise AssertionError(
            f"rule broken: every numbered event is delivered (nothing after {timeout:g} s)"
        ) from None
