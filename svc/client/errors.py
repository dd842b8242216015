"""The one error svc.client raises for what svc refused: an HTTP answer or a room's close."""

from __future__ import annotations

from typing import Any


class SvcError(Exception):
    """svc answered with an error.

    ``status`` is the HTTP status (404, 409, 422, ...) or, for a room, the WebSocket close
    code the server refused the join with (4401, 4403, 4404, 4422, 4429); ``code`` and
    ``message`` come from svc's error body (``{"error": {"code", "message", "fields"}}``),
    or from the close's reason; ``fields`` names the fields a 422 found wrong.
    """

    def __init__(
        self, status: int, code: str, message: str, fields: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields


class RoomRefused(SvcError):
    """The server refused to (re)join the room with a close code retrying cannot change."""


#: The close codes of a refused join, by name: svc.client does not retry them.
REFUSAL_NAMES = {
    4401: "unauthorized",
    4403: "forbidden",
    4404: "not_found",
    4422: "invalid_id",
    4429: "too_many_connections",
}


def is_final_close(code: int | None) -> bool:
    """Whether a close code says the server refused this join for good.

    4000-4999 are svc's refusals; 4503 (storage or broker unavailable) is the one worth
    retrying.  The same rule as svc-client.js's ``isFinalCloseCode``."""
    return code is not None and 4000 <= code <= 4999 and code != 4503


def refused(code: int, reason: str) -> RoomRefused:
    return RoomRefused(code, REFUSAL_NAMES.get(code, "refused"), reason or "join refused")
