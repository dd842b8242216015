"""Publishing in the order of the calls, however many are in flight.

Concurrent PUBLISHes on a pool of connections could reach Redis in any order,
and the broker's rule is that each instance's changes and messages arrive in
the order it published them.  So the ordered publisher of :mod:`svc.broker.pubsub`
sends whatever is waiting as one pipeline on one connection (Redis runs it in
order), then the next batch: order is kept, and a burst costs one round trip per
batch, not per publish.

Bounded: a batch is given ``timeout`` seconds.  When it fails for lack of
Redis, everything waiting fails at once, and so does every publish for the
next ``timeout`` seconds, so write requests do not queue up behind a Redis
known to be down.
"""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from svc.broker import BrokerUnavailable
from svc.broker.pubsub import OneInFlight


class Publisher:
    def __init__(self, client: aioredis.Redis, channel: str, timeout: float, where: str):
        self._client = client
        self._channel = channel
        self._timeout = timeout
        self._where = where
        #: a payload to PUBLISH, or (script, args) to run (a numbered event: its result)
        self._batches: OneInFlight[str | tuple, object] = OneInFlight(
            self._write, "svc-redis-publisher"
        )
        #: monotonic time before which publishes fail at once (Redis was just found down)
        self._down_until = 0.0
        self._closed = False
        #: for /metrics: pipelines sent, and events they carried
        self.batches = 0
        self.published = 0

    def redis_is_back(self) -> None:
        self._down_until = 0.0

    async def publish(self, payload: str) -> None:
        await self.run(payload)

    async def run(self, item: str | tuple):
        """PUBLISH a payload, or run ``(script, args)``, in call order; its result."""
        if self._closed:
            raise BrokerUnavailable("the broker is closed")
        self._check_up()
        return await self._batches.add(item)

    async def close(self) -> None:
        self._closed = True
        await self._batches.cancel(self._timeout + 1)

    def _check_up(self) -> None:
        if time.monotonic() < self._down_until:
            raise BrokerUnavailable(f"redis {self._where} is down")

    async def _write(self, batch: list) -> list:
        self._check_up()  # found down while this batch waited: it fails at once
        pipe = self._client.pipeline(transaction=False)
        for item in batch:
            if isinstance(item, str):
                pipe.publish(self._channel, item)
            else:
                script, args = item
                await script(args=args, client=pipe)  # queued in the pipeline
        try:
            results = await asyncio.wait_for(pipe.execute(), self._timeout)
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            self._down_until = time.monotonic() + self._timeout
            reason = str(exc) or "timed out"
            raise BrokerUnavailable(f"redis {self._where}: {reason}") from None
        self.batches += 1
        self.published += len(batch)
        return results
