"""``Sequence.then``: an event the broker could not number is applied after the events
parked when it came, and is not lost when the room's epoch changes under them."""

from __future__ import annotations

from svc.rooms.sequence import Sequence


async def test_an_unnumbered_event_follows_those_parked_before_it_not_those_after():
    applied: list[str] = []
    sequence = Sequence(lambda: None)
    sequence.start(("e1", 10))
    sequence.offer("e1", 12, lambda: applied.append("12"))  # parked: 11 is missing
    sequence.then(lambda: applied.append("unnumbered"))
    sequence.offer("e1", 13, lambda: applied.append("13"))  # parked after it
    assert applied == []
    sequence.offer("e1", 11, lambda: applied.append("11"))
    assert applied == ["11", "12", "unnumbered", "13"]
    sequence.then(lambda: applied.append("at once"))  # nothing parked
    assert applied[-1] == "at once"
    sequence.cancel()


async def test_an_unnumbered_event_is_applied_when_the_epoch_changes():
    applied: list[str] = []
    sequence = Sequence(lambda: applied.append("rebased"))
    sequence.start(("e1", 10))
    sequence.offer("e1", 12, lambda: applied.append("12 of e1"))  # lost with its epoch
    sequence.then(lambda: applied.append("unnumbered"))
    sequence.offer("e2", 1, lambda: applied.append("1 of e2"))
    assert applied == ["rebased", "unnumbered", "1 of e2"]
    sequence.cancel()
