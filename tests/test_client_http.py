"""svc.client's REST calls against a real svc (a real socket), on each storage backend: each
call's success, and every error raised as one ``SvcError`` with svc's status, code, message
and fields."""

from __future__ import annotations

import json

import aiohttp
import aiohttp.web
import pytest
from hypothesis import given
from hypothesis import strategies as st

from svc.client import SvcClient, SvcError
from svc.client.api import error_of
from svc.testing import unique_id

SECRET = "client-secret-for-tests-" + "z" * 32


@pytest.fixture
async def svc(client):
    """A SvcClient on the test server's real port."""
    async with SvcClient(str(client.make_url(""))) as api:
        yield api


@pytest.fixture
async def auth_svc(make_client):
    server = await make_client(jwt_secret_key=SECRET)
    async with SvcClient(str(server.make_url(""))) as api:
        yield api


async def test_create_get_update_delete(svc):
    name = unique_id()
    created = await svc.create_user(name, display_name="Ann", bio="hi")
    assert created["profile"]["username"] == name and created["version"] == 1
    assert await svc.get_user(created["id"]) == created
    updated = await svc.update_profile(created["id"], {"bio": None}, version=1)
    assert updated["version"] == 2 and updated["profile"]["bio"] is None
    assert updated["profile"]["display_name"] == "Ann"
    await svc.delete_user(created["id"])
    with pytest.raises(SvcError) as gone:
        await svc.get_user(created["id"])
    assert (gone.value.status, gone.value.code) == (404, "not_found")


async def test_create_with_an_id_and_a_password_then_log_in(auth_svc):
    name, user_id = unique_id(), unique_id()
    created = await auth_svc.create_user(name, user_id=user_id, password="pass word 1")
    assert created["id"] == user_id
    token = await auth_svc.login(name, "pass word 1")
    assert auth_svc.token == token
    changed = await auth_svc.set_password(user_id, "pass word 2", current_password="pass word 1")
    assert changed["user_id"] == user_id
    # the token predates the new password: refused from now on, and said so
    with pytest.raises(SvcError) as stale:
        await auth_svc.update_profile(user_id, {"bio": "x"})
    assert stale.value.status == 401
    await auth_svc.login(name, "pass word 2")
    assert (await auth_svc.update_profile(user_id, {"bio": "x"}))["version"] == 2


async def test_another_users_token_is_403(auth_svc):
    first, second = unique_id(), unique_id()
    created = await auth_svc.create_user(first, password="pass word 1")
    await auth_svc.create_user(second, password="pass word 1")
    await auth_svc.login(second, "pass word 1")
    with pytest.raises(SvcError) as forbidden:
        await auth_svc.delete_user(created["id"])
    assert forbidden.value.status == 403
    assert (await auth_svc.get_user(created["id"]))["id"] == created["id"]


async def test_a_wrong_password_is_401(auth_svc):
    name = unique_id()
    await auth_svc.create_user(name, password="pass word 1")
    with pytest.raises(SvcError) as wrong:
        await auth_svc.login(name, "not the password")
    assert wrong.value.status == 401 and auth_svc.token is None


async def test_validation_errors_carry_their_fields(svc):
    with pytest.raises(SvcError) as bad:
        await svc.create_user("x", email="not an address")
    assert bad.value.status == 422 and bad.value.code == "validation_failed"
    assert set(bad.value.fields) == {"username", "email"}
    assert bad.value.message


async def test_a_taken_username_is_409_and_a_stale_version_412(svc):
    name = unique_id()
    created = await svc.create_user(name)
    with pytest.raises(SvcError) as clash:
        await svc.create_user(name.upper())
    assert clash.value.status == 409
    await svc.update_profile(created["id"], {"bio": "one"})
    with pytest.raises(SvcError) as moved:
        await svc.update_profile(created["id"], {"bio": "two"}, version=1)
    assert moved.value.status == 412
    assert (await svc.get_user(created["id"]))["profile"]["bio"] == "one"


async def test_an_id_with_a_slash_stays_one_path_segment(svc):
    with pytest.raises(SvcError) as bad:
        await svc.get_user("../users")
    assert bad.value.status == 404


async def test_members_are_paged_to_the_end(svc, client):
    room = unique_id("room")
    ids = sorted(unique_id() for _ in range(5))
    sockets = [await client.ws_connect(f"/ws/{room}?user_id={i}") for i in ids]
    try:
        for ws in sockets:
            assert json.loads((await ws.receive(timeout=10)).data)["type"] == "welcome"
        first = await svc.members_page(room, limit=2)
        assert len(first["members"]) == 2 and first["member_count"] == 5
        assert first["next_cursor"]
        assert sorted([m["id"] async for m in svc.members(room, limit=2)]) == ids
        with pytest.raises(SvcError) as bad:
            await svc.members_page(room, limit=0)
        assert bad.value.status == 422
    finally:
        for ws in sockets:
            await ws.close()


async def test_a_given_session_is_used_and_left_open(client):
    async with aiohttp.ClientSession() as session:
        async with SvcClient(str(client.make_url("")), session=session) as api:
            await api.create_user(unique_id())
        assert not session.closed


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)


@given(
    st.integers(400, 599),
    st.text(max_size=200)
    | JSON.map(json.dumps)
    | st.fixed_dictionaries({"error": JSON}).map(json.dumps),
)
def test_any_error_body_becomes_an_svc_error(status, body):
    """What answers in svc's place (a proxy's HTML page, another service's JSON) is still
    one SvcError with the status, never a KeyError or a TypeError from reading it."""
    error = error_of(status, body, "GET /x")
    assert error.status == status
    assert isinstance(error.code, str) and isinstance(error.message, str)
    assert error.fields is None or isinstance(error.fields, dict)


async def test_a_proxys_error_page_is_an_svc_error(aiohttp_server):
    async def bad_gateway(request):
        return aiohttp.web.Response(status=502, text="<html>Bad Gateway</html>")

    app = aiohttp.web.Application()
    app.router.add_get("/users/{id}", bad_gateway)
    server = await aiohttp_server(app)
    async with SvcClient(str(server.make_url(""))) as api:
        with pytest.raises(SvcError) as bad:
            await api.get_user("x")
    assert (bad.value.status, bad.value.code) == (502, "http_error")
    assert "GET /users/x" in bad.value.message
