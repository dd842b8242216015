"""``SvcClient``: svc's REST calls over one aiohttp session, errors raised as ``SvcError``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any, cast
from urllib.parse import quote

import aiohttp

from .errors import SvcError
from .records import MembersPage, User


class SvcClient:
    """The HTTP API of one svc, e.g. ``SvcClient("http://127.0.0.1:8000")``.

    Use it as ``async with SvcClient(base) as svc:`` (or call :meth:`close`).  It uses
    ``session`` when given (and leaves it open), else a session of its own.  With auth on,
    :meth:`login` keeps the token it gets and sends it with every later call.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._session = session
        self._owns_session = session is None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None

    async def __aenter__(self) -> SvcClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- users ------------------------------------------------------------------------

    async def create_user(
        self,
        username: str,
        *,
        password: str | None = None,
        user_id: str | None = None,
        **profile: Any,
    ) -> User:
        """``POST /users``: 201 with the new user (409 when the username is taken)."""
        body: dict[str, Any] = {"username": username, **profile}
        if password is not None:
            body["password"] = password
        if user_id is not None:
            body["id"] = user_id
        return cast(User, await self.request("POST", "/users", body))

    async def get_user(self, user_id: str) -> User:
        return cast(User, await self.request("GET", f"/users/{_segment(user_id)}"))

    async def update_profile(
        self, user_id: str, changes: Mapping[str, Any], *, version: int | None = None
    ) -> User:
        """``PUT /users/{id}/profile``: the fields given are set, ``None`` clears one; the user
        is created if missing.  ``version`` is sent as ``If-Match``: 412 (an ``SvcError``)
        when the user has moved on since."""
        headers = {} if version is None else {"If-Match": f'"{version}"'}
        path = f"/users/{_segment(user_id)}/profile"
        return cast(User, await self.request("PUT", path, dict(changes), headers))

    async def set_password(
        self, user_id: str, new_password: str, *, current_password: str | None = None
    ) -> dict[str, Any]:
        """``PUT /users/{id}/password``; ``current_password`` is checked when given."""
        body = {"new_password": new_password}
        if current_password is not None:
            body["current_password"] = current_password
        return await self.request("PUT", f"/users/{_segment(user_id)}/password", body)

    async def delete_user(self, user_id: str) -> None:
        await self.request("DELETE", f"/users/{_segment(user_id)}")

    async def login(self, username: str, password: str) -> str:
        """``POST /auth/token``; keeps the token for the calls after it and returns it."""
        answer = await self.request(
            "POST", "/auth/token", {"username": username, "password": password}
        )
        self.token = answer["access_token"]
        return self.token

    # -- rooms ------------------------------------------------------------------------

    async def members_page(
        self, room: str, *, limit: int | None = None, cursor: str | None = None
    ) -> MembersPage:
        """One page of ``GET /rooms/{room}/members`` (``limit`` 1 to 500, default 100)."""
        query = {}
        if limit is not None:
            query["limit"] = str(limit)
        if cursor is not None:
            query["cursor"] = cursor
        path = f"/rooms/{_segment(room)}/members"
        return cast(MembersPage, await self.request("GET", path, params=query))

    async def members(self, room: str, *, limit: int = 500) -> AsyncIterator[User]:
        """Every present member of ``room``, page after page."""
        cursor = None
        while True:
            page = await self.members_page(room, limit=limit, cursor=cursor)
            for member in page["members"]:
                yield member
            cursor = page["next_cursor"]
            if not cursor:
                return

    # -- the one way out -------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """Any call: the parsed JSON answer (``None`` for 204); a non-2xx raises ``SvcError``."""
        sent = dict(headers or {})
        if self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            sent["Content-Type"] = "application/json"
            data = json.dumps(body)
        url = self.base_url + path
        async with self.session.request(
            method, url, data=data, headers=sent, params=params
        ) as response:
            text = await response.text()
        if response.status >= 400:
            raise error_of(response.status, text, f"{method} {path}")
        return _json_or_none(text)


def error_of(status: int, text: str, what: str) -> SvcError:
    """The error an answer of ``status`` with body ``text`` is: svc's own error body, or
    (from a proxy in front of svc, say) whatever can be read of it."""
    answer = _json_or_none(text)
    error = answer.get("error") if isinstance(answer, dict) else None
    if not isinstance(error, dict):
        error = {}
    code, message, fields = error.get("code"), error.get("message"), error.get("fields")
    return SvcError(
        status,
        code if isinstance(code, str) else "http_error",
        message if isinstance(message, str) else f"{what}: HTTP {status}",
        fields if isinstance(fields, dict) else None,
    )


def _segment(value: str) -> str:
    """One path segment: an id with a ``/`` or ``?`` in it stays one (and svc answers 404)."""
    return quote(value, safe="")


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except (ValueError, RecursionError):  # a proxy's HTML error page, say
        return None
