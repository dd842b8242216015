"""Every error status of the contract, with its JSON shape, and no trace of the failed write.

503 needs a real outage: tests/test_postgres_faults.py stops Postgres connections under load.
"""

from __future__ import annotations

import pytest

from svc.testing import unique_id


def assert_error(body: dict, code: str) -> dict:
    assert set(body) == {"error"}
    error = body["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert "Traceback" not in error["message"]
    return error


@pytest.fixture
async def user(client):
    resp = await client.post("/users", json={"username": unique_id(), "password": "a password"})
    return await resp.json()


async def unchanged(client, user):
    resp = await client.get(f"/users/{user['id']}")
    assert await resp.json() == user


async def test_400_malformed_json(client, user):
    resp = await client.put(
        f"/users/{user['id']}/profile",
        data=b'{"bio": ',
        headers={"Content-Type": "application/json"},
    )
    assert resp.status == 400
    assert_error(await resp.json(), "malformed_json")
    await unchanged(client, user)


async def test_404_unknown_user_and_route(client):
    resp = await client.get(f"/users/{unique_id()}")
    assert resp.status == 404
    assert_error(await resp.json(), "not_found")
    resp = await client.get("/nowhere")
    assert resp.status == 404
    assert_error(await resp.json(), "not_found")
    # an id outside the path rule is no such resource
    resp = await client.get("/users/" + "x" * 65)
    assert resp.status == 404


async def test_405_with_allow(client, user):
    resp = await client.patch(f"/users/{user['id']}", json={})
    assert resp.status == 405
    assert "GET" in resp.headers["Allow"] and "DELETE" in resp.headers["Allow"]
    assert_error(await resp.json(), "method_not_allowed")


async def test_409_conflict(client, user):
    resp = await client.post("/users", json={"username": user["profile"]["username"].upper()})
    assert resp.status == 409
    assert_error(await resp.json(), "conflict")


async def test_412_precondition_failed(client, user):
    resp = await client.put(
        f"/users/{user['id']}/profile", json={"bio": "x"}, headers={"If-Match": '"9"'}
    )
    assert resp.status == 412
    assert_error(await resp.json(), "precondition_failed")
    await unchanged(client, user)


async def test_413_body_too_large(client, user):
    resp = await client.put(
        f"/users/{user['id']}/profile",
        data=b'{"bio": "' + b"x" * 200_000 + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert resp.status == 413
    assert_error(await resp.json(), "payload_too_large")
    await unchanged(client, user)


async def test_415_not_json(client, user):
    resp = await client.put(f"/users/{user['id']}/profile", data=b"bio=x")
    assert resp.status == 415
    assert_error(await resp.json(), "unsupported_media_type")
    await unchanged(client, user)


@pytest.mark.parametrize(
    "body, field",
    [
        ({"username": "ab"}, "username"),
        ({"username": "has space"}, "username"),
        ({"username": "x" * 33}, "username"),
        ({"username": None}, "username"),
        ({"display_name": "x" * 101}, "display_name"),
        ({"bio": "x" * 1001}, "bio"),
        ({"email": "not an address"}, "email"),
        ({"avatar_url": "ftp://example.com/a.png"}, "avatar_url"),
        ({"avatar_url": "https://example.com/" + "a" * 2048}, "avatar_url"),
        ({"avatar_urls": {str(i): "https://a.example/x" for i in range(17)}}, "avatar_urls"),
        ({"avatar_urls": {"s": "javascript:alert(1)"}}, "avatar_urls"),
        ({"avatar_urls": ["https://a.example/x"]}, "avatar_urls"),
        ({"bio": 5}, "bio"),
        ({"is_admin": True}, "is_admin"),
        ({}, "_schema"),
    ],
)
async def test_422_validation_names_the_field(client, user, body, field):
    resp = await client.put(f"/users/{user['id']}/profile", json=body)
    assert resp.status == 422, await resp.text()
    error = assert_error(await resp.json(), "validation_failed")
    assert field in error["fields"]
    await unchanged(client, user)


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "username"),
        ({"username": "okname", "password": "short"}, "password"),
        ({"username": "okname", "password": "x" * 1025}, "password"),
        ({"username": "okname", "id": "bad id!"}, "id"),
        ({"username": "okname", "id": "x" * 65}, "id"),
        (["a list"], "_schema"),
    ],
)
async def test_422_on_create(client, body, field):
    resp = await client.post("/users", json=body)
    assert resp.status == 422
    assert field in assert_error(await resp.json(), "validation_failed")["fields"]


async def test_422_password_rules(client, user):
    path = f"/users/{user['id']}/password"
    for body in (
        {},
        {"new_password": "short"},
        {"new_password": "x" * 1025},
        {"new_password": "longenough", "extra": 1},
    ):
        resp = await client.put(path, json=body)
        assert resp.status == 422
        assert_error(await resp.json(), "validation_failed")


async def test_password_of_unknown_user_is_404(client):
    resp = await client.put(f"/users/{unique_id()}/password", json={"new_password": "longenough"})
    assert resp.status == 404
