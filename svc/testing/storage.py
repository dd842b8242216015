"""The storage conformance suite: what every svc storage backend must do.

A plugin author proves a backend by subclassing :class:`StorageConformance` in
their own tests and overriding one fixture, ``storage``, that yields an opened
backend (pytest with pytest-aiohttp, ``asyncio_mode = auto``; Hypothesis)::

    import pytest
    from svc.testing import StorageConformance, reopener
    from svc_sqlite import SQLiteStorage

    class TestSQLiteStorage(StorageConformance):
        @pytest.fixture
        def url(self, tmp_path):
            return f"sqlite:///{tmp_path}/svc.db"  # tmp_path is absolute: four slashes

        @pytest.fixture
        async def storage(self, url):
            backend = SQLiteStorage(url)
            await backend.open()
            yield backend
            await backend.close()

        # Optional: each one left out skips the tests that need it, with the reason
        # shown by `pytest -ra`.
        @pytest.fixture
        async def reopen(self, url):  # persistence across close() and open()
            async with reopener(lambda: SQLiteStorage(url)) as reopen:
                yield reopen

        @pytest.fixture
        async def second_storage(self, url):  # a second instance on the same URL
            backend = SQLiteStorage(url)
            await backend.open()
            yield backend
            await backend.close()

        @pytest.fixture
        def bad_urls(self):  # URLs check_url must refuse
            return ["sqlite://", "sqlite:///db?journal=maybe"]

        @pytest.fixture
        def unavailable_storage(self):  # an unopened backend whose open() says "not yet"
            ...  # svc_sqlite's: a file another process holds locked

        @pytest.fixture
        def garbage_storage(self, tmp_path):  # an unopened backend on a file of garbage
            (tmp_path / "junk.db").write_text("not a database" * 100)
            return SQLiteStorage(f"sqlite:///{tmp_path}/junk.db")

Every failure names the rule broken (``rule: ...``), as stated in the
docstrings of :mod:`svc.storage`.  The tests make their own unique ids and
usernames, so they may run against a database that already holds data.
svc's own backends run this same suite.
"""

from __future__ import annotations

import asyncio
import unicodedata
from collections.abc import Awaitable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ..storage import (
    PROFILE_FIELDS,
    Conflict,
    Misconfigured,
    NotFound,
    Storage,
    Unavailable,
    User,
    VersionMismatch,
    username_key,
)
from .helpers import raises, unique_id, wait_until
from .limits import longest_profile

__all__ = ["StorageConformance", "unique_id", "wait_until"]

#: How far a timestamp may be from this machine's clock: loose enough for a database
#: server's clock, tight enough to catch local time labelled as UTC (zones differ by 30 min+).
CLOCK_SLACK = timedelta(minutes=10)
#: A pause longer than any clock's resolution, so that "later" is visible in timestamps.
TICK = 0.02
#: The text a backend is handed: any str but U+0000 and lone surrogates, which svc's HTTP
#: layer refuses (svc/http/schemas.py) because Postgres cannot store them, nor UTF-8 carry one.
TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=40)
#: Usernames that NFKC would make one but casefold keeps two: fullwidth letters, a circled
#: and a superscript digit.  (Each pair's first is what NFKC makes of its second.)
NFKC_TWINS = (("ada", "\uff41\uff44\uff41"), ("no1", "no\u2460"), ("x2", "x\u00b2"))


def check_utc(moment: object, what: str) -> None:
    """Fail unless ``moment`` is an aware UTC datetime close to now."""
    rule = "timestamps are timezone-aware UTC datetimes (svc.storage.User)"
    assert isinstance(moment, datetime), f"rule: {rule}; {what} is {moment!r}"
    assert moment.tzinfo is not None, f"rule: {rule}; {what} is naive: {moment!r}"
    # The zone itself, not just today's offset (a summer-time zone is UTC half the year).
    offsets = {moment.replace(month=m, day=1).utcoffset() for m in (1, 7)} | {moment.utcoffset()}
    assert offsets == {timedelta(0)}, f"rule: {rule}; {what} is {moment.isoformat()}"
    now = datetime.now(timezone.utc)
    assert abs(now - moment) < CLOCK_SLACK, (
        f"rule: timestamps are the current time in UTC; {what} is {moment.isoformat()}, "
        f"the clock says {now.isoformat()}"
    )


def check_record(user: object, user_id: str, what: str) -> None:
    """The shape every returned record has (svc.storage.User)."""
    assert isinstance(user, User), f"rule: records are svc.storage.User; {what} is {user!r}"
    assert user.id == user_id, f"rule: a record carries its user's id; {what} has {user.id!r}"
    assert isinstance(user.profile, Mapping), f"rule: profile is a mapping; {what}"
    assert set(user.profile) == set(PROFILE_FIELDS), (
        "rule: profile holds every field of PROFILE_FIELDS (None when unset) and nothing else; "
        f"{what} has {sorted(user.profile)}"
    )
    check_utc(user.created_at, f"{what}.created_at")
    check_utc(user.updated_at, f"{what}.updated_at")
    if user.password_updated_at is not None:
        check_utc(user.password_updated_at, f"{what}.password_updated_at")


def shown(value: object) -> str:
    """A value for a failure message: long ones by their length, not their text."""
    text = repr(value)
    return text if len(text) <= 80 else f"{type(value).__name__} of {len(value)}: {text[:60]}..."


async def seen(read: Awaitable[Any], rule: str) -> Any:
    """``await read``; a NotFound fails the test naming ``rule``."""
    try:
        return await read
    except NotFound as exc:
        pytest.fail(f"rule: {rule} (NotFound: {exc})")


def try_to_change(profile: Mapping) -> None:
    """Change a returned profile (and its avatar_urls) the way careless caller code might.

    A read-only mapping refusing it (TypeError, AttributeError) is fine too.
    """
    for target, key in ((profile, "bio"), (profile.get("avatar_urls"), "evil")):
        if target is None:
            continue
        try:
            target[key] = "changed by the caller"
        except (TypeError, AttributeError):
            pass


class StorageConformance:
    """Override the ``storage`` fixture; every ``test_*`` here then runs on your backend."""

    @pytest.fixture
    async def storage(self) -> Storage:  # pragma: no cover - always overridden
        raise NotImplementedError("override the `storage` fixture to yield an opened backend")

    @pytest.fixture
    async def reopen(self):
        """``await reopen(backend)`` closes ``backend`` and returns a new, opened backend on
        the same URL (build it with :func:`svc.testing.reopener`)."""
        pytest.skip(
            "persistence across close() and open() not checked: "
            "supply a `reopen` fixture (svc.testing.reopener) unless your URL keeps nothing"
        )

    @pytest.fixture
    def bad_urls(self) -> list[str]:
        """URLs your ``check_url`` must refuse."""
        return []

    @pytest.fixture
    def unavailable_storage(self) -> Storage:
        """An unopened backend whose ``open()`` must raise ``Unavailable`` (e.g. nothing
        listens at its address)."""
        pytest.skip("open() failing with Unavailable not checked: supply `unavailable_storage`")

    @pytest.fixture
    def garbage_storage(self) -> Storage:
        """An unopened backend whose URL names a file or database that exists but holds
        garbage (not this backend's data): its ``open()`` must raise ``Misconfigured``."""
        pytest.skip(
            "open() on garbage not checked: supply `garbage_storage` unless your URL names "
            "nothing that can hold data (as memory:// does)"
        )

    @pytest.fixture
    async def second_storage(self) -> Storage:
        """A second opened backend on the ``storage`` fixture's URL, as a second svc
        process would open it (close it on the way out)."""
        pytest.skip(
            "two instances on one URL not checked: supply `second_storage` "
            "unless your URL keeps nothing (as memory:// does)"
        )

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
        check_record(created, user_id, "create_user()")
        assert created.version == 1, "rule: a new user is at version 1"
        assert created.updated_at == created.created_at, (
            "rule: a new user's updated_at is created_at"
        )
        assert created.password_updated_at is None, (
            "rule: password_updated_at is None for a user created without a hash"
        )
        fetched = await storage.get_user(user_id)
        check_record(fetched, user_id, "get_user()")
        assert fetched == created, "rule: get_user returns what create_user stored"
        assert fetched.profile["display_name"] == "Ada"
        assert fetched.profile["avatar_urls"] == {"s": "https://a/s"}
        for name in set(PROFILE_FIELDS) - {"username", "display_name", "avatar_urls"}:
            assert fetched.profile[name] is None, f"rule: a field never set is None ({name})"

    async def test_text_round_trips_exactly(self, storage: Storage):
        bio = "naïve café — 東京 🚀 'quotes' \"double\" \\ back\nnew line\ttab"
        user = await self._new_user(storage, bio=bio, display_name="  spaces kept  ")
        fetched = await storage.get_user(user.id)
        assert fetched.profile["bio"] == bio, "rule: text round-trips exactly"
        assert fetched.profile["display_name"] == "  spaces kept  ", (
            "rule: text round-trips exactly"
        )

    @settings(
        max_examples=25,
        deadline=None,
        # One backend serves every example (the ids are unique, nothing carries over), and
        # each subclass runs this method on a backend of its own: both by design.
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.differing_executors,
        ],
    )
    @given(text=TEXT)
    # Always tried, whatever is drawn: beyond U+FFFF, controls, separators, combining.
    @example(text="\U0001f680 \U0010ffff\x01\x1f\x7f\u2028\u0301\ufeff\\\"'")
    async def test_any_text_round_trips(self, storage: Storage, text: str):
        """Storage is handed any text but U+0000 and lone surrogates (svc.storage.Storage)."""
        rule = "any text the interface is handed round-trips exactly"
        user_id = unique_id()
        profile = {
            "username": f"{user_id}{text}",
            "display_name": text,
            "bio": text,
            "email": text,
            "avatar_url": text,
            "avatar_urls": {f"k{text}": text},
        }
        created = await storage.create_user(user_id, profile)
        stored = await storage.get_user(user_id)
        for what, record in (("create_user()", created), ("get_user()", stored)):
            for name, value in profile.items():
                assert record.profile[name] == value, (
                    f"rule: {rule} ({what}: {name} {record.profile[name]!r}, given {value!r})"
                )
        updated, _ = await storage.update_profile(user_id, {"bio": text[::-1]})
        assert updated.profile["bio"] == text[::-1], f"rule: {rule} (update_profile, {text!r})"
        assert (await storage.get_user(user_id)).profile["bio"] == text[::-1], (
            f"rule: {rule} (get_user after update_profile, {text!r})"
        )
        found = await seen(storage.find_credentials(profile["username"]), f"{rule} (username)")
        assert found.user_id == user_id, f"rule: {rule} (find_credentials of {text!r})"

    async def test_the_longest_values_http_accepts_round_trip(self, storage: Storage):
        """Every field at the most svc's request schemas allow (svc/http/schemas.py): a
        bio of 1,000 characters, 16 avatar URLs of 2,048..., each character up to 4 bytes."""
        rule = "the longest values HTTP accepts round-trip"
        created_id, updated_id = unique_id(), unique_id()
        profile = longest_profile(created_id)
        created = await storage.create_user(created_id, profile)
        other = longest_profile(updated_id)
        await storage.create_user(updated_id, {"display_name": "short"})
        updated, _ = await storage.update_profile(updated_id, other)
        records = {
            "create_user()": (created, profile),
            "get_user()": (await storage.get_user(created_id), profile),
            "update_profile()": (updated, other),
            "get_user() after update_profile()": (await storage.get_user(updated_id), other),
        }
        for what, (record, wanted) in records.items():
            for name, value in wanted.items():
                assert record.profile[name] == value, (
                    f"rule: {rule} ({what}: {name} is {shown(record.profile[name])}, "
                    f"given {shown(value)})"
                )
        found = await seen(storage.find_credentials(profile["username"]), rule)
        assert found.user_id == created_id, f"rule: {rule} (find_credentials)"

    async def test_get_missing_is_not_found(self, storage: Storage):
        with raises(NotFound, "get_user of a missing id raises NotFound"):
            await storage.get_user(unique_id("missing"))

    async def test_get_users_keeps_order_and_skips_missing(self, storage: Storage):
        a, b = await self._new_user(storage), await self._new_user(storage)
        found = await storage.get_users([b.id, unique_id("missing"), a.id])
        assert [u.id for u in found] == [b.id, a.id], (
            "rule: get_users returns the users that exist, in the order asked"
        )
        assert found == [b, a], "rule: get_users returns the same records as get_user"
        assert await storage.get_users([]) == [], "rule: get_users of nothing is []"

    async def test_duplicate_id_is_conflict(self, storage: Storage):
        user = await self._new_user(storage, bio="original")
        with raises(Conflict, "create_user of a taken id raises Conflict") as caught:
            await storage.create_user(user.id, {"username": unique_id(), "bio": "impostor"})
        assert caught[0].field == "id", "rule: Conflict.field names the taken value ('id')"
        assert await storage.get_user(user.id) == user, "rule: a refused write changes nothing"

    async def test_a_taken_id_is_the_conflict_whatever_the_username(self, storage: Storage):
        """POST /users with an existing id must not tell whether a username is taken: the
        answer names the id whether the username is free or taken (else it is an oracle
        that enumerates usernames without creating anything)."""
        user, other = await self._new_user(storage), await self._new_user(storage)
        rule = "rule: a taken id is reported (field 'id') before any username check"
        for candidate in (other.profile["username"], unique_id()):
            with raises(Conflict, "create_user of a taken id raises Conflict") as caught:
                await storage.create_user(user.id, {"username": candidate})
            assert caught[0].field == "id", f"{rule} (username {candidate!r})"
        assert await storage.get_user(user.id) == user, "rule: a refused write changes nothing"

    async def test_taken_username_on_create_leaves_no_trace(self, storage: Storage):
        user = await self._new_user(storage)
        other = unique_id()
        with raises(Conflict, "usernames are unique under username_key") as caught:
            await storage.create_user(other, {"username": user.profile["username"]})
        assert caught[0].field == "username", (
            "rule: Conflict.field names the taken value ('username')"
        )
        with raises(NotFound, "a refused create stores nothing"):
            await storage.get_user(other)

    async def test_same_email_on_two_users(self, storage: Storage):
        await self._new_user(storage, email="shared@example.com")
        await self._new_user(storage, email="shared@example.com")

    async def test_users_without_a_username(self, storage: Storage):
        first, second = unique_id(), unique_id()
        for user_id in (first, second):
            user = await storage.create_user(user_id, {"display_name": "nameless"})
            assert user.profile["username"] is None, "rule: a user may have no username"
        with raises(NotFound, "find_credentials finds users by username only"):
            await storage.find_credentials(first)

    # -- usernames: one rule, svc.storage.username_key ------------------------

    async def test_username_unique_without_regard_to_case(self, storage: Storage):
        rule = "usernames are unique under username_key (case does not matter)"
        user = await self._new_user(storage)
        with raises(Conflict, rule) as caught:
            await storage.create_user(unique_id(), {"username": user.id.upper()})
        assert caught[0].field == "username", "rule: Conflict.field names 'username'"
        other = await self._new_user(storage)
        with raises(Conflict, rule):
            await storage.update_profile(other.id, {"username": user.id.upper()})
        assert await storage.get_user(other.id) == other, "rule: a refused write changes nothing"

    async def test_username_rule_is_casefold_not_lower(self, storage: Storage):
        """ß casefolds to ss, but lower() keeps it: the rule is username_key, not lower()."""
        rule = "usernames are the same when username_key (str.casefold) agrees, not lower()"
        tail = unique_id("_")
        user = await storage.create_user(unique_id(), {"username": f"Straße{tail}"})
        assert username_key(f"Straße{tail}") == username_key(f"STRASSE{tail}")
        with raises(Conflict, rule):
            await storage.create_user(unique_id(), {"username": f"STRASSE{tail}"})
        found = await storage.find_credentials(f"strasse{tail}")
        assert found.user_id == user.id, f"rule: {rule} (find_credentials)"

    async def test_usernames_equal_only_under_nfkc_stay_distinct(self, storage: Storage):
        """The rule is casefold alone: no Unicode normalisation on top (NFKC makes the
        fullwidth "ａｄａ" into "ada", casefold does not)."""
        rule = "usernames equal under NFKC but distinct under username_key stay distinct"
        tail = unique_id("_")
        for plain, twin in NFKC_TWINS:
            plain, twin = f"{plain}{tail}", f"{twin}{tail}"
            assert unicodedata.normalize("NFKC", twin) == plain != twin
            assert username_key(plain) != username_key(twin)
            first = await storage.create_user(unique_id(), {"username": plain})
            try:
                second = await storage.create_user(unique_id(), {"username": twin})
            except Conflict as exc:
                pytest.fail(f"rule: {rule} ({plain!r} and {twin!r}: Conflict {exc})")
            for user, name in ((first, plain), (second, twin)):
                found = await seen(storage.find_credentials(name), rule)
                assert found.user_id == user.id, (
                    f"rule: {rule} (find_credentials({name!r}) found {found.user_id!r})"
                )

    async def test_username_is_stored_as_given(self, storage: Storage):
        name = f"MiXeD.Case-{unique_id()}"
        user = await storage.create_user(unique_id(), {"username": name})
        assert user.profile["username"] == name, (
            "rule: the username is stored as given; only comparisons use username_key"
        )
        assert (await storage.get_user(user.id)).profile["username"] == name, (
            "rule: the username is stored as given; only comparisons use username_key"
        )

    async def test_find_credentials_under_username_key(self, storage: Storage):
        name = f"Login.Name-{unique_id()}"
        user = await storage.create_user(unique_id(), {"username": name}, "$hash$f")
        for spelling in (name, name.upper(), name.lower(), name.swapcase()):
            found = await storage.find_credentials(spelling)
            assert (found.user_id, found.password_hash) == (user.id, "$hash$f"), (
                f"rule: find_credentials finds a user under username_key ({spelling!r})"
            )

    async def test_user_may_change_the_case_of_their_own_username(self, storage: Storage):
        user = await self._new_user(storage)
        updated, _ = await storage.update_profile(user.id, {"username": user.id.upper()})
        assert updated.profile["username"] == user.id.upper(), (
            "rule: a user's own username is not a clash with itself"
        )
        found = await storage.find_credentials(user.id.lower())
        assert found.user_id == user.id, "rule: find_credentials follows a renamed user"

    async def test_changed_username_is_free_again(self, storage: Storage):
        user = await self._new_user(storage)
        new_name = unique_id()
        await storage.update_profile(user.id, {"username": new_name})
        with raises(NotFound, "a username given up is no longer found"):
            await storage.find_credentials(user.id)
        await storage.create_user(unique_id(), {"username": user.id.upper()})
        assert (await storage.find_credentials(new_name.upper())).user_id == user.id, (
            "rule: find_credentials finds a user by their new username"
        )

    async def test_cleared_username_is_free_again(self, storage: Storage):
        user = await self._new_user(storage)
        await storage.update_profile(user.id, {"username": None})
        await storage.create_user(unique_id(), {"username": user.id})

    # -- timestamps ---------------------------------------------------------

    async def test_timestamps_are_utc(self, storage: Storage):
        user_id = unique_id()
        created = await storage.create_user(user_id, {"username": user_id}, "$hash$t")
        check_record(created, user_id, "create_user()")
        assert created.password_updated_at is not None, (
            "rule: create_user with a hash sets password_updated_at"
        )
        updated, _ = await storage.update_profile(user_id, {"bio": "x"})
        check_record(updated, user_id, "update_profile()")
        when = await storage.set_password_hash(user_id, "$hash$t2")
        check_utc(when, "set_password_hash()")
        credentials = await storage.get_credentials(user_id)
        check_utc(credentials.password_updated_at, "Credentials.password_updated_at")
        check_utc(credentials.created_at, "Credentials.created_at")
        check_record(await storage.delete_user(user_id), user_id, "delete_user()")

    async def test_updated_at_moves_with_each_profile_change(self, storage: Storage):
        user = await self._new_user(storage)
        previous = user
        for step in range(2):
            await asyncio.sleep(TICK)
            updated, _ = await storage.update_profile(user.id, {"bio": f"step {step}"})
            assert updated.updated_at > previous.updated_at, (
                "rule: updated_at moves with every profile change "
                f"({previous.updated_at.isoformat()} then {updated.updated_at.isoformat()})"
            )
            assert updated.created_at == user.created_at, "rule: created_at never moves"
            previous = updated
        assert await storage.get_user(user.id) == previous, "rule: reads see the last write"

    # -- records are the caller's own: no shared state ---------------------

    async def test_records_do_not_share_state_with_the_backend(self, storage: Storage):
        rule = "records hold fresh mappings the caller cannot change the backend through"
        user_id = unique_id()
        given = {"username": user_id, "bio": "stored", "avatar_urls": {"s": "https://a/s"}}
        created = await storage.create_user(user_id, given)
        given["bio"] = "changed by the caller"
        given["avatar_urls"]["evil"] = "changed by the caller"
        try_to_change(created.profile)
        try_to_change((await storage.get_user(user_id)).profile)
        try_to_change((await storage.get_users([user_id]))[0].profile)
        stored = await storage.get_user(user_id)
        assert stored.profile["bio"] == "stored", f"rule: {rule} (bio)"
        assert stored.profile["avatar_urls"] == {"s": "https://a/s"}, f"rule: {rule} (avatar_urls)"

        changes = {"display_name": "Ada", "avatar_urls": {"m": "https://a/m"}}
        updated, _ = await storage.update_profile(user_id, changes)
        changes["display_name"] = "changed by the caller"
        changes["avatar_urls"]["evil"] = "changed by the caller"
        try_to_change(updated.profile)
        stored = await storage.get_user(user_id)
        assert stored.profile["display_name"] == "Ada", f"rule: {rule} (update_profile)"
        assert stored.profile["bio"] == "stored", f"rule: {rule} (update_profile)"
        assert stored.profile["avatar_urls"] == {"m": "https://a/m"}, (
            f"rule: {rule} (update_profile, avatar_urls)"
        )
        assert stored.version == 2, f"rule: {rule} (version)"

    # -- partial updates ----------------------------------------------------

    async def test_partial_update_merges_and_null_clears(self, storage: Storage):
        user = await self._new_user(storage, display_name="Ada", bio="first")
        updated, created = await storage.update_profile(user.id, {"bio": None, "email": "a@b.co"})
        check_record(updated, user.id, "update_profile()")
        assert created is False, "rule: update_profile of an existing user returns created=False"
        assert updated.version == 2, "rule: each profile change moves the version by one"
        assert updated.profile["display_name"] == "Ada", "rule: fields not in changes are kept"
        assert updated.profile["bio"] is None, "rule: None in changes clears the field"
        assert updated.profile["email"] == "a@b.co", "rule: the changes are merged in"
        assert updated.created_at == user.created_at, "rule: created_at never moves"
        assert await storage.get_user(user.id) == updated, "rule: reads see the last write"

    async def test_expected_version(self, storage: Storage):
        user = await self._new_user(storage)
        updated, _ = await storage.update_profile(user.id, {"bio": "x"}, expected_version=1)
        assert updated.version == 2, "rule: an update at the expected version goes through"
        rule = "an update at another version than expected raises VersionMismatch"
        with raises(VersionMismatch, rule) as caught:
            await storage.update_profile(user.id, {"bio": "y"}, expected_version=1)
        assert caught[0].current_version == 2, "rule: VersionMismatch carries the current version"
        assert await storage.get_user(user.id) == updated, "rule: a refused write changes nothing"

    async def test_update_missing_is_not_found(self, storage: Storage):
        user_id = unique_id()
        with raises(NotFound, "update_profile of a missing user raises NotFound"):
            await storage.update_profile(user_id, {"bio": "x"})
        with raises(NotFound, "update_profile with expected_version never creates"):
            await storage.update_profile(user_id, {"username": user_id}, expected_version=1)
        with raises(NotFound, "update_profile with expected_version never creates"):
            await storage.update_profile(
                user_id, {"username": user_id}, expected_version=1, create=True
            )
        with raises(NotFound, "update_profile with expected_version never creates"):
            await storage.get_user(user_id)

    async def test_update_with_create(self, storage: Storage):
        user_id = unique_id()
        user, created = await storage.update_profile(
            user_id, {"username": user_id, "bio": "x"}, create=True
        )
        check_record(user, user_id, "update_profile(create=True)")
        assert created is True, "rule: update_profile(create=True) reports a creation"
        assert user.version == 1, "rule: a new user is at version 1"
        assert user.profile["bio"] == "x", "rule: a user created by update_profile holds changes"
        assert user.created_at == user.updated_at, "rule: a new user's updated_at is created_at"
        again, created = await storage.update_profile(user_id, {"bio": "y"}, create=True)
        assert (created, again.version) == (False, 2), (
            "rule: update_profile(create=True) of an existing user updates it"
        )
        nameless, _ = await storage.update_profile(unique_id(), {"bio": "z"}, create=True)
        assert nameless.profile["username"] is None, "rule: a user may have no username"

    async def test_create_without_a_username(self, storage: Storage):
        """A user may have no username (it cannot log in until one is set); usernames stay
        unique among those that are set."""
        first, second = unique_id(), unique_id()
        user, created = await storage.update_profile(first, {"bio": "a"}, create=True)
        assert created is True and user.version == 1, "rule: update_profile(create=True) creates"
        assert user.profile["username"] is None, "rule: a user may have no username"
        other, _ = await storage.update_profile(second, {"display_name": "B"}, create=True)
        assert other.profile["username"] is None, "rule: a user may have no username"
        with raises(NotFound, "find_credentials finds users by username only"):
            await storage.find_credentials("")
        named, _ = await storage.update_profile(first, {"username": first})
        assert named.version == 2 and named.profile["bio"] == "a", "rule: changes are merged in"
        with raises(Conflict, "usernames are unique under username_key"):
            await storage.update_profile(second, {"username": first.upper()})
        assert (await storage.find_credentials(first)).user_id == first, (
            "rule: find_credentials finds a user by a username set later"
        )

    async def test_concurrent_creates_of_one_id(self, storage: Storage):
        """A create racing updates of one new id: one creates, the others update; never a
        version mismatch, never a lost field."""
        rule = "concurrent update_profile(create=True) of one id: one creates, the others update"
        user_id = unique_id()
        writes = [{f"{'display_name' if i % 2 else 'bio'}": f"v{i}"} for i in range(20)]
        results = await asyncio.gather(
            *(storage.update_profile(user_id, w, create=True) for w in writes)
        )
        assert sum(created for _, created in results) == 1, f"rule: {rule}"
        assert sorted(u.version for u, _ in results) == list(range(1, 21)), (
            f"rule: {rule}, with distinct consecutive versions"
        )
        final = await storage.get_user(user_id)
        assert final.version == 20, f"rule: {rule}"
        assert final.profile["display_name"] in {w.get("display_name") for w in writes}, (
            f"rule: {rule} (every field survives)"
        )
        assert final.profile["bio"] in {w.get("bio") for w in writes}, (
            f"rule: {rule} (every field survives)"
        )

    async def test_concurrent_partial_updates_keep_every_field(self, storage: Storage):
        user = await self._new_user(storage)
        writes = [
            {"display_name": f"name {i}"} if i % 2 else {"bio": f"bio {i}"} for i in range(50)
        ]
        results = await asyncio.gather(*(storage.update_profile(user.id, w) for w in writes))
        rule = "concurrent updates get distinct consecutive versions"
        assert sorted(u.version for u, _ in results) == list(range(2, 52)), f"rule: {rule}"
        final = await storage.get_user(user.id)
        assert final.version == 51, f"rule: {rule}"
        last = max((u for u, _ in results), key=lambda u: u.version)
        assert final == last, "rule: reads see the last write"
        rule = "only the fields in changes are written: concurrent updates all survive"
        assert final.profile["display_name"] in {w.get("display_name") for w in writes}, (
            f"rule: {rule}"
        )
        assert final.profile["bio"] in {w.get("bio") for w in writes}, f"rule: {rule}"
        assert final.profile["username"] == user.id, f"rule: {rule}"

    # -- passwords ----------------------------------------------------------

    async def test_password_hash(self, storage: Storage):
        user = await self._new_user(storage)
        assert (await storage.get_credentials(user.id)).password_hash is None, (
            "rule: a user created without a hash has none"
        )
        await storage.set_password_hash(user.id, "$hash$1")
        credentials = await storage.get_credentials(user.id)
        assert (credentials.user_id, credentials.password_hash) == (user.id, "$hash$1"), (
            "rule: get_credentials returns the hash last set"
        )
        assert credentials.created_at == user.created_at, (
            "rule: Credentials.created_at is the user's created_at"
        )
        found = await storage.find_credentials(user.id.upper())
        assert (found.user_id, found.password_hash) == (user.id, "$hash$1"), (
            "rule: find_credentials returns the hash last set"
        )
        assert "$hash$1" not in repr(await storage.get_user(user.id)), (
            "rule: a record never carries the password hash"
        )

    async def test_password_change_is_not_a_profile_change(self, storage: Storage):
        user = await self._new_user(storage, bio="kept")
        await asyncio.sleep(TICK)
        await storage.set_password_hash(user.id, "$hash$p")
        after = await storage.get_user(user.id)
        rule = "a password change is not a profile change"
        assert after.version == user.version, f"rule: {rule}: version must not move"
        assert after.updated_at == user.updated_at, f"rule: {rule}: updated_at must not move"
        assert after.profile == user.profile, f"rule: {rule}: the profile must not change"

    async def test_password_updated_at_is_kept(self, storage: Storage):
        user_id = unique_id()
        created = await storage.create_user(user_id, {"username": user_id}, "$hash$k")
        rule = "password_updated_at is when the password was last set"
        assert created.password_updated_at is not None, f"rule: {rule} (create_user with a hash)"
        assert created.password_updated_at >= created.created_at, f"rule: {rule}"
        await asyncio.sleep(TICK)
        when = await storage.set_password_hash(user_id, "$hash$k2")
        assert when > created.password_updated_at, f"rule: {rule} (it moves when set again)"
        records = {
            "get_user()": await storage.get_user(user_id),
            "get_users()": (await storage.get_users([user_id]))[0],
            "update_profile()": (await storage.update_profile(user_id, {"bio": "x"}))[0],
        }
        for what, record in records.items():
            assert record.password_updated_at == when, (
                f"rule: {rule}: {what} has {record.password_updated_at!r}, expected {when!r}"
            )
        credentials = await storage.get_credentials(user_id)
        assert credentials.password_updated_at == when, f"rule: {rule} (get_credentials)"
        found = await storage.find_credentials(user_id)
        assert found.password_updated_at == when, f"rule: {rule} (find_credentials)"

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
        with raises(NotFound, "set_password_hash of a missing user raises NotFound"):
            await storage.set_password_hash(unique_id(), "$hash$")
        with raises(NotFound, "get_credentials of a missing user raises NotFound"):
            await storage.get_credentials(unique_id())
        with raises(NotFound, "find_credentials of an unknown username raises NotFound"):
            await storage.find_credentials(unique_id())

    # -- delete -------------------------------------------------------------

    async def test_delete(self, storage: Storage):
        user = await self._new_user(storage, bio="last words")
        await storage.set_password_hash(user.id, "$hash$")
        last, _ = await storage.update_profile(user.id, {"display_name": "Ada"})
        deleted = await storage.delete_user(user.id)
        assert deleted == last, (
            "rule: delete_user returns the record as it was (its version is the last one; "
            "svc announces the deletion at that version + 1)"
        )
        with raises(NotFound, "a deleted user is gone"):
            await storage.get_user(user.id)
        with raises(NotFound, "a deleted user's credentials are gone"):
            await storage.get_credentials(user.id)
        with raises(NotFound, "a deleted user's username is free"):
            await storage.find_credentials(user.id)
        with raises(NotFound, "delete_user of a missing user raises NotFound"):
            await storage.delete_user(user.id)
        assert await storage.get_users([user.id]) == [], "rule: a deleted user is gone"
        await storage.create_user(unique_id(), {"username": user.id})  # the name is free again

    async def test_delete_racing_updates_returns_the_record_as_deleted(self, storage: Storage):
        """An update that commits while a deletion is under way is part of what was
        deleted: svc announces the deletion at the returned version + 1, so a stale record
        would announce a version that some client already holds."""
        rule = "delete_user racing update_profile returns the record as deleted"
        user = await self._new_user(storage)
        updates = [storage.update_profile(user.id, {"bio": f"bio {i}"}) for i in range(20)]
        results = await asyncio.gather(
            *updates[:10], storage.delete_user(user.id), *updates[10:], return_exceptions=True
        )
        deleted, raced = results[10], results[:10] + results[11:]
        for outcome in (deleted, *raced):
            if isinstance(outcome, BaseException) and not isinstance(outcome, NotFound):
                raise outcome
        assert not isinstance(deleted, BaseException), f"rule: {rule} (it raised {deleted!r})"
        # An update after the deletion finds no user: each that wrote came before it.
        written = [outcome[0] for outcome in raced if not isinstance(outcome, BaseException)]
        last = max(written, key=lambda u: u.version, default=user)
        assert (deleted.version, deleted.profile["bio"]) == (last.version, last.profile["bio"]), (
            f"rule: {rule} (it returned version {deleted.version}, but an update that "
            f"came before the deletion wrote version {last.version})"
        )
        with raises(NotFound, "a deleted user is gone"):
            await storage.get_user(user.id)

    async def test_id_created_again_starts_over(self, storage: Storage):
        user = await self._new_user(storage)
        await storage.set_password_hash(user.id, "$hash$old")
        await storage.update_profile(user.id, {"bio": "old"})
        await storage.delete_user(user.id)
        again = await storage.create_user(user.id, {"display_name": "new"})
        rule = "an id created again after deletion starts over"
        assert again.version == 1, f"rule: {rule} at version 1"
        assert again.profile["bio"] is None, f"rule: {rule} with nothing of the old profile"
        credentials = await storage.get_credentials(user.id)
        assert credentials.password_hash is None, f"rule: {rule}: the old hash is gone"

    # -- life cycle ---------------------------------------------------------

    async def test_ping(self, storage: Storage):
        checks = await storage.ping()
        assert isinstance(checks, dict) and checks, "rule: ping returns part name → 'ok'"
        assert all(state == "ok" for state in checks.values()), (
            "rule: ping returns part name → 'ok'"
        )

    async def test_close_twice_is_safe(self, storage: Storage):
        await storage.close()
        try:
            await storage.close()
        except Exception as exc:
            pytest.fail(f"rule: close() is safe twice (the second raised {exc!r})")

    async def test_data_survives_reopen(self, storage: Storage, reopen):
        kept = await self._new_user(storage, avatar_urls={"s": "https://a/s"}, email="e@x.co")
        await storage.set_password_hash(kept.id, "$hash$r")
        kept, _ = await storage.update_profile(kept.id, {"bio": "written before close"})
        gone = await self._new_user(storage)
        await storage.delete_user(gone.id)

        storage = await reopen(storage)
        rule = "data written is there after close() and a new open() of the same URL"
        try:
            back = await storage.get_user(kept.id)
            credentials = await storage.find_credentials(kept.id.upper())
        except NotFound as exc:
            pytest.fail(f"rule: {rule} (after reopening, NotFound: {exc})")
        assert back == kept, f"rule: {rule} (got {back!r}, wrote {kept!r})"
        assert back.password_updated_at == kept.password_updated_at, f"rule: {rule}"
        assert credentials.password_hash == "$hash$r", f"rule: {rule} (the hash)"
        with raises(NotFound, f"{rule} (a deletion too)"):
            await storage.get_user(gone.id)
        with raises(Conflict, f"{rule} (usernames stay taken)"):
            await storage.create_user(unique_id(), {"username": kept.id.upper()})
        updated, _ = await storage.update_profile(kept.id, {"bio": "after"})
        assert updated.version == kept.version + 1, f"rule: {rule} (versions continue)"

    async def test_two_instances_on_one_url_see_each_others_writes(
        self, storage: Storage, second_storage: Storage
    ):
        """svc runs several processes on one DATABASE_URL (WORKERS, or several machines):
        each reads what the others wrote, not a copy taken when it opened."""
        rule = "two instances opened on one URL see each other's writes"
        one, two = storage, second_storage
        user = await self._new_user(one, bio="by one")
        assert await seen(two.get_user(user.id), f"{rule} (a new user)") == user, f"rule: {rule}"
        assert await one.get_user(user.id) == user  # whatever `one` may cache, it is warm now
        updated, _ = await two.update_profile(user.id, {"bio": "by two"})
        assert await one.get_user(user.id) == updated, f"rule: {rule} (an update)"
        await one.set_password_hash(user.id, "$hash$one")
        found = await seen(two.find_credentials(user.id.upper()), f"{rule} (a password)")
        assert found.password_hash == "$hash$one", f"rule: {rule} (a password)"
        with raises(Conflict, f"{rule} (a username taken through one is taken in the other)"):
            await two.create_user(unique_id(), {"username": user.id.upper()})
        await two.delete_user(user.id)
        with raises(NotFound, f"{rule} (a deletion)"):
            await one.get_user(user.id)
        with raises(NotFound, f"{rule} (a deletion frees the username)"):
            await one.find_credentials(user.id)

    def test_check_url_refuses_bad_urls(self, storage: Storage, bad_urls: list[str]):
        if not bad_urls:
            pytest.skip("check_url not checked: supply `bad_urls`, URLs it must refuse")
        for url in bad_urls:
            with raises(ValueError, f"check_url refuses a URL that cannot work ({url!r})") as c:
                type(storage).check_url(url)
            message = str(c[0])
            assert message.strip(), f"rule: check_url says why, for a person ({url!r})"
            password = urlsplit(url).password
            if password:
                assert password not in message, f"rule: check_url never echoes a password ({url!r})"

    def test_check_url_accepts_the_url_in_use(self, storage: Storage):
        url = getattr(storage, "url", None)
        if not isinstance(url, str):
            pytest.skip("the backend keeps no `url` attribute (super().__init__ is optional)")
        try:
            type(storage).check_url(url)
        except ValueError as exc:
            pytest.fail(f"rule: check_url accepts a URL that works ({url!r}: {exc})")

    async def test_failed_open_then_close(self, unavailable_storage: Storage):
        with raises(Unavailable, "open() says 'not yet' with Unavailable"):
            await unavailable_storage.open()
        try:
            await unavailable_storage.close()
            await unavailable_storage.close()
        except Exception as exc:
            pytest.fail(f"rule: close() follows a failed open(), and twice is safe ({exc!r})")

    async def test_open_on_garbage_is_misconfigured(self, garbage_storage: Storage):
        rule = "a file or database holding garbage makes open() say 'never' with Misconfigured"
        with raises(Misconfigured, f"{rule}, not Unavailable ('not yet', retried in vain)"):
            await garbage_storage.open()
        try:
            await garbage_storage.close()
            await garbage_storage.close()
        except Exception as exc:
            pytest.fail(f"rule: close() follows a failed open(), and twice is safe ({exc!r})")
