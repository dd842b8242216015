"""What a PUT costs while the Redis broker's server is up, dead, hung, and back.

    python bench/redis_outage.py [--database-url URL] [--puts 200]

Starts a redis-server of its own (free port, no persistence) and one ``python -m svc``
on it, then sends ``--puts`` sequential PUTs in each state and prints the median, p99 and
max latency in ms, and the statuses seen.  "dead" is redis-server killed (connections
refused); "hung" is redis-server stopped with SIGSTOP (connections accepted, nothing
answered: the case that only the broker's ``timeout`` bounds).
"""

from __future__ import annotations

import argparse
import asyncio
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


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default="memory://")
    parser.add_argument("--puts", type=int, default=200)
    parser.add_argument("--timeout", default="2", help="the broker URL's timeout parameter")
    args = parser.parse_args()
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
