"""One update reaching 2,000 members spread over two svc processes, against one process.

    python bench/fanout_two.py --database-url postgresql://…/svc_bench \
        --redis-url redis://127.0.0.1:6379/9 [--rounds 3] [--clients 2000] [--out x.jsonl]

Each round starts fresh servers, A then B, both on the same Postgres storage and Redis
broker (a key prefix of their own per side and round, removed afterwards):

  A  two processes (ports P and P+1), half the clients in the room on each
  B  one process (port P) with every client

The clients (one asyncio process, this one: the same client cost for A and B) join one room
and read everything they are sent; once the room has been quiet for --quiet s, ``c0`` (on
the first process) changes its profile by a PUT to the first process, --repeats times. The
figure is the ms from sending the PUT until the LAST client has its ``profile_updated``
(median of the repeats), and the first; for A also the last client on the PUT's own process
and on the other one; the CPU the servers together and this client process spent per update
(the client shares the cores with the servers, Postgres and Redis). Prints each round,
then median [min-max] of each side and the median of the per-round ratios A/B.

Before measuring, waits until the 1-minute load average (``uptime``) is below --max-load,
polling every 20 s, at most --load-wait s (then measures anyway and says so).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timezone
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from load import MiniWS, rss  # noqa: E402  (bench/ is not a package)


class Clock:
    """When the last frame arrived on any client socket: the room is settled once the
    presence frames of the join burst have stopped, on every process."""

    last = 0.0


class TimedWS(MiniWS):
    async def frame(self) -> bytes:
        payload = await super().frame()
        Clock.last = time.monotonic()
        return payload


def wait_for_quiet_machine(max_load: float, limit: float) -> str:
    started = time.monotonic()
    while True:
        load1 = os.getloadavg()[0]
        waited = time.monotonic() - started
        if load1 < max_load:
            return f"load average {load1:.2f} < {max_load} after waiting {waited:.0f} s"
        if waited >= limit:
            return f"load average still {load1:.2f} after {waited:.0f} s: measured anyway"
        print(f"load average {load1:.2f} >= {max_load}; waiting", file=sys.stderr, flush=True)
        time.sleep(20)


def with_prefix(url: str, prefix: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query["prefix"] = prefix
    return urlunsplit(parts._replace(query=urlencode(query)))


def start(command: str, env: dict[str, str], port: int) -> subprocess.Popen:
    environ = {**os.environ, **env, "PORT": str(port), "HOST": "127.0.0.1"}
    proc = subprocess.Popen(
        shlex.split(command),
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # ready: storage and broker both answer
        try:
            url = f"http://127.0.0.1:{port}/health/ready"
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return proc
        except OSError:
            time.sleep(0.1)
    stop(proc)
    sys.exit(f"{command!r} on port {port} did not become ready")


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def join(port: int, room: str, ids: range) -> list[TimedWS]:
    sem = asyncio.Semaphore(256)  # a burst, but no more handshakes at once than a backlog holds
    welcomed = 0

    async def one(i: int) -> TimedWS:
        nonlocal welcomed
        async with sem:
            ws = await TimedWS.connect("127.0.0.1", port, f"/ws/{room}?user_id=c{i}")
        await ws.drain_watching(b'"welcome"')
        welcomed += 1
        return ws

    try:
        return await asyncio.wait_for(asyncio.gather(*(one(i) for i in ids)), 120)
    except Exception as exc:  # say how far it got: one line, not 2,000 tracebacks
        sys.exit(f"port {port}: {welcomed} of {len(ids)} clients welcomed, then {exc!r}")


async def settled(quiet: float) -> None:
    """Until no client has had a frame for ``quiet`` s (at most a minute): a silence, not
    an event, ends the join burst."""
    deadline = time.monotonic() + 60
    while time.monotonic() - Clock.last < quiet and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)


async def one_update(http, groups: list[list[TimedWS]], name: bytes) -> list[list[float]]:
    """PUT c0's display name to ``name``: per group of sockets, when each had it."""
    total = sum(map(len, groups))
    arrivals: list[list[float]] = [[] for _ in groups]
    everyone = asyncio.Event()

    def arrived(times: list[float]) -> None:
        times.append(time.perf_counter())
        if sum(map(len, arrivals)) == total:
            everyone.set()

    for sockets, times in zip(groups, arrivals, strict=True):
        for ws in sockets:
            ws.drain_watching(name).add_done_callback(lambda _, times=times: arrived(times))
    sent = time.perf_counter()
    async with http.put("/users/c0/profile", json={"display_name": name.decode()}) as r:
        assert r.status == 200, await r.text()
    try:
        await asyncio.wait_for(everyone.wait(), 30)
    except asyncio.TimeoutError:
        sys.exit(f"{sum(map(len, arrivals))} of {total} clients got the update within 30 s")
    return [[(t - sent) * 1000 for t in times] for times in arrivals]


async def measure(ports: list[int], pids: list[int], args) -> dict:
    room = f"fan2x{time.time_ns()}"
    per_process = args.clients // len(ports)
    base = f"http://127.0.0.1:{ports[0]}"
    before = [rss(pid) for pid in pids]
    async with aiohttp.ClientSession(base) as http:
        async with http.put(
            "/users/c0/profile", json={"username": f"f2u{time.time_ns() % 10**12}"}
        ) as r:
            assert r.status in (200, 201), await r.text()
        started = time.perf_counter()
        groups = await asyncio.gather(
            *(
                join(port, room, range(n * per_process, (n + 1) * per_process))
                for n, port in enumerate(ports)
            )
        )
        connect_s = time.perf_counter() - started
        # Settled: every presence frame of the burst delivered, on every process.
        await settled(args.quiet)
        after = [rss(pid) for pid in pids]
        first, last, last_first, last_other = [], [], [], []
        client_cpu = time.process_time()
        server_cpu = sum(map(cpu_seconds, pids))
        for repeat in range(args.repeats):
            name = f"f{repeat}-{time.time_ns()}".encode()
            arrivals = await one_update(http, groups, name)
            first.append(min(map(min, arrivals)))
            last.append(max(map(max, arrivals)))
            last_first.append(max(arrivals[0]))
            if len(arrivals) > 1:
                last_other.append(max(arrivals[1]))
            await asyncio.sleep(0.2)
        client_cpu = time.process_time() - client_cpu  # the sleeps cost nothing
        server_cpu = sum(map(cpu_seconds, pids)) - server_cpu  # 10 ms ticks: take many repeats
        for sockets in groups:
            for ws in sockets:
                ws.close()
    result = {
        "clients": per_process * len(ports),
        "last_delivery_ms": round(statistics.median(last), 2),
        "first_delivery_ms": round(statistics.median(first), 2),
        # what reading the update costs the one client process: it shares the cores
        "client_cpu_ms_per_update": round(client_cpu * 1000 / args.repeats, 1),
        # what the update costs the server processes together (PUT, broker, every write)
        "server_cpu_ms_per_update": round(server_cpu * 1000 / args.repeats, 1),
    }
    if last_other:  # A: the PUT's own process, and the one that only heard it from Redis
        result["last_on_put_process_ms"] = round(statistics.median(last_first), 2)
        result["last_on_other_process_ms"] = round(statistics.median(last_other), 2)
    result["connect_s"] = round(connect_s, 3)
    if all(before) and all(after):
        result["rss_growth_mib"] = round(
            sum(a - b for a, b in zip(after, before, strict=True)) / 2**20, 1
        )
    return result


async def forget(redis_url: str, prefix: str) -> None:
    """Remove what a side left in Redis under its prefix (a clean stop leaves little)."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(urlunsplit(urlsplit(redis_url)._replace(query="")))
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def side(name: str, processes: int, number: int, args) -> dict:
    prefix = f"fan2-{number}-{name}-{os.getpid()}"
    env = dict(item.split("=", 1) for item in args.env)
    env.update(DATABASE_URL=args.database_url, BROKER_URL=with_prefix(args.redis_url, prefix))
    ports = [args.port + n for n in range(processes)]
    procs = []
    try:
        for port in ports:
            procs.append(start(args.server, env, port))
        result = asyncio.run(measure(ports, [p.pid for p in procs], args))
        result["server_cpu_s"] = round(sum(cpu_seconds(p.pid) for p in procs), 2)
        return result
    finally:
        for proc in procs:
            stop(proc)
        asyncio.run(forget(args.redis_url, prefix))


def num(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--database-url", required=True, help="a Postgres database for benches")
    parser.add_argument("--redis-url", required=True, help="redis://host:port/db")
    parser.add_argument("--server", default=f"{sys.executable} -m svc")
    parser.add_argument("--env", action="append", default=["BCRYPT_ROUNDS=12"])
    parser.add_argument("--port", type=int, default=18090, help="A uses it and the next one")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--quiet", type=float, default=1.0, help="s without a frame = settled")
    parser.add_argument("--max-load", type=float, default=1.5)
    parser.add_argument("--load-wait", type=float, default=900)
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.clients % 2:
        sys.exit("--clients must be even (half on each process of A)")
    print(
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; {args.clients} clients, "
        f"{args.rounds} rounds, {args.repeats} updates a round",
        flush=True,
    )
    print(wait_for_quiet_machine(args.max_load, args.load_wait), flush=True)
    names = ("two-processes", "one-process")
    rounds = []
    for number in range(1, args.rounds + 1):
        load1 = os.getloadavg()[0]
        a = side("A", 2, number, args)
        b = side("B", 1, number, args)
        rounds.append((a, b))
        print(
            f"round {number} (load {load1:.2f}): {names[0]} {json.dumps(a)}\n"
            f"         {names[1]} {json.dumps(b)}",
            flush=True,
        )
        if args.out:
            with open(args.out, "a") as out:
                out.write(json.dumps({"round": number, "load1": load1, "a": a, "b": b}) + "\n")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    a_head, b_head = f"A {names[0]} median [min-max]", f"B {names[1]} median [min-max]"
    print(f"\n{'figure':<26} {a_head:<34} {b_head:<32} A/B")
    for key in rounds[0][0]:
        av = [a[key] for a, _ in rounds if a.get(key) is not None]
        bv = [b[key] for _, b in rounds if b.get(key) is not None]
        ratios = [a[key] / b[key] for a, b in rounds if a.get(key) and b.get(key)]
        fmt = lambda v: f"{num(statistics.median(v))} [{num(min(v))}-{num(max(v))}]" if v else "-"  # noqa: E731
        ratio = f"{statistics.median(ratios):.3f}" if ratios else "-"
        print(f"{key:<26} {fmt(av):<34} {fmt(bv):<32} {ratio}")


if __name__ == "__main__":
    main()
