"""Profile changes reach rooms in version order even when published out of it."""

from __future__ import annotations

import asyncio

from ws_helpers import frame_where, join, new_user

from svc.broker import Change
from svc.keys import BROKER, STORAGE
from svc.rooms.ordering import ChangeOrder
from svc.testing import unique_id


def change(version: int, deleted: bool = False) -> Change:
    return Change("u", version, None, deleted)


def versions(offered: tuple[list[Change], bool]) -> list[int]:
    show, _ = offered
    return [c.version for c in show]


async def test_a_change_that_skips_ahead_waits_for_those_before_it():
    order = ChangeOrder(wait=60)
    order.baseline("u", 1)
    assert order.offer(change(4)) == ([], True)  # the caller is asked to release "u" later
    assert order.offer(change(3)) == ([], False)  # ... once
    assert versions(order.offer(change(2))) == [2, 3, 4]
    assert versions(order.offer(change(3))) == []  # late duplicate: stale
    order.cancel()


async def test_what_never_arrives_is_skipped_after_the_wait():
    order = ChangeOrder(wait=60)
    order.baseline("u", 1)
    order.offer(change(5))
    order.offer(change(3))
    assert [c.version for c in order.release("u")] == [3, 5]
    assert order.last("u") == (5, False)
    assert order.release("u") == []


async def test_a_held_timer_is_cancelled_when_the_wait_ends_sooner():
    order = ChangeOrder()
    order.baseline("u", 1)
    released: list[str] = []
    loop = asyncio.get_running_loop()
    order.offer(change(3))
    order.hold("u", loop.call_later(0.01, released.append, "u"))
    assert versions(order.offer(change(2))) == [2, 3]
    await asyncio.sleep(0.05)
    assert released == []


async def test_repairs_and_deletions_do_not_wait():
    order = ChangeOrder(wait=60)
    order.baseline("u", 1)
    shown: list[tuple[int, bool]] = []
    for offered in (
        order.offer(change(3)),
        order.offer(change(4), repair=True),  # a re-read found 4: 3 is overtaken
        order.offer(change(6)),
        order.offer(change(7, deleted=True)),
    ):
        shown += [(c.version, c.deleted) for c in offered[0]]
    assert shown == [(4, False), (7, True)]  # 6 waited, and the deletion made it moot
    assert order.release("u") == []
    order.cancel()


async def test_parked_changes_are_released_by_the_hub_after_the_wait(client):
    alice = await new_user(client)
    room = unique_id("r")
    ws, _ = await join(client, room, alice)  # its welcome shows version 1
    storage, broker = client.app[STORAGE], client.app[BROKER]
    await storage.update_profile(alice, {"bio": "two"})
    v3, _ = await storage.update_profile(alice, {"bio": "three"})
    await broker.publish_change(Change(alice, 3, v3))  # 2 never comes: 3 goes out after WAIT
    update = await frame_where(ws, lambda f: f["type"] == "profile_updated")
    assert (update["version"], update["profile"]["bio"]) == (3, "three")
    await ws.close()


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
