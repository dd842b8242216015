"""The memory broker's presence bookkeeping: several instances on one bus hold the same user;
the user leaves with the last connection of the last instance, or when that instance closes."""

from __future__ import annotations

from svc.broker import Change
from svc.broker.memory import MemoryBroker
from svc.testing import unique_id


class Heard:
    def __init__(self) -> None:
        self.presence: list[tuple[str, bool]] = []
        self.changes: list[Change] = []

    def on_change(self, change) -> None:
        self.changes.append(change)

    def on_message(self, message) -> None: ...
    def on_gap(self) -> None: ...

    def on_presence(self, change) -> None:
        self.presence.append((change.user_id, change.present))


async def test_a_user_held_by_two_instances_leaves_with_the_last_one():
    url = f"memory://{unique_id('bus')}"
    first, second, heard = MemoryBroker(url), MemoryBroker(url), Heard()
    await first.open(heard)
    await second.open(Heard())
    room = unique_id("r")
    await first.presence_join(room, "u")
    await first.presence_join(room, "u")  # two connections through the first instance
    await second.presence_join(room, "u")
    await second.presence_join(room, "v")
    assert heard.presence == [("u", True), ("v", True)]
    await first.presence_leave(room, "u")
    await second.presence_leave(room, "u")
    assert await first.presence_members(room) == ["u", "v"]  # first still holds u once
    await second.presence_leave(room, "nobody")
    await second.presence_join(room, "u")
    await second.close()  # goodbye: v was only its own; u is still held by first
    assert heard.presence == [("u", True), ("v", True), ("v", False)]
    assert await first.presence_members(room) == ["u"]
    await first.presence_leave(room, "u")
    assert heard.presence[-1] == ("u", False)
    assert await first.presence_count(room) == 0
    await first.close()


async def test_a_change_is_numbered_in_every_room_its_user_is_in_as_they_come_and_go():
    """A user in one room is kept as that room's id, in several as a set: the change of
    their profile is numbered in exactly the rooms they are present in, at each step."""
    broker, heard = MemoryBroker(f"memory://{unique_id('bus')}"), Heard()
    await broker.open(heard)
    a, b, c = (unique_id(name) for name in "abc")
    version = 0

    async def numbered_in() -> set[str]:
        nonlocal version
        version += 1
        await broker.publish_change(Change("u", version, None))
        return set(heard.changes[-1].seqs or {})

    assert await numbered_in() == set()
    await broker.presence_join(a, "u")
    assert await numbered_in() == {a}
    await broker.presence_join(b, "u")
    await broker.presence_join(c, "u")
    assert await numbered_in() == {a, b, c}
    await broker.presence_leave(b, "u")
    assert await numbered_in() == {a, c}
    await broker.presence_leave(a, "u")
    assert await numbered_in() == {c}
    await broker.presence_join(b, "u")
    assert await numbered_in() == {b, c}
    await broker.presence_leave(c, "u")
    await broker.presence_leave(b, "u")
    assert await numbered_in() == set()
    await broker.presence_join(a, "u")
    assert await numbered_in() == {a}
    await broker.close()
