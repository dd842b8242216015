"""The rooms' wire format: every server frame, serialised and framed once.

Frames are strict JSON (``allow_nan=False``: no ``NaN`` or ``Infinity``, which
``JSON.parse`` refuses) in ASCII (a lone surrogate from a client still encodes).
User records are spliced in from their cached JSON body (:func:`svc.serialize.user_json`),
so a crowd's welcome costs one join of bytes, not a serialisation per member.

The write path is raw: a frame built once, written to many sockets' transports.

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

tests/test_wire_fanout_closing.py closes sockets in the middle of a fan-out to hold us to
rule 3.
"""

from __future__ import annotations

import asyncio
import json
import struct

from ..serialize import Member, member_json, member_records, user_json
from ..storage import User

__all__ = ["member_records"]  # re-exported for the room and the hub


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


def dumps(value) -> str:
    """Compact strict JSON; ValueError for NaN or Infinity."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def encode(frame: dict) -> bytes:
    return text_frame(dumps(frame).encode())


def encode_with_users(frame: dict, key: str, users: list[Member], with_email: bool = True) -> bytes:
    """``frame`` plus ``key``: the users, spliced from each record's cached JSON body
    (``with_email=False``: the body with ``email`` null, auth on)."""
    return encode_with_list(frame, key, b",".join(member_json(u, with_email) for u in users))


def encode_with_list(frame: dict, key: str, items: bytes) -> bytes:
    """``frame`` plus ``key``: a list whose inside is ``items``, comma-separated bodies."""
    head = dumps(frame).encode()[:-1]
    return text_frame(b"%s,%s:[%s]}" % (head, dumps(key).encode(), items))


def _seq(seq: int | None) -> str:
    return "" if seq is None else f',"seq":{seq}'


def profile_updated(
    room_id: str, user: User, with_email: bool = True, seq: int | None = None
) -> bytes:
    """``{"type": "profile_updated", "room", "seq", ...the whole user record}``."""
    body = user_json(user, with_email)
    head = f'{{"type":"profile_updated","room":{dumps(room_id)}{_seq(seq)},'.encode()
    return text_frame(head + body[1:])


def message(room_id: str, sender: str, data: str, seq: int | None = None) -> bytes:
    """A relayed member message; ``data`` is already strict JSON text."""
    return text_frame(
        f'{{"type":"message","room":{dumps(room_id)}{_seq(seq)},"from":{dumps(sender)},'
        f'"data":{data}}}'.encode()
    )


def error_frame(code: str, message: str) -> bytes:
    return encode({"type": "error", "code": code, "message": message})


PONG = encode({"type": "pong"})
