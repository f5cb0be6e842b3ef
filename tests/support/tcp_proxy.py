"""A TCP proxy between one bot process and PostgreSQL that a test can cut off.

``cut()`` resets every connection through it and refuses new ones (a
database that vanished from this machine's view: errors at once);
``blackhole()`` keeps the connections open but forwards nothing (a network
partition: nothing errors, everything waits); ``heal()`` lets new
connections through again (the blackholed ones are reset: their streams
lost bytes).
"""

from __future__ import annotations

import asyncio
import contextlib

OPEN, CUT, BLACKHOLE = "open", "cut", "blackhole"


class TcpProxy:
    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.mode = OPEN
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._held: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def cut(self) -> None:
        self.mode = CUT
        self._reset_all()

    def blackhole(self) -> None:
        self.mode = BLACKHOLE

    def heal(self) -> None:
        if self.mode == BLACKHOLE:
            self._reset_all()
        self.mode = OPEN

    def _reset_all(self) -> None:
        for a, b in list(self._links):
            _abort(a)
            _abort(b)
        self._links.clear()
        for w in list(self._held):
            _abort(w)
        self._held.clear()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == CUT:
            _abort(writer)
            return
        if self.mode == BLACKHOLE:
            self._held.add(writer)  # connect "succeeds", then nothing ever comes back
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _abort(writer)
            return
        link = (writer, up_writer)
        self._links.add(link)
        pipes = {
            asyncio.ensure_future(self._pipe(reader, up_writer)),
            asyncio.ensure_future(self._pipe(up_reader, writer)),
        }
        try:
            # One side closing closes both (a cancel request waits for the server's EOF).
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pipe in pipes:
                pipe.cancel()
            await asyncio.gather(*pipes, return_exceptions=True)
            self._links.discard(link)
            _abort(writer)
            _abort(up_writer)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                if self.mode == BLACKHOLE:
                    continue  # swallowed: neither side hears of it
                writer.write(data)
                await writer.drain()


def _abort(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.transport.abort()
