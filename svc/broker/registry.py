"""URL scheme → broker plugin, through the ``svc.broker`` entry-point group.

Exactly as storage (:mod:`svc.registry`): built-ins cannot be swapped, an
unknown scheme lists the installed ones, a missing dependency names the
package to install.
"""

from __future__ import annotations

from ..registry import PluginError, PluginInfo, Registry, scheme_of
from .base import Broker

__all__ = [
    "GROUP",
    "PluginError",
    "PluginInfo",
    "available",
    "get_plugin",
    "register",
    "scheme_of",
    "unregister",
]

GROUP = "svc.broker"

broker_plugins = Registry("broker", GROUP, Broker)
register = broker_plugins.register
unregister = broker_plugins.unregister
available = broker_plugins.available
get_plugin = broker_plugins.get_plugin
