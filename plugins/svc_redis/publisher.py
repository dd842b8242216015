"""Publishing in the order of the calls, however many are in flight.

Concurrent PUBLISHes on a pool of connections could reach Redis in any order,
and the broker's rule is that each instance's changes and messages arrive in
the order it published them.  So one writer task sends whatever is waiting
as one pipeline on one connection (Redis runs it in order), then the next
batch: order is kept, and a burst costs one round trip per batch, not per
publish.

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

from svc.storage import Unavailable


class Publisher:
    def __init__(self, client: aioredis.Redis, channel: str, timeout: float, where: str):
        self._client = client
        self._channel = channel
        self._timeout = timeout
        self._where = where
        self._waiting: list[tuple[str, asyncio.Future]] = []
        self._writer: asyncio.Task | None = None
        #: monotonic time before which publishes fail at once (Redis was just found down)
        self._down_until = 0.0
        #: for /metrics: pipelines sent, and events they carried
        self.batches = 0
        self.published = 0

    def redis_is_back(self) -> None:
        self._down_until = 0.0

    async def publish(self, payload: str) -> None:
        if time.monotonic() < self._down_until:
            raise Unavailable(f"redis {self._where} is down")
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((payload, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name="svc-redis-publisher")
        await done

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.cancel()
            await asyncio.wait([writer], timeout=self._timeout + 1)
        self._fail(self._take(), Unavailable("the broker is closed"))

    def _take(self) -> list[tuple[str, asyncio.Future]]:
        batch, self._waiting = self._waiting, []
        return batch

    async def _write(self) -> None:
        while self._waiting:
            batch = self._take()
            if time.monotonic() < self._down_until:
                self._fail(batch, Unavailable(f"redis {self._where} is down"))
                continue
            pipe = self._client.pipeline(transaction=False)
            for payload, _ in batch:
                pipe.publish(self._channel, payload)
            try:
                await asyncio.wait_for(pipe.execute(), self._timeout)
            except (RedisError, OSError, asyncio.TimeoutError) as exc:
                self._down_until = time.monotonic() + self._timeout
                reason = str(exc) or "timed out"
                self._fail(batch, Unavailable(f"redis {self._where}: {reason}"))
                continue
            except BaseException as exc:
                self._fail(batch, Unavailable(f"redis {self._where}: {exc!r}"))
                raise
            self.batches += 1
            self.published += len(batch)
            for _, done in batch:
                if not done.done():
                    done.set_result(None)

    @staticmethod
    def _fail(batch: list[tuple[str, asyncio.Future]], exc: Exception) -> None:
        for _, done in batch:
            if not done.done():
                done.set_exception(exc)
