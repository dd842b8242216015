"""svc's load driver: one scenario against one running server, one JSON line on stdout.

    python bench/load.py SCENARIO --base http://127.0.0.1:PORT --pid SERVER_PID [options]

  get      GET /users/u{0..999}, wrk at --concurrency for --duration s: req/s, p50/p99 ms
  put      PUT /users/u{i}/profile with a changing display_name, same shape; --present N:
           u0..u{N-1} each hold a socket in a room of their own while wrk runs, so each of
           their changes is a room event (numbered and kept for resume), sent to one socket
  connect  --clients WebSockets join one room at once: seconds until every welcome is in,
           and the server's RSS growth per connection once they are idle
  fanout   --clients members in one room, reading all they are sent, then a PUT of one
           member: ms until the LAST client has its profile_updated (median of --repeats),
           and the server's RSS growth with the room joined
  reconnect  --clients members in one room all drop at once and come straight back (a
           deploy, a network blip): seconds until every new welcome is in, with the old
           sockets' leaves still being written
  lag      8 concurrent password changes for --duration s while GET / is probed every
           10 ms: hashes/s and the probe's p99 ms (loop lag)

HTTP load comes from wrk (apt install wrk): a Python client would cost as much CPU as the
server it measures on 2 cores.  The WebSocket client speaks just enough RFC 6455 over
asyncio streams, so receiving 2,000 frames costs far less than sending them.  Targets must
be on loopback; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from urllib.parse import urlsplit

import aiohttp


def rss(pid: int | None) -> int | None:
    if not pid:
        return None
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return None


async def seed(base: str, users: int) -> None:
    """u0…u{users-1} exist with a username (a ceiling may simply answer 200)."""
    async with aiohttp.ClientSession(base) as http:
        sem = asyncio.Semaphore(32)

        async def one(i: int) -> None:
            async with sem, http.put(f"/users/u{i}/profile", json={"username": f"user{i}"}) as r:
                assert r.status in (200, 201), (r.status, await r.text())

        await asyncio.gather(*(one(i) for i in range(users)))


WRK_GET = 'request = function() return wrk.format("GET", "/users/u" .. math.random(0, {n})) end'
WRK_PUT = """
counter = 0
request = function()
  counter = counter + 1
  local body = '{"display_name":"n' .. counter .. '"}'
  return wrk.format("PUT", "/users/u" .. (counter % {n}) .. "/profile",
                    {["Content-Type"] = "application/json"}, body)
end
"""


def wrk(base: str, script: str, args) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(script.replace("{n}", str(args.users - 1)))
    cmd = [
        "wrk",
        "-t1",
        f"-c{args.concurrency}",
        f"-d{int(args.duration)}s",
        "--latency",
        "-s",
        lua.name,
        base,
    ]
    if args.warmup:
        subprocess.run(
            [*cmd[:3], f"-d{max(1, int(args.warmup))}s", *cmd[4:]], capture_output=True, check=True
        )
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    os.unlink(lua.name)

    def ms(label: str) -> float:
        value, unit = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": ms("50"),
        "p99_ms": ms("99"),
        "errors": int(non2xx.group(1)) if non2xx else 0,
    }


class MiniWS:
    """A client WebSocket with just enough protocol: connect, read text frames, close."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, host: str, port: int, path: str) -> MiniWS:
        reader, writer = await asyncio.open_connection(host, port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError(head.decode(errors="replace"))
        return cls(reader, writer)

    async def frame(self) -> bytes:
        first, second = await self.reader.readexactly(2)
        size = second & 0x7F
        if size == 126:
            size = int.from_bytes(await self.reader.readexactly(2), "big")
        elif size == 127:
            size = int.from_bytes(await self.reader.readexactly(8), "big")
        payload = await self.reader.readexactly(size)
        if first & 0x0F == 8:
            raise ConnectionError("closed by the server")
        return payload

    async def frame_containing(self, needle: bytes) -> bytes:
        while True:
            payload = await self.frame()
            if needle in payload:
                return payload

    def close(self) -> None:
        if getattr(self, "_drainer", None) is not None:
            self._drainer.cancel()
        self.writer.close()

    def drain_watching(self, needle: bytes) -> asyncio.Future:
        """Read every frame from now on (an idle client still reads what it is sent: a
        crowd's presence frames would otherwise fill the server's buffers and get it
        closed as a slow consumer); the future resolves at the first frame holding
        ``needle``.  Call again for the next needle."""
        self.watching = (needle, asyncio.get_running_loop().create_future())
        if getattr(self, "_drainer", None) is None:
            self._drainer = asyncio.ensure_future(self._drain())
        return self.watching[1]

    async def _drain(self) -> None:
        while True:
            payload = await self.frame()
            needle, found = self.watching
            if not found.done() and needle in payload:
                found.set_result(payload)


async def join_all(base: str, room: str, clients: int, drain: bool = False) -> list[MiniWS]:
    host, port = urlsplit(base).hostname, urlsplit(base).port
    sem = asyncio.Semaphore(256)  # a burst, but not more sockets in handshake than a backlog holds

    async def one(i: int) -> MiniWS:
        async with sem:
            ws = await MiniWS.connect(host, port, f"/ws/{room}?user_id=c{i}")
        if drain:
            await ws.drain_watching(b'"welcome"')
        else:
            await ws.frame_containing(b'"welcome"')
        return ws

    return await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(clients))), 120)


async def put_with_present(args) -> dict:
    """The put scenario while u0..u{present-1} each sit in a room of their own."""
    host, port = urlsplit(args.base).hostname, urlsplit(args.base).port
    sockets = []
    for i in range(args.present):
        ws = await MiniWS.connect(host, port, f"/ws/h{i}?user_id=u{i}")
        await ws.drain_watching(b'"welcome"')
        sockets.append(ws)
    try:
        return await asyncio.to_thread(wrk, args.base, WRK_PUT, args)
    finally:
        for ws in sockets:
            ws.close()


async def connect(args) -> dict:
    room = f"connect{int(time.time() * 1000)}"
    before = rss(args.pid)
    started = time.perf_counter()
    sockets = await join_all(args.base, room, args.clients)
    seconds = time.perf_counter() - started
    await asyncio.sleep(args.settle)  # idle: presence frames delivered, buffers settled
    after = rss(args.pid)
    for ws in sockets:
        ws.close()
    per = (after - before) / args.clients if before and after else None
    return {"clients": args.clients, "connect_s": round(seconds, 3), "rss_per_conn": per}


async def reconnect(args) -> dict:
    room = f"reconnect{int(time.time() * 1000)}"
    sockets = await join_all(args.base, room, args.clients, drain=True)
    await asyncio.sleep(args.settle)
    for ws in sockets:
        ws.close()
    started = time.perf_counter()
    sockets = await join_all(args.base, room, args.clients, drain=True)
    seconds = time.perf_counter() - started
    for ws in sockets:
        ws.close()
    return {"clients": args.clients, "reconnect_s": round(seconds, 3)}


async def fanout(args) -> dict:
    room = f"fanout{int(time.time() * 1000)}"
    before = rss(args.pid)
    async with aiohttp.ClientSession(args.base) as http:
        async with http.put("/users/c0/profile", json={"username": f"fan{room[-8:]}"}) as r:
            assert r.status in (200, 201), await r.text()
        sockets = await join_all(args.base, room, args.clients, drain=True)
        await asyncio.sleep(args.settle)
        after = rss(args.pid)
        times = []
        for repeat in range(args.repeats):
            name = f"f{repeat}-{time.time_ns()}".encode()
            waits = [ws.drain_watching(name) for ws in sockets]
            started = time.perf_counter()
            async with http.put("/users/c0/profile", json={"display_name": name.decode()}) as r:
                assert r.status == 200
            await asyncio.wait_for(asyncio.gather(*waits), 30)
            times.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.2)
        for ws in sockets:
            ws.close()
    grown = (after - before) / 2**20 if before and after else None
    return {
        "clients": args.clients,
        "last_delivery_ms": round(statistics.median(times), 2),
        "rss_growth_mib": round(grown, 1) if grown is not None else None,
    }


async def lag(args) -> dict:
    async with aiohttp.ClientSession(args.base) as http:
        for i in range(8):  # an upsert every server has (the replaced one ignores POST's id)
            async with http.put(f"/users/pw{i}/profile", json={"username": f"pw{i}"}) as r:
                assert r.status in (200, 201), await r.text()
        hashes, probes = 0, []
        deadline = time.monotonic() + args.duration

        async def hasher(i: int) -> None:
            nonlocal hashes
            while time.monotonic() < deadline:
                async with http.put(f"/users/pw{i}/password", json={"new_password": "y" * 12}) as r:
                    assert r.status == 200, await r.text()
                hashes += 1

        async def prober() -> None:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                async with http.get("/") as r:
                    await r.read()
                probes.append((time.perf_counter() - started) * 1000)
                await asyncio.sleep(0.01)

        await asyncio.gather(prober(), *(hasher(i) for i in range(8)))
    probes.sort()
    return {
        "hashes_per_s": round(hashes / args.duration, 2),
        "probe_p99_ms": round(probes[int(len(probes) * 0.99) - 1], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("scenario", choices=["get", "put", "connect", "reconnect", "fanout", "lag"])
    parser.add_argument("--base", required=True)
    parser.add_argument("--pid", type=int)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--settle", type=float, default=1.0)
    parser.add_argument("--no-seed", action="store_true", help="the server has its users already")
    parser.add_argument("--present", type=int, default=0, help="put: users in rooms meanwhile")
    args = parser.parse_args()
    if urlsplit(args.base).hostname not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("only loopback targets")
    if args.scenario in ("get", "put"):
        if not args.no_seed:
            asyncio.run(seed(args.base, args.users))
        if args.scenario == "put" and args.present:
            result = asyncio.run(put_with_present(args))
        else:
            result = wrk(args.base, WRK_GET if args.scenario == "get" else WRK_PUT, args)
    else:
        result = asyncio.run(
            {"connect": connect, "reconnect": reconnect, "fanout": fanout, "lag": lag}[
                args.scenario
            ](args)
        )
    cpu = None
    if args.pid:
        with open(f"/proc/{args.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
            cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    print(json.dumps({"scenario": args.scenario, **result, "server_cpu_s": cpu}))


if __name__ == "__main__":
    main()
