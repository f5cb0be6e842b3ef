"""The one place that builds the plugin manager (pluggy's eggsample pattern).

Everything that wants plugins calls :func:`get_plugin_manager` or
:func:`load_registry`; nothing else touches entry points.
"""

from __future__ import annotations

import importlib
import os
from importlib import metadata
from typing import Any

import pluggy

from . import hookspecs
from .registry import ConfigSection, ExecutorType, FillSourceType, PluginInfo, Registry

DEFAULT_PLUGINS = (
    "st0x_liquidity.builtin.dry_run",
    "st0x_liquidity.builtin.replay",
    "st0x_liquidity.raindex.plugin",
    "st0x_liquidity.rebalancing.plugin",
    "st0x_liquidity.reporting.plugin",
    "st0x_liquidity.web.plugin",
)
"""Built-in plugins, registered like third-party ones."""

DISABLE_ENV = "ST0X_DISABLE_PLUGINS"
"""Comma-separated entry-point names not to load (to bisect a misbehaving plugin)."""


def get_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in os.environ.get(DISABLE_ENV, "").split(","):
        if name.strip():
            pm.set_blocked(name.strip())
    pm.load_setuptools_entrypoints(hookspecs.PROJECT)
    for module_name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(module_name), name=module_name)
    return pm


class DuplicateRegistrationError(Exception):
    pass


def _core_version() -> str:
    try:
        return metadata.version("st0x-liquidity")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a checkout
        return "0+unknown"


def load_registry(pm: pluggy.PluginManager | None = None) -> Registry:
    pm = pm or get_plugin_manager()
    executors: dict[str, ExecutorType] = {}
    sources: dict[str, FillSourceType] = {}
    sections: dict[str, ConfigSection] = {}
    origin: dict[str, str] = {}

    def collector(kind: str, table: dict[str, Any], plugin_name: str) -> Any:
        def register(item: Any) -> None:
            if item.name in table:
                raise DuplicateRegistrationError(
                    f"{kind} {item.name!r} registered twice "
                    f"(by {origin[f'{kind}:{item.name}']} and {plugin_name})"
                )
            table[item.name] = item
            origin[f"{kind}:{item.name}"] = plugin_name

        return register

    for hook_name, kind, table in (
        ("st0x_register_executors", "executor", executors),
        ("st0x_register_fill_sources", "source", sources),
        ("st0x_register_config_sections", "section", sections),
    ):
        # Call each implementation ourselves so every registration is attributed
        # to the plugin that made it (for `plugins` and for duplicate errors).
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            register = collector(kind, table, impl.plugin_name)
            impl.function(**({"register": register} if "register" in impl.argnames else {}))

    dist_of = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    infos: list[PluginInfo] = []
    for plugin in pm.get_plugins():
        name = pm.get_name(plugin) or repr(plugin)
        dist = dist_of.get(id(plugin))
        if dist is not None:
            infos.append(PluginInfo(name, dist.project_name, dist.version))
        else:
            infos.append(PluginInfo(name, "st0x-liquidity", _core_version()))
    return Registry(
        executors=executors,
        sources=sources,
        sections=sections,
        plugins=tuple(sorted(infos, key=lambda i: i.name)),
        origin=origin,
        manager=pm,
    )
