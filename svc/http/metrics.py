"""``GET /metrics``: the Prometheus text format (prometheus-client).

Each application has a registry of its own (tests run many apps in one
process).  The request histogram is the only thing touched per request: plain
counts per (route, method, status) and bucket, an observation a dict lookup, a
bisect and two adds on the event loop, made cumulative at scrape time
(prometheus-client's ``Histogram`` took a lock per bucket and cost ~3 % of a
GET).  Everything else (sockets, rooms, fan-out, closes,
presence batches, the hashing queue, storage and broker errors, the broker's
own figures such as the Postgres change feed's lag, the garbage collector's
passes) is read from counters the parts keep anyway, at scrape time, by one
collector.
"""

from __future__ import annotations

import gc
from bisect import bisect_left
from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from ..keys import BROKER, CONNECTIONS, HUB, LOGIN_THROTTLE, METRICS, PASSWORDS
from . import routing
from .operation import Reply, documented

#: Buckets for request durations, in seconds: from a cached GET to a bcrypt hash.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Counters:
    """Plain counters the HTTP layer bumps on errors (ints: no lock, no label lookup)."""

    __slots__ = ("storage_errors",)

    def __init__(self) -> None:
        self.storage_errors = 0


class Metrics:
    def __init__(self, app: web.Application):
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = RequestHistogram()
        self.counters = Counters()
        self.registry.register(self.requests)
        self.registry.register(_StateCollector(app, self.counters))
        #: Under several workers, the service's figures (svc.http.worker_metrics).
        self.shared = None

    def own(self) -> bytes:
        """This process's figures."""
        return generate_latest(self.registry)

    def render(self) -> bytes:
        """What ``GET /metrics`` answers: this process's figures, or the service's."""
        own = generate_latest(self.registry)
        return own if self.shared is None else self.shared.render(own)


class RequestHistogram(Collector):
    """``svc_http_request_duration_seconds`` by route, method and status."""

    NAME = "svc_http_request_duration_seconds"

    def __init__(self) -> None:
        #: (resource or None, method, status) → [sum, count in bucket 0, …, count above all]
        self._series: dict[tuple, list] = {}

    def observe(self, resource, method: str, status: int, duration: float) -> None:
        key = (resource, method, status)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = [0.0] + [0] * (len(BUCKETS) + 1)
        series[0] += duration
        series[1 + bisect_left(BUCKETS, duration)] += 1  # bucket ``le`` holds d <= le

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(
            self.NAME,
            "HTTP requests by route, method and status, and how long they took",
            labels=["route", "method", "status"],
        )
        for (resource, method, status), series in self._series.items():
            route = resource.canonical if resource is not None else "unmatched"
            cumulative, buckets = 0, []
            for bound, count in zip((*BUCKETS, float("inf")), series[1:], strict=True):
                cumulative += count
                buckets.append((floatToGoString(bound), cumulative))
            family.add_metric([route, method, str(status)], buckets, series[0])
        yield family


class _StateCollector(Collector):
    """Reads the service's state at scrape time."""

    def __init__(self, app: web.Application, counters: Counters):
        self._app = app
        self._counters = counters

    def collect(self) -> Iterator[Metric]:
        app = self._app
        hub = app[HUB]
        stats = hub.stats
        yield GaugeMetricFamily(
            "svc_websocket_connections", "Open WebSocket connections", value=hub.connection_count()
        )
        yield GaugeMetricFamily("svc_rooms", "Rooms with a connection here", value=hub.room_count())
        yield CounterMetricFamily(
            "svc_frames_fanned_out",
            "Frames written to sockets by the rooms",
            value=stats.frames_sent,
        )
        closed = CounterMetricFamily(
            "svc_websocket_closed", "Sockets closed by the server, by reason", labels=["reason"]
        )
        closed.add_metric(["backlog"], stats.closed_backlog)
        closed.add_metric(["flood"], stats.closed_flood)
        closed.add_metric(["send_budget"], stats.closed_budget)
        closed.add_metric(["too_many_sockets"], stats.closed_per_user)
        closed.add_metric(["token_expired"], stats.closed_token_expired)
        closed.add_metric(["password_set"], stats.closed_password_set)
        yield closed
        yield GaugeMetricFamily(
            "svc_websocket_send_buffer_bytes",
            "Bytes waiting for slow WebSocket consumers together, as last seen (an upper "
            "bound; SEND_BUFFER_BUDGET bounds it)",
            value=hub.send_budget.total,
        )
        yield CounterMetricFamily(
            "svc_presence_batches",
            "Presence frames sent (one per room per window)",
            value=stats.presence_batches,
        )
        resumes = CounterMetricFamily(
            "svc_websocket_resumes",
            "Welcomes that asked to resume (?since=), by whether they did",
            labels=["resumed"],
        )
        resumes.add_metric(["true"], stats.resumed)
        resumes.add_metric(["false"], stats.not_resumed)
        yield resumes
        passwords = app[PASSWORDS]
        yield GaugeMetricFamily(
            "svc_password_hashes_queued",
            "Password hashes waiting for a thread",
            value=passwords.queued,
        )
        yield GaugeMetricFamily(
            "svc_password_hashes_in_flight",
            "Password hashes being computed",
            value=passwords.in_flight,
        )
        yield CounterMetricFamily(
            "svc_storage_errors",
            "Requests answered 503 because storage was unavailable",
            value=self._counters.storage_errors,
        )
        yield CounterMetricFamily(
            "svc_broker_errors",
            "Changes or messages the broker could not take, and requests it failed (503, 4503)",
            value=app[BROKER].errors,
        )
        throttled = CounterMetricFamily(
            "svc_logins_throttled",
            "Password attempts refused with 429, by the budget that refused them "
            "(client_username: one client at one account; client: one client in all)",
            labels=["budget"],
        )
        for budget, count in app[LOGIN_THROTTLE].refused.items():
            throttled.add_metric([budget], count)
        yield throttled
        for name, value in app[BROKER].stats().items():
            yield GaugeMetricFamily(f"svc_broker_{name}", f"Broker figure: {name}", value=value)
        collections = CounterMetricFamily(
            "svc_gc_collections",
            "Garbage collections in this process, by generation (2: full, svc.collector)",
            labels=["generation"],
        )
        for generation, figures in enumerate(gc.get_stats()):
            collections.add_metric([str(generation)], figures["collections"])
        yield collections
        yield from _connection_metrics(app)


def _connection_metrics(app: web.Application) -> Iterator[Metric]:
    """The listening gate's figures (svc/connections.py; zero outside ``python -m svc``)."""
    stats = app[CONNECTIONS]
    yield GaugeMetricFamily(
        "svc_connections_open", "HTTP and WebSocket connections open", value=stats.open
    )
    yield CounterMetricFamily(
        "svc_connections_refused",
        "Connections refused with 503 because MAX_CONNECTIONS were open",
        value=stats.refused,
    )
    yield CounterMetricFamily(
        "svc_header_timeouts",
        "Connections closed with no complete request head within HEADER_TIMEOUT "
        "(an idle keep-alive connection counts)",
        value=stats.header_timeouts,
    )
    yield CounterMetricFamily(
        "svc_accept_errors",
        "Connections the kernel held that could not be accepted (no file descriptor left)",
        value=stats.accept_errors,
    )
    yield CounterMetricFamily(
        "svc_connections_near_file_limit",
        "Connections admitted on one of the last 16 descriptors of the file limit (past it, "
        "new connections wait or are dropped)",
        value=stats.near_file_limit,
    )


@documented(
    summary="metrics in the Prometheus text format",
    tag="health",
    replies={
        200: Reply(
            "Prometheus text exposition format 0.0.4", {"type": "string"}, media="text/plain"
        )
    },
)
async def metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS].render()
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


def setup_routes(app: web.Application) -> None:
    routing.add(app, "GET", "/metrics", metrics)
