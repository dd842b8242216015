"""One presence batch's frames, each joined member's body serialised once for the batch.

A room's connections hear what their welcome did not show: a connection welcomed in the
middle of a batch hears only the changes numbered after its welcome (``Room._fan_out``).
In a join burst nearly every joiner has a mark of its own, so a batch of P changes built up
to P frames, each by filtering the whole batch again and fetching each record's body again.
Here the batch is laid out once, in arrival order (numbers ascending), each joined member's
body beside it: the frame after a mark is the batch's tail from the first number past it,
found by bisection and joined in C.  The frames are byte for byte what
:func:`svc.rooms.frames.encode_with_users` builds (tests/test_member_bytes.py).
"""

from __future__ import annotations

from bisect import bisect_right

from ..serialize import Member, member_json
from . import frames


class PresenceBatch:
    __slots__ = ("_room", "_member_count", "_numbers", "_users", "_bodies", "_frames")

    def __init__(
        self,
        room_id: str,
        pending: dict[str, tuple[bool, int]],
        records: dict[str, Member],
        member_count: int,
        with_email: bool,
    ):
        self._room = room_id
        self._member_count = member_count
        #: the changes' numbers, ascending (``pending`` is in arrival order)
        self._numbers = [number for _, number in pending.values()]
        self._users = list(pending)
        #: a joined member's body; None for one who left
        self._bodies = [
            member_json(records[user_id], with_email) if present else None
            for user_id, (present, _) in pending.items()
        ]
        self._frames: dict[int, bytes | None] = {}  # first index shown → its frame

    def frame_after(self, mark: int) -> bytes | None:
        """The frame of the changes numbered after ``mark``; None when there are none."""
        start = bisect_right(self._numbers, mark)
        try:
            return self._frames[start]
        except KeyError:
            pass
        frame = None
        if start < len(self._numbers):
            bodies = self._bodies[start:]
            head = {
                "type": "presence",
                "room": self._room,
                "left": [
                    user_id
                    for user_id, body in zip(self._users[start:], bodies, strict=True)
                    if body is None
                ],
                "member_count": self._member_count,
            }
            joined = b",".join([body for body in bodies if body is not None])
            frame = frames.encode_with_list(head, "joined", joined)
        self._frames[start] = frame
        return frame
