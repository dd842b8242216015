"""CPU per Redis pub/sub message received, the way svc's subscriber reads them, on uvloop.

    python bench/pubsub_receive.py [--redis-url redis://127.0.0.1:6379/6] [--messages 20000]

A subscriber process reads ``--messages`` change-sized payloads that this process
publishes in pipelines of ``--batch`` (as svc's publisher sends a burst), and reports its
own CPU time per message, for each way of reading, alternated ``--rounds`` times:

- ``get_message``: ``PubSub.get_message(timeout=1.0)`` in a loop (svc's subscriber:
  ``plugins/svc_redis/subscriber.py``, whose timeout lets it ping, notice silence and
  re-open);
- ``listen``: ``PubSub.listen()``, which blocks without a timeout.

With ``WORKERS=n`` every worker receives every change: this is what a worker pays for each
change of another worker (bench/README.md, "where the extra CPU per PUT goes").
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

PAYLOAD = (
    b'{"t":"c","id":"u123","v":5,"n":"host-1-abc","u":{"p":{"username":"user123",'
    b'"display_name":"n1234"},"c":"2026-12-06T10:00:00+00:00","m":"2026-12-06T10:00:01+00:00"}}'
)


async def subscribe(url: str, channel: str, mode: str, messages: int) -> None:
    import redis.asyncio as aioredis

    pubsub = aioredis.Redis.from_url(url).pubsub()
    await pubsub.subscribe(channel)
    await pubsub.get_message(timeout=5)  # the confirmation
    print("ready", flush=True)
    got, started = 0, None
    if mode == "listen":
        async for message in pubsub.listen():
            if message["type"] == "message":
                started = started or time.process_time()
                got += 1
                if got >= messages:
                    break
    else:
        while got < messages:
            message = await pubsub.get_message(timeout=1.0)
            if message is not None and message["type"] == "message":
                started = started or time.process_time()
                got += 1
    print(f"{(time.process_time() - started) / (messages - 1) * 1e6:.1f}", flush=True)


async def publish(url: str, channel: str, messages: int, batch: int) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    for _ in range(0, messages, batch):
        pipe = client.pipeline(transaction=False)
        for _ in range(batch):
            pipe.publish(channel, PAYLOAD)
        await pipe.execute()
    await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/6")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--subscriber", choices=["get_message", "listen"], help=argparse.SUPPRESS)
    parser.add_argument("--channel", help=argparse.SUPPRESS)
    args = parser.parse_args()
    import uvloop

    if args.subscriber:
        uvloop.run(subscribe(args.redis_url, args.channel, args.subscriber, args.messages))
        return
    channel = f"bench-pubsub-receive-{os.getpid()}"
    figures: dict[str, list[float]] = {"get_message": [], "listen": []}
    for _ in range(args.rounds):
        for mode in figures:
            sub = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--subscriber",
                    mode,
                    "--channel",
                    channel,
                    "--redis-url",
                    args.redis_url,
                    "--messages",
                    str(args.messages),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert sub.stdout.readline().strip() == "ready"
            uvloop.run(publish(args.redis_url, channel, args.messages, args.batch))
            figures[mode].append(float(sub.stdout.readline()))
            sub.wait()
    for mode, values in figures.items():
        values.sort()
        print(
            f"{mode:<12} µs CPU per message received: median {values[len(values) // 2]:.1f} "
            f"[{values[0]:.1f}-{values[-1]:.1f}]"
        )


if __name__ == "__main__":
    main()
