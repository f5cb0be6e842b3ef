"""TOML configuration, structured into attrs classes with one cattrs converter.

Errors become :class:`~st0x_liquidity.errors.ConfigError` naming the key, so the
CLI can print one line and exit 2 instead of a traceback. Any field can also be
given through the environment (handy for secrets): top-level keys as
``ST0X_<KEY>``, keys of a section as ``ST0X_<SECTION>_<KEY>`` (upper case), for
example ``ST0X_BROKER_API_SECRET``. The environment wins over the file.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, Protocol

import attrs
import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError

from .domain.numbers import NotADecimalError, to_decimal
from .domain.risk import RiskLimits
from .errors import ConfigError
from .extended_config import ExtendedHoursConfig
from .ha.settings import HaConfig
from .validators import at_least_one, at_most, base_ticker_keys, non_negative, positive

LOG_LEVELS = ("debug", "info", "warning", "error")


class _Configured(Protocol):
    @property
    def config_class(self) -> type[Any]: ...


class Registrations(Protocol):
    """What parsing needs of :class:`~st0x_liquidity.registry.Registry`: the config
    class of every registered executor, source and section. A protocol, so that this
    module does not import the plugin machinery (which imports it back)."""

    @property
    def executors(self) -> Mapping[str, _Configured]: ...

    @property
    def sources(self) -> Mapping[str, _Configured]: ...

    @property
    def sections(self) -> Mapping[str, _Configured]: ...


@attrs.frozen(repr=False)
class Secret:
    """A string that never shows itself in reprs, logs or error messages."""

    value: str

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def get(self) -> str:
        return self.value


MAX_FLOAT = 1e9
"""Largest magnitude of any ``float`` key, core or plugin (seconds: about 31 years)."""
MAX_INT = 2**63 - 1
"""Largest magnitude of any ``int`` key (what a SQLite INTEGER holds)."""
MAX_DECIMAL = Decimal(10) ** 18
"""Magnitude every ``Decimal`` key stays below (amounts and prices: as in the replay format)."""


HOUR, DAY = 3600, 86400


def _seconds(default: float, limit: int) -> Any:
    """A duration key: ``default`` seconds, at least 0, at most ``limit``."""
    return attrs.field(default=default, validator=[non_negative, at_most(limit)])


@attrs.frozen
class EvmConfig:
    ws_rpc_url: str
    orderbook: str
    order_owner: str
    deployment_block: int = attrs.field(default=0, validator=[non_negative, at_most(MAX_INT)])
    cutoff: Any = None
    """Which blocks count (``latest``, ``safe``, ``finalized`` or N confirmations);
    checked by the raindex source, which also accepts it as ``[source] cutoff``."""
    orderbook_interface: Literal["v5", "v6"] = "v5"
    """What ``orderbook`` implements: ``v5`` (IOrderBookV5: ``deposit3``/``withdraw3``) or
    ``v6`` (IRaindexV6: ``deposit4``/``withdraw4``, vaultless orders with vault id 0). The
    fill events are the same in both; rebalancing's vault calls and inventory differ."""


@attrs.frozen
class HedgingConfig:
    """How the engine hedges; every value in seconds unless named otherwise.

    The upper bounds (docs/configuration.md) refuse values that would leave a hedge
    unpolled or a symbol blocked for longer than any operator means."""

    poll_interval: float = _seconds(15.0, HOUR)
    poll_jitter: float = _seconds(5.0, HOUR)
    min_notional: Decimal | None = attrs.field(
        default=None, validator=attrs.validators.optional([non_negative, at_most(1_000_000)])
    )
    client_order_prefix: str = "st0x"
    failure_backoff: float = _seconds(5.0, DAY)
    failure_backoff_max: float = _seconds(300.0, DAY)
    retry_backoff_max: float = _seconds(60.0, HOUR)
    clock_recheck: float = _seconds(60.0, DAY)


@attrs.frozen
class EngineConfig:
    shutdown_timeout: float = _seconds(10.0, HOUR)
    batch_size: int = attrs.field(default=500, validator=[at_least_one, at_most(100_000)])
    exit_when_source_ends: bool = True
    drain_timeout: float = _seconds(60.0, DAY)
    synchronous: Literal["FULL", "NORMAL"] = "FULL"
    """SQLite durability: FULL fsyncs every commit (default); NORMAL (opt-in) may
    lose the last commits on power loss, never on a process crash."""


_OPTIONAL_LIMIT = attrs.validators.optional(positive)


@attrs.frozen
class RiskOverride:
    """``[risk.symbols.<SYMBOL>]``: limits of one symbol; unset keys take ``[risk]``'s."""

    max_order_quantity: Decimal | None = attrs.field(default=None, validator=_OPTIONAL_LIMIT)
    max_order_notional: Decimal | None = attrs.field(default=None, validator=_OPTIONAL_LIMIT)
    max_net_exposure: Decimal | None = attrs.field(default=None, validator=_OPTIONAL_LIMIT)
    max_daily_notional: Decimal | None = attrs.field(default=None, validator=_OPTIONAL_LIMIT)


@attrs.frozen
class RiskConfig:
    """``[risk]``: pre-trade limits every hedge is checked against (domain/risk.py).

    Finite by default: a hedge above any of them is blocked, not placed, and
    raises a critical alert. Raise a limit (up to 999999999999999999) to loosen it.
    """

    max_order_quantity: Decimal = attrs.field(default=Decimal(10000), validator=positive)
    max_order_notional: Decimal = attrs.field(default=Decimal(250000), validator=positive)
    max_net_exposure: Decimal = attrs.field(default=Decimal(1000000), validator=positive)
    max_daily_notional: Decimal = attrs.field(default=Decimal(2500000), validator=positive)
    symbols: dict[str, RiskOverride] = attrs.field(factory=dict, validator=base_ticker_keys)
    state_poll_interval: float = attrs.field(default=2.0, validator=[positive, at_most(HOUR)])
    """Seconds between looks for trading state changes made by the ``risk`` command."""

    def limits(self, ticker: str) -> RiskLimits:
        own = self.symbols.get(ticker) or RiskOverride()

        def pick(name: str) -> Decimal:
            value: Decimal | None = getattr(own, name)
            return value if value is not None else getattr(self, name)

        return RiskLimits(
            pick("max_order_quantity"),
            pick("max_order_notional"),
            pick("max_net_exposure"),
            pick("max_daily_notional"),
        )


@attrs.frozen
class ReconciliationConfig:
    """``[reconciliation]``: compare the broker's positions with the books'."""

    enabled: bool = True
    interval: float = attrs.field(default=300.0, validator=[positive, at_most(DAY)])
    """Seconds between reconciliations (one runs before the first new hedge)."""
    tolerance: Decimal = attrs.field(default=Decimal("0.000001"), validator=non_negative)
    """Shares the broker and the books may differ by before it is a mismatch."""
    halt_on_mismatch: bool = False
    """Set a mismatched symbol's trading state to halted."""
    starting_positions: dict[str, Decimal] = attrs.field(factory=dict, validator=base_ticker_keys)
    """Shares per symbol the broker account held before the bot's first hedge."""


@attrs.frozen
class PostgresDatabase:
    """A ``postgresql://user:pass@host:port/db`` database_url (the password never shows)."""

    url: Secret
    display: str
    """The URL without its password, for messages and logs."""
    password: Secret | None = None


@attrs.frozen
class AppConfig:
    database_path: Path
    """The SQLite file; with PostgreSQL, the base name of local companion files only
    (``<config dir>/<database name>``; none by default: every table, the dry-run
    broker's ledger included, is in the PostgreSQL database)."""
    source_type: str
    source: Any
    broker_type: str
    broker: Any
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    evm: EvmConfig | None = None
    hedging: HedgingConfig = HedgingConfig()
    engine: EngineConfig = EngineConfig()
    risk: RiskConfig = RiskConfig()
    reconciliation: ReconciliationConfig = ReconciliationConfig()
    extended_hours: ExtendedHoursConfig = attrs.field(factory=ExtendedHoursConfig)
    sections: Mapping[str, Any] = attrs.field(factory=dict)
    config_dir: Path = Path(".")
    postgres: PostgresDatabase | None = None
    """Set when ``database_url`` names a PostgreSQL database."""
    ha: HaConfig = attrs.field(factory=HaConfig)
    """``[ha]``: the lease and the standby (PostgreSQL only)."""

    @property
    def database(self) -> Path | str:
        """Where the store and every side table live: the SQLite file, or the
        PostgreSQL URL (with its password: hand it to the store, never print it)."""
        return self.database_path if self.postgres is None else self.postgres.url.get()

    @property
    def database_name(self) -> str:
        """The database for messages: the file, or the URL without its password."""
        return str(self.database_path) if self.postgres is None else self.postgres.display


class EnvText(str):
    """A value read from the environment: always text, converted like the file's values.

    The file's TOML types are honoured (a quoted ``"500"`` is refused where a number
    is required); the environment only has text, so its values are parsed.
    """


def _quoted(value: str, wanted: str) -> ValueError:
    """A TOML string where a number or boolean is required (the environment's text is parsed)."""
    text = value.strip().lower()
    if wanted == "true or false":
        bare = text in ("true", "false")
    else:
        try:
            bare = Decimal(text).is_finite()
        except ArithmeticError:
            bare = False
    hint = " (write it without quotes)" if bare else ""
    return ValueError(f"expected {wanted}, got {value!r}{hint}")


def _structure_decimal(value: Any, _t: Any) -> Decimal:
    try:
        result = to_decimal(value)
    except NotADecimalError as exc:
        raise ValueError(str(exc)) from None
    if abs(result) >= MAX_DECIMAL:
        raise ValueError(f"out of range (must be below 1e18), got {value}")
    return result


def _structure_float(value: Any, _t: Any) -> float:
    number: int | float | Decimal
    if isinstance(value, EnvText):
        try:
            value = Decimal(value.strip())
        except ArithmeticError:
            raise ValueError(f"expected a number, got {value!r}") from None
    elif isinstance(value, str):
        raise _quoted(value, "a number")
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError(f"expected a number, got {type(value).__name__}")
    number = value
    if not (number.is_finite() if isinstance(number, Decimal) else math.isfinite(number)):
        raise ValueError(f"expected a finite number, got {number}")
    if not -MAX_FLOAT <= number <= MAX_FLOAT:  # before float(): 1e400 would be infinity
        raise ValueError(f"out of range (at most 1e9), got {number}")
    return float(number)


def _structure_int(value: Any, _t: Any) -> int:
    if isinstance(value, EnvText) and re.fullmatch(r"\s*-?[0-9]{1,19}\s*", value):
        result = int(value)
    elif isinstance(value, str):
        if isinstance(value, EnvText):
            raise ValueError(f"expected an integer, got {value!r}")
        raise _quoted(value, "an integer")
    elif isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    elif isinstance(value, int):
        result = value
    elif isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        if abs(value) > MAX_INT:
            raise ValueError(f"out of range (at most 2**63 - 1), got {value}")
        result = int(value)
    else:
        raise ValueError(f"expected an integer, got {value!r}")
    if abs(result) > MAX_INT:
        raise ValueError(f"out of range (at most 2**63 - 1), got {result}")
    return result


def _structure_str(value: Any, _t: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    return str(value)


def _structure_bool(value: Any, _t: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, EnvText) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.lower() in ("true", "1", "yes")
    if isinstance(value, str) and value.lower() in ("true", "false"):
        raise _quoted(value, "true or false")
    raise ValueError(f"expected true or false, got {value!r}")


def _structure_secret(value: Any, _t: Any) -> Secret:
    if isinstance(value, Secret):
        return value
    if not isinstance(value, str) or not value:
        raise ValueError("expected a non-empty string")
    return Secret(str(value))


def _structure_path(value: Any, _t: Any) -> Path:
    if not isinstance(value, str) or not value:
        raise ValueError("expected a path")
    return Path(value)


def make_converter() -> cattrs.Converter:
    """The converter every config class (core and plugin) is structured with."""
    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    conv.register_structure_hook(Decimal, _structure_decimal)
    conv.register_structure_hook(float, _structure_float)
    conv.register_structure_hook(int, _structure_int)
    conv.register_structure_hook(str, _structure_str)
    conv.register_structure_hook(bool, _structure_bool)
    conv.register_structure_hook(Secret, _structure_secret)
    conv.register_structure_hook(Path, _structure_path)
    return conv


CONVERTER = make_converter()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return "required key is missing"
    if isinstance(exc, ForbiddenExtraKeysError):
        return "unknown key"
    text = str(exc).strip() or type(exc).__name__
    literal = re.match(r"^(.*) not in literal typing\.Literal\[(.*)\]$", text)
    if literal:
        return f"must be one of {literal.group(2)}, got {literal.group(1)!r}"
    return text


def _first_error(
    exc: BaseException, path: list[str], cls: type[Any] | None = None
) -> tuple[str, str]:
    """Walk cattrs' exception groups to the first leaf and the key path to it."""
    if isinstance(exc, ForbiddenExtraKeysError):
        extra = sorted(exc.extra_fields)
        return ".".join([*path, extra[0]]), "unknown key" + (
            f" (also: {', '.join(extra[1:])})" if len(extra) > 1 else ""
        )
    if isinstance(exc, ClassValidationError | IterableValidationError):
        for sub in exc.exceptions:
            notes = getattr(sub, "__notes__", [])
            name = None
            for note in notes:
                name = getattr(note, "name", None)
                if name is None and hasattr(note, "index"):
                    name = str(note.index)
                if name is not None:
                    break
            if name is None:  # the class's own validator failed: its message names the field
                return _first_error(sub, path, cls)
            return _first_error(sub, [*path, name])
    problem = _describe(exc)
    # An attrs validator's message starts with the field it checked: name the key.
    first = problem.split(" ", 1)
    if (
        cls is not None
        and attrs.has(cls)
        and len(first) == 2
        and first[0] in attrs.fields_dict(cls)
    ):
        return ".".join([*path, first[0]]), first[1]
    return ".".join(path), problem


def structure(data: Any, cls: type[Any], prefix: str) -> Any:
    """Structure ``data`` into ``cls``; any error becomes a ConfigError naming the key."""
    if not isinstance(data, Mapping):
        raise ConfigError(prefix, f"must be a table, got {type(data).__name__}")
    try:
        return CONVERTER.structure(dict(data), cls)
    except (ClassValidationError, ForbiddenExtraKeysError) as exc:
        key, problem = _first_error(exc, [prefix] if prefix else [], cls)
        raise ConfigError(key, problem) from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(prefix, str(exc)) from None


def _is_list(tp: Any) -> bool:
    if typing.get_origin(tp) in (list, tuple, set, frozenset):
        return True
    return typing.get_origin(tp) in (typing.Union, types.UnionType) and any(
        _is_list(arg) for arg in typing.get_args(tp)
    )


def _env_overrides(
    section: str | None, cls: type[Any], table: dict[str, Any], env: Mapping[str, str]
) -> dict[str, Any]:
    result = dict(table)
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # unresolvable annotations in a plugin's class: no list splitting
        hints = {}
    for field in attrs.fields(cls):
        name = f"ST0X_{section}_{field.name}" if section else f"ST0X_{field.name}"
        value = env.get(name.upper())
        if value is not None:
            # A list from the environment is comma-separated (not a list of characters).
            if _is_list(hints.get(field.name)):
                result[field.name] = [
                    EnvText(part.strip()) for part in value.split(",") if part.strip()
                ]
            else:
                result[field.name] = EnvText(value)
    return result


_CORE_KEYS = {
    "database_url",
    "log_level",
    "evm",
    "source",
    "broker",
    "hedging",
    "engine",
    "risk",
    "reconciliation",
    "ha",
    "extended_hours",
}


_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def _postgres(text: str) -> PostgresDatabase:
    """Check a PostgreSQL URL without ever echoing it (it may hold a password)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ConfigError("database_url", "is not a valid postgresql:// URL") from None
    if not parts.hostname:
        raise ConfigError("database_url", "a postgresql:// URL must name a host")
    if not parts.path.strip("/"):
        raise ConfigError("database_url", "a postgresql:// URL must name a database (…/dbname)")
    if parts.fragment:
        raise ConfigError("database_url", "a postgresql:// URL takes no #fragment")
    del port
    netloc = parts.netloc.rpartition("@")[2]
    user = parts.username
    display = parts._replace(netloc=f"{user}@{netloc}" if user else netloc).geturl()
    password = None if parts.password is None else Secret(parts.password)
    return PostgresDatabase(Secret(text), display, password)


def _database(url: Any, base: Path) -> tuple[Path, PostgresDatabase | None]:
    """The SQLite file, or the PostgreSQL database (and its companion files' base name)."""
    if isinstance(url, str) and url.strip().lower().startswith(_POSTGRES_SCHEMES):
        postgres = _postgres(url.strip())
        name = postgres.display.rpartition("/")[2].partition("?")[0] or "postgres"
        return base / name, postgres
    return _database_path(url, base), None


def _database_path(url: Any, base: Path) -> Path:
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(
            "database_url", "must be a non-empty string (a SQLite file path or postgresql:// URL)"
        )
    text = url.strip()
    for prefix in ("sqlite:///", "sqlite://", "sqlite:"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
            break
    if text in ("", ":memory:"):
        raise ConfigError("database_url", "must name a file; an in-memory database loses fills")
    path = Path(text).expanduser()
    return path if path.is_absolute() else base / path


def parse_config(
    raw: Mapping[str, Any],
    registry: Registrations,
    *,
    config_dir: Path = Path("."),
    env: Mapping[str, str] | None = None,
) -> AppConfig:
    env = os.environ if env is None else env
    data = dict(raw)
    for key, value in env.items():
        if key.upper() in ("ST0X_DATABASE_URL", "ST0X_LOG_LEVEL"):
            data[key[5:].lower()] = value
    known_sections = _CORE_KEYS | set(registry.sections)
    for key in data:
        if key not in known_sections:
            raise ConfigError(key, "unknown key")

    if "database_url" not in data:
        raise ConfigError("database_url", "required key is missing")
    database_path, postgres = _database(data["database_url"], config_dir)

    log_level = data.get("log_level", "info")
    if not isinstance(log_level, str) or log_level.lower() not in LOG_LEVELS:
        raise ConfigError("log_level", f"must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}")

    evm = None
    if "evm" in data:
        evm_table = _env_overrides("evm", EvmConfig, _table(data, "evm"), env)
        evm = structure(evm_table, EvmConfig, "evm")
    hedging = structure(
        _env_overrides("hedging", HedgingConfig, _table(data, "hedging"), env),
        HedgingConfig,
        "hedging",
    )
    engine = structure(
        _env_overrides("engine", EngineConfig, _table(data, "engine"), env), EngineConfig, "engine"
    )

    risk = structure(
        _env_overrides("risk", RiskConfig, _table(data, "risk"), env), RiskConfig, "risk"
    )
    reconciliation = structure(
        _env_overrides("reconciliation", ReconciliationConfig, _table(data, "reconciliation"), env),
        ReconciliationConfig,
        "reconciliation",
    )

    ha = structure(_env_overrides("ha", HaConfig, _table(data, "ha"), env), HaConfig, "ha")
    if postgres is None and "ha" in data:
        raise ConfigError(
            "ha", "needs a postgresql:// database_url (a SQLite database has one writer, no standby)"
        )
    extended_hours = structure(
        _env_overrides("extended_hours", ExtendedHoursConfig, _table(data, "extended_hours"), env),
        ExtendedHoursConfig,
        "extended_hours",
    )

    source_table = _table(data, "source")
    source_type = source_table.pop("type", "raindex")
    if not isinstance(source_type, str):
        raise ConfigError("source.type", "must be a string")
    if source_type not in registry.sources:
        known = ", ".join(sorted(registry.sources)) or "none"
        raise ConfigError("source.type", f"unknown fill source {source_type!r} (known: {known})")
    source_cls = registry.sources[source_type].config_class
    source = structure(
        _env_overrides("source", source_cls, source_table, env), source_cls, "source"
    )

    if "broker" not in data:
        raise ConfigError("broker", "required section is missing")
    broker_table = _table(data, "broker")
    broker_type = env.get("ST0X_BROKER_TYPE", broker_table.pop("type", None))
    broker_table.pop("type", None)
    known = ", ".join(sorted(registry.executors)) or "none"
    if broker_type is None:
        raise ConfigError("broker.type", f"required key is missing (known: {known})")
    if not isinstance(broker_type, str) or broker_type not in registry.executors:
        raise ConfigError("broker.type", f"unknown broker type {broker_type!r} (known: {known})")
    broker_cls = registry.executors[broker_type].config_class
    broker = structure(
        _env_overrides("broker", broker_cls, broker_table, env), broker_cls, "broker"
    )

    sections: dict[str, Any] = {}
    for name, section in registry.sections.items():
        if name in data:
            sections[name] = structure(
                _env_overrides(name, section.config_class, _table(data, name), env),
                section.config_class,
                name,
            )

    return AppConfig(
        database_path=database_path,
        postgres=postgres,
        source_type=source_type,
        source=source,
        broker_type=broker_type,
        broker=broker,
        log_level=log_level.lower(),  # type: ignore[arg-type]
        evm=evm,
        hedging=hedging,
        engine=engine,
        risk=risk,
        reconciliation=reconciliation,
        ha=ha,
        extended_hours=extended_hours,
        sections=sections,
        config_dir=config_dir,
    )


def _table(data: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, Mapping):
        raise ConfigError(name, f"must be a table, got {type(value).__name__}")
    return dict(value)


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh, parse_float=Decimal)
    except FileNotFoundError:
        raise ConfigError("", f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError("", f"config file is a directory: {path}") from None
    except PermissionError:
        raise ConfigError("", f"config file is not readable: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"{path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError("", f"{path} is not UTF-8 text") from None


def load_config(
    path: Path, registry: Registrations, env: Mapping[str, str] | None = None
) -> AppConfig:
    raw = read_toml(path)
    return parse_config(raw, registry, config_dir=path.resolve().parent, env=env)


def resolve_path(config: AppConfig, value: Path) -> Path:
    """Relative paths in a config file are relative to that file's folder."""
    value = value.expanduser()
    return value if value.is_absolute() else config.config_dir / value
