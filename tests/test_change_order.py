"""Profile changes reach rooms in version order even when published out of it."""

from __future__ import annotations

from ws_helpers import frame_where, join, new_user

from svc.broker import Change
from svc.keys import BROKER, STORAGE
from svc.rooms.ordering import ChangeOrder
from svc.rooms.versions import VersionBook
from svc.testing import unique_id, wait_until


def change(version: int, deleted: bool = False) -> Change:
    return Change("u", version, None, deleted)


async def test_a_change_that_skips_ahead_waits_for_those_before_it():
    shown: list[int] = []
    book = VersionBook()
    book.baseline("u", 1)
    order = ChangeOrder(book, lambda c: shown.append(c.version), wait=60)
    order.offer(change(4))
    order.offer(change(3))
    assert shown == []
    order.offer(change(2))
    assert shown == [2, 3, 4]
    order.offer(change(3))  # late duplicate: stale
    assert shown == [2, 3, 4]
    order.cancel()


async def test_what_never_arrives_is_skipped_after_the_wait():
    shown: list[int] = []
    book = VersionBook()
    book.baseline("u", 1)
    order = ChangeOrder(book, lambda c: shown.append(c.version), wait=0.05)
    order.offer(change(5))
    order.offer(change(3))
    await wait_until(lambda: shown == [3, 5])


async def test_repairs_and_deletions_do_not_wait():
    shown: list[tuple[int, bool]] = []
    book = VersionBook()
    book.baseline("u", 1)
    order = ChangeOrder(book, lambda c: shown.append((c.version, c.deleted)), wait=60)
    order.offer(change(3))
    order.offer(change(4), repair=True)  # a re-read found 4: 3 is overtaken
    assert shown == [(4, False)]
    order.offer(change(6))
    order.offer(change(7, deleted=True))
    assert shown == [(4, False), (7, True)]  # 6 waited, and the deletion made it moot
    order.cancel()


async def test_members_see_versions_in_order_when_published_out_of_order(client):
    alice = await new_user(client)
    room = unique_id("r")
    ws, _ = await join(client, room, alice)  # its welcome shows version 1
    storage, broker = client.app[STORAGE], client.app[BROKER]
    v2, _ = await storage.update_profile(alice, {"bio": "two"})
    v3, _ = await storage.update_profile(alice, {"bio": "three"})
    await broker.publish_change(Change(alice, 3, v3))  # the later request published first
    await broker.publish_change(Change(alice, 2, v2))
    for version, bio in ((2, "two"), (3, "three")):
        update = await frame_where(ws, lambda f: f["type"] == "profile_updated")
        assert (update["version"], update["profile"]["bio"]) == (version, bio)
    await ws.close()
