"""100,000 idle WebSockets in one server process: connect time, RSS per socket, and one
update reaching all of them, svc against bare aiohttp (bench/ceilings/bare.py) in one run.

    python bench/idle_sockets.py [--sockets 100000] [--room-size 100] [--rounds 3]

Each round starts svc (``python -m svc``, memory storage and broker) and bare aiohttp on
uvloop, alternated svc bare bare svc …, each on a fresh process, and for each:

1. ``--clients`` client processes (this script with ``--client``) each open their share
   of the sockets from a loopback address of their own (127.0.R.2, 127.0.R.3, …; R the
   round and side, so no address meets its own TIME_WAIT from the round before): Linux
   gives each source address ~28,000 ephemeral ports.  ``--in-flight`` handshakes at once
   over all of them (128: bare aiohttp's backlog).  ``connect_s`` is the time from the
   start until every socket has its welcome.
2. After ``--settle`` seconds of idleness, ``rss_per_socket`` is the server's RSS growth
   divided by the sockets (the baseline is taken with the server started and warmed).
3. ``--repeats`` times, one ``PUT`` of a profile: ``last_ms`` is the time from sending it
   until the last of the sockets has the ``profile_updated`` (client processes stamp
   their last delivery with the shared monotonic clock).  Median of the repeats.

On svc the sockets are members ``m0``, ``m1``, … in rooms of ``--room-size`` (a crowd in
one room would cost N²/2 presence records while it gathers: docs/performance.md), and one
user, ``star``, holds a socket in every room, so one change of its profile reaches every
socket.  bare aiohttp has no rooms: its ``PUT`` writes one frame to every socket.

The clients answer the server's pings (svc pings a socket quiet for 30 s, and a connect
phase lasts longer than that) and read everything they are sent.  Every process raises its
soft file limit to the hard one, which must be above ``--sockets`` (raising the hard limit
takes CAP_SYS_RESOURCE: ``ulimit -Hn 110000`` as root before running this; the script says
so and stops otherwise).  svc gets ``MAX_CONNECTIONS`` and ``MAX_SOCKETS_PER_USER`` to
match: the defaults (the file limit less 64, 32 per user) are protections this run lifts.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import shlex
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).parent


def raise_file_limit() -> None:
    """The soft file limit up to the hard one (raising the hard one takes CAP_SYS_RESOURCE:
    ``ulimit -Hn`` as root, or ``LimitNOFILE=`` in a systemd unit, before this runs)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# -- the client processes --------------------------------------------------------------------


class Client(asyncio.Protocol):
    """One WebSocket: handshake, then frames read as they come; pings answered."""

    __slots__ = ("transport", "buffer", "upgraded", "welcomed", "shared")

    def __init__(self, shared: Shared):
        self.transport = None
        self.buffer = b""
        self.upgraded = False
        self.welcomed = asyncio.get_running_loop().create_future()
        self.shared = shared

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            if b" 101 " not in buffer[: buffer.find(b"\r\n")]:
                self.welcomed.set_exception(RuntimeError(buffer[:200].decode(errors="replace")))
                return
            self.upgraded = True
            buffer = buffer[end + 4 :]
        at = 0
        while len(buffer) - at >= 2:
            first, second = buffer[at], buffer[at + 1]
            size, head = second & 0x7F, 2
            if size == 126:
                if len(buffer) - at < 4:
                    break
                size, head = int.from_bytes(buffer[at + 2 : at + 4], "big"), 4
            elif size == 127:
                if len(buffer) - at < 10:
                    break
                size, head = int.from_bytes(buffer[at + 2 : at + 10], "big"), 10
            if len(buffer) - at < head + size:
                break
            payload = buffer[at + head : at + head + size]
            at += head + size
            self.frame(first & 0x0F, payload)
        self.buffer = buffer[at:]

    def frame(self, opcode: int, payload: bytes) -> None:
        if opcode == 9:  # ping: a masked pong with the same payload
            mask = os.urandom(4)
            masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            self.transport.write(bytes((0x8A, 0x80 | len(payload))) + mask + masked)
        elif opcode == 1:
            if not self.welcomed.done():
                if b'"welcome"' in payload:
                    self.welcomed.set_result(None)
                return
            self.shared.heard(payload)

    def connection_lost(self, exc) -> None:
        if not self.welcomed.done():
            self.welcomed.set_exception(ConnectionError("closed before the welcome"))
        else:
            self.shared.lost += 1


class Shared:
    """What a client process's sockets report to: the needle watched for, who has it."""

    def __init__(self) -> None:
        self.needle = b"\x00none"
        self.count = 0
        self.last = 0.0
        self.lost = 0

    def watch(self, needle: bytes) -> None:
        self.needle, self.count, self.last = needle, 0, 0.0

    def heard(self, payload: bytes) -> None:
        if self.needle in payload:
            self.count += 1
            self.last = time.monotonic()


async def open_one(shared: Shared, host: str, port: int, source: str, path: str) -> Client:
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(
        lambda: Client(shared), host, port, local_addr=(source, 0)
    )
    key = base64.b64encode(os.urandom(16)).decode()
    client.transport.write(
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    await client.welcomed
    return client


async def client_main(args) -> None:
    """Told its paths, then what to do, on stdin, one JSON line each; answers on stdout."""
    shared = Shared()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    # The first line: this process's socket paths (too long for a command line at 25,000).
    paths = json.loads(await reader.readline())
    clients: list[Client] = []  # held: the sockets stay open until the process ends

    def say(**answer) -> None:
        print(json.dumps(answer), flush=True)

    # Not more handshakes at once than the smaller backlog holds (bare aiohttp listens with
    # 128): past it the kernel drops handshakes ("Possible SYN flooding" in dmesg) and
    # some clients were closed before their welcome.
    gate = asyncio.Semaphore(args.in_flight)

    async def one(path: str) -> Client:
        async with gate:
            return await open_one(shared, args.host, args.port, args.source, path)

    while line := await reader.readline():
        order = json.loads(line)
        if order["do"] == "connect":
            try:
                clients += await asyncio.gather(*(one(path) for path in paths))
            except Exception as exc:  # noqa: BLE001 - said to the orchestrator, which stops
                say(error=repr(exc))
                return
            say(done=time.monotonic())
        elif order["do"] == "watch":
            shared.watch(order["needle"].encode())
            say(watching=True)
        elif order["do"] == "report":
            say(count=shared.count, last=shared.last, lost=shared.lost)


# -- the orchestrator ------------------------------------------------------------------------


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def start_server(command: str, env: dict, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        shlex.split(command.replace("{port}", str(port))),
        env={**os.environ, "HOST": "127.0.0.1", "PORT": str(port), **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=raise_file_limit,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    sys.exit(f"{command!r} did not start")


def tcp_pages() -> int:
    """The pages of TCP buffers in use on the machine (/proc/net/sockstat)."""
    for line in Path("/proc/net/sockstat").read_text().splitlines():
        if line.startswith("TCP:"):
            fields = line.split()
            return int(fields[fields.index("mem") + 1])
    return 0


def quiet_tcp_memory(pages: int = 20_000, seconds: float = 60) -> None:
    """Wait (at most ``seconds``) until the machine's TCP buffers are below ``pages``."""
    deadline = time.monotonic() + seconds
    while tcp_pages() > pages and time.monotonic() < deadline:
        time.sleep(1)


def put(port: int, user: str, body: dict) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/users/{user}/profile",
        data=json.dumps(body).encode(),
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status in (200, 201), response.status


def ask(clients: list[subprocess.Popen], order: dict) -> list[dict]:
    line = (json.dumps(order) + "\n").encode()
    for client in clients:
        client.stdin.write(line)
        client.stdin.flush()
    answers = [
        json.loads(client.stdout.readline() or b'{"error": "client died"}') for client in clients
    ]
    for answer in answers:
        if "error" in answer:
            raise RuntimeError(
                f"a client process failed: {answer['error']} (TCP buffers in use: "
                f"{tcp_pages()} pages; see dmesg for 'TCP: out of memory')"
            )
    return answers


def paths_for(side: str, args) -> list[list[str]]:
    """Each client process's socket paths."""
    every: list[str] = []
    rooms = max(1, args.sockets // args.room_size)
    if side == "svc":
        every += [f"/ws/r{room}?user_id=star" for room in range(rooms)]
        every += [f"/ws/r{i % rooms}?user_id=m{i}" for i in range(args.sockets - rooms)]
    else:
        every += [f"/ws/r{i % rooms}" for i in range(args.sockets)]
    return [every[k :: args.clients] for k in range(args.clients)]


def one_round(side: str, command: str, env: dict, port: int, subnet: int, args) -> dict:
    # The machine's TCP buffers are shared (tcp_mem): another benchmark's crowd can fill
    # them, and sockets are then dropped at random.  Start when they are quiet.
    quiet_tcp_memory(seconds=300)
    server = start_server(command, env, port)
    clients: list[subprocess.Popen] = []
    try:
        put(port, "star", {"username": "star", "display_name": "warm"})  # the user, and warm
        time.sleep(1)
        before = rss(server.pid)
        for k, paths in enumerate(paths_for(side, args)):
            clients.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        __file__,
                        "--in-flight",
                        str(max(1, args.in_flight // args.clients)),
                        "--client",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--source",
                        f"127.0.{subnet}.{k + 2}",
                    ],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    preexec_fn=raise_file_limit,
                )
            )
            clients[-1].stdin.write((json.dumps(paths) + "\n").encode())
        started = time.monotonic()
        done = ask(clients, {"do": "connect"})
        connect_s = max(answer["done"] for answer in done) - started
        time.sleep(args.settle)
        grown = rss(server.pid) - before
        times = []
        for repeat in range(args.repeats):
            needle = f"n{repeat}x{time.time_ns()}"
            ask(clients, {"do": "watch", "needle": needle})
            sent = time.monotonic()
            put(port, "star", {"display_name": needle})
            deadline = time.monotonic() + 120
            while True:
                reports = ask(clients, {"do": "report"})
                if sum(r["count"] for r in reports) >= args.sockets or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            heard = sum(r["count"] for r in reports)
            if heard < args.sockets:
                raise RuntimeError(f"{side}: {heard} of {args.sockets} heard the update")
            times.append((max(r["last"] for r in reports) - sent) * 1000)
            time.sleep(1)
        lost = sum(r["lost"] for r in reports)
    finally:
        # The server first (closing 100,000 sockets politely takes long), while the clients
        # still read: sockets killed with data unread on both ends pile up in the kernel's
        # TCP memory (tcp_mem), and the next side's sockets were then dropped ("TCP: out of
        # memory" in dmesg).  Then wait for that memory to come back.
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
        time.sleep(2)
        for client in clients:
            client.kill()
            client.wait()
        quiet_tcp_memory()
    return {
        "side": side,
        "sockets": args.sockets,
        "connect_s": round(connect_s, 2),
        "rss_growth_mib": round(grown / 2**20, 1),
        "rss_per_socket": round(grown / args.sockets),
        "last_ms": round(statistics.median(times), 1),
        "last_ms_all": [round(t, 1) for t in times],
        "lost": lost,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sockets", type=int, default=100_000)
    parser.add_argument("--room-size", type=int, default=100)
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="updates per round")
    parser.add_argument("--settle", type=float, default=5)
    parser.add_argument("--svc", default=f"{sys.executable} -m svc")
    parser.add_argument(
        "--bare",
        default=f"{sys.executable} {HERE / 'ceilings' / 'bare.py'} --port {{port}} --uvloop",
    )
    parser.add_argument("--port", type=int, default=int(os.environ.get("BENCH_PORT", "18080")))
    parser.add_argument(
        "--in-flight", type=int, default=128, help="handshakes at once, over all client processes"
    )
    parser.add_argument("--out")
    # a client process (started by the orchestrator)
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--host", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
        asyncio.run(client_main(args))
        return
    if args.sockets // args.clients > 25_000:
        sys.exit("at most 25,000 sockets per client process (ephemeral ports per address)")
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < args.sockets + 200:
        sys.exit(
            f"the hard file limit is {hard}: one server process cannot hold {args.sockets} "
            f"sockets. Raise it first (as root: ulimit -Hn {args.sockets + 1000}), or ask for "
            f"fewer (--sockets {hard - 1000})"
        )
    rooms = max(1, args.sockets // args.room_size)
    svc_env = {
        "BCRYPT_ROUNDS": "12",
        "MAX_CONNECTIONS": str(args.sockets + 1000),
        "MAX_SOCKETS_PER_USER": str(rooms + 10),
    }
    sides = {"svc": (args.svc, svc_env, args.port), "bare": (args.bare, {}, args.port + 1)}
    results = []
    subnet = 10 + int(time.time()) % 100  # another run soon after meets no TIME_WAIT either
    for number in range(args.rounds):
        order = ("svc", "bare") if number % 2 == 0 else ("bare", "svc")
        for side in order:
            subnet += 1
            command, env, port = sides[side]
            got = one_round(side, command, env, port, subnet, args)
            got["round"] = number + 1
            results.append(got)
            print(json.dumps(got), flush=True)
            if args.out:
                with open(args.out, "a") as out:
                    out.write(json.dumps(got) + "\n")
    print(f"\n{'figure':<16} {'svc median [min-max]':>28} {'bare median [min-max]':>28}  svc/bare")
    for key in ("connect_s", "rss_per_socket", "rss_growth_mib", "last_ms"):
        line = f"{key:<16}"
        medians = []
        for side in ("svc", "bare"):
            values = [r[key] for r in results if r["side"] == side]
            medians.append(statistics.median(values))
            line += f" {medians[-1]:>12g} [{min(values):g}-{max(values):g}]".rjust(29)
        print(f"{line}  {medians[0] / medians[1]:.3f}")


if __name__ == "__main__":
    main()
