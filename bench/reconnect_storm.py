"""A reconnect storm: 2,000 clients that lost their sockets come back at once, resuming
(``?since=<epoch>:<seq>``: a short welcome, then only the events missed) against joining
fresh (a whole welcome, and the members past it), side by side in alternated rounds.

    python bench/reconnect_storm.py [--clients 2000] [--members 100] [--missed 20]
        [--rounds 3] [--broker-url URL] [--no-paging]

Each round starts one ``python -m svc`` (memory storage; the broker of ``--broker-url``,
default in process), puts ``--members`` members in one room (the welcome lists up to 100 of
them) and ``--clients`` watchers, who read their welcome and follow the room's ``seq``.
Then every watcher's socket is dropped, a member sends ``--missed`` messages, and all
watchers reconnect at once: "resume" with ``since``, "fresh" without.  A watcher is done when
its state is as of the room's last event: a resumed one at the last missed message, a fresh
one at its welcome, and, when the room has more members than a welcome lists (100), once it
has read the rest from ``GET /rooms/{room}/members`` in pages of 500, as svc.client and
svc-client.js do by default after a welcome that did not resume (``--no-paging``: at its
welcome, as a client that keeps only the first 100 would).  Printed per round: seconds from
the first reconnection to the last done, the bytes the server sent them (WebSocket payloads
and member pages' bodies), svc's CPU seconds, how many resumed, and how many connections svc
closed with 4503 (tried again at once, as a client would: the time includes them); then the
medians [min-max] and the ratios resume / fresh.

A lean harness (raw aiohttp sockets, frames parsed once), not svc.client: 2,000 Rooms'
state-keeping would be the client's cost in the figure, not the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time

import aiohttp

ROOM = "storm"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Watcher:
    """One client: its socket, the room's epoch and the last seq it applied."""

    def __init__(self, session: aiohttp.ClientSession, url: str, members_url: str | None):
        self.session, self.url = session, url
        self.members_url = members_url  # None: keep only the welcome's members
        self.epoch: str | None = None
        self.seq: int | None = None
        self.received = 0  # payload bytes
        self.resumed = False
        self.retries = 0  # connections closed with 4503
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    async def connect(self, resume: bool, target: int | None = None) -> None:
        """Connect until done; a 4503 (svc could not read storage or the broker in time) is
        tried again at once, as a client would, and counted."""
        while not await self._connect_once(resume, target):
            self.retries += 1

    async def _connect_once(self, resume: bool, target: int | None) -> bool:
        params = {}
        if resume and self.epoch is not None and self.seq is not None:
            params["since"] = f"{self.epoch}:{self.seq}"
        self.ws = await self.session.ws_connect(self.url, params=params, heartbeat=None)
        while True:
            msg = await self.ws.receive()
            if msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 4503:
                return False
            if msg.type is not aiohttp.WSMsgType.TEXT:
                raise RuntimeError(f"watcher closed: {msg.type} {msg.data}")
            self.received += len(msg.data.encode())
            frame = json.loads(msg.data)
            if frame["type"] == "welcome":
                self.resumed = bool(frame.get("resumed"))
                if not self.resumed:
                    self.epoch, self.seq = frame.get("epoch"), frame.get("seq")
                    if self.members_url and frame["member_count"] > len(frame["members"]):
                        await self._page_members()
            elif frame.get("seq") is not None and (self.seq is None or frame["seq"] > self.seq):
                self.seq = frame["seq"]
            if target is None or self.seq is None or self.seq >= target:
                return True

    async def _page_members(self) -> None:
        """The members a welcome left out, as the shipped clients read them (svc.client's
        ``Room._page_rest``): pages of 500 from the first, until there is no next cursor."""
        params = {"limit": "500"}
        while True:
            async with self.session.get(self.members_url, params=params) as response:
                body = await response.read()
                if response.status != 200:
                    raise RuntimeError(f"members page: {response.status} {body[:200]!r}")
            self.received += len(body)
            cursor = json.loads(body)["next_cursor"]
            if not cursor:
                return
            params["cursor"] = cursor

    async def follow(self) -> None:
        """Keep the seq while connected (events before the drop)."""
        async for msg in self.ws:
            frame = json.loads(msg.data)
            if frame.get("seq") is not None:
                self.seq = frame["seq"]

    async def drop(self) -> None:
        await self.ws.close()


async def round_(args, mode: str) -> dict:
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "DATABASE_URL": "memory://",
        "DRAIN_SECONDS": "0",
        "MAX_CONNECTIONS": str(args.clients * 2 + args.members + 500),
    }
    if args.broker_url:
        env["BROKER_URL"] = args.broker_url
    svc = start_svc(env)
    base = f"http://127.0.0.1:{port}"
    connector = aiohttp.TCPConnector(limit=0)
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            await wait_up(session, base)
            url = f"{base}/ws/{ROOM}"
            members = []
            for n in range(args.members):
                ws = await session.ws_connect(url, params={"user_id": f"m{n:04}"}, heartbeat=None)
                await ws.receive()
                members.append(ws)
            members_url = None if args.no_paging else f"{base}/rooms/{ROOM}/members"
            watchers = [Watcher(session, url, members_url) for _ in range(args.clients)]
            for start in range(0, len(watchers), 200):
                await asyncio.gather(*(w.connect(True) for w in watchers[start : start + 200]))
            followers = [asyncio.ensure_future(w.follow()) for w in watchers]
            await asyncio.sleep(1.0)  # the members' presence has reached every watcher
            for w in watchers:
                await w.drop()
            await asyncio.gather(*followers, return_exceptions=True)
            for w in watchers:
                w.received = w.retries = 0
            # Missed while away: messages from one member, seen by another to be sure.
            for n in range(args.missed):
                await members[0].send_json({"type": "message", "data": {"n": n, "pad": "x" * 64}})
            target = None
            for _ in range(args.missed):
                while True:
                    frame = json.loads((await members[1].receive(timeout=30)).data)
                    if frame["type"] == "message":
                        target = frame.get("seq")
                        break
            before = cpu_seconds(svc.pid)
            started = time.perf_counter()
            await asyncio.gather(*(w.connect(mode == "resume", target) for w in watchers))
            seconds = time.perf_counter() - started
            cpu = cpu_seconds(svc.pid) - before
            result = {
                "mode": mode,
                "seconds": seconds,
                "bytes": sum(w.received for w in watchers),
                "cpu": cpu,
                "resumed": sum(w.resumed for w in watchers),
                "retries": sum(w.retries for w in watchers),
            }
            for w in watchers:
                await w.ws.close()
            for ws in members:
                await ws.close()
            return result
    finally:
        svc.send_signal(signal.SIGTERM)
        svc.wait(30)


def start_svc(env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "svc"], env=env, stderr=subprocess.DEVNULL, start_new_session=True
    )


async def wait_up(session: aiohttp.ClientSession, base: str) -> None:
    for _ in range(300):
        try:
            async with session.get(base + "/") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("svc did not start")


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} [{min(values):.3f}-{max(values):.3f}]"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--missed", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--broker-url", default="")
    parser.add_argument("--no-paging", action="store_true")
    args = parser.parse_args()
    results: dict[str, list[dict]] = {"resume": [], "fresh": []}
    for n in range(args.rounds):
        for mode in ("resume", "fresh") if n % 2 == 0 else ("fresh", "resume"):
            result = await round_(args, mode)
            results[mode].append(result)
            print(
                f"round {n + 1} {mode:6}: {result['seconds']:.3f} s, "
                f"{result['bytes'] / 1e6:.2f} MB sent, svc CPU {result['cpu']:.2f} s, "
                f"resumed {result['resumed']}/{args.clients}, 4503 {result['retries']}",
                flush=True,
            )
    for key, unit in (("seconds", "s"), ("bytes", "B"), ("cpu", "s CPU")):
        resume = [r[key] for r in results["resume"]]
        fresh = [r[key] for r in results["fresh"]]
        ratios = [a / b for a, b in zip(resume, fresh, strict=True) if b]
        print(
            f"{key:8} resume {summary(resume)} {unit}, fresh {summary(fresh)} {unit}, "
            f"resume/fresh {summary(ratios)}"
        )


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main())
