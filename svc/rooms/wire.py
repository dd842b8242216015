"""The raw write path: a frame built once, written to many sockets' transports.

In the manner of gorilla/websocket's ``PreparedMessage``, a server frame is
built as complete RFC 6455 bytes (FIN, text opcode, unmasked, uncompressed)
once per event and room, and the same bytes go straight to every socket's
transport, without awaiting.  That is safe only while three rules hold:

1. **No compression** on these sockets (``WebSocketResponse(compress=False)``):
   with permessage-deflate the peer would inflate bytes we never deflated.
2. **Nothing else writes frames** to these sockets: no ``ws.send_*`` calls.
   aiohttp's own writer only sends the close frame; the heartbeat's :data:`PING`
   and the answers to a client's pings (:func:`pong_frame`) are written here.
   RFC 6455 allows control frames between
   whole data frames, and our frames are always whole: one ``transport.write``
   each, never interleaved.
3. **aiohttp answers a client's Close and closes the transport itself**, so a
   socket that is closing is seen here as ``transport.is_closing()`` and is
   skipped, never written half a frame after its Close.

A test closes sockets in the middle of a fan-out to hold us to rule 3.
"""

from __future__ import annotations

import asyncio
import struct


def text_frame(payload: bytes) -> bytes:
    """A complete server-to-client text frame (FIN, opcode 1, no mask)."""
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 65536:
        return struct.pack("!BBH", 0x81, 126, size) + payload
    return struct.pack("!BBQ", 0x81, 127, size) + payload


#: An empty server ping (FIN, opcode 9, no mask), for the hub's heartbeat.
PING = b"\x89\x00"


def pong_frame(payload: bytes) -> bytes:
    """The answer to a client's ping (FIN, opcode 10, no mask).  aiohttp's reader has
    already refused a control frame over 125 bytes, so the length fits in one byte."""
    return bytes((0x8A, len(payload))) + payload


def write(transport: asyncio.Transport, frame: bytes, max_backlog: int) -> bool | None:
    """Write ``frame`` unless the socket is closing (None) or its backlog is past
    ``max_backlog`` bytes (False: the caller closes it with 1013).  True: written.

    The bound is on what is already waiting, so one frame bigger than the bound
    (a crowd's presence) still goes to a client that keeps up.
    """
    if transport.is_closing():
        return None
    if transport.get_write_buffer_size() > max_backlog:
        return False
    transport.write(frame)
    return True
