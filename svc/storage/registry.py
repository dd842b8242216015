"""URL scheme → storage plugin, found through the ``svc.storage`` entry-point group.

The built-in backends are registered there too (see setup.cfg), exactly like a
third party's.  What the registry adds on top of plain entry points:

* a built-in scheme resolves only to the built-in class, so installing some
  other package cannot silently swap the storage under a running service;
* errors a person can act on: an unknown scheme lists the installed ones, a
  plugin whose dependency is missing names the package to install, a plugin
  that is not a :class:`Storage` is a ``TypeError``;
* :func:`register` for tests and for embedding svc without packaging.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from importlib.metadata import entry_points
from urllib.parse import urlsplit

from .base import Storage

log = logging.getLogger(__name__)

GROUP = "svc.storage"

#: scheme → "module:Class" of the built-ins; only these targets may serve these schemes.
BUILTINS = {
    "memory": "svc_memory:MemoryStorage",
    "postgres": "svc_postgres:PostgresStorage",
    "postgresql": "svc_postgres:PostgresStorage",
}


class PluginError(Exception):
    """A storage URL that cannot be served; the message says what to do."""


@dataclass(frozen=True)
class PluginInfo:
    scheme: str
    target: str  # "module:Class", or the repr of a registered class
    origin: str  # the distribution that registered it, "builtin", or "registered"


_registered: dict[str, type[Storage] | str] = {}


def register(scheme: str, plugin: type[Storage] | str, clobber: bool = False) -> None:
    """Serve ``scheme`` with ``plugin`` (a class, or a "module:Class" path)."""
    scheme = scheme.lower()
    if not clobber and (scheme in _registered or scheme in BUILTINS):
        raise ValueError(f"storage scheme {scheme!r} is already registered")
    _registered[scheme] = plugin


def unregister(scheme: str) -> None:
    _registered.pop(scheme.lower(), None)


def available() -> dict[str, PluginInfo]:
    """Every scheme that can be served, with where its plugin comes from."""
    found: dict[str, PluginInfo] = {}
    for ep in entry_points(group=GROUP):
        scheme = ep.name.lower()
        origin = ep.dist.name if ep.dist is not None else "unknown"
        builtin = BUILTINS.get(scheme)
        if builtin is not None and ep.value != builtin:
            log.warning(
                "ignoring %s's plugin %s for the built-in scheme %r", origin, ep.value, scheme
            )
            continue
        found[scheme] = PluginInfo(scheme, ep.value, "builtin" if builtin else origin)
    # Without installed metadata (running from a source tree) the built-ins still work.
    for scheme, target in BUILTINS.items():
        found.setdefault(scheme, PluginInfo(scheme, target, "builtin"))
    for scheme, plugin in _registered.items():
        target = plugin if isinstance(plugin, str) else f"{plugin.__module__}:{plugin.__qualname__}"
        found[scheme] = PluginInfo(scheme, target, "registered")
    return dict(sorted(found.items()))


def scheme_of(url: str) -> str:
    """The scheme of a storage URL; PluginError if there is none."""
    scheme = urlsplit(url).scheme.lower()
    if not scheme or "://" not in url:
        raise PluginError(f"{url!r} is not a URL of the form scheme://...")
    return scheme


def get_plugin(url: str) -> type[Storage]:
    """The Storage class that serves ``url``."""
    scheme = scheme_of(url)
    plugins = available()
    info = plugins.get(scheme)
    if info is None:
        raise PluginError(
            f"no storage plugin for scheme {scheme!r}; installed: {', '.join(plugins)}"
        )
    registered = _registered.get(scheme)
    cls = registered if isinstance(registered, type) else _load(info)
    if not (isinstance(cls, type) and issubclass(cls, Storage)):
        raise TypeError(f"storage plugin {info.target} for {scheme!r} is not a svc Storage class")
    return cls


def _load(info: PluginInfo) -> object:
    module_name, _, attr = info.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        missing = exc.name or module_name
        raise PluginError(
            f"storage plugin {info.target} for {info.scheme!r} needs the package {missing!r}: "
            f"pip install {missing}"
        ) from exc
    try:
        return getattr(module, attr) if attr else module
    except AttributeError:
        raise PluginError(f"storage plugin {info.target}: {module_name} has no {attr!r}") from None
