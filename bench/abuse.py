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

Also the status codes each attacker got, what a real user logging in once a second from
127.0.0.2 (another address than the attackers') got (statuses, slowest answer), and the
server's CPU seconds per phase.  The load
generator shares the machine with the server: read the figures as an upper bound.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
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


async def probe(base: str, stop: asyncio.Event) -> list[float]:
    latencies = []
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector) as session:
        while not stop.is_set():
            started = time.perf_counter()
            async with session.get(base + "/") as resp:
                await resp.read()
                assert resp.status == 200, resp.status
            latencies.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.005)
    return latencies


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


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


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


async def run(args: argparse.Namespace) -> list[dict]:
    results = []
    port = free_port()
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "JWT_SECRET_KEY": "bench-" + "k" * 40,
        "BCRYPT_ROUNDS": "12",
    }
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "svc", env=env, cwd="/tmp", stderr=asyncio.subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                try:
                    async with session.get(base + "/") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
            username = "real_" + uuid.uuid4().hex[:12]
            body = {"username": username, "password": REAL_PASSWORD}
            async with session.post(base + "/users", json=body) as resp:
                assert resp.status == 201, await resp.text()
        attackers = {"quiet": [], "bombs": ["bombs"], "logins": ["logins"]}
        attackers["both"] = ["bombs", "logins"]
        attackers["guess"] = ["guess"]
        for name in args.phases.split(","):
            result = await phase(name, base, server.pid, args.seconds, attackers[name], username)
            result["label"] = args.label
            print(json.dumps(result), flush=True)
            results.append(result)
    finally:
        server.terminate()
        await server.wait()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="probe time per phase")
    parser.add_argument("--phases", default="quiet,bombs,logins,both")
    parser.add_argument("--label", default="svc")
    parser.add_argument("--out", help="append one JSON line per phase here")
    args = parser.parse_args()
    gzip_bomb()
    results = asyncio.run(run(args))
    if args.out:
        with open(args.out, "a") as out:
            out.writelines(json.dumps(result) + "\n" for result in results)


if __name__ == "__main__":
    main()
