"""The one JSON error shape, and the middleware that gives it to every error.

``{"error": {"code": "...", "message": "...", "fields": {...}}}`` — ``fields``
only for validation errors.  Domain errors from storage are mapped to HTTP
here and nowhere else.  Nothing unexpected ever reaches the client as a
traceback: it is logged, and the client gets a plain 500.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from marshmallow import ValidationError

from ..passwords import ClientGone, PasswordsBusy
from ..storage import Conflict, NotFound, Unavailable, VersionMismatch
from .shedding import hold_refusal

log = logging.getLogger(__name__)


class APIError(web.HTTPException):
    """An error response in the contract's shape, raised from handlers."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ):
        self.status_code = status
        super().__init__(
            headers=headers, content_type="application/json", text=_body(code, message, fields)
        )


def _body(code: str, message: str, fields: Mapping[str, Any] | None = None) -> str:
    error: dict[str, Any] = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    return json.dumps({"error": error})


def error_response(status: int, code: str, message: str, fields=None, headers=None) -> web.Response:
    return web.Response(
        status=status,
        text=_body(code, message, fields),
        content_type="application/json",
        headers=headers,
    )


# aiohttp's own HTTP errors (routing, body size...) get a stable code.
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    412: "precondition_failed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "too_many_requests",
    503: "unavailable",
}


def _from_domain(
    exc: NotFound | Conflict | VersionMismatch | Unavailable | ValidationError,
) -> web.Response:
    if isinstance(exc, NotFound):
        return error_response(404, "not_found", "no such user")
    if isinstance(exc, Conflict):
        fields = {exc.field: [str(exc)]} if exc.field else None
        return error_response(409, "conflict", str(exc), fields)
    if isinstance(exc, VersionMismatch):
        return error_response(
            412,
            "precondition_failed",
            f"If-Match does not match: {exc}",
            headers={"ETag": f'"{exc.current_version}"'},
        )
    if isinstance(exc, Unavailable):
        return error_response(
            503,
            "unavailable",
            "storage is unavailable, try again shortly",
            headers={"Retry-After": "1"},
        )
    assert isinstance(exc, ValidationError)
    return error_response(422, "validation_failed", "the body is not valid", exc.messages)


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except APIError as exc:
        if exc.status == 429:
            await hold_refusal()
        raise
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        message = exc.reason if exc.status != 405 else f"{request.method} is not allowed here"
        if exc.status == 413:
            message = "the request body is too large"
        return error_response(
            exc.status, _HTTP_CODES.get(exc.status, "error"), message, headers=headers
        )
    except (NotFound, Conflict, VersionMismatch, Unavailable, ValidationError) as exc:
        return _from_domain(exc)
    except PasswordsBusy as exc:
        await hold_refusal()
        busy = error_response(
            503,
            "busy",
            "too many password checks are waiting; try again shortly",
            headers={"Retry-After": str(exc.retry_after)},
        )
        # Shedding load: a client that does not wait pays a new connection each time.
        busy.force_close()
        return busy
    except ClientGone:
        # Nobody reads this: the client left while its password work was queued.
        return error_response(499, "client_closed_request", "the client went away")
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(500, "internal_error", "internal server error")
