"""What travels on the pub/sub channel: one JSON object per event, ``t`` saying which.

- ``{"t": "c", "n", "id", "v", "d"?, "u"?}``: a change (``u``: the record, left out
  when it is larger than :data:`MAX_RECORD` bytes; the hub then reads it).
- ``{"t": "m", "n", "r", "f", "d"}``: a room message (``d``: its JSON text).
- ``{"t": "p", "r", "u", "p", "n"?, "s"?}``: a presence transition; ``n`` and ``s``
  (node and sequence number) let the node that caused it recognise its own.

``n`` is the publishing node: a node skips its own messages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from svc.broker import Change, PresenceChange, RoomMessage
from svc.storage import PROFILE_FIELDS, User

#: A record larger than this travels as id and version only.
MAX_RECORD = 64 * 1024

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def encode_change(node: str, change: Change) -> str:
    event: dict = {"t": "c", "n": node, "id": change.user_id, "v": change.version}
    if change.deleted:
        event["d"] = 1
    elif change.user is not None:
        user = change.user
        record = _dumps(
            {
                "p": {name: user.profile.get(name) for name in PROFILE_FIELDS},
                "c": user.created_at.isoformat(),
                "m": user.updated_at.isoformat(),
            }
        )
        if len(record) <= MAX_RECORD:
            return _dumps(event)[:-1] + ',"u":' + record + "}"
    return _dumps(event)


def encode_message(node: str, message: RoomMessage) -> str:
    room, sender = message.room_id, message.sender
    return _dumps({"t": "m", "n": node, "r": room, "f": sender, "d": message.data})


def encode_presence(node: str, seq: int, change: PresenceChange) -> str:
    room, user = change.room_id, change.user_id
    return _dumps({"t": "p", "r": room, "u": user, "p": change.present, "n": node, "s": seq})


@dataclass(frozen=True)
class Event:
    node: str | None
    item: Change | RoomMessage | PresenceChange
    #: the sequence number of a presence transition a node announced itself
    seq: int | None = None


def decode(payload: str | bytes) -> Event:
    """One event; ValueError (or KeyError/TypeError) if it is not one of ours."""
    data = json.loads(payload)
    kind = data["t"]
    node = data.get("n")
    if kind == "c":
        record = data.get("u")
        user = None
        if record is not None:
            user = User(
                id=data["id"],
                profile={name: record["p"].get(name) for name in PROFILE_FIELDS},
                version=int(data["v"]),
                created_at=datetime.fromisoformat(record["c"]),
                updated_at=datetime.fromisoformat(record["m"]),
            )
        return Event(node, Change(data["id"], int(data["v"]), user, bool(data.get("d"))))
    if kind == "m":
        return Event(node, RoomMessage(data["r"], data["f"], data["d"]))
    if kind == "p":
        return Event(node, PresenceChange(data["r"], data["u"], bool(data["p"])), data.get("s"))
    raise ValueError(f"unknown event type {kind!r}")
