"""A rolling restart through a balancer, as an operator runs one, measured as clients see it.

A writer PUTs one user's profile every 50 ms through the balancer; 100 members of one room
(tests/reconnecting_client.py), and two sockets of the written user so that it is present,
connect through the balancer.  Each svc process in turn gets SIGTERM, exits, starts again on
its port, and the next waits until the balancer sends to the new process.  At the end every
client must be connected and at the written user's last version; the writer's failures,
each client's problems and the times are in the :class:`RollResult` (tests/test_balancers.py
asserts on them; bench/rolling_restart.py prints them).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import aiohttp
from balancer_helpers import Balancer
from reconnecting_client import ReconnectingClient
from svc_process import SvcProcess

from svc.testing import unique_id

WRITE_EVERY = 0.05


@dataclass
class Restart:
    """One process's restart, in seconds from its SIGTERM."""

    exited: float = 0.0  # the old process exited
    first_drop: float | None = None  # the first client lost its socket (the drain is over)
    ready: float = 0.0  # the new process answered on its port
    balanced: float = 0.0  # a request through the balancer reached the new process
    whole: float | None = None  # every client connected again


@dataclass
class RollResult:
    writes: int = 0
    failed_writes: list[str] = field(default_factory=list)
    restarts: list[Restart] = field(default_factory=list)
    final_version: int = 0
    clients: list[ReconnectingClient] = field(default_factory=list)

    def stale(self) -> list[str]:
        return [
            f"{c.user}: connected={c.connected.is_set()} version={c.version}"
            for c in self.clients
            if not c.connected.is_set() or c.version != self.final_version
        ]

    def problems(self) -> list[str]:
        return [f"{c.user}: {p}" for c in self.clients for p in c.problems]

    def behind_welcome(self) -> int:
        """``profile_updated`` frames at or below the version their welcome listed."""
        return sum(len(c.behind_welcome) for c in self.clients)


class Writer:
    """A PUT every 50 ms (the next one waits for the answer); every failure is kept."""

    def __init__(self, session: aiohttp.ClientSession, base: str, user: str):
        self.session, self.url, self.user = session, f"{base}/users/{user}/profile", user
        self.writes = 0
        self.version = 0
        self.failures: list[str] = []
        self._task: asyncio.Task | None = None

    async def put(self) -> int:
        self.writes += 1
        body = {"username": self.user, "bio": f"write {self.writes}"}
        try:
            async with self.session.put(self.url, json=body) as response:
                text = await response.text()
                if response.status not in (200, 201):
                    self.failures.append(f"write {self.writes}: {response.status} {text[:200]}")
                else:
                    self.version = max(self.version, (await response.json())["version"])
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            self.failures.append(f"write {self.writes}: {type(exc).__name__}: {exc}")
        return self.version

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            await self.put()
            await asyncio.sleep(max(0.0, WRITE_EVERY - (time.monotonic() - started)))

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


async def wait_for(predicate, timeout: float, what: str, every: float = 0.02) -> float:
    """Wait (bounded) until ``predicate()``; when it held (monotonic)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout} s waiting for {what}")
        await asyncio.sleep(every)
    return time.monotonic()


async def room_count(session: aiohttp.ClientSession, base: str, room: str) -> tuple[int, str]:
    async with session.get(f"{base}/rooms/{room}/members?limit=1") as response:
        body = await response.json()
        first = body["members"][0]["id"] if body["members"] else ""
        return body["member_count"], first


async def rolling_restart(
    balancer: Balancer,
    processes: list[SvcProcess],
    clients: int = 100,
    result: RollResult | None = None,
    wait_for_balancer: bool = True,
) -> RollResult:
    """The roll; ``result`` (given) holds what was seen even if a wait gives up.

    ``wait_for_balancer=False`` moves to the next process as soon as the restarted one is
    ready on its own port, without waiting for the balancer to send to it (a naive roll)."""
    result = result if result is not None else RollResult()
    room = unique_id("r")
    writer_id = "a" + unique_id("w")  # sorts before the clients: first in every member list
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        writer = Writer(session, balancer.base, writer_id)
        await writer.put()
        url = f"{balancer.ws_base}/ws/{room}"
        result.clients = [
            ReconnectingClient(session, url, unique_id(), writer_id) for _ in range(clients)
        ]
        holders = [ReconnectingClient(session, url, writer_id, writer_id) for _ in range(2)]
        everyone = [*result.clients, *holders]
        for client in everyone:
            client.start()
        try:
            await wait_for(
                lambda: all(c.connected.is_set() for c in everyone), 60, "every client to connect"
            )
            pids = {c.pid for c in everyone}
            assert {p.proc.pid for p in processes} <= pids, (
                f"{balancer.name} sent every socket to one process: {pids}"
            )
            writer.start()
            for process in processes:
                result.restarts.append(
                    await _restart(balancer, process, result.clients, wait_for_balancer)
                )
            await writer.stop()

            # The room is whole on every process before the last write: 100 members and
            # the writer's user, present (its sockets reconnected as well).
            for process in processes:
                await _until_room_whole(session, process.base, room, writer_id, clients + 1)
            result.final_version = await writer.put()
            await wait_for(
                lambda: not result.stale(), 15, "every client at the last version", every=0.05
            )
        finally:
            await writer.stop()
            for client in everyone:
                await client.stop()
            result.writes = writer.writes
            result.failed_writes = writer.failures
    return result


async def _restart(
    balancer: Balancer,
    process: SvcProcess,
    clients: list[ReconnectingClient],
    wait_for_balancer: bool,
) -> Restart:
    restart = Restart()
    signalled = time.monotonic()

    def watch() -> bool:
        """Polled from the signal on: when the first client dropped, when all were back."""
        now = time.monotonic() - signalled
        connected = all(c.connected.is_set() for c in clients)
        if restart.first_drop is None and not connected:
            restart.first_drop = now
        elif restart.first_drop is not None and restart.whole is None and connected:
            restart.whole = now
        return False

    watcher = asyncio.get_running_loop().create_task(wait_for(watch, 120, "never"))
    try:
        process.terminate()
        code = await asyncio.wait_for(process.proc.wait(), 30)
        assert code == 0, f"svc exited {code}:\n{process.log()}"
        restart.exited = time.monotonic() - signalled
        await process.start(attempts=1)  # the same port: the balancer knows no other
        restart.ready = time.monotonic() - signalled
        if not wait_for_balancer:
            return restart
        await balancer.wait_serving(process.proc.pid)
        restart.balanced = time.monotonic() - signalled
        await wait_for(lambda: all(c.connected.is_set() for c in clients), 30, "every client back")
        await asyncio.sleep(0.05)  # one more look of the watcher
    finally:
        watcher.cancel()
    return restart


async def _until_room_whole(
    session: aiohttp.ClientSession, base: str, room: str, first: str, count: int
) -> None:
    deadline = time.monotonic() + 15
    while True:
        seen = await room_count(session, base, room)
        if seen == (count, first):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{base}: room {room} is {seen}, not {(count, first)}")
        await asyncio.sleep(0.05)
