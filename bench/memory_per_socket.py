"""Where a server's memory per idle WebSocket goes: tracemalloc and RSS around N joins.

    python bench/memory_per_socket.py [--clients 2000] [--top 25] [--bare] [--no-trace]
                                      [--python-gc] [--auth]

Starts svc (memory storage, or ``--bare``: bench/ceilings/bare.py) in this process on a
free loopback port, takes a snapshot, has a child process join ``--clients`` WebSockets to
one room (the client of bench/load.py, so its objects are not in our heap), waits until
they are idle, and takes another snapshot while they are still open.  Prints the RSS
growth per socket, the server CPU the joins took (steadier than their wall time on a
shared machine), and the biggest allocation sites (bytes per socket), grouped by
``--group`` (lineno, or traceback with ``--frames`` frames).

``--room-size N``: the sockets are members in rooms of N (``measured-0``, ``measured-1``,
…), as bench/idle_sockets.py lays them out: what a room holds per member (its history of
numbered events, resume's, holds up to 100 of them) is then counted per socket too.

``--auth``: auth on (``JWT_SECRET_KEY``); the users c0, c1, … are created before the first
snapshot and each socket joins with its own login token, in its first frame as svc-client.js
sends it (``--auth=url``: in ``?token=``, which the request, and so the socket, keeps), so it
holds what auth on costs an idle socket: its token's deadline (svc/rooms/token_expiry.py, one
timer) and stamp.

tracemalloc slows the server down and costs memory of its own: the RSS figure to quote
comes from a run with ``--no-trace`` (or bench/load.py's connect scenario).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import socket
import sys
import time
import tracemalloc
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # load.py and ceilings/ as modules


def rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: The key of --auth (the child signs its sockets' tokens with it).
SECRET = "bench-secret-" + "m" * 40


def build_app(bare: bool, python_gc: bool = False, auth: str | None = None):
    if bare:
        from aiohttp import web
        from ceilings import bare as ceiling

        app = web.Application()
        app.router.add_get("/", lambda request: web.json_response({"status": "ok"}))
        app.router.add_get("/users/{user_id}", ceiling.get_user)
        app.router.add_put("/users/{user_id}/profile", ceiling.put_profile)
        app.router.add_get("/ws/{room_id}", ceiling.websocket)
        return app
    from svc.app import create_app
    from svc.collector import collector_ctx
    from svc.settings import Settings

    app = create_app(Settings(bcrypt_rounds=4, jwt_secret_key=SECRET if auth else None))
    if not python_gc:
        app.cleanup_ctx.append(collector_ctx)  # as python -m svc does
    return app


async def client(port: int, clients: int, room: str, auth: str | None, room_size: int = 0) -> None:
    """The child: join, say so, hold the sockets until stdin closes."""
    import load

    query = first = None
    if auth:
        import json

        import jwt

        now = time.time()
        tokens = [
            jwt.encode({"sub": f"c{i}", "iat": now, "exp": now + 3600}, SECRET)
            for i in range(clients)
        ]
        if auth == "url":
            query = lambda i: f"token={tokens[i]}"  # noqa: E731
        else:  # the first frame, as svc-client.js sends them
            query = lambda i: ""  # noqa: E731
            first = lambda i: json.dumps({"type": "auth", "token": tokens[i]})  # noqa: E731
    base = f"http://127.0.0.1:{port}"
    if room_size and not auth:  # rooms of room_size, as bench/idle_sockets.py lays them out
        sockets = []
        for start in range(0, clients, room_size):
            sockets += await load.join_all(
                base,
                f"{room}-{start // room_size}",
                min(room_size, clients - start),
                query=lambda i, start=start: f"user_id=c{start + i}",
            )
    else:
        sockets = await load.join_all(base, room, clients, query=query, first=first)
    print("joined", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for ws in sockets:
        ws.close()


async def join_from_child(
    port: int, clients: int, room: str, auth: str | None = None, room_size: int = 0
) -> asyncio.subprocess.Process:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        *([f"--auth={auth}"] if auth else []),
        *([f"--room-size={room_size}"] if room_size else []),
        "--client",
        "--port",
        str(port),
        "--clients",
        str(clients),
        "--room",
        room,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    line = await asyncio.wait_for(child.stdout.readline(), 180)
    if line.strip() != b"joined":
        raise RuntimeError(f"client failed: {line!r}")
    return child


async def serve_and_measure(args) -> None:
    from aiohttp import web

    port = free_port()
    app = build_app(args.bare, args.python_gc, args.auth)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        if args.auth:  # the users exist before the first snapshot: only sockets are measured
            from svc.keys import STORAGE

            for i in range(args.clients):
                await app[STORAGE].create_user(f"c{i}", {"username": f"bench-c{i}"}, None)
        # Warm up: the first sockets pay for imports, caches and the room itself.
        warm = await join_from_child(port, 20, "warm", args.auth)
        warm.stdin.close()
        await warm.wait()
        await asyncio.sleep(0.5)
        gc.collect()
        if not args.no_trace:
            tracemalloc.start(args.frames)
        before_rss = rss()
        before = tracemalloc.take_snapshot() if not args.no_trace else None
        cpu, wall = time.process_time(), time.perf_counter()
        child = await join_from_child(port, args.clients, "measured", args.auth, args.room_size)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        await asyncio.sleep(args.settle)  # presence frames out, buffers settled, heap trimmed
        gc.collect()
        after_rss = rss()
        after = tracemalloc.take_snapshot() if not args.no_trace else None
        print(
            f"{'bare' if args.bare else f'svc auth on ({args.auth})' if args.auth else 'svc'}: "
            f"{args.clients} sockets, RSS "
            f"+{(after_rss - before_rss) / 1024:,.0f} KiB = "
            f"{(after_rss - before_rss) / args.clients:,.0f} B per socket; joins took "
            f"{wall:.2f} s and {cpu:.2f} s of server CPU"
        )
        if after is not None:
            report(before, after, args)
        child.stdin.close()
        await child.wait()
    finally:
        await runner.cleanup()


def report(before, after, args) -> None:
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
    before, after = before.filter_traces(ignore), after.filter_traces(ignore)
    stats = after.compare_to(before, args.group)
    total = sum(s.size_diff for s in stats)
    print(f"tracemalloc: +{total / 1024:,.0f} KiB = {total / args.clients:,.0f} B per socket")
    for stat in stats[: args.top]:
        if stat.size_diff <= 0:
            continue
        per = stat.size_diff / args.clients
        count = stat.count_diff / args.clients
        where = stat.traceback.format(limit=args.frames)
        print(f"{per:8,.0f} B {count:6.2f} blocks  {where[0].strip()}")
        for line in where[1:]:
            print(f"{'':27}{line.strip()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--bare", action="store_true")
    parser.add_argument("--no-trace", action="store_true")
    parser.add_argument(
        "--python-gc", action="store_true", help="Python's collector, not svc.collector's"
    )
    parser.add_argument(
        "--auth",
        nargs="?",
        const="frame",
        choices=["frame", "url"],
        help="auth on, a login token per socket, in its first frame (or ?token=: url)",
    )
    parser.add_argument(
        "--room-size",
        type=int,
        default=0,
        help="members in rooms of this many (as idle_sockets.py; default: all in one room)",
    )
    parser.add_argument("--group", choices=["lineno", "traceback", "filename"], default="lineno")
    parser.add_argument("--frames", type=int, default=1)
    parser.add_argument("--settle", type=float, default=3.0)
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--room", default="measured", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        asyncio.run(client(args.port, args.clients, args.room, args.auth, args.room_size))
        return
    os.environ.setdefault("SVC_QUIET", "1")
    asyncio.run(serve_and_measure(args))


if __name__ == "__main__":
    main()
