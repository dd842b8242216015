"""Copies of the JSON-file backend, each with exactly one mistake a plugin author could make.

``MUTANTS`` maps a name to (the broken class, the rule the conformance suite must name when
it fails it).  tests/test_conformance_catches.py runs the suite against each.
"""

from __future__ import annotations

import asyncio
import unicodedata
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from svc.storage import Storage, Unavailable

from .jsonfile import JsonFileStorage


class CachesAtOpen(JsonFileStorage):
    """Reads the file once, at ``open()``: another instance's writes are never seen."""

    def _open_users(self):
        if self._users is None:
            raise Unavailable("storage is not open")
        return self._users


class ForgetsOnReopen(CachesAtOpen):
    """Keeps everything in memory: a restart loses every user."""

    def _load(self):
        return {}


class LocalTimestamps(JsonFileStorage):
    """Timestamps in the server's zone (UTC+2), aware but not UTC."""

    @staticmethod
    def _now() -> datetime:
        return datetime.now(timezone(timedelta(hours=2)))


class NaiveTimestamps(JsonFileStorage):
    """``datetime.now()``: no zone at all."""

    @staticmethod
    def _now() -> datetime:
        return datetime.now()


class UpdatedAtStuck(JsonFileStorage):
    """``updated_at`` does not move on a profile change."""

    async def update_profile(self, user_id, changes, expected_version=None, create=False):
        before = self._open_users().get(user_id, {}).get("updated_at")
        user, created = await super().update_profile(user_id, changes, expected_version, create)
        if before is not None:
            self._record(user_id)["updated_at"] = before
            self._save()
            user = replace(user, updated_at=datetime.fromisoformat(before))
        return user, created


class PasswordMovesVersion(JsonFileStorage):
    """Counts a password change as a profile change."""

    async def set_password_hash(self, user_id, password_hash, expected_hash=None):
        when = await super().set_password_hash(user_id, password_hash, expected_hash)
        self._record(user_id)["version"] += 1
        self._save()
        return when


class PasswordMovesUpdatedAt(JsonFileStorage):
    """Touches ``updated_at`` when the password changes."""

    async def set_password_hash(self, user_id, password_hash, expected_hash=None):
        when = await super().set_password_hash(user_id, password_hash, expected_hash)
        self._record(user_id)["updated_at"] = when.isoformat()
        self._save()
        return when


class DropsPasswordUpdatedAt(JsonFileStorage):
    """Records leave ``password_updated_at`` out (credentials still have it)."""

    def _user(self, user_id, record):
        return replace(super()._user(user_id, record), password_updated_at=None)


class AcceptsAnyURL(JsonFileStorage):
    """No ``check_url``: the default accepts anything."""

    check_url = Storage.check_url


class CloseTwiceFails(JsonFileStorage):
    """The second ``close()`` raises."""

    async def close(self):
        if self._users is None:
            raise RuntimeError("already closed")
        await super().close()


class SharesProfile(CachesAtOpen):
    """Hands out its own profile dict: a caller's change is a change to the store (of one
    that keeps its records in memory)."""

    def _user(self, user_id, record):
        return replace(super()._user(user_id, record), profile=record["profile"])


class KeepsCallersAvatarUrls(CachesAtOpen):
    """Stores the caller's nested ``avatar_urls`` dict by reference (a shallow copy), in a
    store that keeps its records in memory."""

    async def create_user(self, user_id, profile, password_hash=None):
        user = await super().create_user(user_id, profile, password_hash)
        if profile.get("avatar_urls") is not None:
            self._record(user_id)["profile"]["avatar_urls"] = profile["avatar_urls"]
        return user


class CreatesDespiteExpectedVersion(JsonFileStorage):
    """``create=True`` wins over ``expected_version``: a conditional write creates a user."""

    async def update_profile(self, user_id, changes, expected_version=None, create=False):
        if create and user_id not in self._open_users():
            return await self.create_user(user_id, changes), True
        return await super().update_profile(user_id, changes, expected_version, create)


class CaseSensitiveUsernames(JsonFileStorage):
    """Compares usernames as given: ``Ada`` and ``ada`` are two users."""

    @staticmethod
    def _key(username: str) -> str:
        return username


class LowerUsernames(JsonFileStorage):
    """``str.lower`` instead of ``username_key`` (casefold): ``Straße`` and ``STRASSE`` differ."""

    @staticmethod
    def _key(username: str) -> str:
        return username.lower()


class DeleteReturnsNextVersion(JsonFileStorage):
    """``delete_user`` returns the record at version + 1 (that is what svc announces)."""

    async def delete_user(self, user_id):
        user = await super().delete_user(user_id)
        return replace(user, version=user.version + 1)


class GarbageIsUnavailable(JsonFileStorage):
    """Takes a file it cannot parse for one being written: "not yet", retried in vain."""

    def _load(self):
        try:
            return super()._load()
        except ValueError as exc:
            raise Unavailable(f"cannot parse {self._path} yet: {exc}") from None


class DeleteReturnsStaleRead(JsonFileStorage):
    """Reads the record, then deletes it after an ``await``: an update in between is lost
    from what it returns (as a SELECT then a DELETE would, in two statements)."""

    async def delete_user(self, user_id):
        before = await self.get_user(user_id)
        await asyncio.sleep(0)
        await super().delete_user(user_id)
        return before


class TruncatesLongText(JsonFileStorage):
    """A column sized in bytes: text past 1,000 UTF-8 bytes is cut (a bio of 1,000
    characters is up to 4,000)."""

    def _user(self, user_id, record):
        user = super()._user(user_id, record)
        profile = {
            name: value.encode()[:1000].decode(errors="ignore") if isinstance(value, str) else value
            for name, value in user.profile.items()
        }
        return replace(user, profile=profile)


class AsciiJsonLosesAstralText(JsonFileStorage):
    """Stores text through a codec that cannot hold characters beyond U+FFFF (as MySQL's
    3-byte ``utf8`` would): they come back as U+FFFD."""

    def _save(self):
        for record in self._users.values():
            profile = record["profile"]
            for name in ("bio", "display_name"):
                if isinstance(profile[name], str):
                    profile[name] = "".join(
                        c if ord(c) <= 0xFFFF else "\ufffd" for c in profile[name]
                    )
        super()._save()


class NfkcUsernames(JsonFileStorage):
    """Normalises usernames with NFKC before casefold: the fullwidth "ａｄａ" takes "ada"."""

    @staticmethod
    def _key(username: str) -> str:
        return unicodedata.normalize("NFKC", username).casefold()


#: name → (broken backend, the rule the suite's failure must name).
MUTANTS: dict[str, tuple[type[JsonFileStorage], str]] = {
    "forgets_on_reopen": (
        ForgetsOnReopen,
        "data written is there after close() and a new open() of the same URL",
    ),
    "local_timestamps": (LocalTimestamps, "timestamps are timezone-aware UTC"),
    "naive_timestamps": (NaiveTimestamps, "timestamps are timezone-aware UTC"),
    "updated_at_stuck": (UpdatedAtStuck, "updated_at moves with every profile change"),
    "password_moves_version": (
        PasswordMovesVersion,
        "a password change is not a profile change: version must not move",
    ),
    "password_moves_updated_at": (
        PasswordMovesUpdatedAt,
        "a password change is not a profile change: updated_at must not move",
    ),
    "drops_password_updated_at": (
        DropsPasswordUpdatedAt,
        "password_updated_at is when the password was last set",
    ),
    "accepts_any_url": (AcceptsAnyURL, "check_url refuses a URL that cannot work"),
    "close_twice_fails": (CloseTwiceFails, "close() is safe twice"),
    "shares_profile": (
        SharesProfile,
        "records hold fresh mappings the caller cannot change the backend through",
    ),
    "keeps_callers_avatar_urls": (
        KeepsCallersAvatarUrls,
        "records hold fresh mappings the caller cannot change the backend through",
    ),
    "creates_despite_expected_version": (
        CreatesDespiteExpectedVersion,
        "update_profile with expected_version never creates",
    ),
    "case_sensitive_usernames": (
        CaseSensitiveUsernames,
        "usernames are unique under username_key",
    ),
    "lower_usernames": (
        LowerUsernames,
        "usernames are the same when username_key (str.casefold) agrees, not lower()",
    ),
    "delete_returns_next_version": (
        DeleteReturnsNextVersion,
        "delete_user returns the record as it was",
    ),
    "garbage_is_unavailable": (
        GarbageIsUnavailable,
        "a file or database holding garbage makes open() say 'never' with Misconfigured",
    ),
    "delete_returns_stale_read": (
        DeleteReturnsStaleRead,
        "delete_user racing update_profile returns the record as deleted",
    ),
    "truncates_long_text": (TruncatesLongText, "the longest values HTTP accepts round-trip"),
    "ascii_json_loses_astral_text": (
        AsciiJsonLosesAstralText,
        "any text the interface is handed round-trips exactly",
    ),
    "nfkc_usernames": (
        NfkcUsernames,
        "usernames equal under NFKC but distinct under username_key stay distinct",
    ),
    "caches_at_open": (CachesAtOpen, "two instances opened on one URL see each other's writes"),
}
