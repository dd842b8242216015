"""``RoomState``: who is in a room and their latest records, kept from the server's frames.

No I/O here: :class:`~svc.client.room.Room` feeds it the frames it reads, and a test or a
replay can feed it frames from anywhere.  The rules are svc-client.js's, so that a page and
a Python service agree on what a room holds:

- presence is applied as set updates (a frame repeating the welcome changes nothing);
- a record replaces the one held only when it is newer (a higher ``version``, or a later
  ``created_at`` for a user deleted and created again); a ``profile_updated`` that comes
  before the presence frame announcing its user is kept for it;
- events carry the room's ``seq``: one at or below the last applied is a repeat (a resume
  replaying what was already seen) and is dropped, so nothing is applied twice.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime
from typing import Any

from .records import User

#: Records of users not (yet) announced present: bounded, the oldest dropped first.
MAX_PENDING = 1000


def is_newer(a: User, b: User | None) -> bool:
    """Whether record ``a`` supersedes record ``b`` of the same user id."""
    if b is None:
        return True
    if a.get("created_at") and b.get("created_at") and a["created_at"] != b["created_at"]:
        return _instant(a["created_at"]) > _instant(b["created_at"])
    return a["version"] > b["version"]


def _instant(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def record_of(frame: dict[str, Any]) -> User:
    """The user record a ``profile_updated`` frame carries (the frame less its envelope)."""
    return {k: v for k, v in frame.items() if k not in ("type", "room", "seq")}  # type: ignore[return-value]


class RoomState:
    def __init__(self) -> None:
        #: user id -> the latest record of each present member
        self.members: dict[str, User] = {}
        #: present users as the server counts them, service-wide (may exceed
        #: ``len(members)`` until the pages past the welcome's 100 are read)
        self.member_count = 0
        #: the room's history the events came from, and the last event applied: what a
        #: reconnection asks to resume from (``None`` from a server without resume)
        self.epoch: str | None = None
        self.seq: int | None = None
        self._pending: OrderedDict[str, User] = OrderedDict()

    @property
    def resume_point(self) -> str | None:
        """``<epoch>:<seq>`` for ``?since=``, or ``None`` when there is nothing to resume."""
        if self.epoch is None or self.seq is None:
            return None
        return f"{self.epoch}:{self.seq}"

    def welcome(self, frame: dict[str, Any]) -> bool:
        """Take a welcome; returns whether the state was rebuilt from it (not resumed)."""
        self.member_count = frame["member_count"]
        if frame.get("resumed") and frame.get("epoch") == self.epoch and self.seq is not None:
            # The events since our seq follow, in order: the state we hold carries on.
            return False
        self.members = {user["id"]: user for user in frame["members"]}
        self._pending.clear()
        self.epoch = frame.get("epoch")
        self.seq = frame.get("seq")
        return True

    def is_repeat(self, frame: dict[str, Any]) -> bool:
        """Whether this event was applied already; if not, it moves the seq forward."""
        seq = frame.get("seq")
        if seq is None:
            return False
        if self.seq is not None and seq <= self.seq:
            return True
        self.seq = seq
        return False

    def presence(self, frame: dict[str, Any]) -> list[tuple[str, User]]:
        """Apply a presence frame; returns what changed: ("join"|"leave", record)."""
        changes: list[tuple[str, User]] = []
        self.member_count = frame["member_count"]
        for user_id in frame["left"]:
            self._pending.pop(user_id, None)
            gone = self.members.pop(user_id, None)
            if gone is not None:
                changes.append(("leave", gone))
        for user in frame["joined"]:
            change = self.merge(user, present=True)
            if change is not None:
                changes.append(change)
        return changes

    def profile(self, frame: dict[str, Any]) -> tuple[str, User] | None:
        """Apply a profile_updated frame; returns ("update", record) when it moved forward."""
        return self.merge(record_of(frame), present=False)

    def merge(self, user: User, present: bool) -> tuple[str, User] | None:
        """Take ``user`` when newer than what is held; ``present``: known to be in the room."""
        held = self.members.get(user["id"])
        if held is not None:
            if not is_newer(user, held):
                return None  # an older version, late
            self.members[user["id"]] = user
            return ("update", user)
        pending = self._pending.get(user["id"])
        if not present:
            # Not announced yet: kept for the presence frame that follows.
            if is_newer(user, pending):
                self._pending.pop(user["id"], None)
                self._pending[user["id"]] = user
                if len(self._pending) > MAX_PENDING:
                    self._pending.popitem(last=False)
            return None
        self._pending.pop(user["id"], None)
        latest = pending if pending is not None and is_newer(pending, user) else user
        self.members[user["id"]] = latest
        return ("join", latest)
