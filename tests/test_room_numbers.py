"""The memory broker's room history (svc/broker/history.py) keeps its events without their
numbers: they are told from the last number, as the events kept never have a gap."""

from __future__ import annotations

from svc.broker.history import RoomNumbers


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def nobody(room_id: str) -> bool:
    return False


def numbered(numbers: RoomNumbers, events: list[str], size: int = 100, ttl: float = 60.0):
    return [numbers.number("r", event, size, ttl, nobody) for event in events]


def test_the_history_gives_each_event_its_number():
    numbers = RoomNumbers(Clock())
    given = numbered(numbers, ["a", "b", "c", "d"])
    epoch = given[0][0]
    assert [seq for _, seq in given] == [1, 2, 3, 4]
    assert numbers.history("r", epoch, 1, 60.0).events == [(2, "b"), (3, "c"), (4, "d")]
    assert numbers.history("r", epoch, 4, 60.0).events == []
    assert numbers.history("r", epoch, 0, 60.0).events == [(1, "a"), (2, "b"), (3, "c"), (4, "d")]


def test_a_history_that_dropped_its_oldest_still_numbers_the_rest():
    numbers = RoomNumbers(Clock())
    epoch = numbered(numbers, ["a", "b", "c"], size=2)[0][0]
    assert numbers.history("r", epoch, 1, 60.0).events == [(2, "b"), (3, "c")]
    assert numbers.history("r", epoch, 0, 60.0) is None  # "a" is no longer held
    numbered(numbers, ["d"], size=3)  # a bigger history from now on
    numbered(numbers, ["e"], size=3)
    assert numbers.history("r", epoch, 2, 60.0).events == [(3, "c"), (4, "d"), (5, "e")]


def test_an_event_numbered_without_a_history_is_a_gap_no_resume_crosses():
    """Instances on one bus may differ: one without a history numbers an event it does not
    keep.  The events after it keep their own numbers; none before it is offered."""
    numbers = RoomNumbers(Clock())
    epoch = numbered(numbers, ["a", "b", "c"])[0][0]
    numbered(numbers, ["gap"], size=0)
    numbered(numbers, ["e", "f"])
    assert numbers.history("r", epoch, 4, 60.0).events == [(5, "e"), (6, "f")]
    assert numbers.history("r", epoch, 2, 60.0) is None


def test_expired_events_are_not_offered():
    clock = Clock()
    numbers = RoomNumbers(clock)
    epoch = numbered(numbers, ["a", "b"])[0][0]
    clock.now += 30
    numbered(numbers, ["c"])
    clock.now += 40  # a and b are 70 s old, c 40 s
    assert numbers.history("r", epoch, 2, 60.0).events == [(3, "c")]
    assert numbers.history("r", epoch, 1, 60.0) is None
