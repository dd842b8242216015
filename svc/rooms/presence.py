"""Presence batching: a room's joins and leaves within one window go out as one frame.

A thousand people joining at once then cost each member a handful of frames,
not a thousand.  The latest state of each user wins, in arrival order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING

from ..storage import Storage
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
    ):
        self._window = window
        self._with_email = with_email
        self._room = room  # the live room, or None once it is gone
        self._storage = storage
        self._spawn = spawn
        #: not yet sent: user → present, in arrival order
        self.pending: dict[str, bool] = {}
        self._flush: asyncio.TimerHandle | asyncio.Task | None = None
        self._retry_delay = 0.0

    def add(self, user_id: str, present: bool) -> None:
        self.pending.pop(user_id, None)  # keep arrival order: the latest state goes last
        self.pending[user_id] = present

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
            joined = [user_id for user_id, present in pending.items() if present]
            try:
                users = await frames.member_records(self._storage, joined)
            except Exception as exc:  # noqa: BLE001 - storage trouble: retry, backing off
                self.pending = {**pending, **self.pending}
                retry = self._back_off(room.id, exc)
                return
            if self._retry_delay:
                log.info("presence: room %s is sending again", room.id)
                self._retry_delay = 0.0
            frame = frames.encode_with_users(
                {
                    "type": "presence",
                    "room": room.id,
                    "left": [user_id for user_id, present in pending.items() if not present],
                    "member_count": len(room.members),
                },
                "joined",
                users,
                self._with_email,
            )
            room.send(frame)
            room.stats.presence_batches += 1
        finally:
            self._flush = None
            if self._room() is room and room is not None:
                self.schedule(retry)

    def _back_off(self, room_id: str, exc: Exception) -> float:
        if not self._retry_delay:  # one line per outage, not one per attempt
            log.warning(
                "presence: cannot read joined users of room %s (%s); retrying", room_id, exc
            )
        self._retry_delay = min(max(self._retry_delay * 2, self._window * 2), MAX_RETRY_DELAY)
        return self._retry_delay
