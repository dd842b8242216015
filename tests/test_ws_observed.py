"""The WebSocket route observes its own answer (svc.http.middleware.observes_itself): no
frame of the middleware lives as long as a socket, and operators see what they see of any
request: its id, CORS, its metrics and its access line."""

from __future__ import annotations

import asyncio
import gzip
import logging

from test_observability import samples
from ws_helpers import join, new_user

from svc.http import middleware, ws
from svc.keys import HUB
from svc.testing import unique_id, wait_until

ALLOWED = "https://app.example.com"
ACAO = "Access-Control-Allow-Origin"


def awaited_code(task: asyncio.Task) -> list:
    """The code objects of the coroutines ``task`` is suspended in, outermost first."""
    codes, coro = [], task.get_coro()
    while hasattr(coro, "cr_code"):
        codes.append(coro.cr_code)
        coro = coro.cr_await
    return codes


async def test_no_frame_of_the_middleware_lives_as_long_as_a_socket(client):
    """The request's task, while its socket idles, waits in the handler, and in nothing
    of svc/http/middleware.py (that frame was ~380 B of every idle socket)."""
    socket, _ = await join(client, unique_id("r"), await new_user(client))
    chains = [awaited_code(task) for task in asyncio.all_tasks()]
    chain = next(c for c in chains if ws.websocket.__code__ in c)
    assert not [code for code in chain if code.co_filename == middleware.__file__], chain
    await socket.close()


async def test_a_plain_get_of_the_socket_route_is_answered_as_any_request(make_client, caplog):
    client = await make_client(cors_origins=(ALLOWED,), access_log=True)
    caplog.set_level(logging.INFO, logger="svc.access")
    headers = {"X-Request-ID": "plain-1", "Origin": ALLOWED}
    response = await client.get("/ws/r", headers=headers)
    assert response.status == 426
    assert (await response.json())["error"]["code"] == "upgrade_required"
    assert response.headers["X-Request-ID"] == "plain-1"
    assert response.headers[ACAO] == ALLOWED
    response = await client.get("/ws/not%20a%20room", headers={"Origin": ALLOWED})
    assert response.status == 404
    assert response.headers[ACAO] == ALLOWED and response.headers["X-Request-ID"]
    # A compressed body is refused here too (svc/http/request_limits.py).
    response = await client.get(
        "/ws/r", data=gzip.compress(b"{}"), headers={**headers, "Content-Encoding": "gzip"}
    )
    assert response.status == 415
    assert response.headers["X-Request-ID"] == "plain-1"

    text = await (await client.get("/metrics")).text()
    counts = samples(text, "svc_http_request_duration_seconds_count")
    for status in (426, 404, 415):
        assert counts[f'{{method="GET",route="/ws/{{room_id}}",status="{status}"}}'] == 1
    lines = [r.getMessage() for r in caplog.records if r.name == "svc.access"]
    assert any(line.startswith("GET /ws/r 426 ") for line in lines), lines
    assert any(line.startswith("GET /ws/not a room 404 ") for line in lines), lines


async def test_a_sockets_life_is_recorded_under_its_route_as_a_101_once_it_ends(client):
    key = '{method="GET",route="/ws/{room_id}",status="101"}'
    name = "svc_http_request_duration_seconds"

    async def recorded() -> tuple[float | None, float | None]:
        text = await (await client.get("/metrics")).text()
        return samples(text, f"{name}_count").get(key), samples(text, f"{name}_sum").get(key)

    socket, _ = await join(client, unique_id("r"), await new_user(client))
    await asyncio.sleep(0.3)
    assert await recorded() == (None, None)  # still open: its request is not over
    await socket.close()
    await wait_until(lambda: client.app[HUB].connection_count() == 0)
    for _ in range(200):  # the handler ends a turn of the loop or two after its leave
        count, seconds = await recorded()
        if count is not None:
            break
        await asyncio.sleep(0.01)
    assert count == 1
    assert seconds >= 0.3  # its whole life, not its handshake
