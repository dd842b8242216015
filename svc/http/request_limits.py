"""What a request body may cost before any handler looks at it.

aiohttp would inflate a ``Content-Encoding: gzip`` (or deflate, br) body in its
HTTP parser, on the event loop, before routing: a 1 MiB bomb inflating to 1 GiB
costs seconds of CPU and stalls every other request, whatever the route.  So
the application is built with ``auto_decompress=False`` (:data:`HANDLER_ARGS`):
bodies reach svc exactly as sent, and svc's middleware answers any compressed one
(:func:`is_compressed`) with 415 without reading it (:func:`refuse_compressed`).  No
client of the contract compresses its (small, JSON) bodies.

A body that trickles in is bounded by ``BODY_TIMEOUT`` where it is read
(:func:`svc.http.bodies.read_json`, 408); what a client still sends after its
answer is read and dropped for at most :data:`LINGERING_TIME` seconds (aiohttp's
default, 10 s, would let a trickling client hold the connection that much longer).
"""

from __future__ import annotations

from typing import NoReturn

from aiohttp import web

from .errors import APIError
from .shedding import hold_refusal

LINGERING_TIME = 2.0
#: Passed to ``web.Application(handler_args=...)``: the parser never inflates a body.
#: ``handler_cancellation`` is stated as ``run_app`` has it (off: a handler runs to its
#: end when its client goes, so a committed write is always published) because
#: aiohttp's test server turns it on, and the tests must run the server svc runs.
HANDLER_ARGS = {
    "auto_decompress": False,
    "lingering_time": LINGERING_TIME,
    "handler_cancellation": False,
}


def is_compressed(request: web.Request) -> bool:
    """Does the request carry a body in a ``Content-Encoding`` other than identity?"""
    encoding = request.headers.get("Content-Encoding")
    if encoding is None:  # nearly every request: one lookup
        return False
    return encoding.strip().lower() not in ("", "identity") and request.body_exists


async def refuse_compressed(request: web.Request) -> NoReturn:
    """415, without reading the body."""
    error = APIError(
        415,
        "unsupported_media_type",
        "compressed request bodies are not accepted; send the body uncompressed",
        headers={"Accept-Encoding": "identity"},
    )
    error.force_close()  # the body is not read: do not parse it as the next request
    await hold_refusal()  # a bomber re-sending at once is slowed to a trickle
    raise error
