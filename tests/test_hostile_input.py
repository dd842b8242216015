"""Input from outside: odd digits, huge emails, lone surrogates, any text at all.

One rule on every backend: what memory refuses, Postgres refuses, with the same 422,
and nothing stored changes.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from svc.testing import unique_id

SECRET = "k" * 40
LONE = "\ud800"
TEXT_FIELDS = ["display_name", "bio"]


def raw_json(value) -> bytes:
    """JSON as a client may send it: a lone surrogate escaped as \\ud800 (valid JSON)."""
    return json.dumps(value).encode()


async def send(client, method: str, path: str, body, **headers):
    return await client.request(
        method, path, data=raw_json(body), headers={"Content-Type": "application/json", **headers}
    )


@pytest.fixture
async def user(client):
    resp = await client.post("/users", json={"username": unique_id(), "password": "a password"})
    assert resp.status == 201
    return await resp.json()


async def unchanged(client, user):
    resp = await client.get(f"/users/{user['id']}")
    assert await resp.json() == user


@pytest.mark.parametrize("limit", ["²", "١٢", "𝟝", "1_0", "+5", " 5", "5 ", "0x10", "", "1e2"])
async def test_a_limit_that_is_not_plain_ascii_digits_is_422(client, limit):
    resp = await client.get(f"/rooms/{unique_id('r')}/members", params={"limit": limit})
    assert resp.status == 422, await resp.text()
    assert "limit" in (await resp.json())["error"]["fields"]


async def test_an_email_is_at_most_254_characters(client, user):
    domain = "@" + ".".join(["a" * 60] * 3) + ".example"  # 193 characters
    fits = "b" * (254 - len(domain)) + domain
    resp = await client.put(f"/users/{user['id']}/profile", json={"email": fits})
    assert resp.status == 200, await resp.text()
    user = await resp.json()
    for email in ("c" + fits, "x" * 59_990 + "@example.com"):
        resp = await client.put(f"/users/{user['id']}/profile", json={"email": email})
        assert resp.status == 422
        assert "email" in (await resp.json())["error"]["fields"]
    await unchanged(client, user)


@pytest.mark.parametrize(
    "body, field",
    [
        ({"display_name": f"Ada{LONE}"}, "display_name"),
        ({"bio": f"{LONE}bio"}, "bio"),
        ({"avatar_urls": {f"s{LONE}": "https://a.example/x.png"}}, "avatar_urls"),
        ({"email": f"ada{LONE}@example.com"}, "email"),
        ({"username": f"ada{LONE}x"}, "username"),
        ({"display_name": "\udc00 low half alone"}, "display_name"),
    ],
)
async def test_a_lone_surrogate_in_a_profile_field_is_422_on_every_backend(
    client, user, body, field
):
    resp = await send(client, "PUT", f"/users/{user['id']}/profile", body)
    assert resp.status == 422, await resp.text()
    assert field in (await resp.json())["error"]["fields"]
    await unchanged(client, user)
    new_id = unique_id()
    resp = await send(client, "POST", "/users", {"username": new_id, "id": new_id, **body})
    assert resp.status == 422
    assert (await client.get(f"/users/{new_id}")).status == 404


async def test_a_paired_surrogate_is_an_ordinary_character(client, user):
    emoji = "\U0001f600"  # sent escaped as the pair \ud83d\ude00
    resp = await send(client, "PUT", f"/users/{user['id']}/profile", {"display_name": emoji})
    assert resp.status == 200
    assert (await resp.json())["profile"]["display_name"] == emoji


async def test_a_lone_surrogate_in_a_password_is_422_everywhere(make_client):
    client = await make_client(jwt_secret_key=SECRET)
    resp = await send(client, "POST", "/users", {"username": unique_id(), "password": LONE * 8})
    assert resp.status == 422 and "password" in (await resp.json())["error"]["fields"]

    username = unique_id()
    resp = await client.post("/users", json={"username": username, "password": "a password"})
    user = await resp.json()
    resp = await client.post("/auth/token", json={"username": username, "password": "a password"})
    token = (await resp.json())["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    for body in (
        {"new_password": f"new {LONE} password", "current_password": "a password"},
        {"new_password": "a new password", "current_password": f"a {LONE}"},
    ):
        resp = await send(client, "PUT", f"/users/{user['id']}/password", body, **auth)
        assert resp.status == 422, await resp.text()
    # At login the answer is the same whether the user exists: no oracle.
    answers = set()
    for name in (username, unique_id()):
        resp = await send(client, "POST", "/auth/token", {"username": name, "password": LONE})
        assert resp.status == 422
        answers.add(await resp.text())
    assert len(answers) == 1
    resp = await send(client, "POST", "/auth/token", {"username": f"a{LONE}", "password": "pw"})
    assert resp.status == 422
    # The old password still works: nothing changed.
    resp = await client.post("/auth/token", json={"username": username, "password": "a password"})
    assert resp.status == 200


@hypothesis_settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(field=st.sampled_from(TEXT_FIELDS), value=st.text(max_size=120))
async def test_any_text_is_stored_exactly_or_refused_with_422(client, user, field, value):
    """Any text at all (surrogates, U+0000, control characters...): never a 5xx, and what
    is accepted reads back exactly, the same on each backend."""
    resp = await send(client, "PUT", f"/users/{user['id']}/profile", {field: value})
    assert resp.status in (200, 422), await resp.text()
    if resp.status == 422:
        assert field in (await resp.json())["error"]["fields"]
        return
    stored = await (await client.get(f"/users/{user['id']}")).json()
    assert stored["profile"][field] == value


@hypothesis_settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(username=st.text(max_size=40), password=st.text(max_size=40))
async def test_any_login_body_is_401_or_422_never_5xx(make_client, username, password):
    client = await make_client(jwt_secret_key=SECRET)
    resp = await send(client, "POST", "/auth/token", {"username": username, "password": password})
    assert resp.status in (401, 422, 429), await resp.text()
