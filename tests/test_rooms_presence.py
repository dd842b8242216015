"""The presence hooks of Storage, on every backend: counting holders, paging, announcing once."""

from __future__ import annotations

import pytest

from svc.storage.base import PresenceChange
from svc.storage.registry import get_plugin
from svc.testing import unique_id, wait_until


@pytest.fixture
async def storage(storage_url):
    backend = get_plugin(storage_url)(storage_url)
    await backend.open()
    yield backend
    await backend.close()


async def test_a_user_is_announced_once_however_many_holders(storage):
    seen: list[PresenceChange] = []
    storage.subscribe_presence(seen.append)
    room, user = unique_id("r"), unique_id()
    await storage.presence_join(room, user)
    await storage.presence_join(room, user)  # a second hub sharing this backend
    await storage.presence_leave(room, user)
    assert await storage.presence_members(room) == [user]
    await storage.presence_leave(room, user)
    await wait_until(lambda: len(seen) >= 2)
    assert seen == [PresenceChange(room, user, True), PresenceChange(room, user, False)]
    assert await storage.presence_count(room) == 0
    assert await storage.presence_members(room) == []


async def test_members_page_in_id_order(storage):
    room = unique_id("r")
    users = sorted(unique_id() for _ in range(7))
    for user in reversed(users):
        await storage.presence_join(room, user)
    assert await storage.presence_count(room) == 7
    assert await storage.presence_members(room, None, 3) == users[:3]
    assert await storage.presence_members(room, users[2], 3) == users[3:6]
    assert await storage.presence_members(room, users[5], 3) == users[6:]
    assert await storage.presence_members(unique_id("r")) == []
    for user in users:
        await storage.presence_leave(room, user)


async def test_two_backends_share_presence_only_when_they_can(storage_url):
    """Two instances on one URL are like two processes: Postgres shares, memory cannot."""
    first, second = (get_plugin(storage_url)(storage_url) for _ in range(2))
    await first.open()
    await second.open()
    try:
        seen: list[PresenceChange] = []
        second.subscribe_presence(seen.append)
        room, user = unique_id("r"), unique_id()
        await first.presence_join(room, user)
        if storage_url.startswith("memory"):
            assert await second.presence_count(room) == 0
            return
        assert await second.presence_members(room) == [user]
        await wait_until(lambda: seen == [PresenceChange(room, user, True)])
        await second.presence_join(room, user)
        await first.presence_leave(room, user)  # still held by the second
        assert await first.presence_count(room) == 1
        await second.presence_leave(room, user)
        assert await first.presence_count(room) == 0
        assert seen[-1] == PresenceChange(room, user, False)
    finally:
        await first.close()
        await second.close()


async def test_closing_a_backend_says_goodbye(storage_url):
    if storage_url.startswith("memory"):
        pytest.skip("one process: nothing outlives it")
    first, second = (get_plugin(storage_url)(storage_url) for _ in range(2))
    await first.open()
    await second.open()
    try:
        seen: list[PresenceChange] = []
        second.subscribe_presence(seen.append)
        room, user = unique_id("r"), unique_id()
        await first.presence_join(room, user)
        await first.close()  # no presence_leave: the node goes, and its members with it
        await wait_until(lambda: PresenceChange(room, user, False) in seen)
        assert await second.presence_count(room) == 0
    finally:
        await first.close()
        await second.close()
