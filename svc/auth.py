"""Who is asking.  (Auth proper — JWT issue/verify, POST /auth/token — comes with issue 5.)"""

from __future__ import annotations

from aiohttp import web


async def websocket_user_id(request: web.Request) -> str | None:
    """The user a WebSocket connection joins as, or None for a watcher.

    With auth off (open mode) this is the ``user_id`` query parameter as given;
    the caller validates its shape.
    """
    return request.query.get("user_id") or None
