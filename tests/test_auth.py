"""Auth over HTTP: tokens, the rule for writes, expiry, re-hash on login, nothing secret leaks."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone

import bcrypt
import jwt
import pytest
from aiohttp.test_utils import unused_port

from svc.http.auth import InvalidToken, refuse_stale
from svc.keys import STORAGE
from svc.storage import Credentials
from svc.testing import deadline, unique_id

SECRET = "s3cret-for-tests-" + "x" * 32
PASSWORD = "correct horse battery"


@pytest.fixture
async def auth_client(make_client):
    return await make_client(jwt_secret_key=SECRET)


async def new_user(client, password: str | None = PASSWORD) -> dict:
    body = {"username": unique_id()}
    if password is not None:
        body["password"] = password
    resp = await client.post("/users", json=body)  # open, with auth on too
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def login(client, username: str, password: str = PASSWORD):
    return await client.post("/auth/token", json={"username": username, "password": password})


async def token_for(client, user: dict) -> str:
    resp = await login(client, user["profile"]["username"])
    assert resp.status == 200, await resp.text()
    return (await resp.json())["access_token"]


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def crafted(sub, secret: str = SECRET, **claims) -> str:
    now = int(time.time())
    return jwt.encode({"sub": sub, "iat": now, "exp": now + 60, **claims}, secret, "HS256")


# The three writes to user X, each with a body that succeeds for X's own token.
WRITES = {
    "profile": ("PUT", "/users/{}/profile", {"bio": "hello"}, 200),
    "password": (
        "PUT",
        "/users/{}/password",
        {"new_password": "a new password", "current_password": PASSWORD},
        200,
    ),
    "delete": ("DELETE", "/users/{}", None, 204),
}


async def test_token_carries_the_user_id_and_lifetime(make_client):
    client = await make_client(jwt_secret_key=SECRET, jwt_lifetime=120)
    user = await new_user(client)
    # The username is matched without regard to case, as everywhere.
    resp = await login(client, user["profile"]["username"].upper())
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == "no-store"
    body = await resp.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer" and body["expires_in"] == 120
    claims = jwt.decode(body["access_token"], SECRET, algorithms=["HS256"])
    assert claims["sub"] == user["id"]
    assert claims["exp"] - claims["iat"] == pytest.approx(120)
    assert jwt.get_unverified_header(body["access_token"])["alg"] == "HS256"


async def test_wrong_password_unknown_user_and_no_password_look_the_same(auth_client):
    user = await new_user(auth_client)
    passwordless = await new_user(auth_client, password=None)
    answers = [
        await login(auth_client, user["profile"]["username"], "wrong password"),
        await login(auth_client, unique_id(), PASSWORD),
        await login(auth_client, passwordless["profile"]["username"], PASSWORD),
    ]
    bodies = {await resp.text() for resp in answers}
    assert [resp.status for resp in answers] == [401, 401, 401]
    assert len(bodies) == 1, bodies
    assert all(resp.headers["WWW-Authenticate"].startswith("Bearer") for resp in answers)


async def test_unknown_user_costs_a_verify_like_a_wrong_password(make_client):
    """Real bcrypt cost: an unknown username must not answer measurably faster."""
    client = await make_client(jwt_secret_key=SECRET, bcrypt_rounds=10)
    user = await new_user(client)
    await login(client, unique_id())  # builds the dummy hash once, outside the timing

    async def timed(username: str) -> float:
        start = time.perf_counter()
        resp = await login(client, username, "wrong password")
        assert resp.status == 401
        return time.perf_counter() - start

    wrong = statistics.median([await timed(user["profile"]["username"]) for _ in range(5)])
    unknown = statistics.median([await timed(unique_id()) for _ in range(5)])
    # Without the dummy verify an unknown user answers ~50x faster; the bound is generous
    # because other test runs share the two cores.
    assert unknown > wrong / 3, (unknown, wrong)


async def test_token_request_body_is_validated(auth_client):
    resp = await auth_client.post("/auth/token", json={"username": "ada"})
    assert resp.status == 422
    assert "password" in (await resp.json())["error"]["fields"]
    resp = await auth_client.post(
        "/auth/token", data="nope", headers={"Content-Type": "text/plain"}
    )
    assert resp.status == 415


async def test_with_auth_off_there_is_no_token_endpoint(client):
    user = await new_user(client)
    resp = await login(client, user["profile"]["username"])
    assert resp.status == 404
    assert "JWT_SECRET_KEY" in (await resp.json())["error"]["message"]


@pytest.mark.parametrize("write", WRITES)
async def test_a_write_needs_the_users_own_token(auth_client, write):
    method, path, body, ok_status = WRITES[write]
    user, other = await new_user(auth_client), await new_user(auth_client)
    url = path.format(user["id"])
    expired = crafted(user["id"], exp=int(time.time()) - 10)
    cases = [
        ({}, 401),
        ({"Authorization": "Basic YWRhOnB3"}, 401),
        ({"Authorization": "Bearer"}, 401),
        (bearer("not.a.token"), 401),
        (bearer(crafted(user["id"], secret="another secret of thirty-two bytes!")), 401),
        (bearer(expired), 401),
        (bearer(jwt.encode({"sub": user["id"]}, SECRET, "HS256")), 401),  # no exp: refused
        (bearer(crafted(12345)), 401),  # sub must be a string
        (bearer(await token_for(auth_client, other)), 403),
    ]
    for headers, status in cases:
        resp = await auth_client.request(method, url, json=body, headers=headers)
        assert resp.status == status, (headers, await resp.text())
        error = (await resp.json())["error"]
        assert error["code"] == ("unauthorized" if status == 401 else "forbidden")
        if status == 401:
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    resp = await auth_client.request(method, url, json=body, headers=bearer(expired))
    assert "expired" in (await resp.json())["error"]["message"]

    resp = await auth_client.request(
        method, url, json=body, headers=bearer(await token_for(auth_client, user))
    )
    assert resp.status == ok_status, await resp.text()


async def test_the_none_algorithm_is_refused(auth_client):
    user = await new_user(auth_client)
    unsigned = jwt.encode({"sub": user["id"], "exp": int(time.time()) + 60}, None, algorithm="none")
    resp = await auth_client.delete(f"/users/{user['id']}", headers=bearer(unsigned))
    assert resp.status == 401


async def test_auth_is_checked_before_existence(auth_client):
    """A stranger learns nothing about which ids exist: 401 whether or not the user is there."""
    resp = await auth_client.delete(f"/users/{unique_id()}")
    assert resp.status == 401
    resp = await auth_client.put(f"/users/{unique_id()}/profile", json={})
    assert resp.status == 401


async def test_creating_through_put_profile_needs_that_users_token(auth_client):
    """The same rule as any write to X: only X's token (e.g. after X deleted itself)."""
    user = await new_user(auth_client)
    token = await token_for(auth_client, user)
    new_id, body = unique_id(), {"username": unique_id()}
    resp = await auth_client.put(f"/users/{new_id}/profile", json=body)
    assert resp.status == 401
    resp = await auth_client.put(f"/users/{new_id}/profile", json=body, headers=bearer(token))
    assert resp.status == 403
    resp = await auth_client.put(
        f"/users/{new_id}/profile", json=body, headers=bearer(crafted(new_id))
    )
    assert resp.status == 201


async def test_a_deleted_users_token_creates_nothing(auth_client):
    """Issue 24, finding 7: after DELETE, the same token made PUT .../profile answer 201,
    re-creating the id (no password: no token for it worked) and taking a username for good."""
    user = await new_user(auth_client)
    token, path = await token_for(auth_client, user), f"/users/{user['id']}"
    assert (await auth_client.delete(path, headers=bearer(token))).status == 204
    squatted = "admin" + unique_id()[:20]
    resp = await auth_client.put(
        f"{path}/profile", json={"username": squatted}, headers=bearer(token)
    )
    assert resp.status == 401, await resp.text()
    assert "no longer exists" in (await resp.json())["error"]["message"]
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    for method, suffix, body in (
        ("DELETE", "", None),
        ("PUT", "/password", {"new_password": "a new password", "current_password": PASSWORD}),
    ):
        resp = await auth_client.request(method, path + suffix, json=body, headers=bearer(token))
        assert resp.status == 401, (method, await resp.text())
    assert (await auth_client.get(path)).status == 404  # nothing was created
    resp = await auth_client.post("/users", json={"username": squatted})
    assert resp.status == 201  # and the username is anyone's


async def test_a_delete_racing_a_put_does_not_let_the_old_token_create_the_id(auth_client):
    """The PUT's token is checked while the account exists; the DELETE lands while the
    PUT's body is on its way: the PUT must then create nothing (401), not upsert."""
    user = await new_user(auth_client)
    token, path = await token_for(auth_client, user), f"/users/{user['id']}"
    body = b'{"username": "' + unique_id().encode() + b'"}'
    reader, writer = await asyncio.open_connection("127.0.0.1", auth_client.port)
    writer.write(
        f"PUT {path}/profile HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    )
    await writer.drain()
    # Time for the server to check the token against the existing account (a 401 for an
    # account already gone, should it be slower than this, passes the test as well).
    await asyncio.sleep(0.3)
    assert (await auth_client.delete(path, headers=bearer(token))).status == 204
    writer.write(body)
    async with deadline(10):
        status_line = await reader.readline()
    writer.close()
    assert status_line.split()[1] == b"401", status_line
    assert (await auth_client.get(path)).status == 404


async def test_reads_stay_open(auth_client):
    user = await new_user(auth_client)
    resp = await auth_client.get(f"/users/{user['id']}")
    assert resp.status == 200


async def test_wrong_current_password_is_403_even_with_the_right_token(auth_client):
    user = await new_user(auth_client)
    resp = await auth_client.put(
        f"/users/{user['id']}/password",
        json={"new_password": "a new password", "current_password": "not it"},
        headers=bearer(await token_for(auth_client, user)),
    )
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "forbidden"


@pytest.mark.parametrize(
    "legacy",
    [
        pytest.param(hashlib.sha256(PASSWORD.encode()).hexdigest(), id="hex_sha256"),
        pytest.param(bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode(), id="bcrypt"),
    ],
)
async def test_login_rehashes_a_legacy_hash(auth_client, legacy):
    user = await new_user(auth_client, password=None)
    storage = auth_client.app[STORAGE]
    await storage.set_password_hash(user["id"], legacy)

    assert (await login(auth_client, user["profile"]["username"])).status == 200
    upgraded = (await storage.get_credentials(user["id"])).password_hash
    assert upgraded.startswith("$bcrypt-sha256$")
    # The new hash is of the same password, and a wrong password never triggers a re-hash.
    assert (await login(auth_client, user["profile"]["username"])).status == 200
    assert (await login(auth_client, user["profile"]["username"], "wrong")).status == 401
    assert (await storage.get_credentials(user["id"])).password_hash == upgraded


async def test_the_hash_and_the_secret_never_leave_the_server(auth_client, caplog):
    caplog.set_level(logging.DEBUG)
    user = await new_user(auth_client)
    username = user["profile"]["username"]
    token = await token_for(auth_client, user)
    stored_hash = (await auth_client.app[STORAGE].get_credentials(user["id"])).password_hash
    seen = []
    requests = [
        ("GET", f"/users/{user['id']}", None, {}),
        ("POST", "/auth/token", {"username": username, "password": "wrong"}, {}),
        ("POST", "/auth/token", {"username": username, "password": PASSWORD}, {}),
        ("PUT", f"/users/{user['id']}/profile", {"bio": "x"}, bearer(token)),
        ("PUT", f"/users/{user['id']}/profile", {"bio": "x"}, bearer(token[:-3] + "abc")),
        ("PUT", f"/users/{user['id']}/password", {"new_password": "12345678"}, {}),
        ("DELETE", f"/users/{user['id']}", None, bearer(crafted(user["id"], exp=1))),
    ]
    for method, path, body, headers in requests:
        resp = await auth_client.request(method, path, json=body, headers=headers)
        seen.append(await resp.text())
        seen.extend(f"{k}: {v}" for k, v in resp.headers.items())
    everything = "\n".join(seen) + "\n" + caplog.text
    for secret in (SECRET, stored_hash, stored_hash.split("$")[-1], PASSWORD):
        assert secret not in everything
    assert "password_hash" not in everything


async def start_log(env: dict[str, str]) -> list[str]:
    """The log lines of ``python -m svc`` up to "listening on", then it is stopped."""
    port = unused_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "svc",
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOST": "127.0.0.1",
            "PORT": str(port),
            **env,
        },
        stderr=asyncio.subprocess.PIPE,
    )
    lines: list[str] = []
    try:
        async with deadline(30):
            while not lines or "listening on" not in lines[-1]:
                line = await proc.stderr.readline()
                assert line, f"svc stopped: {lines}"
                lines.append(line.decode())
    finally:
        proc.terminate()
        await proc.wait()
    return lines


@pytest.mark.parametrize("secret", [None, SECRET])
async def test_start_up_warns_when_auth_is_off(secret):
    lines = await start_log({"JWT_SECRET_KEY": secret} if secret else {})
    warned = [line for line in lines if "WARNING" in line and "JWT_SECRET_KEY" in line]
    assert len(warned) == (0 if secret else 1), lines
    assert SECRET not in "".join(lines)


async def test_a_token_issued_before_the_account_was_created_is_refused(auth_client):
    """E.g. a token of an id that was deleted and created again by someone else."""
    user = await new_user(auth_client)
    user_id, path = user["id"], f"/users/{user['id']}/profile"
    before_creation = crafted(user_id, iat=int(time.time()) - 3600)
    resp = await auth_client.put(path, json={"bio": "x"}, headers=bearer(before_creation))
    assert resp.status == 401
    assert "before the account was created" in (await resp.json())["error"]["message"]
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    token = await token_for(auth_client, user)  # issued now: fine
    assert (await auth_client.put(path, json={"bio": "y"}, headers=bearer(token))).status == 200
    # A password set right after a login does not lock out the token got with it (the
    # comparison is at whole seconds, with a second of slack for clocks).
    resp = await auth_client.put(
        f"/users/{user_id}/password",
        json={"new_password": "another password", "current_password": PASSWORD},
        headers=bearer(token),
    )
    assert resp.status == 200
    resp = await login(auth_client, user["profile"]["username"], "another password")
    fresh = (await resp.json())["access_token"]
    assert (await auth_client.put(path, json={"bio": "z"}, headers=bearer(fresh))).status == 200


def test_the_stale_token_rule():
    created = datetime(2026, 1, 1, 12, 0, 0, 500000, tzinfo=timezone.utc)
    changed = created + timedelta(hours=1)
    credentials = Credentials("u", "$hash", password_updated_at=changed, created_at=created)
    at = changed.timestamp()
    # A login's token is bound to the password it verified (pat), to the microsecond.
    refuse_stale({"sub": "u", "iat": at, "pat": changed.timestamp()}, credentials)
    with pytest.raises(InvalidToken, match="log in again"):
        refuse_stale({"sub": "u", "iat": at, "pat": created.timestamp()}, credentials)
    # Without pat: issued no earlier than the creation and the last password change.
    for issued in (at, at + 3600):
        refuse_stale({"sub": "u", "iat": issued}, credentials)  # accepted
    for issued in (created.timestamp() - 60, at - 0.001):
        with pytest.raises(InvalidToken, match="log in again"):
            refuse_stale({"sub": "u", "iat": issued}, credentials)
