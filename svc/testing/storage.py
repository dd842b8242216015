"""The storage conformance suite: what every svc storage backend must do.

A plugin author proves a backend by subclassing :class:`StorageConformance` in
their own tests and overriding one fixture, ``storage``, that yields an opened
backend (pytest with pytest-aiohttp, ``asyncio_mode = auto``)::

    import pytest
    from svc.testing import StorageConformance
    from svc_sqlite import SQLiteStorage

    class TestSQLiteStorage(StorageConformance):
        @pytest.fixture
        async def storage(self, tmp_path):
            backend = SQLiteStorage(f"sqlite://{tmp_path}/db")
            await backend.open()
            yield backend
            await backend.close()

The tests make their own unique ids and usernames, so they may run against a
database that already holds data.  svc's own backends run this same suite.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from ..storage import PROFILE_FIELDS, Conflict, NotFound, Storage, User, VersionMismatch
from .helpers import unique_id, wait_until

__all__ = ["StorageConformance", "unique_id", "wait_until"]


class StorageConformance:
    """Override the ``storage`` fixture; every ``test_*`` here then runs on your backend."""

    @pytest.fixture
    async def storage(self) -> Storage:  # pragma: no cover - always overridden
        raise NotImplementedError("override the `storage` fixture to yield an opened backend")

    async def _new_user(self, storage: Storage, **profile) -> User:
        user_id = unique_id()
        profile.setdefault("username", user_id)
        return await storage.create_user(user_id, profile)

    # -- create and read ----------------------------------------------------

    async def test_create_then_get(self, storage: Storage):
        user_id = unique_id()
        created = await storage.create_user(
            user_id,
            {"username": user_id, "display_name": "Ada", "avatar_urls": {"s": "https://a/s"}},
        )
        assert created.id == user_id
        assert created.version == 1
        assert isinstance(created.created_at, datetime) and created.created_at.tzinfo is not None
        assert created.updated_at == created.created_at
        fetched = await storage.get_user(user_id)
        assert fetched == created
        assert fetched.profile["display_name"] == "Ada"
        assert fetched.profile["avatar_urls"] == {"s": "https://a/s"}
        for name in set(PROFILE_FIELDS) - {"username", "display_name", "avatar_urls"}:
            assert fetched.profile.get(name) is None

    async def test_text_round_trips_exactly(self, storage: Storage):
        bio = "naïve café — 東京 🚀 'quotes' \"double\" \\ back"
        user = await self._new_user(storage, bio=bio)
        assert (await storage.get_user(user.id)).profile["bio"] == bio

    async def test_get_missing_is_not_found(self, storage: Storage):
        with pytest.raises(NotFound):
            await storage.get_user(unique_id("missing"))

    async def test_get_users_keeps_order_and_skips_missing(self, storage: Storage):
        a, b = await self._new_user(storage), await self._new_user(storage)
        found = await storage.get_users([b.id, unique_id("missing"), a.id])
        assert [u.id for u in found] == [b.id, a.id]

    async def test_duplicate_id_is_conflict(self, storage: Storage):
        user = await self._new_user(storage)
        with pytest.raises(Conflict) as info:
            await storage.create_user(user.id, {"username": unique_id()})
        assert info.value.field == "id"

    async def test_username_unique_without_regard_to_case(self, storage: Storage):
        user = await self._new_user(storage)
        with pytest.raises(Conflict) as info:
            await storage.create_user(unique_id(), {"username": user.id.upper()})
        assert info.value.field == "username"
        other = await self._new_user(storage)
        with pytest.raises(Conflict):
            await storage.update_profile(other.id, {"username": user.id.upper()})
        assert (await storage.get_user(other.id)).version == 1  # the failed write left no trace

    async def test_same_email_on_two_users(self, storage: Storage):
        await self._new_user(storage, email="shared@example.com")
        await self._new_user(storage, email="shared@example.com")

    # -- partial updates ----------------------------------------------------

    async def test_partial_update_merges_and_null_clears(self, storage: Storage):
        user = await self._new_user(storage, display_name="Ada", bio="first")
        updated, created = await storage.update_profile(user.id, {"bio": None, "email": "a@b.co"})
        assert created is False
        assert updated.version == 2
        assert updated.profile["display_name"] == "Ada"
        assert updated.profile["bio"] is None
        assert updated.profile["email"] == "a@b.co"
        assert updated.updated_at >= user.updated_at
        assert updated.created_at == user.created_at
        assert (await storage.get_user(user.id)) == updated

    async def test_user_may_change_the_case_of_their_own_username(self, storage: Storage):
        user = await self._new_user(storage)
        updated, _ = await storage.update_profile(user.id, {"username": user.id.upper()})
        assert updated.profile["username"] == user.id.upper()

    async def test_changed_username_is_free_again(self, storage: Storage):
        user = await self._new_user(storage)
        await storage.update_profile(user.id, {"username": unique_id()})
        await storage.create_user(unique_id(), {"username": user.id})

    async def test_expected_version(self, storage: Storage):
        user = await self._new_user(storage)
        updated, _ = await storage.update_profile(user.id, {"bio": "x"}, expected_version=1)
        assert updated.version == 2
        with pytest.raises(VersionMismatch) as info:
            await storage.update_profile(user.id, {"bio": "y"}, expected_version=1)
        assert info.value.current_version == 2
        assert (await storage.get_user(user.id)).profile["bio"] == "x"

    async def test_update_missing(self, storage: Storage):
        user_id = unique_id()
        with pytest.raises(NotFound):
            await storage.update_profile(user_id, {"bio": "x"})
        with pytest.raises(NotFound):
            await storage.update_profile(user_id, {"username": user_id}, expected_version=1)
        user, created = await storage.update_profile(
            user_id, {"username": user_id, "bio": "x"}, create=True
        )
        assert created is True and user.version == 1 and user.profile["bio"] == "x"

    async def test_concurrent_partial_updates_keep_every_field(self, storage: Storage):
        user = await self._new_user(storage)
        writes = [
            {"display_name": f"name {i}"} if i % 2 else {"bio": f"bio {i}"} for i in range(50)
        ]
        results = await asyncio.gather(*(storage.update_profile(user.id, w) for w in writes))
        assert sorted(u.version for u, _ in results) == list(range(2, 52))
        final = await storage.get_user(user.id)
        assert final.version == 51
        last_name = max((u for u, _ in results), key=lambda u: u.version)
        assert final == last_name
        assert final.profile["display_name"] in {w.get("display_name") for w in writes}
        assert final.profile["bio"] in {w.get("bio") for w in writes}
        assert final.profile["username"] == user.id

    # -- passwords ----------------------------------------------------------

    async def test_password_hash(self, storage: Storage):
        user = await self._new_user(storage)
        assert (await storage.get_credentials(user.id)).password_hash is None
        when = await storage.set_password_hash(user.id, "$hash$1")
        assert when.tzinfo is not None
        assert (await storage.get_credentials(user.id)).password_hash == "$hash$1"
        found = await storage.find_credentials(user.id.upper())
        assert (found.user_id, found.password_hash) == (user.id, "$hash$1")
        assert (await storage.get_user(user.id)).version == 1  # not a profile change
        assert "$hash$1" not in repr(await storage.get_user(user.id))

    async def test_create_with_password_hash(self, storage: Storage):
        user_id = unique_id()
        await storage.create_user(user_id, {"username": user_id}, "$hash$2")
        assert (await storage.get_credentials(user_id)).password_hash == "$hash$2"

    async def test_password_hash_compare_and_set(self, storage: Storage):
        user = await self._new_user(storage)
        first = await storage.set_password_hash(user.id, "$hash$a")
        second = await storage.set_password_hash(user.id, "$hash$b", expected_hash="$hash$a")
        assert second >= first
        credentials = await storage.get_credentials(user.id)
        assert (credentials.password_hash, credentials.password_updated_at) == ("$hash$b", second)
        with pytest.raises(Conflict):  # "$hash$a" is no longer what is stored
            await storage.set_password_hash(user.id, "$hash$c", expected_hash="$hash$a")
        credentials = await storage.get_credentials(user.id)
        assert (credentials.password_hash, credentials.password_updated_at) == ("$hash$b", second)
        with pytest.raises(NotFound):
            await storage.set_password_hash(unique_id(), "$hash$", expected_hash="$hash$b")

    async def test_credentials_carry_their_timestamps(self, storage: Storage):
        user = await self._new_user(storage)
        credentials = await storage.get_credentials(user.id)
        assert credentials.created_at == user.created_at
        assert credentials.password_updated_at is None
        when = await storage.set_password_hash(user.id, "$hash$t")
        for credentials in (
            await storage.get_credentials(user.id),
            await storage.find_credentials(user.profile["username"]),
        ):
            assert credentials.password_updated_at == when
            assert credentials.created_at == user.created_at

    async def test_password_of_missing_user(self, storage: Storage):
        with pytest.raises(NotFound):
            await storage.set_password_hash(unique_id(), "$hash$")
        with pytest.raises(NotFound):
            await storage.get_credentials(unique_id())
        with pytest.raises(NotFound):
            await storage.find_credentials(unique_id())

    # -- delete -------------------------------------------------------------

    async def test_delete(self, storage: Storage):
        user = await self._new_user(storage)
        await storage.set_password_hash(user.id, "$hash$")
        await storage.delete_user(user.id)
        with pytest.raises(NotFound):
            await storage.get_user(user.id)
        with pytest.raises(NotFound):
            await storage.find_credentials(user.id)
        with pytest.raises(NotFound):
            await storage.delete_user(user.id)
        await storage.create_user(unique_id(), {"username": user.id})  # the name is free again

    # -- health -----------------------------------------

    async def test_ping(self, storage: Storage):
        checks = await storage.ping()
        assert checks and all(state == "ok" for state in checks.values())
