"""The parent's end of the store's writer process (see :mod:`.write_worker`).

Requests may be sent ahead: :meth:`WriterProcess.send` writes a frame and
returns a future for its reply, which a reader thread resolves as replies
arrive (in request order). The store keeps one transaction queued in the pipe
while the writer runs another, so the writer starts the next one the moment it
commits, instead of waiting for the event loop to hand it over.
"""

from __future__ import annotations

import collections
import contextlib
import sqlite3
import subprocess
import sys
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from ..errors import StoreError
from . import write_worker
from .write_worker import read_frame, write_frame

_CLOSE_TIMEOUT = 30.0
_PIPE_BYTES = 1 << 20
"""Pipe capacity asked for: a queued transaction's frame (~0.5 MB for 1,000 fills)
then fits while the writer is busy, and sending it does not block."""


class WriterProcess:
    def __init__(self, path: Path, synchronous: str) -> None:
        self.path = path
        self.synchronous = synchronous
        self._proc: subprocess.Popen[bytes] | None = None
        self._send_lock = threading.Lock()
        self._waiting: collections.deque[Future[Any]] = collections.deque()
        self._reader: threading.Thread | None = None
        self._ended: StoreError | None = None

    def start(self) -> None:
        """Start the process and wait until its connection is open."""
        script = Path(write_worker.__file__).resolve()
        # -I: the script needs the standard library only; nothing of the
        # environment (PYTHONPATH, user site) can change what it runs.
        proc = self._proc = subprocess.Popen(
            [sys.executable, "-I", str(script), str(self.path), self.synchronous],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert proc.stdin is not None
        with contextlib.suppress(ImportError, OSError, AttributeError):  # Linux only; a hint
            import fcntl

            fcntl.fcntl(proc.stdin.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
        try:
            _result(self._read())
        except BaseException:
            self.kill()
            raise
        self._reader = threading.Thread(
            target=self._read_replies, name="st0x-store-replies", daemon=True
        )
        self._reader.start()

    def send(self, op: str, *args: Any) -> Future[Any]:
        """Queue a request; the future ends with its reply (or the writer's end)."""
        proc = self._running()
        assert proc.stdin is not None
        future: Future[Any] = Future()
        with self._send_lock:
            if self._ended is not None:
                raise self._ended
            self._waiting.append(future)
            # A broken pipe: the reader thread fails every waiting future once
            # it sees the process end.
            with contextlib.suppress(OSError):
                write_frame(proc.stdin, (op, args))
        return future

    def call(self, op: str, *args: Any) -> Any:
        return self.send(op, *args).result()

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
            self._join_reader()
            if proc.stdout is not None:
                proc.stdout.close()
            self._proc = None

    def kill(self) -> None:
        proc = self._proc
        if proc is not None:
            with contextlib.suppress(OSError):
                proc.kill()
            proc.wait()
            self._join_reader()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
            self._proc = None

    def _join_reader(self) -> None:
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(_CLOSE_TIMEOUT)
        self._reader = None

    def _running(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise StoreError("store is not open")
        return self._proc

    def _read(self) -> Any:
        proc = self._running()
        assert proc.stdout is not None
        try:
            return read_frame(proc.stdout)
        except EOFError:
            raise self._gone() from None

    def _read_replies(self) -> None:
        """Resolve the waiting futures in order, until the process ends."""
        while True:
            try:
                reply = self._read()
            except BaseException as exc:
                ended = exc if isinstance(exc, StoreError) else StoreError(str(exc))
                with self._send_lock:
                    self._ended = ended
                    waiting, self._waiting = self._waiting, collections.deque()
                for future in waiting:
                    future.set_exception(ended)
                return
            with self._send_lock:
                future = self._waiting.popleft()
            try:
                future.set_result(_result(reply))
            except BaseException as exc:
                future.set_exception(exc)

    def _gone(self) -> StoreError:
        proc = self._running()
        try:
            code = proc.wait(5)
        except subprocess.TimeoutExpired:
            code = None
        return StoreError(f"the store's writer process ended unexpectedly (exit status {code})")


def _result(reply: Any) -> Any:
    """The value of an ``ok`` reply; the error a failed one stands for, raised."""
    status = reply[0]
    if status == "ok":
        return reply[1]
    kind, message = reply[1], reply[2]
    if status == "sqlite":
        error = getattr(sqlite3, kind, sqlite3.Error)
        if isinstance(error, type) and issubclass(error, sqlite3.Error):
            raise error(message)
        raise sqlite3.Error(message)
    if status == "skipped":
        raise StoreError(f"not written: {message}")
    raise StoreError(f"the store's writer failed: {kind}: {message}")
