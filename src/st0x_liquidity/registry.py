"""What plugins register (executor types, fill source types, config sections) and
the :class:`Registry` that holds it all.

This module imports nothing of the package at run time (the names under
``TYPE_CHECKING`` are for annotations only and are never imported), so that
:mod:`.config`, :mod:`.app` and :mod:`.plugins` can all use it without import cycles.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
import pluggy

if TYPE_CHECKING:
    from .config import AppConfig
    from .protocols import Executor, FillSource, PositionStore


@attrs.frozen
class ExecutorContext:
    """What an executor factory gets besides its own config section."""

    app: AppConfig
    store: PositionStore


@attrs.frozen
class ExecutorType:
    """An executor a ``[broker]`` section can select with ``type = name``.

    ``config_class`` is an attrs class; the ``[broker]`` keys other than ``type``
    are structured into it (unknown keys are an error), and any of its fields can
    also come from the environment as ``ST0X_BROKER_<FIELD>``.
    """

    name: str
    config_class: type[Any]
    factory: Callable[[Any, ExecutorContext], Executor]
    description: str = ""


@attrs.frozen
class FillSourceType:
    """A fill source a ``[source]`` section can select with ``type = name``."""

    name: str
    config_class: type[Any]
    factory: Callable[[Any, ExecutorContext], FillSource]
    description: str = ""


@attrs.frozen
class ConfigSection:
    """An extra top-level table a plugin understands, structured into ``config_class``."""

    name: str
    config_class: type[Any]


@attrs.frozen
class PluginInfo:
    name: str
    distribution: str
    version: str


@attrs.frozen
class Registry:
    """Everything the plugins registered, with where each came from."""

    executors: dict[str, ExecutorType]
    sources: dict[str, FillSourceType]
    sections: dict[str, ConfigSection]
    plugins: tuple[PluginInfo, ...]
    origin: dict[str, str]
    manager: pluggy.PluginManager
