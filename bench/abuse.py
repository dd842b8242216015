"""GET / latency while one client sends compression bombs and another floods logins.

    .venv/bin/python bench/abuse.py                       # svc from this checkout
    .venv/bin/python bench/abuse.py --seconds 20 --out bench/results/abuse.jsonl
    PYTHONPATH=/path/to/old/tree:/path/to/old/tree/plugins .venv/bin/python bench/abuse.py

Starts ``python -m svc`` (memory storage, auth on, bcrypt cost 12) on a free port, then
for each phase runs a probe that sends ``GET /`` one at a time, every 5 ms, on its own
connection, and reports the probe's latency percentiles:

- ``quiet``: the probe alone;
- ``bombs``: one client sending, back to back, a 1 MiB gzip body that inflates to 1 GiB
  (``Content-Encoding: gzip``) to ``GET /``;
- ``logins``: one client keeping 50 ``POST /auth/token`` in flight for unknown usernames
  (each one a full bcrypt if it were queued), ignoring ``Retry-After``;
- ``both``: the two attackers at once;
- ``guess``: one client (127.0.0.1) guessing one known username's password, 4 guesses in
  flight, ignoring ``Retry-After`` (issue 24, finding 3: the throttle was per username, so
  this locked the owner out); measured from its first 429; the owner logs in from
  127.0.0.2 once a second.

and the connection-level attacks of issue 24, each on a fresh server under ``ulimit -n
1024`` (as the issue reproduced them):

- ``slow-heads``: 60 new connections a second, each sending ``GET / HTTP/1.1`` and
  ``Host``, then one more header every 5 s, never the end of the head (reopened when closed);
- ``conn-flood``: 1,100 connections held open sending nothing (each reopened when closed);
- ``ping-flood``: a watcher sending WebSocket pings as fast as it can (rejoining if closed);
- ``slow-consumers``: 2,000 WebSockets that never read (4 KiB receive buffers), and a
  member sending 8 KiB messages at the allowed 50 a second (``ulimit -n 8192``);
- ``resets``: a client joining, pinging and resetting its connection, again and again.

For these the probe's requests time out after 2 s (a timeout counts as 2,000 ms); a second
probe opens a new connection for each ``GET /`` every 100 ms (``fresh``: its statuses).
``rss_mib`` is the server's growth during the phase and ``rss_per_byte`` that growth per
byte the attacker sent; ``log_lines`` is what the server wrote to stderr in the phase.

Also the status codes each attacker got, what a real user logging in once a second from
127.0.0.2 (another address than the attackers') got (statuses, slowest answer), and the
server's CPU seconds per phase.  The load
generator shares the machine with the server: read the figures as an upper bound.

Side by side with an older tree (a snapshot from ``git archive``), alternated by round::

    .venv/bin/python bench/abuse.py --phases slow-heads,conn-flood --rounds 3 \
        --before /tmp/svc-before --out bench/results/abuse-conn.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import socket
import statistics
import struct
import sys
import time
import uuid
import zlib
from collections import Counter
from pathlib import Path

import aiohttp

REAL_PASSWORD = "the real user's password"
BOMB_PATH = Path("/tmp/svc-bench-gzip-bomb-1GiB.gz")


def gzip_bomb() -> bytes:
    """1 GiB of zeros, gzip level 9 (about 1 MiB); built once and kept in /tmp."""
    if not BOMB_PATH.exists():
        packer = zlib.compressobj(9, zlib.DEFLATED, 31)
        chunk = bytes(1 << 20)
        parts = [packer.compress(chunk) for _ in range(1024)]
        BOMB_PATH.write_bytes(b"".join(parts) + packer.flush())
    return BOMB_PATH.read_bytes()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


PROBE_TIMEOUT = 2.0


async def probe(base: str, stop: asyncio.Event) -> list[float]:
    """``GET /`` one at a time on one kept-alive connection; a failure counts as the timeout."""
    latencies = []
    connector = aiohttp.TCPConnector(limit=1)
    timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                async with session.get(base + "/") as resp:
                    await resp.read()
                    ok = resp.status == 200
            except (aiohttp.ClientError, asyncio.TimeoutError):
                ok = False
            took = (time.perf_counter() - started) * 1000
            latencies.append(took if ok else max(took, PROBE_TIMEOUT * 1000))
            await asyncio.sleep(0.005)
    return latencies


async def fresh_probe(base: str, stop: asyncio.Event, seen: Counter) -> None:
    """A new client every 100 ms: one ``GET /`` on a new connection, its status counted."""
    timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT)
    while not stop.is_set():
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(base + "/") as resp,
            ):
                await resp.read()
                seen[resp.status] += 1
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            seen[type(exc).__name__] += 1
        await asyncio.sleep(0.1)


async def bomber(base: str, stop: asyncio.Event, seen: Counter) -> None:
    bomb = gzip_bomb()
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            try:
                async with session.get(base + "/", data=bomb, headers=headers) as resp:
                    await resp.read()
                    seen[resp.status] += 1
            except aiohttp.ClientError as exc:
                seen[type(exc).__name__] += 1


async def login_flood(base: str, stop: asyncio.Event, seen: Counter, in_flight: int = 50):
    connector = aiohttp.TCPConnector(limit=in_flight)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one_client():
            while not stop.is_set():
                body = {"username": uuid.uuid4().hex[:20], "password": "guess-" + uuid.uuid4().hex}
                try:
                    async with session.post(base + "/auth/token", json=body) as resp:
                        await resp.read()
                        seen[resp.status] += 1
                except aiohttp.ClientError as exc:
                    seen[type(exc).__name__] += 1

        await asyncio.gather(*(one_client() for _ in range(in_flight)))


async def guesser(base: str, stop: asyncio.Event, seen: Counter, username: str, in_flight=4):
    """Wrong passwords for one known ``username``, ``in_flight`` at a time, from 127.0.0.1."""
    async with aiohttp.ClientSession() as session:

        async def one_client():
            while not stop.is_set():
                body = {"username": username, "password": "guess-" + uuid.uuid4().hex}
                try:
                    async with session.post(base + "/auth/token", json=body) as resp:
                        await resp.read()
                        seen[resp.status] += 1
                except aiohttp.ClientError as exc:
                    seen[type(exc).__name__] += 1

        await asyncio.gather(*(one_client() for _ in range(in_flight)))


async def real_user(
    base: str, stop: asyncio.Event, username: str, source: str | None = None
) -> list[tuple[int, float]]:
    """A real user logging in once a second (from address ``source``, if given): (status,
    milliseconds) of each attempt."""
    attempts = []
    local = {"local_addr": (source, 0)} if source else {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(**local)) as session:
        while not stop.is_set():
            started = time.perf_counter()
            body = {"username": username, "password": REAL_PASSWORD}
            async with session.post(base + "/auth/token", json=body) as resp:
                await resp.read()
            attempts.append((resp.status, (time.perf_counter() - started) * 1000))
            await asyncio.sleep(1.0)
    return attempts


# -- the connection-level attacks (issue 24): each runs in a process of its own ---------------
#
# A process, not a task: the ping flood spins a core, and the probe must not wait on the
# attacker's event loop.  Each prints one JSON line of what it did when its time is up.

HEAD = b"GET / HTTP/1.1\r\nHost: x\r\n"


def _handshake(port: int, path: str, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    return sock


async def attack_slow_heads(port: int, stop: asyncio.Event, seen: Counter) -> None:
    async def one() -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            seen["connect_failed"] += 1
            return
        writer.write(HEAD)
        seen["bytes_sent"] += len(HEAD)
        seen["opened"] += 1
        try:
            n = 0
            while not stop.is_set():
                try:
                    data = await asyncio.wait_for(reader.read(4096), 5)
                except asyncio.TimeoutError:
                    line = b"X-Slow-%d: y\r\n" % n
                    writer.write(line)
                    seen["bytes_sent"] += len(line)
                    n += 1
                    continue
                if not data:
                    seen["closed_by_server"] += 1
                    return
                if data.startswith(b"HTTP/1.1 503"):
                    seen["refused_503"] += 1
        except OSError:
            seen["reset"] += 1
        finally:
            writer.close()

    tasks = set()
    while not stop.is_set():
        task = asyncio.create_task(one())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        await asyncio.sleep(1 / 60)
    for task in tasks:
        task.cancel()


async def attack_conn_flood(port: int, stop: asyncio.Event, seen: Counter) -> None:
    async def slot() -> None:
        while not stop.is_set():
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                seen["opened"] += 1
                data = await reader.read()  # held until the server closes it
                seen["refused_503" if data.startswith(b"HTTP/1.1 503") else "closed"] += 1
                writer.close()
            except OSError:
                seen["failed"] += 1
            await asyncio.sleep(0.05)

    tasks = [asyncio.create_task(slot()) for _ in range(1100)]
    await stop.wait()
    for task in tasks:
        task.cancel()


async def attack_ping_flood(base: str, stop: asyncio.Event, seen: Counter) -> None:
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            try:
                ws = await session.ws_connect(base + "/ws/bench-pings", autoping=False)
            except aiohttp.ClientError:
                seen["join_failed"] += 1
                await asyncio.sleep(0.05)
                continue
            seen["joined"] += 1

            async def read(ws=ws) -> None:
                async for msg in ws:
                    if msg.type is aiohttp.WSMsgType.PONG:
                        seen["pongs"] += 1

            reading = asyncio.create_task(read())
            try:
                while not stop.is_set() and not ws.closed:
                    for _ in range(100):
                        await ws.ping(b"p")
                    seen["pings"] += 100
                    seen["bytes_sent"] += 100 * 7  # 2 + mask 4 + 1 payload
                    await asyncio.sleep(0)
            except (ConnectionError, aiohttp.ClientError):
                pass
            await asyncio.wait([reading], timeout=1)
            reading.cancel()
            if ws.close_code is not None:
                seen[f"closed_{ws.close_code}"] += 1
            await ws.close()


async def attack_slow_consumers(base: str, port: int, stop: asyncio.Event, seen: Counter):
    room = "bench-slow"
    sockets = []
    for _ in range(2000):
        try:
            sockets.append(await asyncio.to_thread(_handshake, port, f"/ws/{room}", 4096))
        except OSError:
            seen["join_failed"] += 1
    seen["stalled"] = len(sockets)
    seen["bytes_sent"] += 200 * len(sockets)  # each handshake, about
    data = "x" * 8000
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(base + f"/ws/{room}?user_id=bench-sender")
        while not stop.is_set() and not ws.closed:
            frame = json.dumps({"type": "message", "data": {"pad": data}})
            await ws.send_str(frame)
            seen["messages"] += 1
            seen["bytes_sent"] += len(frame) + 8
            await asyncio.sleep(1 / 50)  # the allowed rate
        await ws.close()
    for sock in sockets:
        sock.close()


def _ping_and_reset(port: int) -> int:
    sock = _handshake(port, "/ws/bench-resets")
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    mask = os.urandom(4)
    ping = bytes((0x89, 0x84)) + mask + bytes(b ^ mask[i] for i, b in enumerate(b"bye!"))
    sock.sendall(ping)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    return 250 + len(ping)


async def attack_resets(port: int, stop: asyncio.Event, seen: Counter) -> None:
    while not stop.is_set():
        try:
            seen["bytes_sent"] += await asyncio.to_thread(_ping_and_reset, port)
            seen["resets"] += 1
        except OSError:
            seen["failed"] += 1


async def attack(name: str, base: str, seconds: float) -> None:
    port = int(base.rsplit(":", 1)[1])
    stop = asyncio.Event()
    seen: Counter = Counter()
    asyncio.get_running_loop().call_later(seconds, stop.set)
    if name == "slow-heads":
        await attack_slow_heads(port, stop, seen)
    elif name == "conn-flood":
        await attack_conn_flood(port, stop, seen)
    elif name == "ping-flood":
        await attack_ping_flood(base, stop, seen)
    elif name == "slow-consumers":
        await attack_slow_consumers(base, port, stop, seen)
    elif name == "resets":
        await attack_resets(port, stop, seen)
    print(json.dumps(dict(seen)), flush=True)


#: phase → (the server's ulimit -n, seconds the attack runs before the probes start)
CONNECTION_PHASES = {
    "slow-heads": (1024, 12.0),
    "conn-flood": (1024, 3.0),
    "ping-flood": (1024, 2.0),
    "slow-consumers": (8192, 8.0),
    "resets": (1024, 2.0),
    "quiet-conn": (1024, 0.0),
}


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


async def connection_phase(name: str, server: Server, seconds: float) -> dict:
    _, warmup = CONNECTION_PHASES[name]
    stop = asyncio.Event()
    fresh: Counter = Counter()
    rss_before = rss_bytes(server.pid)
    log_before = server.log_size()
    attacker = None
    if name != "quiet-conn":
        attacker = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--attack",
            name,
            "--base",
            server.base,
            "--seconds",
            str(warmup + seconds),
            stdout=asyncio.subprocess.PIPE,
        )
    await asyncio.sleep(warmup)
    cpu_before = cpu_seconds(server.pid)
    probing = asyncio.create_task(probe(server.base, stop))
    fresh_probing = asyncio.create_task(fresh_probe(server.base, stop, fresh))
    await asyncio.sleep(seconds)
    stop.set()
    latencies = await probing
    await fresh_probing
    cpu = cpu_seconds(server.pid) - cpu_before
    rss_growth = rss_bytes(server.pid) - rss_before
    seen = {}
    if attacker is not None:
        out, _ = await attacker.communicate()
        seen = json.loads(out.decode().strip().splitlines()[-1]) if out.strip() else {}
    sent = seen.get("bytes_sent", 0)
    return {
        "phase": name,
        "probes": len(latencies),
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "max_ms": round(max(latencies), 2),
        "probe_failures": sum(1 for ms in latencies if ms >= PROBE_TIMEOUT * 1000),
        "fresh": dict(fresh),
        "server_cpu_s": round(cpu, 2),
        "rss_mib": round(rss_growth / 2**20, 1),
        "rss_per_byte": round(rss_growth / sent, 1) if sent else None,
        "attacker": seen,
        "log_lines": server.log_lines(log_before),
    }


class Server:
    """``python -m svc`` on a free port, its stderr in a file, under a file limit."""

    def __init__(self, env: dict[str, str], file_limit: int | None, before: str | None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(self.port), **env}
        if before:  # the older tree's svc is imported first
            self.env["PYTHONPATH"] = before
        self.file_limit = file_limit
        self.log_path = Path(f"/tmp/svc-bench-abuse-{self.port}.log")
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def start(self) -> None:
        limit = self.file_limit

        def lower_limit() -> None:
            if limit:
                _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
                resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))

        with open(self.log_path, "wb") as log:  # noqa: ASYNC230 - before the child exists
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "svc",
                env=self.env,
                cwd="/tmp",
                stderr=log,
                stdout=log,
                preexec_fn=lower_limit,
            )
        async with aiohttp.ClientSession() as session:
            for _ in range(200):
                try:
                    async with session.get(self.base + "/") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
        raise SystemExit(f"svc did not start:\n{self.log_path.read_text()}")

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def log_lines(self, since: int) -> int:
        with open(self.log_path, "rb") as log:
            log.seek(since)
            return log.read().count(b"\n")

    async def stop(self) -> None:
        self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), 20)
        except asyncio.TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        self.log_path.unlink(missing_ok=True)


async def phase(
    name: str, base: str, pid: int, seconds: float, attackers: list[str], username: str
) -> dict:
    stop = asyncio.Event()
    bombs, logins, guesses = Counter(), Counter(), Counter()
    # The real user logs in from another address than the attackers (127.0.0.1): the login
    # throttle is per client, and a user who shares an attacker's address shares its budget.
    tasks, source = [], "127.0.0.2"
    if "guess" in attackers:  # against a username of its own: the lock outlives the phase
        username = f"victim_{name}_{uuid.uuid4().hex[:8]}"
        async with aiohttp.ClientSession() as session:
            body = {"username": username, "password": REAL_PASSWORD}
            async with session.post(base + "/users", json=body) as resp:
                assert resp.status == 201, await resp.text()
        tasks.append(asyncio.create_task(guesser(base, stop, guesses, username)))
    if "bombs" in attackers:
        tasks.append(asyncio.create_task(bomber(base, stop, bombs)))
    if "logins" in attackers:
        tasks.append(asyncio.create_task(login_flood(base, stop, logins)))
    await asyncio.sleep(1.0 if tasks else 0)  # let the attack reach its pace first
    for _ in range(600):  # the guesser measured once it has shut its door (a 429), <= 60 s
        if "guess" not in attackers or guesses[429]:
            break
        await asyncio.sleep(0.1)
    cpu_before = cpu_seconds(pid)
    probing = asyncio.create_task(probe(base, stop))
    logging_in = asyncio.create_task(real_user(base, stop, username, source))
    await asyncio.sleep(seconds)
    stop.set()
    latencies = await probing
    real = await logging_in
    cpu = cpu_seconds(pid) - cpu_before
    await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "phase": name,
        "probes": len(latencies),
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "max_ms": round(max(latencies), 2),
        "server_cpu_s": round(cpu, 2),
        "real_login_statuses": dict(Counter(status for status, _ in real)),
        "real_login_max_ms": round(max(ms for _, ms in real), 1),
        "bombs": dict(bombs),
        "logins": dict(logins),
        "guesses": dict(guesses),
    }


AUTH_ON = {"JWT_SECRET_KEY": "bench-" + "k" * 40, "BCRYPT_ROUNDS": "12"}
BODY_PHASES = {
    "quiet": [],
    "bombs": ["bombs"],
    "logins": ["logins"],
    "both": ["bombs", "logins"],
    "guess": ["guess"],
}


async def run_phase(name: str, seconds: float, before: str | None) -> dict:
    """One phase on a fresh server: the connection-level attacks with auth off (their
    watchers need no account), the body and login attacks with auth on."""
    if name in CONNECTION_PHASES:
        server = Server({}, CONNECTION_PHASES[name][0], before)
        await server.start()
        try:
            return await connection_phase(name, server, seconds)
        finally:
            await server.stop()
    server = Server(AUTH_ON, None, before)
    await server.start()
    try:
        username = "real_" + uuid.uuid4().hex[:12]
        body = {"username": username, "password": REAL_PASSWORD}
        async with aiohttp.ClientSession() as session:
            async with session.post(server.base + "/users", json=body) as resp:
                assert resp.status == 201, await resp.text()
        return await phase(name, server.base, server.pid, seconds, BODY_PHASES[name], username)
    finally:
        await server.stop()


async def run(args: argparse.Namespace) -> list[dict]:
    results = []
    sides = [("before", args.before), (args.label, None)] if args.before else [(args.label, None)]
    for round_ in range(1, args.rounds + 1):
        for name in args.phases.split(","):
            for label, before in sides:  # alternated within each phase and round
                result = await run_phase(name, args.seconds, before)
                result["label"] = label
                result["round"] = round_
                print(json.dumps(result), flush=True)
                results.append(result)
    if args.before:
        summarise(results)
    return results


def summarise(results: list[dict]) -> None:
    """Median [min-max] of each side's p99 and RSS growth per phase, and the ratios."""
    phases = dict.fromkeys(r["phase"] for r in results)
    labels = list(dict.fromkeys(r["label"] for r in results))

    def cell(values: list[float]) -> str:
        return f"{statistics.median(values):g} [{min(values):g}-{max(values):g}]"

    print()
    print("| phase | figure | " + " | ".join(labels) + " |")
    for name in phases:
        for figure in ("p99_ms", "probe_failures", "rss_mib", "rss_per_byte", "log_lines"):
            row = []
            for label in labels:
                values = [
                    r[figure]
                    for r in results
                    if r["phase"] == name and r["label"] == label and r.get(figure) is not None
                ]
                row.append(cell(values) if values else "-")
            if any(v != "-" for v in row):
                print(f"| {name} | {figure} | " + " | ".join(row) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="probe time per phase")
    parser.add_argument("--phases", default="quiet,bombs,logins,both")
    parser.add_argument("--label", default="svc")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--before", help="an older tree to run side by side (PYTHONPATH)")
    parser.add_argument("--out", help="append one JSON line per phase here")
    parser.add_argument("--attack", help=argparse.SUPPRESS)  # an attacker's own process
    parser.add_argument("--base", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.attack:
        asyncio.run(attack(args.attack, args.base, args.seconds))
        return
    if any(name in BODY_PHASES for name in args.phases.split(",")):
        gzip_bomb()
    results = asyncio.run(run(args))
    if args.out:
        with open(args.out, "a") as out:
            out.writelines(json.dumps(result) + "\n" for result in results)


if __name__ == "__main__":
    main()
