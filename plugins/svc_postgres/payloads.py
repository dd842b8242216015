"""What the Postgres broker's notifications carry: changes and room messages as JSON text.

Every payload names the node (broker instance) that sent it, ``"n"``, so a
node skips its own: it delivered them locally when it published.  A NOTIFY
payload must stay under 8000 bytes, so:

- a change carries the whole record when it fits under :data:`PAYLOAD_LIMIT`,
  else only id and version (the listener reads the record from storage);
- a message is inline when it fits, else its payload is stored in
  ``svc_messages`` and only the row's id travels (``{"n", "i"}``, made by the
  SQL function ``svc_message_put``), read back by every receiver.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from svc.broker import Change, RoomMessage
from svc.storage import PROFILE_FIELDS, User

#: Committed user changes (the channel name the old trigger used, so it stays stable).
CHANGES = "svc_users"
#: Room messages between processes.
MESSAGES = "svc_messages"
#: A NOTIFY payload must stay under 8000 bytes; keep a margin.
PAYLOAD_LIMIT = 7900


def _dumps(value) -> str:
    # ASCII, so len() is the size in bytes, and compact.
    return json.dumps(value, separators=(",", ":"))


def change_payload(node: str, change: Change) -> str:
    head = {"n": node, "id": change.user_id, "v": change.version}
    if change.deleted:
        return _dumps({**head, "d": True})
    user = change.user
    if user is None:
        return _dumps(head)
    payload = _dumps(
        {
            **head,
            "p": {name: user.profile.get(name) for name in PROFILE_FIELDS},
            "c": user.created_at.isoformat(),
            "u": user.updated_at.isoformat(),
        }
    )
    return payload if len(payload) <= PAYLOAD_LIMIT else _dumps(head)


def parse_change(payload: str) -> tuple[str, Change]:
    """(sending node, change); ValueError/KeyError/TypeError when malformed."""
    data = json.loads(payload)
    user_id, version = data["id"], data["v"]
    if not isinstance(user_id, str) or not isinstance(version, int):
        raise TypeError("id and version")
    if data.get("d"):
        return data["n"], Change(user_id, version, None, deleted=True)
    user = None
    if "p" in data:
        user = User(
            id=user_id,
            profile={name: data["p"].get(name) for name in PROFILE_FIELDS},
            version=version,
            created_at=_utc(data["c"]),
            updated_at=_utc(data["u"]),
        )
    return data["n"], Change(user_id, version, user)


def _utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def message_payload(node: str, seq: int, message: RoomMessage) -> str:
    """Inline form.  ``seq`` keeps two equal messages apart: Postgres folds identical
    notifications of one transaction into one, and a batch is one transaction."""
    return _dumps(
        {"n": node, "s": seq, "r": message.room_id, "f": message.sender, "d": message.data}
    )


def parse_message(payload: str) -> tuple[str, RoomMessage | int]:
    """(sending node, the message, or the ``svc_messages`` id to read it from)."""
    data = json.loads(payload)
    if "i" in data:
        return data["n"], int(data["i"])
    return data["n"], parse_stored_message(data)


def parse_stored_message(data: dict | str) -> RoomMessage:
    if isinstance(data, str):
        data = json.loads(data)
    room_id, sender, body = data["r"], data["f"], data["d"]
    if not all(isinstance(part, str) for part in (room_id, sender, body)):
        raise TypeError("room, sender and data are text")
    return RoomMessage(room_id, sender, body)
