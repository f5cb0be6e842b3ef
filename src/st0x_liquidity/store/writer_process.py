"""The parent's end of the store's writer process (see :mod:`.write_worker`).

Calls block: the store makes them from its one writer thread, which waits on
the pipe with the GIL released.
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..errors import StoreError
from . import write_worker
from .write_worker import read_frame, write_frame

_CLOSE_TIMEOUT = 30.0


class WriterProcess:
    def __init__(self, path: Path, synchronous: str) -> None:
        self.path = path
        self.synchronous = synchronous
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the process and wait until its connection is open."""
        script = Path(write_worker.__file__).resolve()
        # -I: the script needs the standard library only; nothing of the
        # environment (PYTHONPATH, user site) can change what it runs.
        self._proc = subprocess.Popen(
            [sys.executable, "-I", str(script), str(self.path), self.synchronous],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        try:
            self._reply()
        except BaseException:
            self.kill()
            raise

    def call(self, op: str, *args: Any) -> Any:
        proc = self._running()
        assert proc.stdin is not None
        try:
            write_frame(proc.stdin, (op, args))
        except (BrokenPipeError, OSError):
            raise self._gone() from None
        return self._reply()

    def close(self) -> None:
        """Ask the process to finish and wait for it; kill it if it does not."""
        proc = self._proc
        if proc is None:
            return
        try:
            if proc.poll() is None:
                with contextlib.suppress(OSError, EOFError, StoreError, sqlite3.Error):
                    self.call("close")
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
            try:
                proc.wait(_CLOSE_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        finally:
            if proc.stdout is not None:
                proc.stdout.close()
            self._proc = None

    def kill(self) -> None:
        proc = self._proc
        if proc is not None:
            with contextlib.suppress(OSError):
                proc.kill()
            proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
            self._proc = None

    def _running(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise StoreError("store is not open")
        return self._proc

    def _reply(self) -> Any:
        proc = self._running()
        assert proc.stdout is not None
        try:
            reply = read_frame(proc.stdout)
        except EOFError:
            raise self._gone() from None
        status = reply[0]
        if status == "ok":
            return reply[1]
        kind, message = reply[1], reply[2]
        if status == "sqlite":
            error = getattr(sqlite3, kind, sqlite3.Error)
            if isinstance(error, type) and issubclass(error, sqlite3.Error):
                raise error(message)
            raise sqlite3.Error(message)
        raise StoreError(f"the store's writer failed: {kind}: {message}")

    def _gone(self) -> StoreError:
        proc = self._running()
        try:
            code = proc.wait(5)
        except subprocess.TimeoutExpired:
            code = None
        return StoreError(f"the store's writer process ended unexpectedly (exit status {code})")
