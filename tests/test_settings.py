"""Settings from the environment; a bad value stops start-up with one line naming it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from svc.settings import Settings, SettingsError


def test_defaults():
    settings = Settings.from_env({})
    assert settings.database_url == "memory://"
    assert (settings.host, settings.port) == ("0.0.0.0", 8000)
    assert settings.bcrypt_rounds == 12
    assert settings.auth_enabled is False
    assert settings.cors_origins == ()
    assert settings.drain_seconds == 5


def test_values_are_read():
    settings = Settings.from_env(
        {
            "PORT": "9001",
            "HOST": "127.0.0.1",
            "BCRYPT_ROUNDS": "10",
            "CORS_ORIGINS": "https://a.example, https://b.example",
            "CORS_ORIGIN_REGEX": r"https://.*\.up\.railway\.app",
            "JWT_SECRET_KEY": "k" * 32,
            "DRAIN_SECONDS": "0",
        }
    )
    assert settings.drain_seconds == 0
    assert (settings.port, settings.host, settings.bcrypt_rounds) == (9001, "127.0.0.1", 10)
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    assert settings.auth_enabled is True


@pytest.mark.parametrize(
    "env, variable, words",
    [
        ({"PORT": "abc"}, "PORT", "whole number"),
        ({"PORT": "70000"}, "PORT", "65535"),
        ({"BCRYPT_ROUNDS": "3"}, "BCRYPT_ROUNDS", "4 to 31"),
        ({"BCRYPT_ROUNDS": "32"}, "BCRYPT_ROUNDS", "4 to 31"),
        (
            # a scheme no plugin serves (sqlite has one: plugins/svc_sqlite, when installed)
            {"DATABASE_URL": "mongodb://db/svc"},
            "DATABASE_URL",
            "installed: memory, postgres, postgresql",
        ),
        ({"DATABASE_URL": "not a url"}, "DATABASE_URL", "scheme://"),
        ({"JWT_SECRET_KEY": "short"}, "JWT_SECRET_KEY", "32 bytes"),
        ({"CORS_ORIGIN_REGEX": "(unclosed"}, "CORS_ORIGIN_REGEX", "regular expression"),
        ({"DATABASE_TIMEOUT": "soon"}, "DATABASE_TIMEOUT", "seconds"),
        ({"DRAIN_SECONDS": "-1"}, "DRAIN_SECONDS", "0 to 600"),
        ({"DRAIN_SECONDS": "a while"}, "DRAIN_SECONDS", "seconds"),
        ({"EVENT_LOOP": "trio"}, "EVENT_LOOP", "one of uvloop, asyncio"),
    ],
)
def test_bad_values_name_the_variable(env, variable, words):
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    assert info.value.variable == variable
    assert str(info.value).startswith(f"{variable}: ")
    assert words in str(info.value)


@pytest.mark.parametrize(
    "env, variable",
    [
        ({"PORT": "eighty"}, "PORT"),
        ({"DRAIN_SECONDS": "5s"}, "DRAIN_SECONDS"),
        ({"EVENT_LOOP": "tokio"}, "EVENT_LOOP"),
        ({"DATABASE_URL": "nosuch://x"}, "DATABASE_URL"),
        ({"CORS_ORIGINS": "https://ok.example,https://app.example.com/"}, "CORS_ORIGINS"),
        ({"TRUSTED_PROXIES": "10.0.0.0/8,balancer.internal"}, "TRUSTED_PROXIES"),
    ],
)
def test_start_up_stops_with_one_line(env, variable):
    result = subprocess.run(
        [sys.executable, "-m", "svc"],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"svc: error: {variable}: ")
    assert "Traceback" not in result.stderr


def test_plugins_command_lists_the_builtins():
    result = subprocess.run(
        [sys.executable, "-m", "svc", "plugins"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0
    schemes = {line.split()[0]: line.split()[-1] for line in result.stdout.splitlines()}
    assert schemes["memory"] == schemes["postgres"] == schemes["postgresql"] == "builtin"


def test_a_storage_whose_own_broker_is_not_installed_stops_start_up_with_one_line():
    from svc_memory import MemoryStorage

    from svc.storage import registry

    class NeedsABroker(MemoryStorage):
        @classmethod
        def default_broker_url(cls, url: str) -> str | None:
            return "nosuchbroker://somewhere"

    registry.register("needsbroker", NeedsABroker)
    try:
        with pytest.raises(SettingsError) as refused:
            Settings.from_env({"DATABASE_URL": "needsbroker://"})
        assert refused.value.variable == "BROKER_URL"
        assert "nosuchbroker" in str(refused.value) and "storage's own broker" in str(refused.value)
        # Named explicitly, an installed broker serves that storage.
        assert (
            Settings.from_env(
                {"DATABASE_URL": "needsbroker://", "BROKER_URL": "memory://"}
            ).resolved_broker_url
            == "memory://"
        )
    finally:
        registry.unregister("needsbroker")
