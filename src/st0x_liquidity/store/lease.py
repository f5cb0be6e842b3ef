"""Who may write the engine's streams: one holder per database, fenced by an epoch.

Two things together, because neither is enough alone:

* **an exclusive lock** the operating system releases when the holder dies
  (``flock`` on a file beside the database): a second ``run`` is refused at
  once, and a SIGKILLed holder never blocks the next start;
* **a fencing epoch** in the database itself (the ``lease`` row): every
  acquisition takes ``epoch + 1``, and every engine write transaction checks,
  inside the same transaction, that the epoch is still its own. Where the lock
  is not honoured (some network filesystems), the second holder's acquisition
  bumps the epoch and the first one's next write fails instead of
  interleaving with it.

The holder writes who it is (pid, host, since) into the lock file the moment
it has the lock, which is what a refused process prints; the lease row in the
database records the same with the epoch. PostgreSQL's backend keeps the same row and epoch and
replaces the lock with an expiring lease a standby can wait on.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path

import attrs

from ..errors import StoreError

LEASE_NAME = "engine"


@attrs.frozen
class LeaseHolder:
    epoch: int
    pid: int
    host: str
    since: str
    """ISO 8601 UTC, as stored."""

    def describe(self) -> str:
        return f"pid {self.pid} on host {self.host} since {self.since}"


class LeaseHeldError(StoreError):
    """Another process writes this database; nothing was written by this one."""

    def __init__(self, database: str, holder: LeaseHolder | None) -> None:
        who = holder.describe() if holder is not None else "another process"
        super().__init__(f"database {database} is being written by {who}")
        self.holder = holder


class LeaseLostError(StoreError):
    """The epoch moved on: another process took the database. Stop, call no broker."""


def this_holder(epoch: int) -> LeaseHolder:
    return LeaseHolder(
        epoch=epoch,
        pid=os.getpid(),
        host=socket.gethostname(),
        since=datetime.now(UTC).isoformat(timespec="seconds"),
    )


class FileLock:
    """An exclusive ``flock`` on ``path``, held until :meth:`release` or process exit."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def try_acquire(self, holder: LeaseHolder) -> bool:
        """True if this process now holds the lock (and the file names ``holder``)."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except PermissionError as exc:
            raise StoreError(f"permission denied: cannot create {self.path}: {exc}") from None
        except OSError as exc:
            raise StoreError(f"cannot create {self.path}: {exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except OSError:
            # flock not supported here (some network filesystems): the epoch
            # still fences writes.
            pass
        self._fd = fd
        self.record(holder)
        return True

    def record(self, holder: LeaseHolder) -> None:
        """Name the holder in the lock file, for whoever is refused next."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
                os.pwrite(self._fd, json.dumps(attrs.asdict(holder)).encode(), 0)

    def holder(self) -> LeaseHolder | None:
        """Who the lock file says holds the lock (best effort)."""
        try:
            data = json.loads(self.path.read_text())
            return LeaseHolder(
                int(data["epoch"]), int(data["pid"]), str(data["host"]), str(data["since"])
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None
