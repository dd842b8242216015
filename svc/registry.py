"""URL scheme → plugin class, through an entry-point group (storage and broker alike).

In the manner of fsspec's registry and SQLAlchemy's ``PluginLoader``:

* a built-in scheme resolves only to the built-in class, so installing some
  other package cannot silently swap the storage or broker of a running service
  (the built-ins are svc's own entry points: setup.cfg is the one table);
* errors a person can act on: an unknown scheme lists the installed ones, a
  plugin whose dependency is missing names the package to install, a plugin
  of the wrong kind is a ``TypeError``;
* ``register`` for tests and for embedding svc without packaging.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from importlib.metadata import entry_points
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

#: The distribution whose entry points are the built-in plugins (setup.cfg's ``name``).
BUILTIN_DISTRIBUTION = "svc"


class PluginError(Exception):
    """A URL that cannot be served; the message says what to do."""


@dataclass(frozen=True)
class PluginInfo:
    scheme: str
    target: str  # "module:Class", or the repr of a registered class
    origin: str  # the distribution that registered it, "builtin", or "registered"


def scheme_of(url: str) -> str:
    """The scheme of a URL; PluginError if there is none.  Never echoes the URL (it may
    hold a password)."""
    scheme = urlsplit(url).scheme.lower()
    if not scheme or "://" not in url:
        raise PluginError("not a URL of the form scheme://...")
    return scheme


class Registry:
    """The plugins of one kind (``kind``: "storage" or "broker") found in ``group``."""

    def __init__(self, kind: str, group: str, base: type):
        self.kind = kind
        self.group = group
        self.base = base
        self._registered: dict[str, type | str] = {}

    def builtins(self) -> dict[str, str]:
        """scheme → "module:Class" of the built-ins, the entry points of svc's own
        distribution (setup.cfg, the one table): only these targets may serve these schemes."""
        return {
            ep.name.lower(): ep.value
            for ep in entry_points(group=self.group)
            if ep.dist is not None and ep.dist.name == BUILTIN_DISTRIBUTION
        }

    def register(self, scheme: str, plugin: type | str, clobber: bool = False) -> None:
        """Serve ``scheme`` with ``plugin`` (a class, or a "module:Class" path)."""
        scheme = scheme.lower()
        if not clobber and (scheme in self._registered or scheme in self.builtins()):
            raise ValueError(f"{self.kind} scheme {scheme!r} is already registered")
        self._registered[scheme] = plugin

    def unregister(self, scheme: str) -> None:
        self._registered.pop(scheme.lower(), None)

    def available(self) -> dict[str, PluginInfo]:
        """Every scheme that can be served, with where its plugin comes from."""
        found: dict[str, PluginInfo] = {}
        builtins = self.builtins()
        for ep in entry_points(group=self.group):
            scheme = ep.name.lower()
            origin = ep.dist.name if ep.dist is not None else "unknown"
            builtin = builtins.get(scheme)
            if builtin is not None and ep.value != builtin:
                log.warning(
                    "ignoring %s's %s plugin %s for the built-in scheme %r",
                    origin,
                    self.kind,
                    ep.value,
                    scheme,
                )
                continue
            found[scheme] = PluginInfo(scheme, ep.value, "builtin" if builtin else origin)
        for scheme, plugin in self._registered.items():
            target = (
                plugin if isinstance(plugin, str) else f"{plugin.__module__}:{plugin.__qualname__}"
            )
            found[scheme] = PluginInfo(scheme, target, "registered")
        return dict(sorted(found.items()))

    def get_plugin(self, url: str) -> type:
        """The class that serves ``url``."""
        scheme = scheme_of(url)
        plugins = self.available()
        info = plugins.get(scheme)
        if info is None:
            raise PluginError(
                f"no {self.kind} plugin for scheme {scheme!r}; installed: {', '.join(plugins)}"
            )
        return self.load(info)

    def load(self, info: PluginInfo) -> type:
        """Import the plugin ``info`` names and check its kind."""
        registered = self._registered.get(info.scheme)
        cls = registered if isinstance(registered, type) else self._import(info)
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise TypeError(
                f"{self.kind} plugin {info.target} for {info.scheme!r} is not a svc "
                f"{self.base.__name__} class"
            )
        return cls

    def _import(self, info: PluginInfo) -> object:
        module_name, _, attr = info.target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            missing = (exc.name or module_name).partition(".")[0]
            raise PluginError(
                f"{self.kind} plugin {info.target} for {info.scheme!r} needs the package "
                f"{missing!r}: pip install {missing}"
            ) from exc
        except ImportError as exc:  # the module is there but broken: say so, not "install"
            raise PluginError(
                f"{self.kind} plugin {info.target} for {info.scheme!r} does not import: {exc}"
            ) from exc
        try:
            return getattr(module, attr) if attr else module
        except AttributeError:
            # Where from: a folder named like the package (name/name/, svc started from its
            # parent) imports as an empty namespace package instead of the installed one.
            where = getattr(module, "__file__", None) or ", ".join(getattr(module, "__path__", []))
            raise PluginError(
                f"{self.kind} plugin {info.target}: {module_name} (imported from {where}) "
                f"has no {attr!r}"
            ) from None
