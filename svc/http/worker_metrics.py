"""``GET /metrics`` for the whole service when it runs as several worker processes.

Each worker keeps its figures as one process does (svc.http.metrics: plain counts
read at scrape time, nothing shared on the request path), and writes them, in the
Prometheus text format, to a file of its own in a directory the workers share
(``<worker>.<pid>.prom``): every :data:`INTERVAL` seconds, and at each scrape it
answers.  A scrape reads every worker's file and answers for the whole service:

- counters and histograms summed over the workers, those that died included (their
  last file stays, so a restart is not a counter reset; at most :data:`INTERVAL`
  seconds of a dead worker's counts are lost);
- gauges (open sockets, rooms, queued hashes, broker figures) per live worker, with
  a ``worker`` label: the worker's number under ``WORKERS``, its pid under Gunicorn.

This is prometheus-client's multiprocess mode done the other way round: its mode
writes to a shared memory-mapped file at every increment (a lock and a write per
request, which svc's histogram was made to avoid: svc.http.metrics), where this
writes each worker's whole text once a second.  A figure of another worker is at
most that old; the worker answering is exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from ..keys import METRICS

log = logging.getLogger(__name__)

#: Seconds between two writes of a worker's figures.
INTERVAL = 1.0
#: Families whose samples add up across workers; the rest (gauges) are labelled by worker.
SUMMED = ("counter", "histogram", "summary")


class WorkerMetrics:
    """One worker's side: its file in ``directory``, and the whole service's answer."""

    def __init__(self, directory: Path, worker: str):
        self.directory = directory
        self.worker = worker
        self.path = directory / f"{worker}.{os.getpid()}.prom"

    def render(self, own: bytes) -> bytes:
        """The whole service's figures, this worker's own (``own``) fresh."""
        self.write(own)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Merged(self._read_all()))
        return generate_latest(registry)

    def write(self, own: bytes) -> None:
        # Whole or not at all: a reader never sees half a file.
        part = self.path.with_suffix(".part")
        part.write_bytes(own)
        os.replace(part, self.path)

    def clear_up(self) -> None:
        """This worker's file and those of dead workers removed, and the folder with them
        once the last live worker does the same."""
        for path in self.directory.glob("*.prom"):
            if path == self.path or not _alive(path.stem.rpartition(".")[2]):
                path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # another worker's file is still there
            self.directory.rmdir()

    def _read_all(self) -> Iterator[tuple[str, bool, str]]:
        """(worker, alive, text) of each worker that wrote a file, this one first."""
        yield self.worker, True, self.path.read_text()
        for path in sorted(self.directory.glob("*.prom")):
            if path == self.path:
                continue
            worker, _, pid = path.stem.rpartition(".")
            try:
                text = path.read_text()
            except FileNotFoundError:  # replaced as we listed
                continue
            yield worker, _alive(pid), text


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


class _Merged(Collector):
    def __init__(self, workers: Iterator[tuple[str, bool, str]]):
        self._workers = workers

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        sums: dict[str, dict[tuple, float]] = {}
        for worker, alive, text in self._workers:
            for family in text_string_to_metric_families(text):
                merged = families.get(family.name)
                if merged is None:
                    merged = families[family.name] = Metric(
                        family.name, family.documentation, family.type
                    )
                    sums[family.name] = {}
                if family.type in SUMMED:
                    totals = sums[family.name]
                    for sample in family.samples:
                        key = (sample.name, tuple(sample.labels.items()))
                        totals[key] = totals.get(key, 0.0) + sample.value
                elif alive:  # a dead worker has no sockets, rooms or queue
                    for sample in family.samples:
                        merged.add_sample(
                            sample.name, {**sample.labels, "worker": worker}, sample.value
                        )
        for name, merged in families.items():
            for (sample_name, labels), value in sums[name].items():
                merged.add_sample(sample_name, dict(labels), value)
            yield merged


def share(
    app: web.Application, directory: str, worker: str, parent_is_gone: Callable[[], bool]
) -> None:
    """Make ``app``'s /metrics answer for every worker writing to ``directory``.

    ``parent_is_gone``: the wiring's word that the process which started this worker died
    (svc.workers), then nobody will read the folder again."""
    shared = WorkerMetrics(Path(directory), worker)
    app[METRICS].shared = shared
    parent = os.getppid()

    async def writing(app: web.Application) -> AsyncIterator[None]:
        metrics = app[METRICS]
        task = asyncio.create_task(_write_every(metrics, shared), name="svc-worker-metrics")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if parent_is_gone() or os.getppid() != parent:
            # The parent was killed: nobody will read the folder again, nor remove it.
            shared.clear_up()
        else:
            shared.write(metrics.own())  # the last counts, for the sums after this worker

    app.cleanup_ctx.append(writing)


async def _write_every(metrics, shared: WorkerMetrics) -> None:
    while True:
        try:
            shared.write(metrics.own())
        except OSError as exc:  # the directory went away: say so, keep serving
            log.warning("could not write this worker's metrics (%s)", exc)
        await asyncio.sleep(INTERVAL)
