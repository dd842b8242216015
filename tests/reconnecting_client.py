"""A WebSocket client that behaves as real ones do: when its socket closes or cannot open, it
connects again after a jittered backoff (0.1 s, doubling to 1 s), and each welcome re-syncs it.

It is a member of one room and follows one other user's versions: the welcome's member list
re-syncs it (it may repeat what was seen, never go back), and each ``profile_updated`` is a
delivery (always newer than anything seen, the welcome included: never twice, never older).
Whatever breaks that rule is kept in ``problems``; a ``profile_updated`` at or below the
version the last welcome listed is kept apart, in ``behind_welcome`` (issue 23 found svc
repeating the welcome's version: a change in flight when a room opens on a process; docs/api.md
says a version already sent, or an older one, is never sent).  Presence frames are not
counted: the contract orders versions in ``profile_updated``, and a client applies presence
as a set update.
"""

from __future__ import annotations

import asyncio
import json
import random

import aiohttp
from svc_process import answered_by


class ReconnectingClient:
    def __init__(self, session: aiohttp.ClientSession, url: str, user: str, follows: str):
        self.session = session
        self.url = f"{url}?user_id={user}"
        self.user = user
        self.follows = follows
        self.version = 0  # the newest version of ``follows`` seen
        self.connected = asyncio.Event()
        self.connects = 0  # welcomes read
        self.failures = 0  # attempts that did not reach a welcome
        self.pid: int | None = None  # the svc process of the current socket, if known
        self.problems: list[str] = []
        self.behind_welcome: list[int] = []
        self._welcomed_at: int | None = None  # the version the last welcome listed
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        attempt = 0
        while True:
            try:
                async with self.session.ws_connect(self.url, heartbeat=None) as ws:
                    self.pid = _pid_of(ws)
                    first = True
                    async for msg in ws:
                        if msg.type is not aiohttp.WSMsgType.TEXT:
                            break
                        frame = json.loads(msg.data)
                        if first and frame.get("type") != "welcome":
                            self.problems.append(f"first frame is not a welcome: {frame}")
                        if frame.get("type") == "welcome":
                            first = False
                            attempt = 0
                            self.connects += 1
                            self.connected.set()
                        self._read(frame)
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
                pass
            if self.connected.is_set():
                self.connected.clear()
            else:
                self.failures += 1
            self.pid = None
            await asyncio.sleep(random.uniform(0.1, min(1.0, 0.1 * 2**attempt)))
            attempt += 1

    def _read(self, frame: dict) -> None:
        kind = frame.get("type")
        if kind == "welcome":
            self._welcomed_at = None
            self._resync(frame["members"])
        elif kind == "profile_updated" and frame["id"] == self.follows:
            if self._welcomed_at is not None and frame["version"] <= self._welcomed_at:
                self.behind_welcome.append(frame["version"])
                return
            if frame["version"] <= self.version:
                self.problems.append(
                    f"profile_updated {frame['version']} after {self.version} was seen"
                )
            self.version = max(self.version, frame["version"])
            self._welcomed_at = None

    def _resync(self, members: list[dict]) -> None:
        for member in members:
            if member["id"] == self.follows:
                if member["version"] < self.version:
                    self.problems.append(f"welcome at {member['version']} after {self.version}")
                self.version = max(self.version, member["version"])
                self._welcomed_at = member["version"]


def _pid_of(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    """The svc process that answered the upgrade (its request ids start with its pid)."""
    request_id = ws._response.headers.get("X-Request-ID", "")
    head = request_id.split("-", 1)[0]
    try:
        pid = int(head, 16)
    except ValueError:
        return None
    return pid if answered_by(ws._response.headers, pid) else None
