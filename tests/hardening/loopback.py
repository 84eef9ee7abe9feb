"""A real socket for the faults that need one: uvicorn on 127.0.0.1 in a background thread.

The server runs on a socket bound before it starts (no port race), and serves whatever ASGI app `target`
holds, so one server per module can front a fresh sandbox in every test. A socket that is bound but not yet
listening refuses connections, which is how "connection refused" is shown, and how the provider "comes
back" afterwards on the very same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send


class Switch:
    """An ASGI app that forwards to whichever app a test puts in `target`."""

    def __init__(self, target: ASGIApp | None = None) -> None:
        self.target = target

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.target is not None, "the loopback server has no app to serve"
        await self.target(scope, receive, send)


def bound_socket() -> socket.socket:
    """A TCP socket on 127.0.0.1 with a free port, bound but not listening: connecting to it is refused."""
    # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY only on sockets that say so, and without it every
    # answer on a kept-alive connection waits 40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class _Server(uvicorn.Server):
    """uvicorn that says when it is listening, so nobody polls for it, and hears a stop at once."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = threading.Event()
        self._woken: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._woken = (asyncio.get_running_loop(), asyncio.Event())
        await super().startup(sockets)
        self.listening.set()

    async def main_loop(self) -> None:
        # uvicorn's loop, which looks for `should_exit` every 0.1 s: here `wake` cuts the pause short, so a
        # stop costs no tick (a module's loopback servers are started and stopped dozens of times a run).
        assert self._woken is not None
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864_000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken[1].wait(), 0.1)

    def wake(self) -> None:
        if self._woken is not None and not self._woken[0].is_closed():
            loop, event = self._woken
            loop.call_soon_threadsafe(event.set)


class LoopbackServer:
    def __init__(
        self, app: ASGIApp, sock: socket.socket | None = None, *, lifespan: bool = False, **config: Any
    ) -> None:
        self.app = app
        self.sock = sock or bound_socket()
        self.port: int = self.sock.getsockname()[1]
        self.root = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            lifespan="on" if lifespan else "off",
            log_config=None,
            log_level="critical",
            access_log=False,
            **{
                "timeout_keep_alive": 5,
                # Emulators send their own Date (on their clock) with a Retry-After date; a second would confuse.
                "date_header": False,
                **config,
            },
        )
        self._server = _Server(config)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self.sock]))

    def start(self) -> None:
        self._thread.start()
        assert self._server.listening.wait(10), "uvicorn did not start"

    def stop(self) -> None:
        self._server.should_exit = True
        self._server.wake()
        self._thread.join(10)
        assert not self._thread.is_alive(), "uvicorn did not stop"
        self.sock.close()


@contextmanager
def serving(
    app: ASGIApp, sock: socket.socket | None = None, *, lifespan: bool = False, **config: Any
) -> Iterator[LoopbackServer]:
    """`config`: further `uvicorn.Config` arguments."""
    server = LoopbackServer(app, sock, lifespan=lifespan, **config)
    server.start()
    try:
        yield server
    finally:
        server.stop()
