"""URL scheme → storage plugin, through the ``svc.storage`` entry-point group.

The built-in backends are registered there too (see setup.cfg), exactly like a
third party's; :mod:`svc.registry` says what the registry adds on top.
"""

from __future__ import annotations

from ..registry import PluginError, PluginInfo, Registry, scheme_of
from .base import Storage

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

GROUP = "svc.storage"

storage_plugins = Registry("storage", GROUP, Storage)
register = storage_plugins.register
unregister = storage_plugins.unregister
available = storage_plugins.available
get_plugin = storage_plugins.get_plugin
