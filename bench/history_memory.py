"""Memory per room of a full history (ROOM_HISTORY events), on the memory broker and in Redis.

    python bench/history_memory.py [--rooms 1000] [--size 100] [--data 100] [--redis URL]

Memory broker: ``--rooms`` rooms each given ``--size`` messages of ``--data`` bytes of JSON
text through the broker's own numbering (svc/broker/history.py), measured with tracemalloc:
bytes per room.  Redis (``--redis``, a prefix of its own is used and deleted): the same
messages through the broker's MESSAGE script, then ``MEMORY USAGE`` of one room's history,
epoch and counter keys.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import tracemalloc

from svc.broker import RoomMessage
from svc.broker.memory import MemoryBroker
from svc.testing import unique_id


class _Quiet:
    def on_change(self, change) -> None: ...
    def on_message(self, message) -> None: ...
    def on_presence(self, change) -> None: ...
    def on_gap(self) -> None: ...


def _data(size: int) -> str:
    return json.dumps({"text": "x" * max(0, size - 11)})


async def memory_broker(rooms: int, size: int, data: str) -> float:
    broker = MemoryBroker(f"memory://{unique_id('bench')}")
    broker.history_size = size
    await broker.open(_Quiet())
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for room in range(rooms):
        for _ in range(size):
            await broker.publish_message(RoomMessage(f"room{room}", "sender-1", data))
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    await broker.close()
    return (after - before) / rooms


async def redis_broker(url: str, size: int, data: str) -> int:
    import redis.asyncio as aioredis
    from svc_redis import RedisBroker

    prefix = unique_id("bench-history-")
    broker = RedisBroker(f"{url}?prefix={prefix}")
    broker.history_size = size
    await broker.open(_Quiet())
    try:
        for _ in range(size):
            await broker.publish_message(RoomMessage("room0", "sender-1", data))
        client = aioredis.Redis.from_url(url)
        total = 0
        for key in ("hist", "epoch", "seq"):
            total += await client.memory_usage(f"{prefix}:{key}:room0") or 0
        async for key in client.scan_iter(match=f"{prefix}:*"):
            await client.delete(key)
        await client.aclose()
        return total
    finally:
        await broker.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rooms", type=int, default=1000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--data", type=int, default=100, help="bytes of a message's JSON data")
    parser.add_argument("--redis", help="a Redis URL (no query) to measure there too")
    args = parser.parse_args()
    data = _data(args.data)
    per_room = await memory_broker(args.rooms, args.size, data)
    print(
        f"memory broker: {per_room:,.0f} B per room of {args.size} messages "
        f"({len(data)} B of data each; {per_room / args.size:,.0f} B per event)"
    )
    if args.redis:
        used = await redis_broker(args.redis, args.size, data)
        per_event = used / args.size
        print(f"redis: {used:,} B per room of {args.size} messages ({per_event:,.0f} B per event)")


if __name__ == "__main__":
    asyncio.run(main())
