"""``Room``: one room of svc over a WebSocket that stays connected.

It keeps the room's state (:class:`~svc.client.state.RoomState`), hands other connections'
messages to a callback and to async iterators, and reconnects after any drop with
exponential backoff and full jitter, resuming where it left off when the server still holds
the events it missed.  A refused join (a close code from 4000 to 4999 other than 4503) is not
retried: it ends the room with :class:`~svc.client.errors.RoomRefused`.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal
from urllib.parse import quote

import aiohttp

from .api import SvcClient
from .backoff import Backoff
from .errors import SvcError, is_final_close, refused
from .records import Message, User
from .state import RoomState

log = logging.getLogger(__name__)

Token = str | Callable[[], str | Awaitable[str]] | None
Status = Literal["idle", "connecting", "open", "reconnecting", "closed"]

#: HTTP statuses of a failed upgrade worth trying again (a balancer between deploys, a
#: proxy's rate limit); other 4xx say the request itself is wrong.
RETRIED_HTTP = {408, 425, 429}

DEFAULT_BACKOFF = Backoff()


class Room:
    """A live view of room ``room`` of the svc at ``base_url``.

    Join as ``user_id`` (auth off) or with ``token`` (auth on: a JWT, or a function returning
    one, called before every connection so a refreshed token is used); with neither, watch
    the room without being a member.  ``async with Room(...) as room:`` connects and waits
    for the first welcome; leaving the block closes.

    ``on_message(message)`` is called for each message of another connection, and so is
    every iterator from :meth:`messages` (each sees what arrives after it starts);
    ``on_change(reason)`` after the state moved (``"welcome"``, ``"resumed"``, ``"join"``,
    ``"update"``, ``"leave"``, ``"member_count"``).  ``resume=False`` rebuilds from a full
    welcome at every reconnection; ``page_members=False`` keeps only the members a welcome
    lists (at most 100), not the rest from ``GET /rooms/{room}/members``.
    """

    def __init__(
        self,
        base_url: str,
        room: str,
        *,
        user_id: str | None = None,
        token: Token = None,
        session: aiohttp.ClientSession | None = None,
        backoff: Backoff = DEFAULT_BACKOFF,
        resume: bool = True,
        page_members: bool = True,
        heartbeat: float | None = 20.0,
        on_message: Callable[[Message], None] | None = None,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.room = room
        self.user_id = user_id
        self.token = token
        self.backoff = backoff
        self.resume = resume
        self.page_members = page_members
        self.heartbeat = heartbeat
        self.on_message = on_message
        self.on_change = on_change
        self.state = RoomState()
        self.status: Status = "idle"
        #: the server's id of the current connection
        self.connection_id: str | None = None
        #: connections tried, welcomes read (2 and more: reconnections), and how many of
        #: those resumed
        self.attempts = 0
        self.welcomes = 0
        self.resumes = 0
        #: why the room ended, when the server refused it
        self.error: SvcError | None = None
        #: ``(code, reason)`` of the last close of a socket
        self.last_close: tuple[int | None, str] | None = None
        self._session = session
        self._owns_session = session is None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._task: asyncio.Task[None] | None = None
        self._open = asyncio.Event()
        self._closing = False
        self._attempt = 0
        self._listeners: list[asyncio.Queue[Message | None]] = []

    # -- the state, read any time --------------------------------------------------------

    @property
    def members(self) -> dict[str, User]:
        """user id -> the latest record of each present member."""
        return self.state.members

    @property
    def member_count(self) -> int:
        return self.state.member_count

    # -- the connection --------------------------------------------------------------------

    async def connect(self) -> Room:
        """Connect (again, after :meth:`close`) and wait for the first welcome.  Raises
        ``RoomRefused`` when the server refuses the join; a server that does not answer is
        tried again with backoff, without end (bound it with ``asyncio.wait_for``)."""
        if self._task is None or self._task.done():
            self._closing = False
            self.error = None
            self._task = asyncio.get_running_loop().create_task(self._run())
        await self.wait_open()
        return self

    async def wait_open(self) -> None:
        """Wait until connected (a welcome read); raise why when the room ended instead."""
        if self._task is None:
            raise ConnectionError(f"room {self.room}: connect() first")
        opened = asyncio.ensure_future(self._open.wait())
        try:
            await asyncio.wait({opened, self._task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            opened.cancel()
        if not self._open.is_set():
            raise self.error or ConnectionError(f"room {self.room} is closed")

    async def wait_closed(self) -> None:
        """Wait until the room ends; raise ``RoomRefused`` when a refusal ended it."""
        if self._task is not None:
            await asyncio.shield(self._task)
        if self.error is not None:
            raise self.error

    async def close(self) -> None:
        """Leave for good: no reconnection."""
        self._closing = True
        ws = self._ws
        if ws is not None:
            await ws.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Room:
        return await self.connect()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def send(self, data: Any) -> None:
        """Relay ``data`` (any JSON value, at most 8 KiB serialised) to the room's other
        connections.  ``ConnectionError`` when not connected (between reconnections)."""
        ws = self._ws
        if ws is None or ws.closed or not self._open.is_set():
            raise ConnectionError(f"room {self.room} is not connected")
        await ws.send_str(json.dumps({"type": "message", "data": data}, allow_nan=False))

    async def messages(self) -> AsyncIterator[Message]:
        """Other connections' messages from now on, until the room ends (a refusal is raised
        at the end)."""
        queue: asyncio.Queue[Message | None] = asyncio.Queue()
        self._listeners.append(queue)
        if self._task is None or self._task.done():
            queue.put_nowait(None)  # not connected, or ended: nothing will arrive
        try:
            while (message := await queue.get()) is not None:
                yield message
        finally:
            self._listeners.remove(queue)
        if self.error is not None:
            raise self.error

    def __aiter__(self) -> AsyncIterator[Message]:
        return self.messages()

    # -- the loop ---------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while not self._closing:
                self._set_status("reconnecting" if self.welcomes else "connecting")
                code, reason = await self._connect_once()
                self.last_close = (code, reason)
                if is_final_close(code):
                    raise refused(code, reason)  # type: ignore[arg-type]
                if self._closing:
                    break
                delay = self.backoff.delay(self._attempt)
                self._attempt += 1
                log.debug("room %s: closed with %s, again in %.2f s", self.room, code, delay)
                self._set_status("reconnecting")
                await asyncio.sleep(delay)
        except SvcError as exc:
            self.error = exc
        finally:
            self._open.clear()
            self.status = "closed"
            for queue in self._listeners:
                queue.put_nowait(None)

    async def _connect_once(self) -> tuple[int | None, str]:
        """One connection, read until it closes: its close code and reason (``None`` for a
        socket that could not open, or broke without a close)."""
        self.attempts += 1
        try:
            params = await self._query()
            async with self.session.ws_connect(
                self.socket_url(), params=params, heartbeat=self.heartbeat
            ) as ws:
                self._ws = ws
                try:
                    return await self._read(ws)
                finally:
                    self._ws = None
                    self._open.clear()
        except aiohttp.WSServerHandshakeError as exc:
            if 400 <= exc.status < 500 and exc.status not in RETRIED_HTTP:
                raise SvcError(exc.status, "upgrade_refused", exc.message) from exc
            return None, f"upgrade answered {exc.status}"
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            return None, str(exc) or type(exc).__name__

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> tuple[int | None, str]:
        while True:
            msg = await ws.receive()
            if msg.type is aiohttp.WSMsgType.TEXT:
                await self.apply(msg.data)
            elif msg.type is aiohttp.WSMsgType.CLOSE:
                return msg.data, msg.extra or ""
            elif msg.type in (aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                return ws.close_code, ""
            elif msg.type is aiohttp.WSMsgType.ERROR:
                return ws.close_code, str(msg.data)

    async def _query(self) -> dict[str, str]:
        params: dict[str, str] = {}
        token = self.token() if callable(self.token) else self.token
        if inspect.isawaitable(token):
            token = await token
        if token:
            params["token"] = token
        elif self.user_id:
            params["user_id"] = self.user_id
        since = self.state.resume_point if self.resume else None
        if since is not None:
            params["since"] = since
        return params

    def socket_url(self) -> str:
        scheme, _, rest = self.base_url.partition("://")
        ws_scheme = {"http": "ws", "https": "wss"}.get(scheme, scheme)
        return f"{ws_scheme}://{rest}/ws/{quote(self.room, safe='')}"

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    # -- frames -------------------------------------------------------------------------------

    async def apply(self, text: str) -> None:
        """Apply one frame of the server, as its JSON text (what the socket does; public so
        that frames from elsewhere, a replay or a test, can be fed).  A frame that is not
        svc's (a proxy's, a newer server's with another shape) is logged and skipped: it
        must not end the room."""
        try:
            frame = json.loads(text)
            if not isinstance(frame, dict):
                raise TypeError(f"a frame is a JSON object, not {type(frame).__name__}")
            await self._frame(frame)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning(
                "room %s: skipped a frame it cannot read (%r): %.200s", self.room, exc, text
            )

    async def _frame(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "welcome":
            await self._welcome(frame)
            return
        if kind not in ("presence", "profile_updated", "message"):
            return  # pong, error, auth_ok, a newer server's frame: not state
        if self.state.is_repeat(frame):
            return  # a resume replaying an event applied before the drop
        if kind == "message":
            self._deliver(
                Message(
                    room=frame.get("room", self.room),
                    sender=frame.get("from"),
                    data=frame.get("data"),
                    seq=frame.get("seq"),
                )
            )
        elif kind == "presence":
            before = self.state.member_count
            changes = self.state.presence(frame)
            for reason, _ in changes:
                self._changed(reason)
            if not changes and before != self.state.member_count:
                self._changed("member_count")
        elif self.state.profile(frame) is not None:
            self._changed("update")

    async def _welcome(self, frame: dict[str, Any]) -> None:
        rebuilt = self.state.welcome(frame)
        self.connection_id = frame.get("connection_id")
        self.welcomes += 1
        self.resumes += not rebuilt
        self._attempt = 0  # the server took us: the next outage starts its backoff afresh
        self._open.set()
        self._set_status("open")
        self._changed("welcome" if rebuilt else "resumed")
        if rebuilt and self.page_members and self.state.member_count > len(self.state.members):
            await self._page_rest()

    async def _page_rest(self) -> None:
        """Read the members the welcome left out.  Frames wait in the socket meanwhile and are
        applied after the pages: each is a set update or a newer version, so the state ends
        as the server's, whichever of a page and a frame was the later."""
        token = self.token if isinstance(self.token, str) else None
        api = SvcClient(self.base_url, session=self.session, token=token)
        try:
            async for member in api.members(self.room):
                self.state.merge(member, present=True)
        except (SvcError, aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            # The welcome's members stay; the next welcome pages again.
            log.warning("room %s: members past the welcome not read: %s", self.room, exc)
        self._changed("members_page")

    def _deliver(self, message: Message) -> None:
        if self.on_message is not None:
            self.on_message(message)
        for queue in self._listeners:
            queue.put_nowait(message)

    def _changed(self, reason: str) -> None:
        if self.on_change is not None:
            self.on_change(reason)

    def _set_status(self, status: Status) -> None:
        self.status = status
