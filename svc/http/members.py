"""``GET /rooms/{room_id}/members``: who is present in a room, service-wide, paged.

Read from the broker, not from this process's hub, so any process answers for
every room.  Members come in id order; the cursor is the last id of the page,
opaque to clients.

Requests for the same page that arrive together share one read (svc/shared_reads.py): after
a restart every client of a big room pages it at once, and one read per request queued
behind the broker's pooled connections until the last ran out of time (503 from a healthy
Redis, bench/README.md, "Reconnect storm").  A request never gets a page read before it came.
"""

from __future__ import annotations

import base64
import binascii
import json

from aiohttp import web

from ..broker import calling_the_broker
from ..keys import BROKER, MEMBER_PAGES, SETTINGS, STORAGE
from ..serialize import member_json, member_records
from ..shared_reads import SharedReads
from . import routing
from .errors import APIError
from .ids import ROOM_ID, is_valid_id
from .operation import Reply, documented
from .room_tokens import authorize_members

DEFAULT_LIMIT, MAX_LIMIT = 100, 500


def encode_cursor(user_id: str) -> str:
    return base64.urlsafe_b64encode(user_id.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    try:
        user_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, ValueError):
        user_id = ""
    if not is_valid_id(user_id):
        raise APIError(
            422, "validation_failed", "bad query", {"cursor": ["not a cursor from this API"]}
        )
    return user_id


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    # isascii: str.isdigit also holds for "²" and other digits int() refuses.
    if raw.isascii() and raw.isdigit() and 1 <= int(raw) <= MAX_LIMIT:
        return int(raw)
    raise APIError(
        422,
        "validation_failed",
        "bad query",
        {"limit": [f"must be a whole number from 1 to {MAX_LIMIT}"]},
    )


@documented(
    summary="the users present in a room, service-wide, paged",
    tag="rooms",
    description="Members in id order. A member without a stored user (joined before "
    "creating a profile, or deleted while connected) is shown at version 0 with every "
    "field null (`ProfilelessMember`). `email` is always `null` here. A private room "
    "(its id matches `PRIVATE_ROOMS`) needs `Authorization: Bearer <room token for that "
    "room>`: 401 without one (a login token is not one), 403 for another room's.",
    parameters=(
        "RoomId",
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "schema": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_LIMIT,
                "default": DEFAULT_LIMIT,
            },
        },
        {
            "name": "cursor",
            "in": "query",
            "required": False,
            "description": "`next_cursor` of the previous page (opaque; another value is 422)",
            "schema": {"type": "string"},
        },
    ),
    replies={200: Reply("a page of members", "Members")},
    errors=(401, 403, 404, 422, 503),
)
async def list_members(request: web.Request) -> web.Response:
    room_id = request.match_info["room_id"]
    authorize_members(request, room_id)
    limit = _limit(request.query.get("limit"))
    cursor = request.query.get("cursor")
    after = _decode_cursor(cursor) if cursor else None
    body = await request.app[MEMBER_PAGES].get((room_id, after, limit))
    return web.Response(body=body, content_type="application/json")


def _page_reader(app: web.Application):
    """Reads one page, (room id, after, limit) → the response body."""

    async def read_page(key: tuple[str, str | None, int]) -> bytes:
        room_id, after, limit = key
        storage, broker = app[STORAGE], app[BROKER]
        with calling_the_broker():
            ids = await broker.presence_members(room_id, after, limit + 1)
        page, more = ids[:limit], len(ids) > limit
        # Auth on: email is its owner's alone, and a list of members has no one owner.
        with_email = not app[SETTINGS].auth_enabled
        records = await member_records(storage, page)
        members = b",".join(member_json(m, with_email) for m in records)
        with calling_the_broker():
            count = await broker.presence_count(room_id)
        cursor = json.dumps(encode_cursor(page[-1]) if more else None)
        return b'{"members":[%s],"member_count":%d,"next_cursor":%s}' % (
            members,
            count,
            cursor.encode(),
        )

    return read_page


def setup_routes(app: web.Application) -> None:
    app[MEMBER_PAGES] = SharedReads(_page_reader(app), "member pages")
    routing.add(app, "GET", f"/rooms/{ROOM_ID}/members", list_members)
