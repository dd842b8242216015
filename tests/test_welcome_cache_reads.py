"""The welcome cache on its own (svc.rooms.welcome_cache): a read in flight is shared by
the welcomes that need its ids, and never after a change came in.  What the welcomes show
end to end, on every backend, is tested by tests/test_welcome_cache.py."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone

import pytest

from svc.rooms.welcome_cache import WelcomeCache
from svc.serialize import ProfilelessMember
from svc.storage.models import User, frozen_profile


class Store:
    """Records by id; each read waits until released, so welcomes can pile up behind it."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.reads: list[list[str]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.fail = False

    async def read(self, ids: list[str]):
        self.reads.append(list(ids))
        names = dict(self.names)  # as they are when the read goes out
        await self.release.wait()
        if self.fail:
            raise ConnectionError("storage went away")
        now = datetime.now(timezone.utc)
        return [
            User(i, frozen_profile({"display_name": names[i]}), 1, now, now)
            if i in names
            else ProfilelessMember(i)
            for i in ids
        ]


def shown(listed: bytes) -> dict[str, str | None]:
    return {m["id"]: m["profile"]["display_name"] for m in json.loads(b"[" + listed + b"]")}


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_welcomes_that_need_ids_being_read_wait_for_that_read():
    store, cache = Store(), WelcomeCache()
    store.names = {"a": "A", "b": "B"}
    store.release.clear()
    first = asyncio.ensure_future(cache.members(["a", "b"], store.read, True))
    await _settle()
    # The first ids changed meanwhile (a new list): only the newcomer is read.
    second = asyncio.ensure_future(cache.members(["a", "b", "c"], store.read, True))
    third = asyncio.ensure_future(cache.members(["a", "c"], store.read, True))
    await _settle()
    assert store.reads == [["a", "b"], ["c"]]
    store.release.set()
    assert shown(await first) == {"a": "A", "b": "B"}
    assert shown(await second) == {"a": "A", "b": "B", "c": None}
    assert shown(await third) == {"a": "A", "c": None}
    # The list stored last is known: a new list of the same ids reads nothing.
    assert shown(await cache.members(["a", "c"], store.read, True)) == {"a": "A", "c": None}
    assert len(store.reads) == 2


async def test_a_read_in_flight_is_not_shared_after_a_change_came_in():
    store, cache = Store(), WelcomeCache()
    store.names = {"a": "A1"}
    store.release.clear()
    before = asyncio.ensure_future(cache.members(["a"], store.read, True))
    await _settle()
    store.names["a"] = "A2"  # committed after the read went out...
    cache.forget()  # ...and heard: a welcome from now on must not take the old read
    after = asyncio.ensure_future(cache.members(["a", "b"], store.read, True))
    await _settle()
    assert store.reads == [["a"], ["a", "b"]]
    store.release.set()
    # Its own welcome shows the old record: its connection was in the room when the change
    # came, so the change follows it as profile_updated.
    assert shown(await before) == {"a": "A1"}
    assert shown(await after) == {"a": "A2", "b": None}
    # And what the overtaken read brought is not kept.
    assert shown(await cache.members(["a"], store.read, True)) == {"a": "A2"}


async def test_a_failed_read_fails_every_welcome_waiting_for_it_and_is_not_kept():
    store, cache = Store(), WelcomeCache()
    store.release.clear()
    store.fail = True
    waiting = [asyncio.ensure_future(cache.members(["a", "b"], store.read, True))]
    await _settle()
    waiting.append(asyncio.ensure_future(cache.members(["b"], store.read, True)))
    await _settle()
    store.release.set()
    for welcome in waiting:
        with pytest.raises(ConnectionError):
            await welcome
    store.fail = False
    assert shown(await cache.members(["a", "b"], store.read, True)) == {"a": None, "b": None}
    assert store.reads == [["a", "b"], ["a", "b"]]


async def test_a_welcome_that_gives_up_does_not_cancel_the_read_the_others_wait_for():
    store, cache = Store(), WelcomeCache()
    store.names = {"a": "A"}
    store.release.clear()
    reader = asyncio.ensure_future(cache.members(["a"], store.read, True))
    await _settle()
    waiter = asyncio.ensure_future(cache.members(["a"], store.read, True))
    await _settle()
    reader.cancel()  # the welcome that started the read goes away (its client did)
    await _settle()
    store.release.set()
    assert shown(await waiter) == {"a": "A"}
    assert store.reads == [["a"]]
    with pytest.raises(asyncio.CancelledError):
        await reader
