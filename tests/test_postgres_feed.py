"""The Postgres change feed: only committed changes, each once, reaching every process."""

from __future__ import annotations

import aiopg
import pytest
from svc_postgres.listener import VersionTracker

from svc.app import create_app
from svc.broker import Change
from svc.keys import STORAGE
from svc.settings import Settings
from svc.testing import unique_id, wait_until

pytestmark = pytest.mark.postgres


def changes_of(seen: list[Change], user_id: str) -> list[Change]:
    """The feed is shared with whatever else writes to the database: keep one user's changes."""
    return [c for c in seen if c.user_id == user_id]


def versions_of(seen: list[Change], user_id: str) -> list[int]:
    return [c.version for c in changes_of(seen, user_id)]


async def test_rolled_back_write_is_not_announced_committed_is_once(postgres_storage, postgres_url):
    seen: list[Change] = []
    postgres_storage.subscribe(seen.append)
    user = await postgres_storage.create_user(unique_id(), {"username": unique_id()})
    await wait_until(lambda: versions_of(seen, user.id) == [1])

    async with aiopg.connect(postgres_url) as conn, conn.cursor() as cur:
        await cur.execute("BEGIN")
        await cur.execute(
            'UPDATE users SET profile = profile || \'{"bio": "rolled back"}\','
            " version = version + 1 WHERE id = %s",
            (user.id,),
        )
        await cur.execute("ROLLBACK")

    await postgres_storage.update_profile(user.id, {"bio": "committed"})
    # A later change of another user marks the point the feed must have passed.
    marker = await postgres_storage.create_user(unique_id(), {"username": unique_id()})
    await wait_until(lambda: versions_of(seen, marker.id) == [1])
    assert versions_of(seen, user.id) == [1, 2]
    assert [c.user.profile["bio"] for c in seen if c.user_id == user.id] == [None, "committed"]
    assert (await postgres_storage.get_user(user.id)).profile["bio"] == "committed"


async def test_writes_from_any_client_are_announced(postgres_storage, postgres_url):
    """The trigger announces a write made outside svc too (a migration script, psql)."""
    seen: list[Change] = []
    postgres_storage.subscribe(seen.append)
    user = await postgres_storage.create_user(unique_id(), {"username": unique_id()})
    async with aiopg.connect(postgres_url) as conn, conn.cursor() as cur:
        await cur.execute(
            'UPDATE users SET profile = profile || \'{"bio": "by hand"}\','
            " version = version + 1 WHERE id = %s",
            (user.id,),
        )
    await wait_until(lambda: versions_of(seen, user.id) == [1, 2])
    assert changes_of(seen, user.id)[-1].user.profile["bio"] == "by hand"


async def test_password_change_is_not_announced(postgres_storage):
    seen: list[Change] = []
    postgres_storage.subscribe(seen.append)
    user = await postgres_storage.create_user(unique_id(), {"username": unique_id()})
    await postgres_storage.set_password_hash(user.id, "$hash$")
    marker = await postgres_storage.create_user(unique_id(), {"username": unique_id()})
    await wait_until(lambda: versions_of(seen, marker.id) == [1])
    assert versions_of(seen, user.id) == [1]


async def test_big_profile_is_read_back(postgres_storage):
    """A row over NOTIFY's 8000-byte limit is announced by id and read back by the listener."""
    seen: list[Change] = []
    postgres_storage.subscribe(seen.append)
    urls = {f"size{i}": "https://cdn.example/" + "a" * 1000 + str(i) for i in range(16)}
    user = await postgres_storage.create_user(
        unique_id(), {"username": unique_id(), "avatar_urls": urls}
    )
    await wait_until(lambda: versions_of(seen, user.id) == [1])
    assert changes_of(seen, user.id)[-1].user.to_dict() == user.to_dict()


async def test_two_app_instances_share_changes(aiohttp_client, postgres_url):
    settings = Settings(database_url=postgres_url, bcrypt_rounds=4)
    one = await aiohttp_client(create_app(settings))
    two = await aiohttp_client(create_app(settings))
    assert one.app[STORAGE] is not two.app[STORAGE]
    seen_by_two: list[Change] = []
    two.app[STORAGE].subscribe(seen_by_two.append)

    resp = await one.post("/users", json={"username": unique_id()})
    assert resp.status == 201
    user_id = (await resp.json())["id"]
    resp = await one.put(f"/users/{user_id}/profile", json={"display_name": "via one"})
    updated = await resp.json()

    await wait_until(lambda: versions_of(seen_by_two, user_id) == [1, 2])
    assert changes_of(seen_by_two, user_id)[-1].user.to_dict() == updated
    assert await (await two.get(f"/users/{user_id}")).json() == updated

    resp = await two.delete(f"/users/{user_id}")
    assert resp.status == 204
    assert (await one.get(f"/users/{user_id}")).status == 404


def test_version_tracker_orders_and_bounds():
    tracker = VersionTracker(limit=3)
    assert tracker.is_new("a", 1, False)
    assert tracker.is_new("a", 3, False)
    assert not tracker.is_new("a", 2, False)  # stale
    assert not tracker.is_new("a", 3, False)  # duplicate
    assert tracker.is_new("a", 4, True)  # deleted
    assert not tracker.is_new("a", 4, True)
    assert tracker.is_new("a", 1, False)  # created again: a new life
    for name in "bcde":
        tracker.is_new(name, 1, False)
    assert len(tracker) == 3 and tracker.get("a") is None  # the oldest is forgotten
