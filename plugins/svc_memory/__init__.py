"""``memory://``: users kept in the process, for local use and tests.  Standard library only.

Every method runs to completion without awaiting, so on one event loop each
write is atomic for free: two concurrent partial updates of different fields
both survive.  Records are immutable all the way down (read-only profiles,
:func:`svc.storage.frozen_profile`), so the same record is handed to every
reader without a copy, and its JSON is built once (``svc.serialize.user_json``).
Nothing is kept across a restart: ``memory://`` is for local use and tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from svc.storage import (
    Conflict,
    Credentials,
    NotFound,
    Storage,
    User,
    VersionMismatch,
    frozen_profile,
    username_key,
)

__all__ = ["MemoryStorage"]


def _now() -> datetime:
    return datetime.now(timezone.utc)


class MemoryStorage(Storage):
    def __init__(self, url: str = "memory://"):
        super().__init__(url)
        self._users: dict[str, User] = {}
        self._hashes: dict[str, str] = {}
        self._ids_by_username: dict[str, str] = {}  # username_key(username) → id

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def ping(self) -> dict[str, str]:
        return {"storage": "ok"}

    async def create_user(
        self, user_id: str, profile: Mapping[str, Any], password_hash: str | None = None
    ) -> User:
        if user_id in self._users:
            raise Conflict(f"user {user_id!r} already exists", field="id")
        now = _now()
        user = User(
            id=user_id,
            profile=frozen_profile(profile),
            version=1,
            created_at=now,
            updated_at=now,
            password_updated_at=now if password_hash is not None else None,
        )
        self._claim_username(user_id, user.profile.get("username"))
        self._users[user_id] = user
        if password_hash is not None:
            self._hashes[user_id] = password_hash
        return user

    async def get_user(self, user_id: str) -> User:
        try:
            return self._users[user_id]
        except KeyError:
            raise NotFound(user_id) from None

    async def get_users(self, user_ids: Iterable[str]) -> list[User]:
        users = self._users
        return [users[i] for i in user_ids if i in users]

    async def update_profile(
        self,
        user_id: str,
        changes: Mapping[str, Any],
        expected_version: int | None = None,
        create: bool = False,
    ) -> tuple[User, bool]:
        current = self._users.get(user_id)
        if current is None:
            if create and expected_version is None:
                return await self.create_user(user_id, changes), True
            raise NotFound(user_id)
        if expected_version is not None and current.version != expected_version:
            raise VersionMismatch(current.version)
        if "username" in changes:
            self._claim_username(user_id, changes["username"], current.profile.get("username"))
        user = replace(
            current,
            profile=frozen_profile({**current.profile, **changes}),
            version=current.version + 1,
            updated_at=_now(),
        )
        self._users[user_id] = user
        return user, False

    async def set_password_hash(
        self, user_id: str, password_hash: str, expected_hash: str | None = None
    ) -> datetime:
        current = await self.get_user(user_id)
        if expected_hash is not None and self._hashes.get(user_id) != expected_hash:
            raise Conflict("the password hash has changed", field=None)
        now = _now()
        self._hashes[user_id] = password_hash
        self._users[user_id] = replace(current, password_updated_at=now)
        return now

    async def get_credentials(self, user_id: str) -> Credentials:
        return self._credentials(await self.get_user(user_id))

    async def find_credentials(self, username: str) -> Credentials:
        user_id = self._ids_by_username.get(username_key(username))
        if user_id is None:
            raise NotFound(username)
        return self._credentials(self._users[user_id])

    def _credentials(self, user: User) -> Credentials:
        return Credentials(
            user.id, self._hashes.get(user.id), user.password_updated_at, user.created_at
        )

    async def delete_user(self, user_id: str) -> User:
        user = self._users.pop(user_id, None)
        if user is None:
            raise NotFound(user_id)
        self._hashes.pop(user_id, None)
        username = user.profile.get("username")
        if username is not None:
            self._ids_by_username.pop(username_key(username), None)
        return user

    def _claim_username(self, user_id: str, new: str | None, old: str | None = None) -> None:
        """Move the user's claim on a username; Conflict if another user holds it."""
        if new is not None:
            holder = self._ids_by_username.get(username_key(new))
            if holder is not None and holder != user_id:
                raise Conflict(f"username {new!r} is taken", field="username")
        if old is not None:
            self._ids_by_username.pop(username_key(old), None)
        if new is not None:
            self._ids_by_username[username_key(new)] = user_id
