"""The scheme → plugin registry, with a real third-party plugin installed on sys.path."""

from __future__ import annotations

import sys
import textwrap

import pytest
from svc_memory import MemoryStorage

from svc.storage import registry


@pytest.fixture
def third_party(tmp_path, monkeypatch):
    """A distribution `svc-third` that registers a scheme, tries to take over `memory`,
    and registers one plugin that needs a package that is not installed."""
    (tmp_path / "svc_third.py").write_text(
        textwrap.dedent(
            """
            from svc_memory import MemoryStorage

            class ThirdStorage(MemoryStorage):
                pass

            class NotAStorage:
                pass
            """
        )
    )
    (tmp_path / "svc_needs_dep.py").write_text("import svc_dep_that_is_not_installed\n")
    dist = tmp_path / "svc_third-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: svc-third\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[svc.storage]\n"
        "third = svc_third:ThirdStorage\n"
        "memory = svc_third:ThirdStorage\n"
        "notastorage = svc_third:NotAStorage\n"
        "needsdep = svc_needs_dep:Whatever\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for name in ("svc_third", "svc_needs_dep"):
        sys.modules.pop(name, None)


def test_builtins_resolve():
    assert registry.get_plugin("memory://") is MemoryStorage
    assert registry.get_plugin("postgresql://u@h/db") is registry.get_plugin("postgres://u@h/db")


def test_unknown_scheme_lists_the_installed():
    with pytest.raises(registry.PluginError, match="installed: memory, postgres, postgresql"):
        registry.get_plugin("nosuch://x")


def test_third_party_plugin_found_by_its_entry_point(third_party):
    cls = registry.get_plugin("third://anything")
    assert cls.__name__ == "ThirdStorage"
    assert registry.available()["third"].origin == "svc-third"


def test_builtin_cannot_be_replaced_by_another_package(third_party, caplog):
    assert registry.get_plugin("memory://") is MemoryStorage
    assert "ignoring svc-third's storage plugin" in caplog.text


def test_non_storage_plugin_is_a_type_error(third_party):
    with pytest.raises(TypeError, match="not a svc Storage"):
        registry.get_plugin("notastorage://x")


def test_missing_dependency_names_the_package(third_party):
    with pytest.raises(registry.PluginError, match="pip install svc_dep_that_is_not_installed"):
        registry.get_plugin("needsdep://x")


def test_a_plugin_shadowed_by_its_own_folder_says_where_it_was_imported_from(tmp_path, monkeypatch):
    """The distribution's folder is named like its package (svc_shadow/svc_shadow/), and svc
    starts in the folder above: `import svc_shadow` finds the outer folder, a namespace
    package with no class in it.  The error says which folder was imported."""
    package = tmp_path / "svc_shadow" / "svc_shadow"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("from svc_memory import MemoryStorage as Shadow\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.register("shadow", "svc_shadow:Shadow")
    try:
        with pytest.raises(registry.PluginError) as caught:
            registry.get_plugin("shadow://x")
    finally:
        registry.unregister("shadow")
        sys.modules.pop("svc_shadow", None)
    assert f"imported from {tmp_path / 'svc_shadow'}" in str(caught.value)
    assert "has no 'Shadow'" in str(caught.value)


def test_register_for_tests():
    class Registered(MemoryStorage):
        pass

    registry.register("registered", Registered)
    try:
        assert registry.get_plugin("registered://") is Registered
        with pytest.raises(ValueError):
            registry.register("registered", Registered)
        with pytest.raises(ValueError):
            registry.register("memory", Registered)
    finally:
        registry.unregister("registered")
    with pytest.raises(registry.PluginError):
        registry.get_plugin("registered://")
