"""The wire format of the rooms: server frames, serialised and framed once.

A frame is built as complete RFC 6455 bytes (FIN, text, unmasked, uncompressed),
so the hub can write the same object to every socket of a room.
"""

from __future__ import annotations

import json
import struct

from .storage import Storage, User
from .storage.base import PROFILE_FIELDS


def text_frame(payload: bytes) -> bytes:
    """A complete server-to-client text frame (FIN, opcode 1, no mask)."""
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 65536:
        return struct.pack("!BBH", 0x81, 126, size) + payload
    return struct.pack("!BBQ", 0x81, 127, size) + payload


def dumps(value) -> str:
    # ASCII output: a lone surrogate from a client's JSON still encodes.
    return json.dumps(value, separators=(",", ":"))


def encode(frame: dict) -> bytes:
    return text_frame(dumps(frame).encode())


def encode_with_users(frame: dict, key: str, users: list[User | ProfilelessMember]) -> bytes:
    """``frame`` plus ``key``: the users, spliced from each record's cached JSON body."""
    head = dumps(frame).encode()[:-1]
    members = b",".join(user.json_body for user in users)
    return text_frame(b"%s,%s:[%s]}" % (head, dumps(key).encode(), members))


class ProfilelessMember:
    """A present id with no stored user: joined before creating a profile (open mode lets
    any valid id join, as the service svc replaces did), or deleted while connected.

    Shown as a user at version 0 whose every field is null, so clients handle one shape;
    the user's first profile change then arrives as ``profile_updated`` at version 1.
    """

    __slots__ = ("id", "json_body")

    def __init__(self, user_id: str):
        self.id = user_id
        self.json_body = dumps(self.to_dict()).encode()

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "user_id": self.id,
            "profile": dict.fromkeys(PROFILE_FIELDS),
            "version": 0,
            "created_at": None,
            "updated_at": None,
        }


async def member_records(storage: Storage, ids: list[str]) -> list[User | ProfilelessMember]:
    """The records of present ids, in order, with a placeholder for an id without a user."""
    if not ids:
        return []
    found = {user.id: user for user in await storage.get_users(ids)}
    return [found.get(user_id) or ProfilelessMember(user_id) for user_id in ids]


def error_frame(code: str, message: str) -> bytes:
    return encode({"type": "error", "code": code, "message": message})


PONG = encode({"type": "pong"})


def profile_tail(user: User) -> str:
    public = user.to_dict()
    return (
        f'"user_id":{dumps(user.id)},"profile":{dumps(public["profile"])},'
        f'"version":{user.version}}}'
    )
