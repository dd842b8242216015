"""What the server really sends fits the document it serves: REST answers (success and every
error status but 503, which needs an outage: test_postgres_faults), the members route and the
WebSocket frames, including a member without a stored user (version 0, null dates)."""

from __future__ import annotations

import pytest
from openapi_check import Document
from ws_helpers import frame_where, join, new_user, presence_where

from svc.testing import unique_id

SECRET = "s" * 40
WS_HANDSHAKE = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


async def test_the_life_of_a_user(client):
    doc = await Document.of(client)
    user_id = unique_id()
    resp = await client.post("/users", json={"id": user_id, "username": user_id, "bio": "hi"})
    user = await doc.check("post", "/users", resp)
    assert resp.status == 201 and user["version"] == 1

    resp = await client.get(f"/users/{user_id}")
    assert (await doc.check("get", "/users/{user_id}", resp)) == user
    resp = await client.get(f"/users/{user_id}", headers={"If-None-Match": resp.headers["ETag"]})
    assert resp.status == 304
    await doc.check("get", "/users/{user_id}", resp)

    resp = await client.put(f"/users/{user_id}/profile", json={"avatar_urls": None, "bio": None})
    assert (await doc.check("put", "/users/{user_id}/profile", resp))["version"] == 2
    other = unique_id()
    resp = await client.put(f"/users/{other}/profile", json={"username": other})
    assert resp.status == 201
    await doc.check("put", "/users/{user_id}/profile", resp)

    resp = await client.put(f"/users/{user_id}/password", json={"new_password": "a password"})
    assert resp.status == 200
    await doc.check("put", "/users/{user_id}/password", resp)
    resp = await client.delete(f"/users/{user_id}")
    assert resp.status == 204
    await doc.check("delete", "/users/{user_id}", resp)

    for path in ("/", "/health/ready", "/openapi.json", "/docs"):
        resp = await client.get(path)
        assert resp.status == 200
        await doc.check("get", path, resp)


async def test_members_and_frames_with_a_profileless_member(client):
    doc = await Document.of(client)
    room = unique_id("r")
    alice = await new_user(client, display_name="Alice")
    ws_a, welcome = await join(client, room, alice)
    doc.assert_schema(welcome, "WelcomeFrame")

    ghost = unique_id("ghost")  # present, never stored: open mode lets any valid id join
    ws_g, welcome_g = await join(client, room, ghost)
    doc.assert_schema(welcome_g, "WelcomeFrame")
    versions = {m["id"]: m["version"] for m in welcome_g["members"]}
    assert versions == {alice: 1, ghost: 0}
    presence = await frame_where(ws_a, presence_where(room, joined=ghost))
    doc.assert_schema(presence, "PresenceFrame")
    (shown,) = [m for m in presence["joined"] if m["id"] == ghost]
    assert shown["version"] == 0 and shown["created_at"] is None

    resp = await client.get(f"/rooms/{room}/members", params={"limit": "1"})
    page = await doc.check("get", "/rooms/{room_id}/members", resp)
    assert page["member_count"] == 2 and page["next_cursor"]
    resp = await client.get(f"/rooms/{room}/members")
    page = await doc.check("get", "/rooms/{room_id}/members", resp)
    assert sorted(m["version"] for m in page["members"]) == [0, 1]

    # The ghost's first profile arrives at version 1, as the whole record.
    resp = await client.put(f"/users/{ghost}/profile", json={"username": ghost})
    assert resp.status == 201
    update = await frame_where(ws_a, lambda f: f["type"] == "profile_updated")
    doc.assert_schema(update, "ProfileUpdatedFrame")
    assert update["version"] == 1

    await ws_g.send_json({"type": "message", "data": {"text": "boo", "n": [1.5, None]}})
    doc.assert_schema(await frame_where(ws_a, lambda f: f["type"] == "message"), "MessageFrame")
    await ws_a.send_json({"type": "no such type"})
    doc.assert_schema(await frame_where(ws_a, lambda f: f["type"] == "error"), "ErrorFrame")
    await ws_a.send_json({"type": "ping"})
    doc.assert_schema(await frame_where(ws_a, lambda f: f["type"] == "pong"), "PongFrame")

    await ws_g.close()
    left = await frame_where(ws_a, presence_where(room, left=ghost))
    doc.assert_schema(left, "PresenceFrame")
    await ws_a.close()


async def test_the_member_schemas_tell_a_user_from_a_profileless_member(client):
    """The schemas are strict enough to catch the drift the issue found."""
    doc = await Document.of(client)
    user = await (await client.post("/users", json={"username": unique_id()})).json()
    doc.assert_schema(user, "User")
    ghost = {**user, "version": 0, "created_at": None, "updated_at": None}
    ghost["profile"] = dict.fromkeys(user["profile"])
    doc.assert_schema(ghost, "Member")
    assert doc.errors(ghost, "/components/schemas/User")  # a User is never at version 0
    assert doc.errors({**ghost, "version": 3}, "/components/schemas/Member")
    assert doc.errors({**user, "created_at": None}, "/components/schemas/Member")
    named = {**ghost, "profile": {**ghost["profile"], "username": "ghost"}}
    assert doc.errors(named, "/components/schemas/Member")  # a profileless member has none


@pytest.mark.parametrize(
    "method, path, template, kwargs, status, code",
    [
        (
            "put",
            "/users/{id}/profile",
            "/users/{user_id}/profile",
            {"data": b'{"bio": ', "headers": {"Content-Type": "application/json"}},
            400,
            "malformed_json",
        ),
        ("get", "/users/nobody-{id}", "/users/{user_id}", {}, 404, "not_found"),
        ("delete", "/users/nobody-{id}", "/users/{user_id}", {}, 404, "not_found"),
        ("post", "/users", "/users", {"json": {"username": "{name}"}}, 409, "conflict"),
        (
            "put",
            "/users/{id}/profile",
            "/users/{user_id}/profile",
            {"json": {"bio": "x"}, "headers": {"If-Match": '"7"'}},
            412,
            "precondition_failed",
        ),
        (
            "put",
            "/users/{id}/profile",
            "/users/{user_id}/profile",
            {"json": {"bio": "x" * 5000}},
            413,
            "payload_too_large",
        ),
        (
            "post",
            "/users",
            "/users",
            {"data": "username=x", "headers": {"Content-Type": "text/plain"}},
            415,
            "unsupported_media_type",
        ),
        ("post", "/users", "/users", {"json": {"username": "x"}}, 422, "validation_failed"),
        (
            "get",
            "/rooms/r/members?limit=0",
            "/rooms/{room_id}/members",
            {},
            422,
            "validation_failed",
        ),
        (
            "get",
            "/rooms/r/members?cursor=%25",
            "/rooms/{room_id}/members",
            {},
            422,
            "validation_failed",
        ),
        ("get", "/ws/r", "/ws/{room_id}", {}, 426, "upgrade_required"),
        ("get", "/ws/not%20a%20room", "/ws/{room_id}", {}, 404, "not_found"),
        (
            "post",
            "/auth/token",
            "/auth/token",
            {"json": {"username": "x", "password": "y"}},
            404,
            "not_found",
        ),
        ("get", "/docs/nothing.js", "/docs/{asset}", {}, 404, "not_found"),
    ],
)
async def test_each_error_fits_its_operation(
    make_client, method, path, template, kwargs, status, code
):
    client = await make_client(max_body_bytes=4096)
    doc = await Document.of(client)
    user = await (await client.post("/users", json={"username": unique_id()})).json()
    name = user["profile"]["username"]
    if "json" in kwargs:
        kwargs = {
            **kwargs,
            "json": {
                k: v.format(name=name) if isinstance(v, str) else v
                for k, v in kwargs["json"].items()
            },
        }
    resp = await client.request(method, path.format(id=user["id"]), **kwargs)
    assert resp.status == status, await resp.text()
    body = await doc.check(method, template, resp)
    assert body["error"]["code"] == code


async def test_405_fits_the_catalogue_entry(client):
    doc = await Document.of(client)
    resp = await client.patch("/users/someone", json={})
    assert resp.status == 405 and "GET" in resp.headers["Allow"]
    schema = "/components/responses/MethodNotAllowed/content/application~1json/schema"
    assert doc.errors(await resp.json(), schema) == []
    assert doc.errors({"error": {"code": "not_found", "message": "x"}}, schema)


async def test_auth_answers_fit(make_client):
    client = await make_client(jwt_secret_key=SECRET)
    doc = await Document.of(client)
    alice, bob = unique_id(), unique_id()
    for user_id in (alice, bob):
        resp = await client.post(
            "/users", json={"id": user_id, "username": user_id, "password": "a password"}
        )
        assert resp.status == 201
    resp = await client.post("/auth/token", json={"username": alice, "password": "a password"})
    token = (await doc.check("post", "/auth/token", resp))["access_token"]
    resp = await client.post("/auth/token", json={"username": alice, "password": "wrong one"})
    assert resp.status == 401
    await doc.check("post", "/auth/token", resp)

    profile = "/users/{user_id}/profile"
    resp = await client.put(f"/users/{alice}/profile", json={"bio": "x"})
    assert resp.status == 401
    await doc.check("put", profile, resp)
    bearer = {"Authorization": f"Bearer {token}"}
    resp = await client.put(f"/users/{bob}/profile", json={"bio": "x"}, headers=bearer)
    assert resp.status == 403
    await doc.check("put", profile, resp)
    resp = await client.put(f"/users/{alice}/profile", json={"bio": "x"}, headers=bearer)
    assert resp.status == 200
    await doc.check("put", profile, resp)
    resp = await client.get(f"/users/{alice}", headers=bearer)
    assert (await doc.check("get", "/users/{user_id}", resp))["profile"]["email"] is None

    resp = await client.delete(f"/users/{alice}", headers=bearer)
    assert resp.status == 204
    await doc.check("delete", "/users/{user_id}", resp)
