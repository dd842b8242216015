"""A change notified to nobody is held back a while: a join made elsewhere may be on its
way to this process, and that member's welcome may have read the record before it."""

from __future__ import annotations

import pytest
from svc_postgres.broker import PostgresBroker
from svc_postgres.interest import HeldBack

from svc.broker import Change
from svc.testing import unique_id
from svc.testing.broker import Recorder, a_user, eventually


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_latest_change_of_a_user_is_released_once_as_id_and_version():
    held = HeldBack(hold=5, clock=Clock())
    held.hold(Change("alice", 2, a_user("alice", 2)))
    held.hold(Change("alice", 3, a_user("alice", 3)))
    assert held.release("alice") == Change("alice", 3, None)
    assert held.release("alice") is None
    assert held.release("bob") is None


def test_a_deletion_is_released_as_a_deletion():
    held = HeldBack(hold=5, clock=Clock())
    held.hold(Change("alice", 4, None, deleted=True))
    assert held.release("alice") == Change("alice", 4, None, deleted=True)


def test_a_change_older_than_the_hold_is_dropped():
    clock = Clock()
    held = HeldBack(hold=5, clock=clock)
    held.hold(Change("alice", 2, None))
    clock.now += 4
    held.hold(Change("bob", 2, None))
    clock.now += 2  # alice's is 6 s old, bob's 2 s
    assert held.release("alice") is None
    assert held.release("bob") == Change("bob", 2, None)


def test_old_changes_go_as_new_ones_come_and_the_count_is_bounded():
    clock = Clock()
    held = HeldBack(hold=5, most=3, clock=clock)
    for n in range(5):
        held.hold(Change(f"u{n}", 1, None))
    assert len(held) == 3  # the two oldest went first
    assert held.release("u0") is None and held.release("u4") is not None
    clock.now += 6
    held.hold(Change("late", 1, None))
    assert len(held) == 1  # everything older than the hold went with it


def test_a_user_held_again_moves_to_the_back_of_the_line():
    held = HeldBack(hold=5, most=2, clock=Clock())
    held.hold(Change("alice", 1, None))
    held.hold(Change("bob", 1, None))
    held.hold(Change("alice", 2, None))
    held.hold(Change("carol", 1, None))  # bob, not alice, is now the oldest
    assert held.release("bob") is None
    assert held.release("alice") == Change("alice", 2, None)


@pytest.mark.postgres
async def test_a_join_heard_late_brings_the_change_held_back(postgres_url):
    """From the publisher's view, a change made before it hears a join elsewhere is a change
    made before that join: the race of a real deployment, made deterministic."""
    one, two = PostgresBroker(postgres_url), PostgresBroker(postgres_url)
    heard_by_two = Recorder("two")
    await one.open(Recorder("one"))
    await two.open(heard_by_two)
    try:
        user_id = unique_id()
        await one.publish_change(Change(user_id, 2, a_user(user_id, 2)))
        assert one.stats()["changes_unsent"] == 1  # present nowhere yet: no NOTIFY
        await two.presence_join(unique_id("r"), user_id)
        await eventually(lambda: heard_by_two.changes_of(user_id), "the held change arrives")
        assert heard_by_two.changes_of(user_id) == [Change(user_id, 2, None)]
        assert one.stats()["changes_resent"] == 1
        # Released once: a second join (another room) brings nothing more.
        await two.presence_join(unique_id("r"), user_id)
        await one.publish_change(Change(user_id, 3, a_user(user_id, 3)))  # present: sent
        await eventually(lambda: len(heard_by_two.changes_of(user_id)) == 2, "v3 arrives")
        assert [c.version for c in heard_by_two.changes_of(user_id)] == [2, 3]
        assert one.stats()["changes_resent"] == 1
    finally:
        await one.close()
        await two.close()
