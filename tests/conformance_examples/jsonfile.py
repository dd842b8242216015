"""``jsonfile:///relative/path.json`` or ``jsonfile:////absolute/path.json``: every user in
one JSON file.  The path follows the rule svc's file plugins share (docs/plugins.md,
SQLAlchemy's SQLite URLs): what follows ``jsonfile:///`` is the path, so a fourth slash
makes it absolute.

Written as a plugin author would, from the docstrings of ``svc.storage`` alone,
to prove that they are enough to pass ``svc.testing.StorageConformance``
(tests/test_jsonfile_conformance.py); tests/test_conformance_catches.py then
breaks copies of it on purpose and checks that the suite notices.

It is an example, not a product: it reads the whole file on every call (another
instance on the URL may have written it) and rewrites it on every write,
synchronously.  That keeps every method free of ``await``, which is what makes
each write atomic on the one event loop (and a real backend would not block
the loop with file I/O).
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote, urlsplit

from svc.storage import (
    PROFILE_FIELDS,
    Conflict,
    Credentials,
    Misconfigured,
    NotFound,
    Storage,
    Unavailable,
    User,
    VersionMismatch,
    username_key,
)


class JsonFileStorage(Storage):
    # The docstring says super().__init__ need not be called; this backend doesn't.
    def __init__(self, url: str):
        # What follows "jsonfile:///" (relative to the folder svc starts in, unless absolute).
        self._path = os.path.abspath(unquote(urlsplit(url).path[1:]))
        self._users: dict[str, dict[str, Any]] | None = None  # id → stored record, when open
        self._ids_by_key: dict[str, str] = {}  # username_key(username) → id

    @classmethod
    def check_url(cls, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "jsonfile":
            raise ValueError(f"{url}: the scheme must be jsonfile://")
        if parts.netloc or not parts.path.startswith("/") or not parts.path.endswith(".json"):
            raise ValueError(
                f"{url}: expected jsonfile:///relative/path.json or jsonfile:////absolute/path.json"
            )
        if parts.query or parts.fragment:
            raise ValueError(f"{url}: takes no query or fragment")

    # -- life cycle -------------------------------------------------------

    async def open(self) -> None:
        self._use(self._read())

    def _read(self) -> dict[str, dict[str, Any]]:
        folder = os.path.dirname(self._path)
        if not os.path.isdir(folder):
            # "Never, as configured" (docs/plugins.md): svc makes no folder, and a late
            # mount is for whatever starts svc to wait for, as it would for a database.
            raise Misconfigured(f"the folder {folder} does not exist")
        try:
            return self._load()
        except (OSError, ValueError, KeyError) as exc:
            # Unreadable or not ours: retrying will not help.
            raise Misconfigured(f"cannot read {self._path}: {exc}") from None

    def _use(self, users: dict[str, dict[str, Any]]) -> None:
        self._users = users
        self._ids_by_key = {
            self._key(record["profile"]["username"]): user_id
            for user_id, record in users.items()
            if record["profile"]["username"] is not None
        }

    def _load(self) -> dict[str, dict[str, Any]]:
        if not os.path.exists(self._path):
            return {}
        with open(self._path, encoding="utf-8") as file:
            return json.load(file)["users"]

    def _save(self) -> None:
        temporary = f"{self._path}.tmp"
        with open(temporary, "w", encoding="utf-8") as file:
            json.dump({"users": self._users}, file, ensure_ascii=False)
        os.replace(temporary, self._path)  # all or nothing, even if we die mid-write

    async def close(self) -> None:
        self._users = None  # every write is saved already; twice is harmless

    async def ping(self) -> dict[str, str]:
        self._open_users()
        return {"file": "ok"}

    def _open_users(self) -> dict[str, dict[str, Any]]:
        if self._users is None:
            raise Unavailable("storage is not open")
        # Read afresh each time: another instance on this URL (another svc process) may
        # have written the file since.
        try:
            self._use(self._load())
        except (OSError, ValueError, KeyError) as exc:
            raise Unavailable(f"cannot read {self._path}: {exc}") from None
        return self._users

    # -- records ----------------------------------------------------------

    @staticmethod
    def _now() -> datetime:
        return datetime.now(timezone.utc)

    @staticmethod
    def _key(username: str) -> str:
        return username_key(username)

    def _record(self, user_id: str) -> dict[str, Any]:
        record = self._open_users().get(user_id)
        if record is None:
            raise NotFound(user_id)
        return record

    def _user(self, user_id: str, record: dict[str, Any]) -> User:
        # A deep copy: the caller may do what it likes with the profile (avatar_urls too).
        stamp = record["password_updated_at"]
        return User(
            id=user_id,
            profile=copy.deepcopy(record["profile"]),
            version=record["version"],
            created_at=datetime.fromisoformat(record["created_at"]),
            updated_at=datetime.fromisoformat(record["updated_at"]),
            password_updated_at=datetime.fromisoformat(stamp) if stamp else None,
        )

    def _claim(self, user_id: str, username: str | None) -> None:
        if username is None:
            return
        holder = self._ids_by_key.get(self._key(username))
        if holder is not None and holder != user_id:
            raise Conflict(f"username {username!r} is taken", field="username")

    # -- users -------------------------------------------------------------

    async def create_user(
        self, user_id: str, profile: Mapping[str, Any], password_hash: str | None = None
    ) -> User:
        users = self._open_users()
        if user_id in users:
            raise Conflict(f"user {user_id!r} already exists", field="id")
        username = profile.get("username")
        self._claim(user_id, username)
        now = self._now().isoformat()
        users[user_id] = {
            "profile": {name: copy.deepcopy(profile.get(name)) for name in PROFILE_FIELDS},
            "version": 1,
            "created_at": now,
            "updated_at": now,
            "password_hash": password_hash,
            "password_updated_at": now if password_hash is not None else None,
        }
        if username is not None:
            self._ids_by_key[self._key(username)] = user_id
        self._save()
        return self._user(user_id, users[user_id])

    async def get_user(self, user_id: str) -> User:
        return self._user(user_id, self._record(user_id))

    async def get_users(self, user_ids: Iterable[str]) -> list[User]:
        users = self._open_users()
        return [self._user(i, users[i]) for i in user_ids if i in users]

    async def update_profile(
        self,
        user_id: str,
        changes: Mapping[str, Any],
        expected_version: int | None = None,
        create: bool = False,
    ) -> tuple[User, bool]:
        users = self._open_users()
        record = users.get(user_id)
        if record is None:
            if create and expected_version is None:
                return await self.create_user(user_id, changes), True
            raise NotFound(user_id)
        if expected_version is not None and record["version"] != expected_version:
            raise VersionMismatch(record["version"])
        old_name = record["profile"]["username"]
        if "username" in changes:
            self._claim(user_id, changes["username"])
        record["profile"].update(copy.deepcopy(dict(changes)))
        record["version"] += 1
        record["updated_at"] = self._now().isoformat()
        if "username" in changes:
            if old_name is not None:
                self._ids_by_key.pop(self._key(old_name), None)
            if changes["username"] is not None:
                self._ids_by_key[self._key(changes["username"])] = user_id
        self._save()
        return self._user(user_id, record), False

    async def set_password_hash(
        self, user_id: str, password_hash: str, expected_hash: str | None = None
    ) -> datetime:
        record = self._record(user_id)
        if expected_hash is not None and record["password_hash"] != expected_hash:
            raise Conflict(f"the password of {user_id!r} has changed")
        now = self._now()
        record["password_hash"] = password_hash
        record["password_updated_at"] = now.isoformat()
        self._save()
        return now

    def _credentials(self, user_id: str) -> Credentials:
        user, record = self._user(user_id, self._record(user_id)), self._record(user_id)
        return Credentials(
            user_id, record["password_hash"], user.password_updated_at, user.created_at
        )

    async def get_credentials(self, user_id: str) -> Credentials:
        return self._credentials(user_id)

    async def find_credentials(self, username: str) -> Credentials:
        self._open_users()
        user_id = self._ids_by_key.get(self._key(username))
        if user_id is None:
            raise NotFound(username)
        return self._credentials(user_id)

    async def delete_user(self, user_id: str) -> User:
        user = self._user(user_id, self._record(user_id))
        del self._open_users()[user_id]
        if user.profile["username"] is not None:
            self._ids_by_key.pop(self._key(user.profile["username"]), None)
        self._save()
        return user
