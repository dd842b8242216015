"""``GET /rooms/{room_id}/members``: who is present in a room, service-wide, paged.

Read from storage, not from this process's hub, so any process answers for
every room.  Members come in id order; the cursor is the last id of the page,
opaque to clients.
"""

from __future__ import annotations

import base64
import binascii
import re

from aiohttp import web

from .errors import APIError
from .frames import member_records
from .keys import STORAGE
from .ws import ROOM_ID

DEFAULT_LIMIT, MAX_LIMIT = 100, 500
_USER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def encode_cursor(user_id: str) -> str:
    return base64.urlsafe_b64encode(user_id.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    try:
        user_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, ValueError):
        user_id = ""
    if not _USER_ID.fullmatch(user_id):
        raise APIError(
            422, "validation_failed", "bad query", {"cursor": ["not a cursor from this API"]}
        )
    return user_id


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if raw.isdigit() and 1 <= int(raw) <= MAX_LIMIT:
        return int(raw)
    raise APIError(
        422,
        "validation_failed",
        "bad query",
        {"limit": [f"must be a whole number from 1 to {MAX_LIMIT}"]},
    )


async def list_members(request: web.Request) -> web.Response:
    room_id = request.match_info["room_id"]
    limit = _limit(request.query.get("limit"))
    cursor = request.query.get("cursor")
    after = _decode_cursor(cursor) if cursor else None
    storage = request.app[STORAGE]
    ids = await storage.presence_members(room_id, after, limit + 1)
    page, more = ids[:limit], len(ids) > limit
    return web.json_response(
        {
            "members": [user.to_dict() for user in await member_records(storage, page)],
            "member_count": await storage.presence_count(room_id),
            "next_cursor": encode_cursor(page[-1]) if more else None,
        }
    )


def setup_routes(app: web.Application) -> None:
    app.router.add_get(f"/rooms/{ROOM_ID}/members", list_members)
