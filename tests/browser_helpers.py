"""Helpers for the /demo tests: a real ``python -m svc`` process and headless Chromium pages.

Chromium is Debian's (``apt-get install chromium chromium-driver``), driven by Selenium
through the system's chromedriver: Selenium must never try to download a browser or a
driver (this machine and CI cannot).  Without them the tests skip, except under
``CI=true``, where a missing Chromium is a failure.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from svc_process import answered_by

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Flags that work here, as root, with no display and no network beyond localhost.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1200,860",
)


def require_chromium() -> None:
    """Skip (fail under CI=true) unless Selenium, Chromium and chromedriver are all here."""
    problems = []
    try:
        import selenium  # noqa: F401
    except ImportError:
        problems.append("the selenium package is not installed (pip install -e '.[test]')")
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            problems.append(f"{path} is missing (apt-get install -y chromium chromium-driver)")
    if problems:
        message = "; ".join(problems)
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"Chromium tests cannot run: {message}")
        pytest.skip(message)


def new_driver(profile_root: Path):
    """A headless Chromium with a new, empty profile under ``profile_root``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(dir=profile_root)}")
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_script_timeout(30)
    return driver


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SvcProcess:
    """``python -m svc`` on a fixed port, which can be stopped and started again there."""

    def __init__(self, env: dict[str, str], log_path: Path):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "BCRYPT_ROUNDS": "4",
            # A stop is the old immediate shutdown unless a test asks for the drain window
            # (tests/test_drain.py): five seconds per stop would add minutes to the suite.
            "DRAIN_SECONDS": "0",
            **env,
        }
        if "JWT_SECRET_KEY" not in env:
            self.env.pop("JWT_SECRET_KEY", None)
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self._served = False  # answered once: a restart keeps its port

    def start(self, timeout: float = 30.0) -> None:
        """Start it and wait until it answers ``GET /`` itself (its pid prefixes its
        request ids): a port picked free may be taken before the child binds it, and
        another server would answer in its place.  Before its first answer the process
        moves to another port when its own is taken; a restart keeps the port pages know."""
        for _ in range(3):
            if self._start_once(timeout):
                self._served = True
                return
            if self._served:
                break
            self.port = free_port()
            self.base = f"http://127.0.0.1:{self.port}"
            self.env["PORT"] = str(self.port)
        raise AssertionError(f"svc did not start on port {self.port}:\n{self.log()}")

    def _start_once(self, timeout: float) -> bool:
        """True once this child answers; False when it exited (its port taken)."""
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "svc"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(self.base + "/", timeout=2) as response:
                    if response.status == 200 and answered_by(response.headers, self.proc.pid):
                        return True
            except (urllib.error.URLError, OSError):
                pass
            if self.proc.poll() is not None:
                return False
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"svc did not start on port {self.port}:\n{self.log()}")
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM, as a platform stops a process: svc closes every socket with 1001."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


class ThreadLoop:
    """An asyncio loop in a thread, for the async work a synchronous Selenium test needs
    beside the browser (a WebSocket server, a crowd of connections)."""

    def __init__(self):
        import asyncio
        import threading

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float = 60.0):
        import asyncio

        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class CloseCodeServer:
    """A WebSocket server that closes each connection the way its room id says, to test
    how the client module reacts to close codes svc (or a proxy in front of it) may send.

    ``/ws/codeNNNN``: upgrade, then close with NNNN.  ``/ws/flaky``: 4503 the first time,
    then a welcome; any other room: a welcome.  ``connections[room]`` counts the upgrades,
    ``tokens[room]`` keeps the last token of a room whose id starts "token", from its first
    frame (``{"type": "auth", "token"}``, as svc reads it), ``url_tokens[room]`` the last
    ``?token=`` (the client must send none).
    """

    def __init__(self, thread_loop: ThreadLoop):
        self.thread_loop = thread_loop
        self.connections: dict[str, int] = {}
        self.tokens: dict[str, str | None] = {}
        self.url_tokens: dict[str, str | None] = {}
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._runner = None

    async def _websocket(self, request):
        import json

        from aiohttp import web

        room = request.match_info["room"]
        self.connections[room] = self.connections.get(room, 0) + 1
        self.url_tokens[room] = request.query.get("token")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        if room.startswith("token"):
            first = json.loads((await ws.receive(timeout=5)).data)
            self.tokens[room] = first["token"] if first.get("type") == "auth" else None
        if room.startswith("code"):
            await ws.close(code=int(room[4:]), message=b"closed by the test server")
        elif room == "flaky" and self.connections[room] == 1:
            await ws.close(code=4503, message=b"storage unavailable")
        else:
            welcome = {"type": "welcome", "room": room, "connection_id": "c2"}
            await ws.send_str(json.dumps({**welcome, "member_count": 0, "members": []}))
            async for _ in ws:
                pass
        return ws

    def start(self) -> None:
        from aiohttp import web

        async def start():
            app = web.Application()
            app.router.add_get("/ws/{room}", self._websocket)
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

        self.thread_loop.run(start())

    def stop(self) -> None:
        if self._runner is not None:
            self.thread_loop.run(self._runner.cleanup())


class Crowd:
    """``count`` users, each with a profile and one socket in ``room``: run ``open()`` and
    ``close()`` on a :class:`ThreadLoop`."""

    def __init__(self, base: str, room: str, count: int):
        from svc.testing import unique_id

        self.base, self.room = base, room
        self.ids = sorted(unique_id("crowd") for _ in range(count))
        self._session = None
        self._sockets = []

    async def open(self) -> None:
        import aiohttp

        # limit=0: each socket holds a connection, and the default pool stops at 100.
        self._session = aiohttp.ClientSession(self.base, connector=aiohttp.TCPConnector(limit=0))
        for user_id in self.ids:
            body = {"username": user_id}
            async with self._session.put(f"/users/{user_id}/profile", json=body) as response:
                assert response.status == 201, await response.text()
        for user_id in self.ids:
            ws = await self._session.ws_connect(f"/ws/{self.room}?user_id={user_id}")
            self._sockets.append(ws)
            assert (await ws.receive_json(timeout=10))["type"] == "welcome"

    async def close(self) -> None:
        for ws in self._sockets:
            await ws.close()
        if self._session is not None:
            await self._session.close()


class CuttableRelay:
    """A TCP relay in front of svc that can be cut (every connection through it aborted,
    its port closed) and restored on the same port: to the pages behind it, exactly a
    server that died and came back, while svc itself, and its room history, live on.
    Run it on a :class:`ThreadLoop`."""

    def __init__(self, thread_loop: ThreadLoop, target_port: int):
        self.thread_loop = thread_loop
        self.target_port = target_port
        self.port = 0
        self._server = None
        self._writers: set = set()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.thread_loop.run(self._start())

    def cut(self) -> None:
        self.thread_loop.run(self._cut())

    async def _start(self) -> None:
        import asyncio

        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _cut(self) -> None:
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()

    async def _relay(self, reader, writer) -> None:
        import asyncio

        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}

        async def pipe(source, sink) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.transport.abort()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            self._writers -= {writer, up_writer}
