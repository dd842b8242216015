"""Presence batching: a room's joins and leaves within one window go out as one frame.

A thousand people joining at once then cost each member a handful of frames,
not a thousand.  The latest state of each user wins, in arrival order.

A connection hears only what its welcome did not already show: every change
is numbered as it arrives, a connection's welcome records the last number it
reflects (``Connection.presence_mark``), and a connection whose welcome is
still to come hears nothing (the welcome will show it all).  So a joiner is
never told of its own arrival, and nobody hears of one joiner twice.
Connections that were welcomed before the window opened, nearly all of them,
share one frame.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING

from ..storage import Storage
from ..views import Member
from . import frames

if TYPE_CHECKING:
    from .hub import Room

log = logging.getLogger(__name__)

#: While storage cannot answer, retries back off up to this many seconds.
MAX_RETRY_DELAY = 5.0


class PresenceBatcher:
    def __init__(
        self,
        window: float,
        room: Callable[[], Room | None],
        storage: Storage,
        spawn: Callable[[Coroutine], asyncio.Task],
        with_email: bool = True,
        shown: Callable[[list[Member]], None] = lambda records: None,
    ):
        self._window = window
        self._with_email = with_email
        self._shown = shown  # told of the records a frame shows (the hub's version baseline)
        self._room = room  # the live room, or None once it is gone
        self._storage = storage
        self._spawn = spawn
        #: not yet sent: user → (present, number), in arrival order
        self.pending: dict[str, tuple[bool, int]] = {}
        self._numbered = 0
        self._flush: asyncio.TimerHandle | asyncio.Task | None = None
        self._retry_delay = 0.0

    def add(self, user_id: str, present: bool) -> None:
        self.pending.pop(user_id, None)  # keep arrival order: the latest state goes last
        self._numbered += 1
        self.pending[user_id] = (present, self._numbered)

    def mark(self) -> int:
        """The number of the last change so far: a welcome made now reflects up to it."""
        return self._numbered

    def clear(self) -> None:
        self.pending.clear()

    def schedule(self, delay: float | None = None) -> None:
        if self._flush is None and self.pending:
            self._flush = asyncio.get_running_loop().call_later(
                self._window if delay is None else delay, self._start_send
            )

    def cancel(self) -> None:
        if isinstance(self._flush, asyncio.TimerHandle):
            self._flush.cancel()
        self._flush = None

    def _start_send(self) -> None:
        self._flush = self._spawn(self._send())

    async def _send(self) -> None:
        room = self._room()
        pending, self.pending = self.pending, {}
        retry = None
        try:
            if room is None:
                return
            joined = [user_id for user_id, (present, _) in pending.items() if present]
            try:
                users = await frames.member_records(self._storage, joined)
            except Exception as exc:  # noqa: BLE001 - storage trouble: retry, backing off
                self.pending = {**pending, **self.pending}
                retry = self._back_off(room.id, exc)
                return
            if self._retry_delay:
                log.info("presence: room %s is sending again", room.id)
                self._retry_delay = 0.0
            self._shown(users)
            self._fan_out(room, pending, {user.id: user for user in users})
            room.stats.presence_batches += 1
        finally:
            self._flush = None
            if self._room() is room and room is not None:
                self.schedule(retry)

    def _fan_out(self, room: Room, pending: dict[str, tuple[bool, int]], records: dict) -> None:
        if not pending:
            return
        first = min(number for _, number in pending.values())
        frames_after: dict[int, bytes | None] = {}  # a mark → the frame of what follows it
        for conn in room.connections:
            mark = conn.presence_mark
            if mark is None:
                continue  # its welcome, still to come, will show all of this
            key = first - 1 if mark < first else mark
            if key not in frames_after:
                news = {user: state for user, state in pending.items() if state[1] > key}
                frames_after[key] = self._frame(room, news, records) if news else None
            frame = frames_after[key]
            if frame is not None:
                conn.send(frame)
                room.stats.frames_sent += 1

    def _back_off(self, room_id: str, exc: Exception) -> float:
        if not self._retry_delay:  # one line per outage, not one per attempt
            log.warning(
                "presence: cannot read joined users of room %s (%s); retrying", room_id, exc
            )
        self._retry_delay = min(max(self._retry_delay * 2, self._window * 2), MAX_RETRY_DELAY)
        return self._retry_delay

    def _frame(self, room: Room, news: dict[str, tuple[bool, int]], records: dict) -> bytes:
        return frames.encode_with_users(
            {
                "type": "presence",
                "room": room.id,
                "left": [user_id for user_id, (present, _) in news.items() if not present],
                "member_count": len(room.members),
            },
            "joined",
            [records[user_id] for user_id, (present, _) in news.items() if present],
            self._with_email,
        )
