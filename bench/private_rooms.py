"""The cost of checking a room token on join: 2,000 sockets into a private room against a
public one, on one svc, auth on for both, rounds alternated.

    python bench/private_rooms.py [--clients 2000] [--rounds 3]

Starts ``python -m svc`` (memory storage, ``JWT_SECRET_KEY``, ``PRIVATE_ROOMS=private-.*``,
``BCRYPT_ROUNDS=4``) on a free loopback port, creates the users c0, c1, … (``POST /users``),
then per round joins ``--clients`` sockets to a fresh public room (``?token=``) and to a fresh
private room (``?token=…&room_token=…``), alternating which goes first, each until every
welcome is in.  Both sides sign their tokens before the clock starts, so the figure is the
server's: decoding and checking one more JWT per join.  Prints each round's seconds and the
server CPU the joins took, then median [min-max] of private / public.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import jwt

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SECRET = "bench-secret-" + "b" * 40


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_svc(port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "JWT_SECRET_KEY": SECRET,
        "PRIVATE_ROOMS": "private-.*",
        "BCRYPT_ROUNDS": "4",
        "SVC_QUIET": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "svc"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("svc did not start")


def create_users(base: str, clients: int) -> None:
    for i in range(clients):
        body = json.dumps({"id": f"c{i}", "username": f"bench-c{i}"}).encode()
        request = urllib.request.Request(
            f"{base}/users", body, {"Content-Type": "application/json"}
        )
        urllib.request.urlopen(request).close()


def tokens(clients: int, room: str | None) -> list[str]:
    now = time.time()
    queries = []
    for i in range(clients):
        login = jwt.encode({"sub": f"c{i}", "iat": now, "exp": now + 3600}, SECRET, "HS256")
        query = f"token={login}"
        if room is not None:
            claims = {"sub": f"c{i}", "room": room, "exp": now + 3600}
            query += f"&room_token={jwt.encode(claims, SECRET, 'HS256')}"
        queries.append(query)
    return queries


async def one_side(base: str, pid: int, clients: int, room: str, private: bool) -> tuple:
    import load

    queries = tokens(clients, room if private else None)
    cpu, started = cpu_seconds(pid), time.perf_counter()
    sockets = await load.join_all(base, room, clients, query=queries.__getitem__)
    seconds, cpu = time.perf_counter() - started, cpu_seconds(pid) - cpu
    for ws in sockets:
        ws.close()
    await asyncio.sleep(2)  # the leaves settle before the next side
    return seconds, cpu


async def run(args) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_svc(port)
    try:
        create_users(base, args.clients)
        await one_side(base, proc.pid, 50, "warm", False)  # imports, caches, first room
        rows = {"public": [], "private": []}
        for n in range(args.rounds):
            order = ("public", "private") if n % 2 == 0 else ("private", "public")
            for side in order:
                room = f"{side}-{n}-{int(time.time() * 1000)}"
                seconds, cpu = await one_side(base, proc.pid, args.clients, room, side == "private")
                rows[side].append((seconds, cpu))
                print(
                    f"round {n + 1} {side:7}: {seconds:.3f} s, server CPU {cpu:.2f} s", flush=True
                )
        for index, what in ((0, "time"), (1, "server CPU")):
            ratios = [
                p[index] / q[index] for p, q in zip(rows["private"], rows["public"], strict=True)
            ]
            print(
                f"private / public {what}: {statistics.median(ratios):.3f} "
                f"[{min(ratios):.3f}-{max(ratios):.3f}] over {len(ratios)} rounds"
            )
    finally:
        proc.terminate()
        proc.wait(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
