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
    """One event; ValueError if it is not one of ours (another program on the channel, or a
    svc version that speaks differently)."""
    try:
        return _decode(json.loads(payload))
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not an svc event ({exc!r})") from None


def _decode(data: dict) -> Event:
    kind = data["t"]
    node = _text(data.get("n", ""))
    if kind == "c":
        user_id, version = _text(data["id"]), _version(data["v"])
        record = data.get("u")
        user = None
        if record is not None:
            profile = record["p"]
            user = User(
                id=user_id,
                profile={name: profile.get(name) for name in PROFILE_FIELDS},
                version=version,
                created_at=datetime.fromisoformat(_text(record["c"])),
                updated_at=datetime.fromisoformat(_text(record["m"])),
            )
        return Event(node, Change(user_id, version, user, bool(data.get("d"))))
    if kind == "m":
        return Event(node, RoomMessage(_text(data["r"]), _text(data["f"]), _text(data["d"])))
    if kind == "p":
        seq = data.get("s")
        change = PresenceChange(_text(data["r"]), _text(data["u"]), data["p"] is True)
        return Event(node, change, seq if isinstance(seq, int) else None)
    raise ValueError(f"unknown event type {kind!r}")


def _text(value) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    return value


def _version(value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise TypeError(f"expected a version, got {value!r}")
    return value
