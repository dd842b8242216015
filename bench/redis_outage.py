"""What a PUT costs while the Redis broker's server is up, dead, hung, and back; and, with
``--recovery``, how long presence and live events take to be whole again after it comes back.

    python bench/redis_outage.py [--database-url URL] [--puts 200]
    python bench/redis_outage.py --recovery --database-url URL [--members 200] [--down 6]
        [--rounds 3] [--against DIR]

Starts a redis-server of its own (free port, no persistence) and one ``python -m svc``
on it, then sends ``--puts`` sequential PUTs in each state and prints the median, p99 and
max latency in ms, and the statuses seen.  "dead" is redis-server killed (connections
refused); "hung" is redis-server stopped with SIGSTOP (connections accepted, nothing
answered: the case that only the broker's ``timeout`` bounds).

``--recovery``: two ``python -m svc`` processes (storage at ``--database-url``, which must
cross processes: Postgres), ``--members`` WebSocket members in one room, half on each.
Redis is killed, stays down ``--down`` seconds and comes back empty.  From its return the
bench measures the seconds until both processes list every member (``listed``) and until
a PUT, made every 0.25 s, reaches every client (``reached``: when the first PUT that
reached all of them was sent).  ``--against DIR`` runs another svc source tree (e.g. the
landed code: ``git archive``) in alternate rounds, side by side, and prints both medians
and their ratio.  Anything not whole after ``--give-up`` seconds counts as that.
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
import tempfile
import time

import aiohttp


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_redis(port: int, directory: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        + ["--appendonly", "no", "--dir", directory],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(100):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.05)
    sys.exit("redis-server did not start")


def code_env(tree: str | None) -> dict:
    """The environment that runs the svc of source tree ``tree`` (None: the installed one)."""
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join([tree, os.path.join(tree, "plugins")])
    return env


def start_svc(env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "svc"], env=env, stderr=subprocess.DEVNULL, start_new_session=True
    )


async def wait_ready(http: aiohttp.ClientSession, base: str) -> None:
    for _ in range(300):
        try:
            async with http.get(base + "/health/ready") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    sys.exit("svc did not become ready")


async def puts(http: aiohttp.ClientSession, base: str, count: int, label: str) -> None:
    took, statuses = [], {}
    for n in range(count):
        started = time.perf_counter()
        body = {"display_name": f"{n}"}
        async with http.put(f"{base}/users/bench-outage/profile", json=body) as r:
            await r.read()
            statuses[r.status] = statuses.get(r.status, 0) + 1
        took.append((time.perf_counter() - started) * 1000)
    took.sort()
    p99 = took[min(len(took) - 1, int(len(took) * 0.99))]
    print(
        f"{label:6} median {statistics.median(took):7.2f} ms  p99 {p99:7.2f} ms"
        f"  max {took[-1]:7.2f} ms  statuses {statuses}",
        flush=True,
    )


class Member:
    """One WebSocket member: the versions of the writer it was sent."""

    def __init__(self, ws, writer: str):
        self.ws, self.writer = ws, writer
        self.seen: set[int] = set()
        self.welcomed = asyncio.Event()
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            frame = json.loads(msg.data)
            if frame["type"] == "welcome":
                self.welcomed.set()
            elif frame["type"] == "profile_updated" and frame["id"] == self.writer:
                self.seen.add(frame["version"])


async def listed(http: aiohttp.ClientSession, base: str, room: str) -> int:
    try:
        async with http.get(f"{base}/rooms/{room}/members?limit=500") as r:
            if r.status != 200:
                return 0
            body = await r.json()
    except aiohttp.ClientError:
        return 0
    return body["member_count"] if body["next_cursor"] else len(body["members"])


async def recovery_round(args, tree: str | None, directory: str) -> tuple[float, float]:
    """One outage: (seconds until every member is listed, until a PUT reached everyone)."""
    redis_port = free_port()
    redis = start_redis(redis_port, directory)
    prefix = f"bench{os.getpid()}{time.monotonic_ns()}"
    procs, bases = [], []
    for _ in range(2):
        port = free_port()
        env = {
            **code_env(tree),
            "DATABASE_URL": args.database_url,
            "BROKER_URL": f"redis://127.0.0.1:{redis_port}/0?prefix={prefix}",
            "PORT": str(port),
            "HOST": "127.0.0.1",
        }
        procs.append(start_svc(env))
        bases.append(f"http://127.0.0.1:{port}")
    members: list[Member] = []
    room = f"room-{prefix}"
    try:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as http:
            for base in bases:
                await wait_ready(http, base)
            ids = [f"m{prefix}-{n}" for n in range(args.members)]
            writer = ids[0]
            for n, user_id in enumerate(ids):
                body = {"username": user_id[-32:]}
                async with http.put(f"{bases[n % 2]}/users/{user_id}/profile", json=body) as r:
                    await r.read()
            for n, user_id in enumerate(ids):
                ws = await http.ws_connect(f"{bases[n % 2]}/ws/{room}?user_id={user_id}")
                members.append(Member(ws, writer))
            await asyncio.wait_for(asyncio.gather(*(m.welcomed.wait() for m in members)), 60)
            redis.kill()
            redis.wait()
            await asyncio.sleep(args.down)
            redis = start_redis(redis_port, directory)
            back = time.monotonic()
            t_listed = t_reached = None
            sent: list[tuple[int, float]] = []  # (version, seconds after the return)
            n = 0
            while time.monotonic() - back < args.give_up and (
                t_listed is None or t_reached is None
            ):
                now = time.monotonic() - back
                if t_listed is None:
                    counts = [await listed(http, base, room) for base in bases]
                    if all(count == args.members for count in counts):
                        t_listed = now
                n += 1
                body = {"bio": f"after {n}"}
                try:
                    async with http.put(f"{bases[1]}/users/{writer}/profile", json=body) as r:
                        if r.status == 200:
                            sent.append(((await r.json())["version"], now))
                except aiohttp.ClientError:
                    pass
                for version, at in sent:
                    if all(version in m.seen for m in members):
                        t_reached = at
                        break
                await asyncio.sleep(0.25)
            return (
                t_listed if t_listed is not None else args.give_up,
                t_reached if t_reached is not None else args.give_up,
            )
    finally:
        for member in members:
            member.task.cancel()
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            proc.wait()
        redis.kill()


async def recovery(args) -> None:
    directory = tempfile.mkdtemp()
    trees = [("this", None)] + ([("against", args.against)] if args.against else [])
    results: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in trees}
    for round_ in range(args.rounds):
        for name, tree in trees if round_ % 2 == 0 else trees[::-1]:
            took = await recovery_round(args, tree, directory)
            results[name].append(took)
            print(f"round {round_ + 1} {name:8} listed {took[0]:6.2f} s  reached {took[1]:6.2f} s")
    medians = {}
    for name, rows in results.items():
        medians[name] = [statistics.median(row[i] for row in rows) for i in (0, 1)]
        print(
            f"median {name:8} listed {medians[name][0]:6.2f} s  reached {medians[name][1]:6.2f} s"
        )
    if args.against:
        ratio = [medians["this"][i] / medians["against"][i] for i in (0, 1)]
        print(f"ratio this/against: listed {ratio[0]:.3f}  reached {ratio[1]:.3f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default="memory://")
    parser.add_argument("--puts", type=int, default=200)
    parser.add_argument("--timeout", default="2", help="the broker URL's timeout parameter")
    parser.add_argument("--recovery", action="store_true")
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument("--down", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--give-up", type=float, default=60.0)
    parser.add_argument("--against", help="another svc source tree, run in alternate rounds")
    args = parser.parse_args()
    if args.recovery:
        await recovery(args)
        return
    directory = tempfile.mkdtemp()
    redis_port, port = free_port(), free_port()
    redis = start_redis(redis_port, directory)
    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "BROKER_URL": f"redis://127.0.0.1:{redis_port}/0?timeout={args.timeout}",
        "PORT": str(port),
        "HOST": "127.0.0.1",
    }
    svc = start_svc(env)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            await wait_ready(http, base)
            async with http.put(f"{base}/users/bench-outage/profile", json={"username": "bo"}):
                pass
            await puts(http, base, args.puts, "up")
            redis.send_signal(signal.SIGSTOP)
            await puts(http, base, args.puts, "hung")
            redis.send_signal(signal.SIGCONT)
            redis.kill()
            redis.wait()
            await puts(http, base, args.puts, "dead")
            redis = start_redis(redis_port, directory)
            await wait_ready(http, base)
            await puts(http, base, args.puts, "back")
    finally:
        os.killpg(svc.pid, signal.SIGTERM)
        svc.wait()
        redis.kill()


if __name__ == "__main__":
    asyncio.run(main())
