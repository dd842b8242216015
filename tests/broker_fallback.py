"""Until the Postgres broker is installed, Postgres-storage tests of this branch run with the
in-process broker: what they test (HTTP, auth, passwords) does not cross processes."""

from __future__ import annotations

import dataclasses

from svc.broker.registry import PluginError, get_plugin
from svc.settings import Settings


def with_a_working_broker(settings: Settings) -> Settings:
    try:
        get_plugin(settings.resolved_broker_url)
    except PluginError:
        return dataclasses.replace(settings, broker_url="memory://")
    return settings
