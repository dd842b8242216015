"""The /users routes through real HTTP, on every storage backend."""

from __future__ import annotations

import asyncio

from svc.testing import unique_id

JSON = {"Content-Type": "application/json"}


async def create(client, **body):
    body.setdefault("username", unique_id())
    resp = await client.post("/users", json=body)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def test_liveness_and_readiness(client):
    resp = await client.get("/")
    assert resp.status == 200
    assert (await resp.json())["status"] == "ok"
    resp = await client.get("/health/ready")
    assert resp.status == 200
    assert (await resp.json())["status"] == "ready"


async def test_the_seed_flow(client):
    """Create, update the profile, read it back, set a password: the hash is never visible."""
    username = unique_id()
    resp = await client.post(
        "/users",
        json={"username": username, "email": "ada@example.com", "password": "correct horse"},
    )
    assert resp.status == 201
    created = await resp.json()
    user_id = created["id"]
    assert created["user_id"] == user_id
    assert resp.headers["Location"] == f"/users/{user_id}"
    assert resp.headers["ETag"] == '"1"'
    assert created["version"] == 1
    assert created["profile"] == {
        "display_name": None,
        "username": username,
        "bio": None,
        "email": "ada@example.com",
        "avatar_url": None,
        "avatar_urls": None,
    }
    assert set(created) == {"id", "user_id", "profile", "version", "created_at", "updated_at"}

    resp = await client.put(
        f"/users/{user_id}/profile",
        json={"display_name": "Ada", "avatar_urls": {"small": "https://cdn.example/a.png"}},
    )
    assert resp.status == 200
    updated = await resp.json()
    assert updated["version"] == 2
    assert updated["profile"]["display_name"] == "Ada"
    assert updated["profile"]["email"] == "ada@example.com"
    assert updated["created_at"] == created["created_at"]

    resp = await client.get(f"/users/{user_id}")
    assert resp.status == 200
    assert resp.headers["ETag"] == '"2"'
    assert await resp.json() == updated

    resp = await client.put(f"/users/{user_id}/password", json={"new_password": "battery staple"})
    assert resp.status == 200
    body = await resp.json()
    assert body["user_id"] == user_id and body["password_updated_at"].endswith("Z")

    # The hash is never visible, and a password change is not a profile change.
    resp = await client.get(f"/users/{user_id}")
    text = await resp.text()
    assert "$" not in text and "password" not in text
    assert (await resp.json())["version"] == 2


async def test_same_email_on_two_users(client):
    a = await create(client, email="team@example.com")
    b = await create(client, email="team@example.com")
    assert a["id"] != b["id"]


async def test_create_with_chosen_id(client):
    user_id = unique_id()
    user = await create(client, id=user_id)
    assert user["id"] == user_id
    resp = await client.post("/users", json={"id": user_id, "username": unique_id()})
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "conflict"


async def test_a_taken_id_does_not_tell_whether_a_username_is_taken(client):
    """POST /users with an existing id answers the same 409 (fields: id) whether the
    username is free or taken: no oracle that enumerates usernames and creates nothing."""
    user, other = await create(client, id=unique_id()), await create(client)
    answers = []
    for candidate in (other["profile"]["username"], unique_id()):
        resp = await client.post("/users", json={"id": user["id"], "username": candidate})
        answers.append((resp.status, (await resp.json())["error"]["fields"]))
    assert answers[0] == answers[1], answers
    assert answers[0][0] == 409 and list(answers[0][1]) == ["id"], answers


async def test_username_unique_without_regard_to_case(client):
    username = unique_id()
    await create(client, username=username)
    resp = await client.post("/users", json={"username": username.upper()})
    assert resp.status == 409
    body = await resp.json()
    assert "username" in body["error"]["fields"]


async def test_null_clears_a_field(client):
    user = await create(client, bio="hello", display_name="Ada")
    resp = await client.put(f"/users/{user['id']}/profile", json={"bio": None})
    body = await resp.json()
    assert body["profile"]["bio"] is None
    assert body["profile"]["display_name"] == "Ada"


async def test_put_profile_creates_a_missing_user(client):
    user_id, username = unique_id(), unique_id()
    resp = await client.put(f"/users/{user_id}/profile", json={"username": username, "bio": "new"})
    assert resp.status == 201
    assert resp.headers["Location"] == f"/users/{user_id}"
    assert resp.headers["ETag"] == '"1"'
    body = await resp.json()
    assert (body["id"], body["version"], body["profile"]["bio"]) == (user_id, 1, "new")
    assert (await client.get(f"/users/{user_id}")).status == 200


async def test_put_profile_creates_a_user_without_a_username(client):
    """Clients upsert profiles for ids they got elsewhere: no username needed to create."""
    user_id, other_id = unique_id(), unique_id()
    resp = await client.put(f"/users/{user_id}/profile", json={"display_name": "Ada"})
    assert resp.status == 201, await resp.text()
    assert resp.headers["Location"] == f"/users/{user_id}"
    body = await resp.json()
    assert body["version"] == 1
    assert body["profile"] == {
        "display_name": "Ada",
        "username": None,
        "bio": None,
        "email": None,
        "avatar_url": None,
        "avatar_urls": None,
    }
    # A second user without a username: only usernames that are set must be unique.
    resp = await client.put(f"/users/{other_id}/profile", json={"bio": "b"})
    assert resp.status == 201
    # Setting one later works, and it is unique without regard to case.
    username = unique_id()
    resp = await client.put(f"/users/{user_id}/profile", json={"username": username})
    assert resp.status == 200
    assert (await resp.json())["version"] == 2
    resp = await client.put(f"/users/{other_id}/profile", json={"username": username.upper()})
    assert resp.status == 409
    assert "username" in (await resp.json())["error"]["fields"]
    # POST /users still requires one.
    resp = await client.post("/users", json={"display_name": "no name"})
    assert resp.status == 422
    assert "username" in (await resp.json())["error"]["fields"]


async def test_twenty_concurrent_first_puts_of_one_id(client):
    """No If-Match: never 412.  One creates, nineteen update, every field kept."""
    user_id = unique_id()
    fields = ["display_name", "bio", "email", "avatar_url"]

    def body(i: int) -> dict:
        field = fields[i % len(fields)]
        value = {"email": f"u{i}@example.com", "avatar_url": f"https://img.example/{i}"}
        return {field: value.get(field, f"{field} {i}")}

    writes = [body(i) for i in range(20)]
    path = f"/users/{user_id}/profile"
    responses = await asyncio.gather(*(client.put(path, json=w) for w in writes))
    statuses = sorted(r.status for r in responses)
    assert statuses == [200] * 19 + [201], [await r.text() for r in responses]
    versions = sorted([(await r.json())["version"] for r in responses])
    assert versions == list(range(1, 21))
    final = await (await client.get(f"/users/{user_id}")).json()
    assert final["version"] == 20
    for field in fields:
        assert final["profile"][field] in [w[field] for w in writes if field in w]


async def test_if_match(client):
    user = await create(client)
    path = f"/users/{user['id']}/profile"
    resp = await client.put(path, json={"bio": "one"}, headers={"If-Match": '"1"'})
    assert resp.status == 200
    assert resp.headers["ETag"] == '"2"'
    resp = await client.put(path, json={"bio": "two"}, headers={"If-Match": '"1"'})
    assert resp.status == 412
    assert (await resp.json())["error"]["code"] == "precondition_failed"
    assert resp.headers["ETag"] == '"2"'
    resp = await client.put(path, json={"bio": "two"}, headers={"If-Match": "garbage"})
    assert resp.status == 412
    resp = await client.get(f"/users/{user['id']}")
    assert (await resp.json())["profile"]["bio"] == "one"  # the refused writes left no trace
    resp = await client.put(
        f"/users/{unique_id()}/profile", json={"username": unique_id()}, headers={"If-Match": '"1"'}
    )
    assert resp.status == 412  # If-Match never creates
    missing = f"/users/{unique_id()}/profile"
    resp = await client.put(missing, json={"bio": "x"}, headers={"If-Match": "*"})
    assert resp.status == 412  # "*" asks for an existing user
    assert (await client.get(missing.removesuffix("/profile"))).status == 404


async def test_if_none_match_gives_304(client):
    user = await create(client)
    resp = await client.get(f"/users/{user['id']}", headers={"If-None-Match": '"1"'})
    assert resp.status == 304
    resp = await client.get(f"/users/{user['id']}", headers={"If-None-Match": '"7"'})
    assert resp.status == 200


async def test_fifty_concurrent_partial_updates_keep_every_field(client):
    user = await create(client)
    path = f"/users/{user['id']}/profile"
    fields = ["display_name", "bio", "email", "avatar_url", "avatar_urls"]

    def value(field: str, i: int):
        return {
            "email": f"u{i}@example.com",
            "avatar_url": f"https://img.example/{i}.png",
            "avatar_urls": {"n": f"https://img.example/{i}"},
        }.get(field, f"{field} {i}")

    writes = [{fields[i % len(fields)]: value(fields[i % len(fields)], i)} for i in range(50)]
    responses = await asyncio.gather(*(client.put(path, json=w) for w in writes))
    assert [r.status for r in responses] == [200] * 50
    versions = sorted([(await r.json())["version"] for r in responses])
    assert versions == list(range(2, 52))

    final = await (await client.get(f"/users/{user['id']}")).json()
    assert final["version"] == 51
    for field in fields:  # every field holds one of the values written to it
        assert final["profile"][field] in [w[field] for w in writes if field in w]
    assert final["profile"]["username"] == user["profile"]["username"]


async def test_delete(client):
    user = await create(client)
    resp = await client.delete(f"/users/{user['id']}")
    assert resp.status == 204
    assert (await client.get(f"/users/{user['id']}")).status == 404
    assert (await client.delete(f"/users/{user['id']}")).status == 404
    # the username is free again
    await create(client, username=user["profile"]["username"])


async def test_password_with_current_password(client):
    user = await create(client, password="first password")
    path = f"/users/{user['id']}/password"
    resp = await client.put(
        path, json={"new_password": "second password", "current_password": "wrong one"}
    )
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "forbidden"
    resp = await client.put(
        path, json={"new_password": "second password", "current_password": "first password"}
    )
    assert resp.status == 200
    # the first password no longer counts
    resp = await client.put(
        path, json={"new_password": "third password", "current_password": "first password"}
    )
    assert resp.status == 403


async def test_long_passwords_are_not_cut_at_72_bytes(client):
    prefix = "p" * 80
    user = await create(client, password=prefix + "A")
    path = f"/users/{user['id']}/password"
    resp = await client.put(
        path, json={"new_password": "new password", "current_password": prefix + "B"}
    )
    assert resp.status == 403
