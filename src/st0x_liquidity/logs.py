"""Logging set-up: human-readable or JSON lines, with secrets scrubbed.

Every message passes a filter that replaces the clear text of each configured
secret with ``***`` before any handler sees it, so a plugin that formats a URL
with a token in it still cannot leak the token into the logs.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import attrs

from .config import Secret

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class RedactingFilter(logging.Filter):
    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            record.msg = self.redact(record.getMessage())
            record.args = None
            if record.exc_info and record.exc_info[1] is not None:
                record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
                record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value if isinstance(value, int | float | str | bool) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, separators=(",", ":"))


def secrets_in(*objects: Any) -> list[str]:
    """Clear text of every Secret found in attrs config objects (recursively)."""
    found: list[str] = []

    def walk(obj: Any) -> None:
        if isinstance(obj, Secret):
            found.append(obj.get())
        elif attrs.has(type(obj)):
            for field in attrs.fields(type(obj)):
                walk(getattr(obj, field.name))
        elif isinstance(obj, dict):
            for value in obj.values():
                walk(value)
        elif isinstance(obj, list | tuple):
            for value in obj:
                walk(value)

    for obj in objects:
        walk(obj)
    return found


def setup_logging(level: str, fmt: str, secrets: Iterable[str] = ()) -> RedactingFilter:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    redactor = RedactingFilter(secrets)
    handler.addFilter(redactor)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("aiosqlite", "asyncio", "web3", "websockets", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    return redactor
