"""A record's JSON bodies are built once and live exactly as long as the record.

The cache is serialize.py's, keyed by the record object: the storage record stays plain
data (what a backend builds and the conformance suite compares), and a body never
outlives its record or shows up for another one.
"""

from __future__ import annotations

import dataclasses
import gc
import json
from datetime import datetime, timezone

from svc import serialize
from svc.serialize import user_json
from svc.storage import User

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def a_record(version: int = 1, email: str | None = "a@example.com") -> User:
    profile = {"display_name": f"v{version}", "email": email}
    return User("u1", profile, version, NOW, NOW)


def test_the_record_is_plain_data():
    assert [field.name for field in dataclasses.fields(User)] == [
        "id",
        "profile",
        "version",
        "created_at",
        "updated_at",
        "password_updated_at",
    ]


def test_each_body_is_built_once_per_record_and_representation():
    record = a_record()
    with_email, without = user_json(record), user_json(record, with_email=False)
    assert user_json(record) is with_email and user_json(record, False) is without
    assert json.loads(with_email)["profile"]["email"] == "a@example.com"
    assert json.loads(without)["profile"]["email"] is None
    # No email: both representations are the same body.
    plain = a_record(email=None)
    assert user_json(plain) is user_json(plain, with_email=False)


def test_bodies_go_with_their_record_and_never_serve_another():
    gc.collect()
    before = len(serialize._BODIES)
    for version in range(1, 501):  # ids of dead records are reused: each must show its own
        record = a_record(version)
        assert json.loads(user_json(record))["version"] == version
        assert json.loads(user_json(record, False))["profile"]["display_name"] == f"v{version}"
        del record
    gc.collect()
    assert len(serialize._BODIES) == before
