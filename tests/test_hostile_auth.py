"""A leaked or stale token, a password race, and floods of password work, over real sockets.

Each test reproduces an attack that worked before; on memory and on Postgres.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import time

import aiohttp
import bcrypt
import jwt
import pytest

from svc.app import create_app
from svc.http.login_throttle import LoginThrottle
from svc.keys import LOGIN_THROTTLE, PASSWORDS, STORAGE
from svc.passwords import Passwords
from svc.testing import unique_id, wait_until

SECRET = "s3cret-for-tests-" + "x" * 32
PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new password"


@pytest.fixture
async def auth_client(make_client):
    return await make_client(jwt_secret_key=SECRET)


@pytest.fixture
def client_with(aiohttp_client, settings):
    """``await client_with(throttle=..., passwords=..., **settings)``: an app with auth on
    and its own login throttle or password pool, set before it starts."""

    async def factory(throttle=None, passwords=None, **overrides):
        app = create_app(dataclasses.replace(settings, jwt_secret_key=SECRET, **overrides))
        if throttle is not None:
            app[LOGIN_THROTTLE] = throttle
        if passwords is not None:
            app[PASSWORDS].close()
            app[PASSWORDS] = passwords
        return await aiohttp_client(app)

    return factory


class CountingPasswords(Passwords):
    """Passwords that count the jobs its threads ran: what these tests prove was skipped."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.ran = 0

    async def _run(self, wanted, fn, *args):
        def counted(*fn_args):
            self.ran += 1
            return fn(*fn_args)

        return await super()._run(wanted, counted, *args)


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


async def create(client, user_id: str | None = None, password: str | None = PASSWORD) -> dict:
    body = {"username": unique_id(), **({"id": user_id} if user_id else {})}
    if password is not None:
        body["password"] = password
    resp = await client.post("/users", json=body)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def login(client, username: str, password: str = PASSWORD):
    return await client.post("/auth/token", json={"username": username, "password": password})


async def token_for(client, user: dict, password: str = PASSWORD) -> str:
    resp = await login(client, user["profile"]["username"], password)
    assert resp.status == 200, await resp.text()
    return (await resp.json())["access_token"]


async def change_password(client, user: dict, token: str, current: str | None = PASSWORD):
    body = {"new_password": NEW_PASSWORD}
    if current is not None:
        body["current_password"] = current
    return await client.put(f"/users/{user['id']}/password", json=body, headers=bearer(token))


async def can_write(client, user_id: str, token: str) -> int:
    resp = await client.put(
        f"/users/{user_id}/profile", json={"bio": "still me?"}, headers=bearer(token)
    )
    return resp.status


# -- item 5: a token outlives what it was issued for ------------------------------------


async def ws_close_code(client, token: str) -> int:
    """A refused join is an upgrade closed at once: its close code."""
    ws = await client.ws_connect(f"/ws/{unique_id('r')}?token={token}")
    msg = await ws.receive(timeout=10)
    await ws.close()
    assert msg.type is aiohttp.WSMsgType.CLOSE, (msg.type, msg.data)
    return msg.data


async def test_a_token_of_a_deleted_user_is_no_key_to_the_next_owner_of_the_id(auth_client):
    first = await create(auth_client)
    old_token = await token_for(auth_client, first)
    resp = await auth_client.delete(f"/users/{first['id']}", headers=bearer(old_token))
    assert resp.status == 204
    # Someone else creates the same id, with a password of their own, or none.
    for password in ("someone else's pw", None):
        second = await create(auth_client, user_id=first["id"], password=password)
        assert await can_write(auth_client, second["id"], old_token) == 401
        resp = await auth_client.put(
            f"/users/{second['id']}/password",
            json={"new_password": "taken over!", "current_password": "whatever"},
            headers=bearer(old_token),
        )
        assert resp.status == 401, await resp.text()
        assert "log in again" in (await resp.json())["error"]["message"]
        assert await ws_close_code(auth_client, old_token) == 4401
        resp = await auth_client.delete(f"/users/{second['id']}", headers=bearer(old_token))
        assert resp.status == 401
        await auth_client.app[STORAGE].delete_user(second["id"])


async def test_a_password_change_retires_older_tokens_and_a_new_login_works_at_once(auth_client):
    user = await create(auth_client)
    old_token = await token_for(auth_client, user)
    resp = await change_password(auth_client, user, old_token)
    assert resp.status == 200, await resp.text()
    assert await can_write(auth_client, user["id"], old_token) == 401
    assert await ws_close_code(auth_client, old_token) == 4401
    # Within the same millisecond: the new token is good, the old password is not.
    new_token = await token_for(auth_client, user, NEW_PASSWORD)
    assert await can_write(auth_client, user["id"], new_token) == 200
    assert (await login(auth_client, user["profile"]["username"])).status == 401
    ws = await auth_client.ws_connect(f"/ws/{unique_id('r')}?token={new_token}")
    assert json.loads((await ws.receive(timeout=10)).data)["type"] == "welcome"
    await ws.close()


async def test_changing_an_existing_password_needs_current_password_besides_the_token(
    auth_client,
):
    user = await create(auth_client)
    token = await token_for(auth_client, user)
    resp = await change_password(auth_client, user, token, current=None)
    assert resp.status == 422
    assert "current_password" in (await resp.json())["error"]["fields"]
    resp = await change_password(auth_client, user, token, current="not the password")
    assert resp.status == 403
    # Nothing changed: the old password and the token still work.
    assert await can_write(auth_client, user["id"], token) == 200
    assert (await login(auth_client, user["profile"]["username"])).status == 200
    # A user without a password sets a first one with the token alone.
    passwordless = await create(auth_client, password=None)
    own = jwt.encode(
        {"sub": passwordless["id"], "iat": time.time(), "exp": time.time() + 60}, SECRET
    )
    resp = await change_password(auth_client, passwordless, own, current=None)
    assert resp.status == 200, await resp.text()


async def test_a_token_without_a_password_stamp_is_compared_to_the_sub_second(auth_client):
    """Tokens signed elsewhere carry only iat: compared with creation and the password's
    last change to the microsecond, not rounded to a second either way."""
    user = await create(auth_client)
    credentials = await auth_client.app[STORAGE].get_credentials(user["id"])
    changed = credentials.password_updated_at.timestamp()

    def signed(iat: float) -> str:
        return jwt.encode({"sub": user["id"], "iat": iat, "exp": time.time() + 60}, SECRET)

    assert await can_write(auth_client, user["id"], signed(changed - 0.0005)) == 401
    assert await can_write(auth_client, user["id"], signed(int(changed))) == 401
    assert await can_write(auth_client, user["id"], signed(changed + 0.0005)) == 200
    bad_iat = jwt.encode({"sub": user["id"], "iat": "soon", "exp": time.time() + 60}, SECRET)
    assert await can_write(auth_client, user["id"], bad_iat) == 401
    no_iat = jwt.encode({"sub": user["id"], "exp": time.time() + 60}, SECRET)
    assert await can_write(auth_client, user["id"], no_iat) == 401


# -- item 6: a login re-hashing an old hash must not undo a password change ----------------


async def test_a_rehashing_login_racing_a_password_change_does_not_write_the_old_one_back(
    make_client,
):
    client = await make_client(jwt_secret_key=SECRET)
    storage = client.app[STORAGE]
    user = await create(client, password=None)
    # A legacy hash slow enough (cost 13) that the change below lands while it is verified.
    legacy = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(13)).decode()
    await storage.set_password_hash(user["id"], legacy)
    passwords = client.app[PASSWORDS]
    logging_in = asyncio.create_task(login(client, user["profile"]["username"]))
    await wait_until(lambda: passwords.pending >= 1)
    new_hash = await Passwords(rounds=4).hash(NEW_PASSWORD)
    await storage.set_password_hash(user["id"], new_hash)  # another process changes it
    resp = await logging_in
    # The old password lost the race: no token, and the new hash stands.
    assert resp.status == 401, await resp.text()
    assert (await storage.get_credentials(user["id"])).password_hash == new_hash
    assert (await login(client, user["profile"]["username"], NEW_PASSWORD)).status == 200


# -- item 7: migrated users ------------------------------------------------------------------


async def test_a_legacy_bcrypt_password_over_72_bytes_logs_in_and_is_upgraded(auth_client):
    storage = auth_client.app[STORAGE]
    long_password = "Grüße aus Köln, " * 8  # 144 bytes of UTF-8
    user = await create(auth_client, password=None)
    # How the old library stored it: bcrypt of the first 72 bytes.
    legacy = bcrypt.hashpw(long_password.encode()[:72], bcrypt.gensalt(4)).decode()
    await storage.set_password_hash(user["id"], legacy)
    assert (await login(auth_client, user["profile"]["username"], long_password)).status == 200
    upgraded = (await storage.get_credentials(user["id"])).password_hash
    assert upgraded.startswith("$bcrypt-sha256$")
    # From now on every byte counts.
    assert (await login(auth_client, user["profile"]["username"], long_password)).status == 200
    truncated = long_password.encode()[:72].decode(errors="ignore")
    assert (await login(auth_client, user["profile"]["username"], truncated)).status == 401


async def test_a_wrong_password_for_a_legacy_sha256_user_still_costs_a_bcrypt(client_with):
    """The unsalted SHA-256 check alone takes microseconds: a miss must also pay the
    bcrypt equaliser (the same one an unknown username pays), or timing tells them apart."""
    auth_client = await client_with(passwords=CountingPasswords(rounds=4))
    storage, passwords = auth_client.app[STORAGE], auth_client.app[PASSWORDS]
    user = await create(auth_client, password=None)
    await storage.set_password_hash(user["id"], hashlib.sha256(PASSWORD.encode()).hexdigest())
    assert passwords._dummy_hash is None
    resp = await login(auth_client, user["profile"]["username"], "wrong password")
    assert resp.status == 401
    assert passwords._dummy_hash is not None and passwords.ran == 1


# -- item 2: password work is bounded ------------------------------------------------------


async def test_a_flood_of_logins_is_refused_with_503_instead_of_queued(make_client):
    client = await make_client(jwt_secret_key=SECRET, bcrypt_rounds=12, hash_queue=4)
    user = await create(client)
    # 40 logins for unknown usernames at once: each would cost a full bcrypt.
    flood = await asyncio.gather(*(login(client, unique_id()) for _ in range(40)))
    statuses = [resp.status for resp in flood]
    assert set(statuses) <= {401, 503}, statuses
    assert statuses.count(503) >= 30, statuses
    busy = next(resp for resp in flood if resp.status == 503)
    assert int(busy.headers["Retry-After"]) >= 1
    assert (await busy.json())["error"]["code"] == "busy"
    # Once it has drained, a real user logs in.
    await wait_until(lambda: client.app[PASSWORDS].pending == 0, timeout=30)
    assert (await login(client, user["profile"]["username"])).status == 200


async def test_logins_whose_clients_left_are_not_hashed(client_with):
    passwords = CountingPasswords(rounds=12, max_workers=1, max_queue=100)
    client = await client_with(passwords=passwords)
    writers = []
    for _ in range(10):
        body = json.dumps({"username": unique_id(), "password": "guess"}).encode()
        _, writer = await asyncio.open_connection("127.0.0.1", client.port)
        writer.write(
            b"POST /auth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        writers.append(writer)
    await wait_until(lambda: passwords.pending == 10)
    for writer in writers:  # every client gives up while its login waits
        writer.close()
    await wait_until(lambda: passwords.pending == 0, timeout=30)
    # At most the one that was running when they left (and one more, had the close
    # raced its start) was hashed; the rest were dropped unhashed.
    assert passwords.ran <= 2, passwords.ran
    passwords.close()


async def test_creating_a_user_whose_id_or_username_is_taken_hashes_nothing(client_with):
    client = await client_with(passwords=CountingPasswords(rounds=4))
    taken = await create(client)
    passwords = client.app[PASSWORDS]
    before = passwords.ran
    for body in (
        {"id": taken["id"], "username": unique_id(), "password": PASSWORD},
        {"username": taken["profile"]["username"].upper(), "password": PASSWORD},
    ):
        resp = await client.post("/users", json=body)
        assert resp.status == 409, await resp.text()
        assert (await resp.json())["error"]["code"] == "conflict"
    assert passwords.ran == before


async def test_repeated_failed_logins_for_one_username_get_429(client_with):
    auth_client = await client_with(
        throttle=LoginThrottle(free=5, first_delay=0.2), passwords=CountingPasswords(rounds=4)
    )
    user = await create(auth_client)
    username = user["profile"]["username"]
    for _ in range(5):
        assert (await login(auth_client, username, "a wrong guess")).status == 401
    passwords = auth_client.app[PASSWORDS]
    before = passwords.ran
    shut = await login(auth_client, username)  # even the right password must wait now
    assert shut.status == 429
    assert int(shut.headers["Retry-After"]) >= 1
    assert (await shut.json())["error"]["code"] == "too_many_requests"
    assert passwords.ran == before  # refused without hashing
    # Unknown usernames are slowed the same way: a 429 does not tell which exist.
    stranger = unique_id()
    for _ in range(5):
        assert (await login(auth_client, stranger, "a wrong guess")).status == 401
    other = await login(auth_client, stranger)
    assert other.status == 429 and await other.text() == await shut.text()
    # Another user is not affected, and the shut user gets in once the delay has passed.
    assert (
        await login(auth_client, (await create(auth_client))["profile"]["username"])
    ).status == 200
    await asyncio.sleep(0.3)
    assert (await login(auth_client, username)).status == 200


async def test_a_burst_of_concurrent_guesses_gets_at_most_the_free_attempts(client_with):
    auth_client = await client_with(throttle=LoginThrottle(free=5, first_delay=30))
    user = await create(auth_client)
    guesses = await asyncio.gather(
        *(login(auth_client, user["profile"]["username"], f"guess {i}") for i in range(20))
    )
    statuses = sorted(resp.status for resp in guesses)
    assert statuses == [401] * 5 + [429] * 15, statuses


async def test_guessing_current_password_with_a_stolen_token_is_throttled_too(client_with):
    client = await client_with(throttle=LoginThrottle(free=5, first_delay=30))
    user = await create(client)
    token = await token_for(client, user)
    for i in range(5):
        resp = await change_password(client, user, token, current=f"guess {i}")
        assert resp.status == 403
    resp = await change_password(client, user, token)  # even the right one, for now
    assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1
    assert await can_write(client, user["id"], token) == 200  # nothing changed
    # The login throttle of the username is another entry: the owner can still log in.
    assert (await login(client, user["profile"]["username"])).status == 200
