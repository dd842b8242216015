"""The memory broker's presence bookkeeping: several instances on one bus hold the same user;
the user leaves with the last connection of the last instance, or when that instance closes."""

from __future__ import annotations

from svc.broker.memory import MemoryBroker
from svc.testing import unique_id


class Heard:
    def __init__(self) -> None:
        self.presence: list[tuple[str, bool]] = []

    def on_change(self, change) -> None: ...
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
