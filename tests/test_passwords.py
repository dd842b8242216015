"""Password hashing: bcrypt-sha256, legacy schemes, and never on the event loop."""

from __future__ import annotations

import asyncio
import hashlib

import bcrypt

from svc.passwords import Passwords
from svc.testing import unique_id


async def test_hash_uses_bcrypt_sha256_with_the_configured_cost():
    passwords = Passwords(rounds=5)
    try:
        stored = await passwords.hash("a password")
        assert stored.startswith("$bcrypt-sha256$") and "r=5" in stored
        assert await passwords.verify("a password", stored) == (True, None)
        assert (await passwords.verify("another one", stored))[0] is False
    finally:
        passwords.close()


async def test_legacy_hashes_verify_and_ask_for_a_rehash():
    passwords = Passwords(rounds=4)
    try:
        legacy = {
            "plain bcrypt": bcrypt.hashpw(b"old password", bcrypt.gensalt(4)).decode(),
            "the old backend's sha256 hex": hashlib.sha256(b"old password").hexdigest(),
        }
        for name, stored in legacy.items():
            ok, new_hash = await passwords.verify("old password", stored)
            assert ok, name
            assert new_hash is not None and new_hash.startswith("$bcrypt-sha256$"), name
            assert (await passwords.verify("wrong password", stored)) == (False, None), name
        assert await passwords.verify("anything", "not a hash at all") == (False, None)
        assert await passwords.verify("anything", None) == (False, None)
    finally:
        passwords.close()


async def test_a_legacy_hash_counts_as_current_password(client):
    from svc.keys import STORAGE

    resp = await client.post("/users", json={"username": unique_id()})
    user_id = (await resp.json())["id"]
    legacy = bcrypt.hashpw(b"old password", bcrypt.gensalt(4)).decode()
    await client.app[STORAGE].set_password_hash(user_id, legacy)
    resp = await client.put(
        f"/users/{user_id}/password",
        json={"new_password": "new password", "current_password": "old password"},
    )
    assert resp.status == 200


async def test_the_loop_answers_while_hashes_are_in_flight(make_client):
    """Real bcrypt cost: GET / keeps answering while four hashes run.

    Counted, not timed: on the loop, four hashes would leave room for at most a probe
    between each; in the pool, the loop answers probe after probe while they run."""
    rounds = 13
    client = await make_client(bcrypt_rounds=rounds)
    ids = []
    for _ in range(4):
        resp = await client.post("/users", json={"username": unique_id()})
        ids.append((await resp.json())["id"])
    hashing = [
        asyncio.ensure_future(
            client.put(f"/users/{i}/password", json={"new_password": "a password"})
        )
        for i in ids
    ]
    probes = 0
    while not all(task.done() for task in hashing):
        resp = await client.get("/")
        assert resp.status == 200
        probes += 1
        await asyncio.sleep(0.005)
    assert [(await task).status for task in hashing] == [200] * 4
    assert probes >= 10, probes
