"""The one JSON error shape, the catalogue of its codes, and :func:`answer`, which gives it
to every error (svc's one middleware, :mod:`.middleware`, calls it for whatever a
handler raises).

``{"error": {"code": "...", "message": "...", "fields": {...}}}`` — ``fields``
only for validation errors and conflicts.  :data:`CATALOGUE` is the one table of
status → code → meaning: :func:`answer` takes its codes from it, the OpenAPI
document describes each operation's error answers from it, and
``docs/api-errors.md`` is generated from it (``python -m svc.http.errors``).
Domain errors from storage are mapped to HTTP here and nowhere else.  Nothing
unexpected ever reaches the client as a traceback: it is logged, and the client
gets a plain 500.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from marshmallow import ValidationError

from ..broker import BrokerUnavailable
from ..keys import BROKER, METRICS
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


@dataclass(frozen=True)
class ErrorKind:
    """One line of the catalogue: an error code, its HTTP status, and when it is given."""

    status: int
    code: str
    meaning: str
    #: Response headers that may come with it (names of OpenAPI header components).
    headers: tuple[str, ...] = ()


# The first code of a status is also the one aiohttp's own errors of that status get
# (routing, body size...).  Auth errors apply only with auth on (JWT_SECRET_KEY set),
# except a wrong `current_password`, which is checked in both modes.
CATALOGUE: tuple[ErrorKind, ...] = (
    ErrorKind(400, "bad_request", "the HTTP layer refused the request (e.g. a malformed header)"),
    ErrorKind(400, "malformed_json", "the body is not valid JSON"),
    ErrorKind(
        401,
        "unauthorized",
        "auth on: no valid bearer token (missing, malformed, badly signed, expired or stale), "
        "or a wrong username or password at `POST /auth/token` (a WebSocket join is refused "
        "with close code 4401 instead)",
        ("WWW-Authenticate",),
    ),
    ErrorKind(
        403,
        "forbidden",
        "auth on: the token belongs to another user; in both modes: `current_password` is wrong",
    ),
    ErrorKind(
        404,
        "not_found",
        "no such user or route, or a path id that breaks the id rule; `POST /auth/token` "
        "while auth is off",
    ),
    ErrorKind(405, "method_not_allowed", "the path exists, not with this method", ("Allow",)),
    ErrorKind(
        409,
        "conflict",
        "the id or the username (compared without case) is taken; `fields` names it",
    ),
    ErrorKind(
        412,
        "precondition_failed",
        "`If-Match` does not match the current version (the `ETag` header carries it when the "
        "user exists), or `If-Match` for a user that does not exist",
        ("ETag",),
    ),
    ErrorKind(
        408,
        "request_timeout",
        "the body took longer than `BODY_TIMEOUT` to arrive (the connection is closed)",
    ),
    ErrorKind(413, "payload_too_large", "the body is larger than `MAX_BODY_BYTES`"),
    ErrorKind(
        415,
        "unsupported_media_type",
        "the body is not sent as JSON, or is compressed (`Content-Encoding`: svc never "
        "inflates a request body)",
    ),
    ErrorKind(
        422,
        "validation_failed",
        "a field breaks its rule, an unknown field, or a bad query parameter; `fields` maps "
        "each field to its messages",
    ),
    ErrorKind(
        426,
        "upgrade_required",
        "a plain HTTP request to the WebSocket endpoint",
        ("Upgrade",),
    ),
    ErrorKind(
        429,
        "too_many_requests",
        "too many failed password attempts from this client (a login or a `current_password`);"
        " wait `Retry-After` seconds",
        ("Retry-After",),
    ),
    ErrorKind(
        499,
        "client_closed_request",
        "the client went away while its password work waited (nobody reads this answer)",
    ),
    ErrorKind(500, "internal_error", "a bug: logged with its traceback, never expected"),
    ErrorKind(
        503,
        "unavailable",
        'storage or the broker cannot answer right now; `message` says which ("storage is '
        'unavailable" or "the broker is unavailable"), as a WebSocket join\'s 4503 close '
        "reason does",
        ("Retry-After",),
    ),
    ErrorKind(
        503,
        "busy",
        "too many password hashes are waiting (`HASH_QUEUE`); try again after `Retry-After`",
        ("Retry-After",),
    ),
    ErrorKind(
        503,
        "draining",
        "`GET /health/ready` only: this process is shutting down (`SIGTERM`, `DRAIN_SECONDS`); "
        "it still serves, but a balancer should send new work to another",
        ("Retry-After",),
    ),
)


def kinds_of(status: int) -> list[ErrorKind]:
    return [kind for kind in CATALOGUE if kind.status == status]


_HTTP_CODES = {kind.status: kind.code for kind in reversed(CATALOGUE)}  # first code wins


def markdown() -> str:
    """``docs/api-errors.md``: the catalogue as a page (a test keeps the file equal to this)."""
    lines = [
        "# Error codes",
        "",
        "<!-- generated from svc/http/errors.py CATALOGUE: python -m svc.http.errors -->",
        "",
        'Every error is JSON of one shape, `{"error": {"code", "message", "fields"?}}`, with the',
        "status below. `message` is for people and may change; `code` is for programs.",
        "The OpenAPI document (`GET /openapi.json`) lists, for each operation, the statuses it",
        "can answer, from this same table.",
        "",
        "| status | code | when | headers |",
        "|---|---|---|---|",
    ]
    for kind in CATALOGUE:
        headers = ", ".join(f"`{name}`" for name in kind.headers)
        lines.append(f"| {kind.status} | `{kind.code}` | {kind.meaning} | {headers} |")
    return "\n".join(lines) + "\n"


def unavailable_reason(exc: Unavailable) -> str:
    """What a 503 body and a 4503 close say: the part that failed, never the wrong one."""
    if isinstance(exc, BrokerUnavailable):
        return "the broker is unavailable, try again shortly"
    return "storage is unavailable, try again shortly"


def _from_domain(
    exc: NotFound | Conflict | VersionMismatch | Unavailable | ValidationError,
    request: web.Request | None = None,
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
        if request is not None:
            if isinstance(exc, BrokerUnavailable):
                if BROKER in request.app:
                    request.app[BROKER].errors += 1  # the broker's one counter (/metrics)
            elif METRICS in request.app:
                request.app[METRICS].counters.storage_errors += 1
        return error_response(
            503, "unavailable", unavailable_reason(exc), headers={"Retry-After": "1"}
        )
    assert isinstance(exc, ValidationError)
    return error_response(422, "validation_failed", "the body is not valid", exc.messages)


async def answer(request: web.Request, exc: Exception) -> web.StreamResponse:
    """The contract's answer to what a handler raised: an error response, or ``exc`` raised
    again when it already is one (an :class:`APIError`, a redirect, a JSON HTTP error)."""
    if isinstance(exc, APIError):
        if exc.status == 429:
            await hold_refusal()
        raise exc
    if isinstance(exc, web.HTTPException):
        if exc.status < 400 or exc.content_type == "application/json":
            raise exc
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        message = exc.reason if exc.status != 405 else f"{request.method} is not allowed here"
        if exc.status == 413:
            message = "the request body is too large"
        return error_response(
            exc.status, _HTTP_CODES.get(exc.status, "error"), message, headers=headers
        )
    if isinstance(exc, (NotFound, Conflict, VersionMismatch, Unavailable, ValidationError)):
        return _from_domain(exc, request)
    if isinstance(exc, PasswordsBusy):
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
    if isinstance(exc, ClientGone):
        # Nobody reads this: the client left while its password work was queued.
        return error_response(499, "client_closed_request", "the client went away")
    log.error("unhandled error in %s %s", request.method, request.path, exc_info=exc)
    return error_response(500, "internal_error", "internal server error")


if __name__ == "__main__":
    print(markdown(), end="")
