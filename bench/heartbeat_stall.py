"""The longest the event loop is held while the heartbeat pings sockets that went quiet
together: svc's sweep (svc.rooms.connection.beat_forever) over ``--sockets`` connections.

    python bench/heartbeat_stall.py [--sockets 8000] [--heartbeat 30] [--rounds 3]

Each connection writes to one end of a socketpair on uvloop (as svc runs), and every one of
them has been quiet for longer than ``--heartbeat``, so the next sweep pings them all.  A
ticker task sleeps 1 ms over and over; the figure is the longest it overslept while one
sweep ran (timer resolution: 1 ms).  Run it against another tree with ``PYTHONPATH=`` (a
``git archive`` of it) and ``python -P``.  Needs ``ulimit -n`` above twice ``--sockets``.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics

import uvloop

from svc.rooms.connection import SWEEPS, Connection, Shared, beat_forever
from svc.rooms.limits import RoomSettings, RoomStats
from svc.rooms.send_budget import SendBudget


async def longest_stall(sockets: int, heartbeat: float) -> tuple[float, int]:
    """(longest loop stall in seconds during one sweep, sockets that got a ping)."""
    loop = asyncio.get_running_loop()
    limits = RoomSettings()
    limits.heartbeat = heartbeat
    shared = Shared(limits, loop.create_task, RoomStats(), SendBudget(limits))
    peers, conns = [], []
    for i in range(sockets):
        ours, theirs = socket.socketpair()
        peers.append(theirs)
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
        conn = Connection("r", f"m{i}", shared)
        conn.start(None, transport, b"")
        conn.seen = loop.time() - 2 * heartbeat  # quiet for longer than an interval
        conns.append(conn)
    stalls: list[float] = []

    async def tick() -> None:
        while True:
            started = loop.time()
            await asyncio.sleep(0.001)
            stalls.append(loop.time() - started - 0.001)

    ticker = loop.create_task(tick())
    beat = loop.create_task(beat_forever(limits, lambda: conns))
    await asyncio.sleep(heartbeat / SWEEPS + 0.2)  # one sweep, whole
    beat.cancel()
    ticker.cancel()
    pinged = 0
    for peer in peers:
        peer.setblocking(False)
        try:
            pinged += bool(peer.recv(1024))
        except BlockingIOError:
            pass
        peer.close()
    for conn in conns:
        conn.abort()
    return max(stalls), pinged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=8000)
    parser.add_argument("--heartbeat", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    stalls = []
    for _ in range(args.rounds):
        stall, pinged = uvloop.run(longest_stall(args.sockets, args.heartbeat))
        if pinged != args.sockets:
            raise SystemExit(f"{pinged} of {args.sockets} sockets were pinged")
        stalls.append(stall * 1000)
    print(
        f"{args.sockets} quiet sockets pinged by one sweep: longest loop stall "
        f"{statistics.median(stalls):.1f} ms [{min(stalls):.1f}-{max(stalls):.1f}]"
    )


if __name__ == "__main__":
    main()
