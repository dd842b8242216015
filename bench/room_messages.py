"""Room messages from many senders on one svc process: how many a second reach a member of
the room there and one on a second process, and how long one takes at a moderate rate.

    python bench/room_messages.py --database-url postgresql://…/svc_bench \
        --redis-url redis://127.0.0.1:6379/9 [--tree NAME=PATH ...] [--rounds 3]

Sides, each round, each on fresh servers:

  memory    one process, memory storage and memory broker (a memory broker is one process)
  redis     two processes, Postgres storage, Redis broker (a key prefix per side and round)
  postgres  two processes, Postgres storage and Postgres broker

On each side, --senders members (``s0``…) and the receiver ``r0`` join one room on the
first process, and ``r1`` on the second.  Then:

- **burst**: every sender sends --per-sender messages at once (at most the frame burst of
  100, so the rate limit of 50 frames/s per user never refuses one and ``frame_rate`` stays
  as shipped).  Messages a second = messages / the time from the first send until the
  receiver has the last one; ``r0`` is on the senders' process, ``r1`` on the other.  The
  two receivers' orders (by ``seq``) are compared: any difference, loss or duplicate is
  printed and fails the run.
- **latency**: the senders together send --rate messages a second (each sender well under
  its limit) for --seconds s; each carries its send time: median and p99 ms until ``r0``
  and ``r1`` have it.

--tree NAME=PATH (repeatable): run the servers from the source tree at PATH
(``git archive COMMIT | tar -x -C PATH``), with ``PYTHONPATH=PATH:PATH/plugins``; the trees
alternate within every round, so their figures are side by side.  Default: this checkout.
The ratio column is the median of the per-round ratios of each tree to the first one.

Every loop is bounded in count and time; the servers listen on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fanout_two import forget, start, stop, with_prefix  # noqa: E402  (bench/ is not a package)
from load import MiniWS  # noqa: E402

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Receiver:
    """A member that parses every message it is sent and notes when each arrived."""

    def __init__(self, ws: MiniWS):
        self.ws = ws
        self.seqs: list[tuple[int | None, str]] = []  # (seq, data) in arrival order
        self.arrived: dict[str, float] = {}  # data's id → perf_counter at arrival
        self.sent_at: dict[str, float] = {}  # data's id → the send time it carried
        self.wanted: set[str] = set()
        self.all_in = asyncio.Event()
        self.task = asyncio.ensure_future(self._read())

    def expect(self, ids: set[str]) -> None:
        self.wanted = set(ids)
        self.all_in.clear()

    async def _read(self) -> None:
        while True:
            payload = await self.ws.frame()
            if b'"type":"message"' not in payload[:40]:
                continue
            frame = json.loads(payload)
            data = frame["data"]
            key = data["id"]
            if key in self.arrived:
                raise AssertionError(f"duplicate message {key}")
            self.arrived[key] = time.perf_counter()
            if "at" in data:
                self.sent_at[key] = data["at"]
            self.seqs.append((frame.get("seq"), key))
            self.wanted.discard(key)
            if not self.wanted:
                self.all_in.set()


async def joined(port: int, room: str, user: str) -> MiniWS:
    ws = await MiniWS.connect("127.0.0.1", port, f"/ws/{room}?user_id={user}")
    while b'"welcome"' not in await ws.frame():
        pass
    return ws


async def measure(ports: list[int], args) -> dict:
    room = f"msgs{time.time_ns()}"
    receivers = [Receiver(await joined(ports[0], room, "r0"))]
    if len(ports) > 1:
        receivers.append(Receiver(await joined(ports[1], room, "r1")))
    senders = await asyncio.gather(*(joined(ports[0], room, f"s{n}") for n in range(args.senders)))
    for ws in senders:
        ws.drain_watching(b"\0never")  # read all they are sent, parse none
    await asyncio.sleep(args.settle)  # the join burst's presence frames go by
    result: dict = {}
    try:
        if args.no_burst:
            await _latency(senders, receivers, result, args)
            return result
        # -- burst ------------------------------------------------------------------
        ids = {f"b{n}.{k}" for n in range(args.senders) for k in range(args.per_sender)}
        for receiver in receivers:
            receiver.expect(ids)
        started = time.perf_counter()
        for n, ws in enumerate(senders):
            for k in range(args.per_sender):
                ws.send_text(f'{{"type":"message","data":{{"id":"b{n}.{k}"}}}}')
        await asyncio.wait_for(asyncio.gather(*(r.all_in.wait() for r in receivers)), 60)
        for name, receiver in zip(("here", "other"), receivers, strict=False):
            last = max(receiver.arrived[key] for key in ids)
            result[f"burst_msgs_per_s_{name}"] = round(len(ids) / (last - started))
        orders = [[key for _, key in r.seqs if key in ids] for r in receivers]
        if len(orders) > 1 and orders[0] != orders[1]:
            sys.exit("the two processes heard the burst in different orders")
        for n in range(args.senders):  # each sender's own messages in the order sent
            own = [key for key in orders[0] if key.startswith(f"b{n}.")]
            if own != [f"b{n}.{k}" for k in range(args.per_sender)]:
                sys.exit(f"sender s{n}'s messages arrived out of order")
        await asyncio.sleep(args.per_sender / 50 + 0.5)  # the senders' buckets refill
        await _latency(senders, receivers, result, args)
    finally:
        for receiver in receivers:
            receiver.task.cancel()
            receiver.ws.close()
        for ws in senders:
            ws.close()
    return result


async def _latency(senders: list[MiniWS], receivers: list[Receiver], result: dict, args) -> None:
    """The senders together send --rate messages a second: ms from send to delivery."""
    count = int(args.rate * args.seconds)
    ids = {f"l{i}" for i in range(count)}
    for receiver in receivers:
        receiver.expect(ids)
    gap = 1 / args.rate
    begin = time.perf_counter()
    for i in range(count):
        delay = begin + i * gap - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        at = time.perf_counter()
        senders[i % len(senders)].send_text(
            f'{{"type":"message","data":{{"id":"l{i}","at":{at}}}}}'
        )
    await asyncio.wait_for(asyncio.gather(*(r.all_in.wait() for r in receivers)), 60)
    for name, receiver in zip(("here", "other"), receivers, strict=False):
        lags = sorted((receiver.arrived[k] - receiver.sent_at[k]) * 1000 for k in ids)
        result[f"latency_ms_p50_{name}"] = round(statistics.median(lags), 2)
        result[f"latency_ms_p99_{name}"] = round(lags[int(len(lags) * 0.99) - 1], 2)


def side(kind: str, tree: str, number: int, args) -> dict:
    # PYTHONPATH for every tree, this one too: each side imports its code the same way
    env = {"BCRYPT_ROUNDS": "4", "LOG_LEVEL": "WARNING", "PYTHONPATH": f"{tree}:{tree}/plugins"}
    prefix = None
    if kind == "memory":
        env.update(DATABASE_URL="memory://", BROKER_URL="memory://")
        processes = 1
    elif kind == "redis":
        prefix = f"msgs-{number}-{os.getpid()}-{time.time_ns()}"
        env.update(DATABASE_URL=args.database_url, BROKER_URL=with_prefix(args.redis_url, prefix))
        processes = 2
    else:
        env.update(DATABASE_URL=args.database_url, BROKER_URL=args.database_url)
        processes = 2
    ports = [args.port + n for n in range(processes)]
    procs = []
    try:
        for port in ports:
            procs.append(start(args.server, env, port))
        return asyncio.run(measure(ports, args))
    finally:
        for proc in procs:
            stop(proc)
        if prefix:
            asyncio.run(forget(args.redis_url, prefix))


def fmt(values: list[float]) -> str:
    if not values:
        return "-"
    num = lambda v: f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"  # noqa: E731
    return f"{num(statistics.median(values))} [{num(min(values))}-{num(max(values))}]"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--redis-url", required=True, help="redis://host:port/db")
    parser.add_argument("--server", default=f"{sys.executable} -m svc")
    parser.add_argument("--tree", action="append", default=[], help="NAME=PATH (repeatable)")
    parser.add_argument("--sides", default="memory,redis,postgres")
    parser.add_argument("--port", type=int, default=18190)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--senders", type=int, default=20)
    parser.add_argument("--per-sender", type=int, default=100, help="at most the burst, 100")
    parser.add_argument("--rate", type=float, default=200.0, help="latency: messages/s")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--settle", type=float, default=1.0)
    parser.add_argument("--no-burst", action="store_true", help="the latency alone")
    parser.add_argument("--out")
    args = parser.parse_args()
    trees = [tuple(item.split("=", 1)) for item in args.tree] or [("this", HERE)]
    sides = args.sides.split(",")
    print(
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; {args.senders} senders x "
        f"{args.per_sender}, latency at {args.rate:g}/s; trees {[n for n, _ in trees]}; "
        f"load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    figures: dict[tuple[str, str], list[dict]] = {}
    for number in range(1, args.rounds + 1):
        for kind in sides:
            # alternate which tree goes first, so neither always runs on a warmer machine
            order = trees if number % 2 else trees[::-1]
            for name, path in order:
                load1 = os.getloadavg()[0]
                result = side(kind, os.path.abspath(path), number, args)
                figures.setdefault((kind, name), []).append(result)
                print(f"round {number} {kind:<8} {name:<8} (load {load1:.2f}) {json.dumps(result)}")
                if args.out:
                    with open(args.out, "a") as out:
                        row = {"round": number, "side": kind, "tree": name, "load1": load1}
                        out.write(json.dumps({**row, **result}) + "\n")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}\n")
    first = trees[0][0]
    for kind in sides:
        for key in figures[(kind, first)][0]:
            cells = []
            for name, _ in trees:
                values = [r[key] for r in figures[(kind, name)] if key in r]
                cells.append(f"{name} {fmt(values)}")
                if name != first:
                    pairs = zip(figures[(kind, first)], figures[(kind, name)], strict=True)
                    ratios = [b[key] / a[key] for a, b in pairs if a.get(key) and b.get(key)]
                    cells.append(f"{name}/{first} {statistics.median(ratios):.3f}")
            print(f"{kind:<8} {key:<24} " + "   ".join(cells))


if __name__ == "__main__":
    main()
