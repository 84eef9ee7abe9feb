"""uvicorn's HTTP/1.1 protocol with a deadline for each request head and a bound on open connections.

uvicorn waits forever for a request that never finishes its head, and accepts connections until the process
runs out of file descriptors; then every real client is locked out and the accept loop fails thousands of
times a second. Here:
- a connection that has not sent a complete request head within `head_timeout_s` of opening, or of its last
  answer, is closed (the keep-alive timeout does the same for one that sends nothing at all after an answer);
- past `max_connections`, a new connection closes the oldest one still waiting for its first request head
  (those are the stalled ones; a client between requests on a kept-alive connection goes after them), or,
  when every connection is busy with a request, is itself closed at once;
- when the server stops, a connection carrying an event stream (a GET) is closed at once: such a stream never
  ends by itself and carries no answer anyone waits for, and would hold the stop for its whole grace period.
"""

from __future__ import annotations

import asyncio
import logging
import time

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from server.settings import DEFAULT_HEAD_TIMEOUT_S, DEFAULT_MAX_CONNECTIONS

logger = logging.getLogger("genresult.http")


class GuardedH11Protocol(H11Protocol):
    max_connections = DEFAULT_MAX_CONNECTIONS
    head_timeout_s = DEFAULT_HEAD_TIMEOUT_S

    _head_timer: asyncio.TimerHandle | None = None
    _waiting_since = 0.0
    _served = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()
        if len(self.connections) > self.max_connections:
            self._make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def shutdown(self) -> None:
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and cycle.scope["method"] == "GET":
            self.transport.close()
            return
        super().shutdown()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._check_head()

    def on_response_complete(self) -> None:
        self._served = True
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()
            self._check_head()

    def _check_head(self) -> None:
        if self.conn.their_state is not h11.IDLE:
            self._disarm()

    def _arm(self) -> None:
        self._disarm()
        self._waiting_since = time.monotonic()
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_overdue)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_overdue(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            logger.warning("closed a connection that sent no complete request within %gs", self.head_timeout_s)
            self.transport.close()

    def _make_room(self) -> None:
        waiting = [
            connection
            for connection in self.connections
            if isinstance(connection, GuardedH11Protocol) and connection is not self and connection._head_timer
        ]
        if not waiting:
            logger.warning("refused a connection: all %d are busy with requests", self.max_connections)
            self.transport.close()
            return
        oldest = min(waiting, key=lambda connection: (connection._served, connection._waiting_since))
        logger.warning("closed the oldest idle connection: %d connections are open", len(self.connections))
        oldest.transport.close()
        # Counted out now, not when the event loop gets round to it, so a burst cannot overshoot the bound.
        self.connections.discard(oldest)


def guarded_protocol(max_connections: int, head_timeout_s: float) -> type[GuardedH11Protocol]:
    """The protocol class for `uvicorn.Config(http=...)`, with these bounds."""
    return type(
        "GuardedH11Protocol",
        (GuardedH11Protocol,),
        {"max_connections": max_connections, "head_timeout_s": head_timeout_s},
    )
