"""Request bodies from a hostile client: compression bombs, a byte at a time, deep nesting.

Each attack goes over a real socket; each must get a cheap JSON error, never a 5xx.
"""

from __future__ import annotations

import asyncio
import functools
import json
import zlib

import pytest
from ws_helpers import join, new_user, next_frame

from svc.testing import deadline, unique_id


@functools.cache
def gzip_bomb(inflated_bytes: int) -> bytes:
    """A gzip body of zeros: a few KiB on the wire, ``inflated_bytes`` once inflated."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(1024 * 1024)
    parts = [packer.compress(chunk) for _ in range(inflated_bytes // len(chunk))]
    return b"".join(parts) + packer.flush()


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "GZIP"])
@pytest.mark.parametrize("method, path", [("GET", "/"), ("POST", "/users"), ("POST", "/nowhere")])
async def test_a_compressed_body_is_refused_on_any_route(client, method, path, encoding):
    bomb = gzip_bomb(16 * 1024 * 1024)
    resp = await client.request(
        method,
        path,
        data=bomb,
        headers={"Content-Encoding": encoding, "Content-Type": "application/json"},
    )
    assert resp.status == 415, await resp.text()
    error = (await resp.json())["error"]
    assert error["code"] == "unsupported_media_type" and "compressed" in error["message"]
    # The server is fine afterwards, and nothing was created.
    assert (await client.get("/")).status == 200


async def test_identity_encoding_is_an_ordinary_body(client):
    body = json.dumps({"username": unique_id()}).encode()
    resp = await client.post(
        "/users",
        data=body,
        headers={"Content-Encoding": "identity", "Content-Type": "application/json"},
    )
    assert resp.status == 201


async def raw_request(port: int, head: bytes, body_chunks, pause: float) -> bytes:
    """Send ``head``, then the body a chunk at a time; everything the server answers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)

    async def feed():
        for chunk in body_chunks:
            await asyncio.sleep(pause)
            writer.write(chunk)
            await writer.drain()

    feeding = asyncio.create_task(feed())
    try:
        async with deadline(30):
            answer = await reader.read()  # until the server closes the connection
    finally:
        feeding.cancel()
        writer.close()
    return answer


async def test_a_body_that_arrives_too_slowly_gets_408_and_the_connection_closes(make_client):
    client = await make_client(body_timeout=0.5)
    user_id = unique_id()
    body = json.dumps({"username": user_id, "id": user_id}).encode()
    head = (
        b"POST /users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )
    # One byte every 0.2 s: the whole body would need several seconds.
    answer = await raw_request(client.port, head, [body[i : i + 1] for i in range(len(body))], 0.2)
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 408"), answer
    assert b'"request_timeout"' in rest
    assert (await client.get(f"/users/{user_id}")).status == 404


@pytest.mark.parametrize("path", ["/users", "/auth/token", "/users/someone/profile"])
async def test_deep_nesting_is_a_400_not_a_500(make_client, path, caplog):
    client = await make_client(jwt_secret_key="k" * 32 if path == "/auth/token" else None)
    method = client.put if path.endswith("profile") else client.post
    for body in ("[" * 50_000, '{"a":' * 12_000):
        resp = await method(path, data=body, headers={"Content-Type": "application/json"})
        assert resp.status == 400, await resp.text()
        assert (await resp.json())["error"]["code"] == "malformed_json"
    assert "Traceback" not in caplog.text and "RecursionError" not in caplog.text


async def test_deep_nesting_in_a_websocket_frame_is_an_error_frame(client):
    user = await new_user(client)
    ws, _ = await join(client, unique_id("r"), user)
    for text in ("[" * 50_000, '{"type": "message", "data": ' + "[" * 50_000):
        await ws.send_str(text)
        frame = await next_frame(ws)
        assert frame["type"] == "error" and frame["code"] == "invalid_json", frame
    # The connection stays.
    await ws.send_json({"type": "ping"})
    assert (await next_frame(ws))["type"] == "pong"
    await ws.close()
